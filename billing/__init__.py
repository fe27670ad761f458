"""Canopy billing package."""
