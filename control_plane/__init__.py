"""Canopy control plane: API, web pages, reconcilers and fleet operations."""
