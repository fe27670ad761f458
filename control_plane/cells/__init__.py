"""Cells: the units of scale that host pooled (Professional) workspaces, and placement into them."""
