"""API tokens: hashed, shown once, scoped by role."""
