"""Infrastructure providers: what a workspace is made of, per deployment kind (local, aws)."""
