"""Per-workspace credentials (database password, control token): random, stored encrypted under Canopy's keys."""
