"""Drift detection: what changed behind Canopy's back, found cheaply, and the slow re-verification."""
