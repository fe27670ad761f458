"""Audit log: every mutation, who did it, before and after."""
