"""Simple Log Service: a secure, fast log service."""

__version__ = "0.2.0"

__all__ = ["__version__"]
