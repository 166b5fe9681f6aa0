"""Simple Log Service: a secure, fast log service."""

__version__ = "0.3.0"

__all__ = ["__version__"]
