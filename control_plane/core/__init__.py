"""Cross-cutting pieces every domain package uses: settings, database, errors, clock, security."""
