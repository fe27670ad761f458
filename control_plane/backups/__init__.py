"""Workspace backups (database and files, encrypted at rest) and restores (into a clone, or in place)."""
