"""Canopy infra package."""
