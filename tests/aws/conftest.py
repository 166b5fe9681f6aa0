"""The Lambda handlers built from explicit settings over a fresh DynamoDB table in moto's server mode (a
stand-in for DynamoDB, not AWS itself)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from logsvc.aws.handlers import LambdaApp
from logsvc.settings import load_settings
from tests.aws.helpers import PRINCIPALS


@pytest.fixture
def lambda_app(dynamodb_url: str) -> Iterator[LambdaApp]:
    """The handlers of one container, on a new table; the callers above are granted their roles."""
    settings = load_settings(environ={}, overrides={"store": dynamodb_url, "aws_principals": PRINCIPALS})
    app = LambdaApp(settings)
    yield app
    app.close()
