"""The networks: one module per model, each loading from a folder under ``models.dir`` (see fetch.py)."""
