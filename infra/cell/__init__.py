"""The Pulumi program of a Canopy cell (shared infrastructure of pooled workspaces)."""
