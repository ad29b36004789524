"""Config files (plain data: ml_collections only)."""
