"""Workspace-server releases: the catalogue, pins, what runs where."""
