"""All settings, read in this one place: defaults < TOML config file < ``LOGSVC_*`` environment < flags."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from datetime import tzinfo
from pathlib import Path
from typing import Annotated, Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from logsvc.datadir import DataDir
from logsvc.domain.entries import HARD_MAX_MESSAGE_BYTES, Limits
from logsvc.domain.iam import iam_role_or_user
from logsvc.domain.roles import Role, granted_roles
from logsvc.errors import ConfigError
from logsvc.scopes import PATTERN_REGEX, check_pattern
from logsvc.store_url import engine_of, sqlite_url, tiered_url

__all__ = ["ENV_PREFIX", "AwsGrant", "Settings", "load_settings"]

ENV_PREFIX = "LOGSVC_"
# Not a setting: how ``serve --workers N`` tells its workers where the writer they share listens.
SHARED_WRITER_ENV: Final = f"{ENV_PREFIX}SHARED_WRITER"
_JSON_FIELDS = frozenset(
    {"retention_by_service", "aws_principals", "jwt_default_roles", "syslog_services", "forwarded_allow_ips"}
)
_JSON_EXAMPLES = {
    "retention_by_service": 'a JSON object such as {"payments*": 30}',
    "aws_principals": 'a JSON object such as {"arn:aws:iam::123456789012:role/app": {"roles": ["read"]}}',
    "jwt_default_roles": 'a JSON array such as ["ingest", "read"]',
    "syslog_services": 'a JSON array such as ["myapp", "web-*"]',
    "forwarded_allow_ips": 'a JSON array such as ["127.0.0.1"]',
}
# An IAM role or user ARN; a role or user may sit under a path (role/path/to/name).
MiB = 1024 * 1024


def _default_data_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(base) / "logsvc")


def _config_dir() -> str:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return str(Path(base) / "logsvc")


def _default_credentials_file() -> str:
    return str(Path(_config_dir()) / "credentials")


class AwsGrant(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """What an AWS identity (an IAM role or user) may do behind the Lambda handlers: ``roles``, or one
    ``role`` as the setting was written before a grant could hold several."""

    role: Role | None = None
    services: tuple[Annotated[str, msgspec.Meta(pattern=PATTERN_REGEX)], ...] = ()
    roles: tuple[Role, ...] = ()

    def __post_init__(self) -> None:
        granted_roles(self.role, self.roles)  # ValueError unless exactly one form names some

    @property
    def granted(self) -> tuple[Role, ...]:
        return granted_roles(self.role, self.roles)


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Every setting with its default and description (docs/configuration.md is checked against these)."""

    host: Annotated[str, msgspec.Meta(description="address to bind; 127.0.0.1 keeps the service local")] = (
        "127.0.0.1"
    )
    port: Annotated[int, msgspec.Meta(ge=0, le=65535, description="TCP port (0 picks a free one)")] = 8080
    data_dir: Annotated[str, msgspec.Meta(description="where the embedded store lives")] = msgspec.field(
        default_factory=_default_data_dir
    )
    store: Annotated[
        str, msgspec.Meta(description="store URL; empty means the store_engine's under data_dir")
    ] = ""
    store_engine: Annotated[
        Literal["sqlite", "tiered"],
        msgspec.Meta(
            description="embedded store when store is empty: sqlite (one file) or tiered (storage v2)"
        ),
    ] = "sqlite"
    workers: Annotated[int, msgspec.Meta(ge=1, le=64, description="server processes sharing the port")] = 1
    read_threads: Annotated[int, msgspec.Meta(ge=1, le=64, description="reader threads per process")] = 4
    log_level: Annotated[
        str, msgspec.Meta(pattern="^(debug|info|warning|error)$", description="service log level")
    ] = "info"
    access_log: Annotated[bool, msgspec.Meta(description="log every request (one JSON line each)")] = False
    max_body_bytes: Annotated[int, msgspec.Meta(ge=1024, description="largest request body as sent")] = (
        10 * MiB
    )
    max_decompressed_bytes: Annotated[int, msgspec.Meta(ge=1024, description="largest body after gunzip")] = (
        32 * MiB
    )
    max_batch_entries: Annotated[int, msgspec.Meta(ge=1, le=10_000, description="entries in one request")] = (
        10_000
    )
    max_message_bytes: Annotated[
        int, msgspec.Meta(ge=1, le=HARD_MAX_MESSAGE_BYTES, description="largest message, UTF-8 bytes")
    ] = 256 * 1024
    decode_threads: Annotated[
        int,
        msgspec.Meta(ge=1, le=64, description="large or gzip bodies decoded at once per process; more wait"),
    ] = 2
    body_timeout: Annotated[
        float, msgspec.Meta(gt=0, description="seconds a client gets to send a request body")
    ] = 30.0
    max_header_bytes: Annotated[int, msgspec.Meta(ge=1024, description="largest request header block")] = (
        16384
    )
    header_timeout: Annotated[
        float, msgspec.Meta(gt=0, description="seconds a client gets to send a request head")
    ] = 10.0
    allow_anonymous: Annotated[
        bool,
        msgspec.Meta(description="serve requests without credentials as ingest+read (never in production)"),
    ] = False
    sigv4_region: Annotated[str, msgspec.Meta(description="region a SigV4 signature must name")] = "us-east-1"
    sigv4_service: Annotated[str, msgspec.Meta(description="service a SigV4 signature must name")] = (
        "execute-api"
    )
    sigv4_replay_guard: Annotated[
        bool,
        msgspec.Meta(
            description="refuse a SigV4 signature already used within the skew window (API Gateway does not)"
        ),
    ] = False
    rate_limit_per_second: Annotated[
        float, msgspec.Meta(gt=0, description="requests per second per credential")
    ] = 10_000.0
    rate_limit_burst: Annotated[float, msgspec.Meta(ge=1, description="bucket size per credential")] = 5_000.0
    failed_auth_per_minute: Annotated[
        float,
        msgspec.Meta(ge=0, description="failed authentications per client address and minute; 0: no limit"),
    ] = 30.0
    forwarded_allow_ips: Annotated[
        tuple[str, ...],
        msgspec.Meta(
            description="addresses or networks of the reverse proxies whose X-Forwarded-For is the client's "
            "address; none by default"
        ),
    ] = ()
    jwt_issuer: Annotated[str, msgspec.Meta(description="OIDC issuer; empty disables JWT bearer tokens")] = ""
    jwt_audience: Annotated[str, msgspec.Meta(description="expected aud (or Cognito client_id)")] = ""
    jwt_jwks_url: Annotated[str, msgspec.Meta(description="URL of the issuer's JWKS")] = ""
    jwt_jwks_file: Annotated[str, msgspec.Meta(description="JWKS file, instead of a URL")] = ""
    jwt_role_claim: Annotated[str, msgspec.Meta(description="claim holding role names")] = "cognito:groups"
    jwt_service_claim: Annotated[str, msgspec.Meta(description="claim holding service patterns")] = (
        "logsvc:services"
    )
    jwt_default_roles: Annotated[
        tuple[Role, ...],
        msgspec.Meta(description="roles of a token without the role claim (a pool user in no group)"),
    ] = ()
    tls_cert: Annotated[str, msgspec.Meta(description="PEM certificate chain; with tls_key, serve HTTPS")] = (
        ""
    )
    tls_key: Annotated[str, msgspec.Meta(description="PEM private key")] = ""
    credentials_file: Annotated[
        str, msgspec.Meta(description="client credentials file written at first start")
    ] = msgspec.field(default_factory=_default_credentials_file)
    profile: Annotated[
        str,
        msgspec.Meta(min_length=1, description="profile of credentials_file that the client commands use"),
    ] = "default"
    retention_days: Annotated[
        float,
        msgspec.Meta(ge=0, description="keep entries this many days by event time; 0 keeps them forever"),
    ] = 0
    retention_by_service: Annotated[
        dict[str, float],
        msgspec.Meta(description="service pattern (* ?) -> days, first match wins, before retention_days"),
    ] = msgspec.field(default_factory=dict)
    retention_sweep_seconds: Annotated[
        float, msgspec.Meta(gt=0, description="seconds between two sweeps of expired entries")
    ] = 60.0
    deletion_protection: Annotated[
        bool, msgspec.Meta(description="refuse purges, store destruction and retention shortened below data")
    ] = True
    archive_dir: Annotated[
        str, msgspec.Meta(description="write encrypted archive segments here for point-in-time restore")
    ] = ""
    archive_seconds: Annotated[
        float, msgspec.Meta(gt=0, description="seconds between two archive segments (the recovery point)")
    ] = 60.0
    archive_window_days: Annotated[
        float, msgspec.Meta(gt=0, description="days of segments kept; older ones are pruned")
    ] = 35.0
    encryption: Annotated[
        bool, msgspec.Meta(description="encrypt the databases at rest (page-level, envelope keys)")
    ] = True
    auth_store: Annotated[
        str,
        msgspec.Meta(
            description="credential store URL; empty means auth.db in data_dir, or dynamodb://TABLE"
        ),
    ] = ""
    audit_retention_days: Annotated[
        float, msgspec.Meta(ge=0, description="keep audit records this many days; 0 keeps them forever")
    ] = 90.0
    auth_cache_seconds: Annotated[
        float,
        msgspec.Meta(gt=0, le=3600, description="seconds a shared credential store's cache may lag behind"),
    ] = 5.0
    master_key_file: Annotated[
        str, msgspec.Meta(description="file holding the master key (base64, 0600), outside the data dir")
    ] = msgspec.field(default_factory=lambda: str(Path(_config_dir()) / "master.key"))
    master_key_env: Annotated[
        str, msgspec.Meta(description="name of an environment variable holding the master key instead")
    ] = ""
    master_key_kms: Annotated[
        str, msgspec.Meta(description="AWS KMS key id, ARN or alias that wraps the data key instead")
    ] = ""
    aws_region: Annotated[str, msgspec.Meta(description="region of AWS services used (KMS)")] = "us-east-1"
    aws_endpoint_url: Annotated[
        str, msgspec.Meta(description="endpoint of AWS services, for VPC endpoints or local stand-ins")
    ] = ""
    aws_principals: Annotated[
        dict[str, AwsGrant],
        msgspec.Meta(
            description="IAM role or user ARN -> role and service patterns, for the Lambda handlers"
        ),
    ] = msgspec.field(default_factory=dict)
    shutdown_timeout: Annotated[
        float, msgspec.Meta(gt=0, description="seconds in-flight requests get to finish on shutdown")
    ] = 30.0
    syslog_port: Annotated[
        int, msgspec.Meta(ge=0, le=65535, description="port of the syslog listener, TCP and UDP; 0: off")
    ] = 0
    syslog_services: Annotated[
        tuple[str, ...],
        msgspec.Meta(description="service patterns syslog may write (it has no credentials); required"),
    ] = ()
    syslog_tls: Annotated[
        bool, msgspec.Meta(description="TLS on the syslog TCP port with tls_cert/tls_key (RFC 5425); no UDP")
    ] = False
    syslog_max_frame_bytes: Annotated[
        int,
        msgspec.Meta(ge=480, le=HARD_MAX_MESSAGE_BYTES, description="largest syslog message, as framed"),
    ] = 65536
    syslog_max_connections: Annotated[
        int, msgspec.Meta(ge=1, le=100_000, description="syslog TCP connections open at once")
    ] = 256
    syslog_idle_timeout: Annotated[
        float,
        msgspec.Meta(gt=0, description="seconds a syslog connection may go without completing a message"),
    ] = 120.0
    syslog_timezone: Annotated[
        str, msgspec.Meta(description="zone of RFC 3164 timestamps (IANA name); empty: the server's")
    ] = ""
    tail_streams: Annotated[
        int, msgspec.Meta(ge=1, description="open GET /logs/tail streams per server process, in all")
    ] = 1000
    tail_streams_per_credential: Annotated[
        int, msgspec.Meta(ge=1, description="open tail streams per credential and server process")
    ] = 10
    tail_queue_entries: Annotated[
        int,
        msgspec.Meta(
            ge=1, le=100_000, description="entries a tail stream holds for a slow reader; more drop"
        ),
    ] = 1000
    tail_queue_bytes: Annotated[
        int,
        msgspec.Meta(
            ge=64 * 1024,
            le=1024 * MiB,
            description="bytes of events a tail stream holds for a slow reader; more drop",
        ),
    ] = MiB
    tail_heartbeat_seconds: Annotated[
        float,
        msgspec.Meta(gt=0, description="seconds without entries before a tail stream sends a heartbeat"),
    ] = 15.0
    tail_poll_seconds: Annotated[
        float,
        msgspec.Meta(
            gt=0, le=60, description="seconds between two reads of the store for the tail (other processes)"
        ),
    ] = 0.25
    tail_stream_seconds: Annotated[
        float,
        msgspec.Meta(gt=0, description="seconds a tail stream lasts; the client resumes (credentials again)"),
    ] = 300.0

    def __post_init__(self) -> None:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert and tls_key go together: give both or neither")
        if self.jwt_issuer and (not self.jwt_audience or bool(self.jwt_jwks_url) == bool(self.jwt_jwks_file)):
            raise ValueError("jwt_issuer needs jwt_audience and exactly one of jwt_jwks_url, jwt_jwks_file")
        if self.store_engine == "tiered" and self.store and engine_of(self.store) != "tiered":
            raise ValueError("store_engine = tiered takes an empty store or a tiered:///DIR URL")
        if self.archive_dir and engine_of(self.store) == "dynamodb":
            raise ValueError("archive_dir works with the sqlite store; DynamoDB has point-in-time recovery")
        if self.auth_store and not self.auth_store.startswith("dynamodb://"):
            raise ValueError("auth_store is empty (auth.db in data_dir) or dynamodb://TABLE?region=REGION")
        if self.auth_store and not self.encryption:
            # A shared store keeps SigV4 secrets wrapped by the master key; without one, they would be clear.
            raise ValueError("auth_store = dynamodb://... needs encryption = true (secrets are kept wrapped)")
        for pattern in self.retention_by_service:
            try:
                check_pattern(pattern)  # the grammar of every service scope, so both backends agree
            except ValueError as exc:
                raise ValueError(f"retention_by_service: {exc}") from None
        self._check_syslog()
        for proxy in self.forwarded_allow_ips:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ValueError(
                    f"forwarded_allow_ips: {proxy!r} is not an IP address or network (such as 10.0.0.0/8)"
                ) from None
        for arn in self.aws_principals:
            if iam_role_or_user(arn) is None:
                raise ValueError(
                    f"aws_principals: {arn!r} is not an IAM role or user ARN "
                    "(arn:aws:iam::ACCOUNT:role/NAME or arn:aws:iam::ACCOUNT:user/NAME)"
                )

    def _check_syslog(self) -> None:
        for pattern in self.syslog_services:
            try:
                check_pattern(pattern)
            except ValueError as exc:
                raise ValueError(f"syslog_services: {exc}") from None
        if self.syslog_port and not self.syslog_services:
            # Syslog has no credentials: what it may write is said here, or it writes nothing.
            raise ValueError(
                "syslog_port needs syslog_services, the service patterns syslog messages may write "
                '(syslog has no credentials), e.g. ["myapp", "web-*"]; ["*"] allows every service'
            )
        if self.syslog_port and self.syslog_port == self.port:
            raise ValueError("syslog_port must differ from port")
        if self.syslog_tls and not self.tls_cert:
            raise ValueError("syslog_tls uses the server's certificate: set tls_cert and tls_key too")
        if self.syslog_timezone:
            try:
                ZoneInfo(self.syslog_timezone)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(
                    f"syslog_timezone {self.syslog_timezone!r} is not a time zone name such as "
                    "Europe/Berlin or UTC"
                ) from None

    @property
    def syslog_zone(self) -> tzinfo | None:
        """The zone of RFC 3164 timestamps; None for the server's local zone."""
        return ZoneInfo(self.syslog_timezone) if self.syslog_timezone else None

    @property
    def store_url(self) -> str:
        if self.store:
            return self.store
        data = DataDir(self.data_dir)
        return tiered_url(data.tiered) if self.store_engine == "tiered" else sqlite_url(data.logs)

    @property
    def auth_db(self) -> Path:
        return DataDir(self.data_dir).auth

    @property
    def limits(self) -> Limits:
        return Limits(
            max_message_bytes=self.max_message_bytes,
            max_batch_entries=self.max_batch_entries,
            max_decompressed_bytes=self.max_decompressed_bytes,
        )


