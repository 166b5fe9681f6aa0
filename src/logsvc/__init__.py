"""Simple Log Service: a secure, fast log service."""

__version__ = "0.4.0"

__all__ = ["__version__"]
