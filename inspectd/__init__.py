"""inspectd: zero-shot industrial visual inspection daemon."""

__version__ = "0.1.0"
