"""Workspaces: the tenants Canopy provisions, their lifecycle and reconciliation status."""