def load_settings(
    config_file: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Merge every layer and validate the result; ConfigError names the bad setting and where it came from."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    config_file = config_file or environ.get(f"{ENV_PREFIX}CONFIG")
    if config_file:
        try:
            values.update(msgspec.toml.decode(Path(config_file).read_bytes()))
        except OSError as exc:
            raise ConfigError(f"cannot read config file {config_file}: {exc.strerror}") from None
        except msgspec.DecodeError as exc:
            raise ConfigError(f"config file {config_file} is not valid TOML: {exc}") from None
    fields = set(Settings.__struct_fields__)
    for key, value in environ.items():
        if key.startswith(ENV_PREFIX) and key not in (f"{ENV_PREFIX}CONFIG", SHARED_WRITER_ENV):
            name = key[len(ENV_PREFIX) :].lower()
            if name not in fields:
                raise ConfigError(f"unknown setting {key} in the environment")
            # Structured settings travel through the environment as JSON.
            try:
                values[name] = msgspec.json.decode(value) if name in _JSON_FIELDS else value
            except msgspec.DecodeError:
                raise ConfigError(f"{key} must be {_JSON_EXAMPLES[name]}") from None
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return msgspec.convert(values, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid setting: {exc}") from None


def settings_environment(settings: Settings) -> dict[str, str]:
    """The settings as LOGSVC_* variables, for worker processes that rebuild them with load_settings()."""

    def text(value: object) -> str:
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, dict | list | tuple):
            return msgspec.json.encode(value).decode()
        return str(value)

    return {
        f"{ENV_PREFIX}{name.upper()}": text(value) for name, value in msgspec.structs.asdict(settings).items()
    }
