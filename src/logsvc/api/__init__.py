"""The HTTP API."""

from logsvc.api.app import create_app, create_app_from_environment

__all__ = ["create_app", "create_app_from_environment"]
