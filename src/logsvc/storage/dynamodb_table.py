"""A DynamoDB table of logsvc's: its URL, a client for it, its creation, and what its errors say.

Shared by the log store (``storage/dynamodb.py``) and the credential store (``auth/dynamodb_credentials.py``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

import boto3
import msgspec
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from logsvc.errors import ConfigError

__all__ = [
    "CONFIG_KEY",
    "DEFAULT_SHARDS",
    "MAX_SHARDS",
    "TableUrl",
    "client_for",
    "create_table",
    "error_reason",
    "parse_url",
]

MAX_SHARDS = 64
DEFAULT_SHARDS = 4
CONFIG_KEY = {"pk": {"S": "#config"}, "sk": {"S": "#config"}}


class TableUrl(msgspec.Struct, frozen=True):
    table: str
    region: str
    endpoint: str | None
    shards: int | None


def parse_url(url: str, *, setting: str = "store", shards: bool = True) -> TableUrl:
    """``dynamodb://TABLE?region=..&endpoint=..&shards=N``; ConfigError names what is wrong.

    ``setting`` names the setting in messages; ``shards=False`` refuses the parameter (a table of another
    kind, such as the credential table, has no shards)."""
    parts = urlsplit(url)
    allowed = ["region", "endpoint", "shards"] if shards else ["region", "endpoint"]
    if parts.scheme != "dynamodb" or not parts.netloc or parts.path not in ("", "/"):
        shape = "[&shards=N]" if shards else ""
        raise ConfigError(
            f"{setting} URL {url!r}: write dynamodb://TABLE?region=REGION{shape}[&endpoint=URL]"
        )
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(params.keys() - set(allowed))
    if unknown:
        raise ConfigError(
            f"{setting} URL {url!r}: unknown parameter {', '.join(unknown)} (allowed: {', '.join(allowed)})"
        )
    count = params.get("shards")
    if count is not None and (not count.isdigit() or not 1 <= int(count) <= MAX_SHARDS):
        raise ConfigError(f"{setting} URL {url!r}: shards must be a whole number from 1 to {MAX_SHARDS}")
    return TableUrl(
        table=parts.netloc,
        region=params.get("region") or "us-east-1",
        endpoint=params.get("endpoint") or None,
        shards=int(count) if count else None,
    )


def client_for(url: TableUrl, pool: int) -> Any:
    """A DynamoDB client for the URL's region and endpoint, with bounded retries and timeouts."""
    config = Config(
        retries={"max_attempts": 4, "mode": "standard"},
        max_pool_connections=pool,
        connect_timeout=3,
        read_timeout=10,
    )
    return boto3.client("dynamodb", region_name=url.region, endpoint_url=url.endpoint, config=config)


def create_table(url: str) -> None:
    """Create the table, its indexes and TTL as the Terraform stack does (for DynamoDB Local, moto, tests)."""
    target = parse_url(url)
    client = client_for(target, 2)
    shards = target.shards or DEFAULT_SHARDS
    try:
        _create(client, target.table, shards)
    except (ClientError, BotoCoreError) as exc:
        raise ConfigError(f"cannot create DynamoDB table {target.table}: {error_reason(exc)}") from None


def _create(client: Any, table: str, shards: int) -> None:
    client.create_table(
        TableName=table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": "S"} for name in ("pk", "sk", "gpk", "id", "apk", "ask")
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by_time",
                "KeySchema": [
                    {"AttributeName": "gpk", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            },
            {
                "IndexName": "by_id",
                "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            },
            {
                "IndexName": "by_arrival",
                "KeySchema": [
                    {"AttributeName": "apk", "KeyType": "HASH"},
                    {"AttributeName": "ask", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            },
        ],
    )
    client.get_waiter("table_exists").wait(TableName=table)
    client.update_time_to_live(
        TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
    )
    client.put_item(TableName=table, Item={**CONFIG_KEY, "shards": {"N": str(shards)}})


def error_reason(exc: ClientError | BotoCoreError) -> str:
    """What AWS said, for messages and the service log (never for clients)."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'error')}: {error.get('Message', '')}".rstrip(": ")
    return type(exc).__name__
