"""AWS Signature Version 4: server-side verification of signed requests, and a signer sharing its code.

Only the ``Authorization`` header form (``AWS4-HMAC-SHA256``) is supported; presigned URLs are not.
The canonicalization follows AWS's published rules as botocore's ``SigV4Auth`` applies them to services other
than S3, and is checked against AWS's own test suite and against botocore and requests-aws4auth.

Text is UTF-8-encoded for hashing, as clients do. Header values decoded from the wire as latin-1 (as ASGI
servers hand them over) therefore match what ``http.client``-based clients such as botocore and requests sign,
since those send header text as latin-1 bytes. Lone surrogates, as ``errors="surrogateescape"`` decoding
produces, are hashed as the bytes they stand for rather than crashing the verifier.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Final, TypeAlias
from urllib.parse import quote, quote_from_bytes, unquote_to_bytes

from logsvc.errors import (
    InvalidSignature,
    MissingAuthenticationToken,
    ReplayedSignature,
    SignatureExpired,
    SignatureMismatch,
    SignatureRejected,
)

__all__ = [
    "ALGORITHM",
    "SigV4Verifier",
    "SignedHead",
    "SignedRequest",
    "canonical_request",
    "is_normalized",
    "sign",
    "signing_key",
    "string_to_sign",
]

ALGORITHM = "AWS4-HMAC-SHA256"
_TERMINATOR = "aws4_request"
_AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_AMZ_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z", re.ASCII)
_SIGNATURE = re.compile(r"[0-9a-f]{64}", re.ASCII)
_UNSIGNED_PAYLOADS = ("UNSIGNED-PAYLOAD", "STREAMING-")
_AUTH_PARAMETERS = ("Credential", "SignedHeaders", "Signature")
# What the signer leaves unsigned: botocore's list. Proxies and HTTP stacks rewrite these hop-by-hop and
# tracing headers in transit, so signing them would make honest requests fail.
_UNSIGNABLE = frozenset(
    {
        "authorization",
        "baggage",
        "connection",
        "expect",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "traceparent",
        "tracestate",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "x-amzn-trace-id",
    }
)


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """An HTTP request as the server received it (or as a client is about to send it)."""

    method: str
    path: str
    """Raw path as on the wire, percent-encoded, without the query."""
    query: str
    """Raw query string without ``?``; may be empty."""
    headers: Sequence[tuple[str, str]]
    """As received: names in any case, duplicates possible, in order."""
    body: bytes


def _trimall(value: str) -> str:
    # Splitting on any whitespace, as botocore does, also unfolds obsolete multi-line header values.
    return " ".join(value.split())


def _header_map(headers: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name, value in headers:
        found.setdefault(name.strip().lower(), []).append(value)
    return found


def _header_values(headers: Sequence[tuple[str, str]] | dict[str, str]) -> dict[str, str]:
    """One value per lower-case name, as ``_canonical_request`` takes them: a header sent once as sent (it
    is trimmed when canonicalized), a repeated one in its canonical form (each value trimmed, joined by
    commas; trimming that again changes nothing). A dict is taken as that already: a request's headers by
    lower-case name when no name is repeated, as the server has them at hand."""
    if isinstance(headers, dict):
        return headers
    found = {name.strip().lower(): value for name, value in headers}
    if len(found) == len(headers):
        return found
    return {name: _joined(values) for name, values in _header_map(headers).items()}


def _joined(values: list[str]) -> str:
    return values[0] if len(values) == 1 else ",".join(map(_trimall, values))


def _remove_dot_segments(path: str) -> str:
    """botocore's ``remove_dot_segments``: RFC 3986 section 5.2.4, and runs of slashes merged as AWS does."""
    kept: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if kept:
                kept.pop()
        elif segment and segment != ".":
            kept.append(segment)
    first = "/" if path.startswith("/") else ""
    last = "/" if path.endswith("/") and kept else ""
    return first + "/".join(kept) + last


def _encoded_path(path: str, normalize: bool) -> str:
    # The path arrives percent-encoded and is encoded once more: AWS double-encodes paths for every service
    # but S3, and botocore and requests-aws4auth sign it that way.
    if normalize:
        path = _remove_dot_segments(path)
    return quote(path or "/", safe="/~", errors="surrogateescape")


_known_path = lru_cache(maxsize=1024)(_encoded_path)


@lru_cache(maxsize=1024)
def _normal(path: str) -> bool:
    return _remove_dot_segments(path) == path


def is_normalized(path: str) -> bool:
    """Whether a raw path is as the verifier normalizes it: no '.' or '..' segments, no runs of slashes.
    A server that routes on the path as sent must refuse a signed request whose path is not, or a
    signature for one path would carry a request to another (``/./_bulk`` for ``/_bulk``)."""
    return _normal(path) if len(path) <= 256 else _remove_dot_segments(path) == path


def _query_component(text: str) -> str:
    # Decoding to bytes, not text, keeps escapes of invalid UTF-8 exact. '+' is a space: that is how
    # requests and botocore put a space on the wire (urlencode), and both sign it as %20; they send a
    # literal '+' as %2B.
    raw = unquote_to_bytes(text.replace("+", " ").encode("utf-8", "surrogateescape"))
    return quote_from_bytes(raw, safe="-_.~")


def _canonical_query(query: str) -> str:
    """Each name and value decoded and re-encoded strictly, then sorted by name, then value.

    Empty ``&&`` segments carry no parameter and are skipped, as query parsers (and requests-aws4auth) do.
    """
    if not query:
        return ""
    pairs = []
    for part in query.split("&"):
        if part:
            name, _, value = part.partition("=")
            pairs.append((_query_component(name), _query_component(value)))
    pairs.sort()
    return "&".join(f"{name}={value}" for name, value in pairs)


def _canonical_request(
    method: str,
    path: str,
    query: str,
    headers: dict[str, str],
    signed_headers: Sequence[str],
    signed_list: str,
    payload_hash: str,
    normalize_path: bool,
) -> str:
    """``headers``: as ``_header_values`` gives them; ``signed_list``: ``signed_headers`` joined by ';'
    (a verifier keeps it per credential)."""
    # The method is used as sent, not upper-cased like botocore does: methods are case-sensitive, and a
    # router would treat "get" differently from the "GET" that was signed. Each value is trimmed
    # (``_trimall``) inline: this runs for every signed request.
    canonical_headers = "".join([f"{name}:{' '.join(headers[name].split())}\n" for name in signed_headers])
    # The few paths a service is called at are encoded once each; a long path (any client may send one)
    # is not kept, so that the cache stays small.
    path = _known_path(path, normalize_path) if len(path) <= 256 else _encoded_path(path, normalize_path)
    return (
        f"{method}\n{path}\n{_canonical_query(query) if query else ''}\n{canonical_headers}\n"
        f"{signed_list}\n{payload_hash}"
    )


def canonical_request(
    request: SignedRequest, signed_headers: Sequence[str], payload_hash: str, *, normalize_path: bool = True
) -> str:
    """The canonical request: ``signed_headers`` are lowercase names, in the order they are signed (sorted).

    ``normalize_path`` removes dot segments and merges slashes before encoding, as AWS does for every
    service but S3; without it the path is only encoded.
    """
    headers = _header_values(request.headers)
    missing = [name for name in signed_headers if name not in headers]
    if missing:
        raise ValueError(f"signed headers missing from the request: {', '.join(missing)}")
    return _canonical_request(
        request.method,
        request.path,
        request.query,
        headers,
        signed_headers,
        ";".join(signed_headers),
        payload_hash,
        normalize_path,
    )


def string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode("utf-8", "surrogateescape")).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


@lru_cache(maxsize=4096)
def signing_key(secret_access_key: str, date: str, region: str, service: str) -> bytes:
    """The key derived for one day, region and service; cached, as it serves every request of that day."""
    key = hmac.digest(f"AWS4{secret_access_key}".encode(), date.encode(), "sha256")
    for part in (region, service, _TERMINATOR):
        key = hmac.digest(key, part.encode(), "sha256")
    return key


_BLOCK: Final = 64  # SHA-256's block size, in bytes
_INNER_PAD: Final = bytes(byte ^ 0x36 for byte in range(256))
_OUTER_PAD: Final = bytes(byte ^ 0x5C for byte in range(256))
_Keyed: TypeAlias = "tuple[hashlib._Hash, hashlib._Hash]"


def _keyed(key: bytes) -> _Keyed:
    """HMAC-SHA256 of ``key`` (RFC 2104) ready for any message: SHA-256 states that have hashed the key's
    inner and outer pads, copied for each message, so the pads are hashed once per signing key. This is
    the construction ``hmac`` runs in Python when given a Python digest, without its objects, which took
    a third of each HMAC's time (tested against ``hmac``). hashlib's small updates keep the GIL, where
    ``hmac.digest``'s one-shot OpenSSL HMAC gives it up on every call; on a server whose writer thread
    waits for the GIL, taking it back was once most of SigV4's cost."""
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    padded = key.ljust(_BLOCK, b"\0")
    return hashlib.sha256(padded.translate(_INNER_PAD)), hashlib.sha256(padded.translate(_OUTER_PAD))


@lru_cache(maxsize=4096)
def _keyed_for(secret_access_key: str, date: str, region: str, service: str) -> _Keyed:
    """``_keyed`` of the signing key, made once per secret, day, region and service: one look-up a request."""
    return _keyed(signing_key(secret_access_key, date, region, service))


def _mac(keyed: _Keyed, message: bytes) -> str:
    """The HMAC of ``message`` under the key ``keyed`` was made of, in lower-case hexadecimal."""
    inner, outer = keyed[0].copy(), keyed[1].copy()
    inner.update(message)
    outer.update(inner.digest())
    return outer.hexdigest()


def sign(
    request: SignedRequest,
    *,
    access_key_id: str,
    secret_access_key: str,
    region: str = "us-east-1",
    service: str = "execute-api",
    now: datetime | None = None,
    session_token: str | None = None,
) -> list[tuple[str, str]]:
    """The headers to add so that ``request`` is signed: Authorization, X-Amz-Date, X-Amz-Content-Sha256 and,
    with a session token, X-Amz-Security-Token.

    Every header of the request is signed except hop-by-hop and tracing ones (botocore's list). Headers of
    the names above already in the request are treated as replaced: the caller must drop them. The path is
    signed normalized, as the verifier expects. ``now`` must be timezone-aware.
    """
    moment = datetime.now(UTC) if now is None else now
    if moment.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    amz_date = moment.astimezone(UTC).strftime(_AMZ_DATE_FORMAT)
    date = amz_date[:8]
    payload_hash = hashlib.sha256(request.body).hexdigest()
    added = [("X-Amz-Date", amz_date), ("X-Amz-Content-Sha256", payload_hash)]
    if session_token is not None:
        added.append(("X-Amz-Security-Token", session_token))
    replaced = {name.lower() for name, _ in added} | {"authorization"}
    headers = _header_values([*(h for h in request.headers if h[0].strip().lower() not in replaced), *added])
    if "host" not in headers:
        raise ValueError("the request needs a Host header: SigV4 requires it to be signed")
    signed = sorted(name for name in headers if name not in _UNSIGNABLE)
    scope = f"{date}/{region}/{service}/{_TERMINATOR}"
    canonical = _canonical_request(
        request.method, request.path, request.query, headers, signed, ";".join(signed), payload_hash, True
    )
    signature = _mac(
        _keyed_for(secret_access_key, date, region, service),
        string_to_sign(amz_date, scope, canonical).encode(),
    )
    authorization = (
        f"{ALGORITHM} Credential={access_key_id}/{scope}, SignedHeaders={';'.join(signed)}, "
        f"Signature={signature}"
    )
    return [("Authorization", authorization), *added]


# The header as botocore, requests-aws4auth and our client write it: read at once, its signed headers
# checked once per list. Anything else is read by the general parser, which gives the same result for this
# form and the precise error for a malformed one.
_USUAL_AUTHORIZATION = re.compile(
    ALGORITHM
    + r" Credential=([A-Za-z0-9_-]+)/([0-9]{8})/([a-z0-9-]+)/([a-z0-9-]+)/"
    + _TERMINATOR
    + r", ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})",
    re.ASCII,
)


@dataclass(frozen=True, slots=True)
class _Credential:
    """What an Authorization header says but for its signature. A client sends the same all day, so the
    usual header's is read once and kept, with what each request would otherwise build from it again."""

    access_key_id: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    scope: str = field(init=False, compare=False, repr=False)
    signed_list: str = field(init=False, compare=False, repr=False)
    """The signed headers as the canonical request lists them."""
    names: frozenset[str] = field(init=False, compare=False, repr=False)
    signs_required: bool = field(init=False, compare=False, repr=False)
    """Whether ``host`` and ``x-amz-date`` are among the signed headers, as they must be."""

    def __post_init__(self) -> None:
        scope = f"{self.date}/{self.region}/{self.service}/{_TERMINATOR}"
        object.__setattr__(self, "scope", scope)
        object.__setattr__(self, "signed_list", ";".join(self.signed_headers))
        object.__setattr__(self, "names", frozenset(self.signed_headers))
        object.__setattr__(self, "signs_required", frozenset(self.signed_headers) >= _REQUIRED)


_REQUIRED = frozenset({"host", "x-amz-date"})


# Not frozen: one is made per signed request, and a frozen dataclass sets each field through
# object.__setattr__.
@dataclass(slots=True)
class _Authorization:
    credential: _Credential
    signature: str

    @property
    def access_key_id(self) -> str:
        return self.credential.access_key_id

    @property
    def signed_headers(self) -> tuple[str, ...]:
        return self.credential.signed_headers


@dataclass(slots=True)
class SignedHead:
    """What ``SigV4Verifier.check_head`` found in a request's headers, for ``verify`` once the body is in."""

    credential: _Credential
    signature: str
    amz_date: str
    request_time: float
    declared_hash: str | None
    """The ``x-amz-content-sha256`` header, if sent."""
    secret: str | None = field(repr=False)
    """None for an access key id nobody holds."""
    headers: dict[str, str] = field(repr=False)
    """The request's headers by lower-case name (``_header_values``), read once for both steps."""


def _shown(text: str) -> str:
    """Client input quoted in an error message, cut short so that a huge header cannot bloat the answer."""
    return repr(text if len(text) <= 64 else text[:64] + "...")


def _parse_authorization(values: list[str] | None) -> _Authorization:
    if values is not None and len(values) == 1:
        usual = _usual_authorization(values[0])
        if usual is not None:
            return usual
    return _parse_any_authorization(values)


def _usual_authorization(header: str) -> _Authorization | None:
    """The usual header read from its kept part, or None (then only the general parser can say).

    A client sends the same header but for the signature (its last 64 characters) all day: that part is
    read once. The whole header has the usual form exactly when that part followed by any 64 hex digits
    has it and the signature is 64 hex digits."""
    before, signature = header[:-64], header[-64:]
    credential = (
        _usual_before_signature(before)
        if len(before) <= _KEPT_BEFORE_SIGNATURE
        else _read_before_signature(before)
    )
    if credential is None or _SIGNATURE.fullmatch(signature) is None:
        return None
    return _Authorization(credential, signature)


def _read_before_signature(before: str) -> _Credential | None:
    """What the usual header says but for its signature, if ``before`` starts the usual form and lists
    valid signed headers; None else (the general parser then finds the first error, as it always did)."""
    usual = _USUAL_AUTHORIZATION.fullmatch(before + "0" * 64)
    if usual is None:
        return None
    access_key_id, date, region, service, signed_headers, _ = usual.groups()
    try:
        return _Credential(access_key_id, date, region, service, _checked_header_names(signed_headers))
    except InvalidSignature:
        return None


# Bounded, and keyed by text that holds no secret: anyone may fill it, at the cost of their own requests.
_KEPT_BEFORE_SIGNATURE: Final = 512
_usual_before_signature = lru_cache(maxsize=1024)(_read_before_signature)


def _parse_any_authorization(values: list[str] | None) -> _Authorization:
    if not values:
        raise MissingAuthenticationToken("Missing Authentication Token")
    if len(values) > 1:
        raise InvalidSignature("Only one Authorization header is allowed")
    algorithm, _, rest = values[0].strip().partition(" ")
    if algorithm != ALGORITHM:
        raise InvalidSignature(f"Authorization header must use {ALGORITHM}")
    parameters: dict[str, str] = {}
    for item in rest.split(","):
        name, equals, value = item.strip().partition("=")
        if not name and not equals:
            # No parameters at all, or a stray comma: left for the missing-parameter message below.
            continue
        if not equals or name not in _AUTH_PARAMETERS or name in parameters:
            raise InvalidSignature(
                f"Authorization header is malformed: unexpected or repeated element {_shown(item.strip())}"
            )
        parameters[name] = value
    missing = [name for name in _AUTH_PARAMETERS if name not in parameters]
    if missing:
        raise InvalidSignature(
            " ".join(f"Authorization header requires '{name}' parameter." for name in missing)
        )
    credential = parameters["Credential"].split("/")
    if len(credential) != 5 or not all(credential) or credential[4] != _TERMINATOR:
        raise InvalidSignature(
            "Authorization header is malformed; the Credential is mal-formed; "
            'expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".'
        )
    signed_headers = _signed_header_names(parameters["SignedHeaders"])
    if not _SIGNATURE.fullmatch(parameters["Signature"]):
        raise InvalidSignature("Signature must be 64 lowercase hexadecimal digits")
    access_key_id, date, region, service, _ = credential
    return _Authorization(
        _Credential(access_key_id, date, region, service, signed_headers), parameters["Signature"]
    )


def _signed_header_names(text: str) -> tuple[str, ...]:
    # A client signs the same headers on every request: a usual list is checked once. The header is read
    # before the signature is checked, so a long one (anyone may send it) is never kept.
    return _known_header_names(text) if len(text) <= 256 else _checked_header_names(text)


def _checked_header_names(text: str) -> tuple[str, ...]:
    signed_headers = tuple(text.split(";"))
    distinct = len(set(signed_headers)) == len(signed_headers)
    if not distinct or not all(name and name == name.lower() for name in signed_headers):
        raise InvalidSignature("SignedHeaders must be distinct lowercase header names separated by ';'")
    return signed_headers


_known_header_names = lru_cache(maxsize=1024)(_checked_header_names)


@lru_cache(maxsize=1024)
def _parse_amz_date(value: str) -> float:
    # Cached: every request signed within the same second carries the same date.
    match = _AMZ_DATE.fullmatch(value)
    if match is not None:
        year, month, day, hour, minute, second = (int(group) for group in match.groups())
        try:
            return datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()
        except ValueError:
            pass
    raise InvalidSignature(
        f"X-Amz-Date must be a UTC time formatted like 20150830T123600Z, not {_shown(value)}"
    )


def _amz_date(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime(_AMZ_DATE_FORMAT)


class _SeenSignatures:
    """Signatures accepted recently, each remembered until its request time leaves the skew window.

    Beyond ``capacity`` live entries the one closest to expiry is forgotten early: memory stays bounded
    (about 200 bytes an entry), at the price of letting that one be replayed; filling the map takes that
    many validly signed requests within one window, which only holders of a secret can send.
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._live: set[bytes] = set()
        self._by_expiry: list[tuple[float, bytes]] = []
        self._lock = threading.Lock()

    def forget(self, signature: str) -> None:
        with self._lock:
            self._live.discard(bytes.fromhex(signature))

    def first_use(self, signature: str, expires_at: float, now: float) -> bool:
        """Remember ``signature``; False if it is already remembered."""
        key = bytes.fromhex(signature)
        with self._lock:
            while self._by_expiry and self._by_expiry[0][0] < now:
                self._live.discard(heapq.heappop(self._by_expiry)[1])
            if key in self._live:
                return False
            if len(self._live) >= self._capacity:
                self._live.discard(heapq.heappop(self._by_expiry)[1])
            self._live.add(key)
            heapq.heappush(self._by_expiry, (expires_at, key))
            return True


_KEPT_CREDENTIALS: Final = 1024


class SigV4Verifier:
    """Checks AWS SigV4 ``Authorization`` headers the way API Gateway's IAM authorization does, and more.

    On top of AWS's rules: the body is hashed here and must match any ``x-amz-content-sha256`` header
    (``UNSIGNED-PAYLOAD`` is refused), ``host`` and ``x-amz-date`` must be signed, and, with
    ``replay_guard``, a signature is accepted only once while its time is within the skew window. Headers
    that are not signed are ignored: some clients add Content-Type after signing. ``X-Amz-Security-Token``
    is not interpreted: this service issues no temporary credentials, so a token is just one more header.

    The path is verified normalized (dot segments removed, runs of slashes merged) before it is encoded.
    That is the rule AWS defines for every service but S3, and what botocore and requests-aws4auth sign for
    ``execute-api``; and since they sign the normalized path whatever they put on the wire, and HTTP
    stacks such as urllib3 may normalize the path in transit, verifying the normalized path accepts their
    requests either way. The consequence for routing: requests whose paths normalize alike share a
    signature, so route on the normalized path (or refuse paths that are not normalized).
    """

    def __init__(
        self,
        secret_for: Callable[[str], str | None],
        *,
        region: str = "us-east-1",
        service: str = "execute-api",
        max_skew_seconds: int = 300,
        clock: Callable[[], float] = time.time,
        replay_guard: bool = False,
        replay_window_entries: int = 1_000_000,
    ) -> None:
        if max_skew_seconds < 0 or replay_window_entries < 1:
            raise ValueError("max_skew_seconds must be >= 0 and replay_window_entries >= 1")
        self._secret_for = secret_for
        self._region = region
        self._service = service
        self._max_skew = max_skew_seconds
        self._clock = clock
        # Off by default, as API Gateway has none: two identical log lines signed in one second are two
        # events, not an attack (decision 16).
        self._seen = _SeenSignatures(replay_window_entries) if replay_guard else None
        # Unknown keys are checked against this secret so that they cost what a wrong signature costs.
        self._decoy_secret = secrets.token_urlsafe(30)
        self._accepted: dict[str, _Credential] = {}

    def check_head(self, headers: Sequence[tuple[str, str]] | dict[str, str]) -> SignedHead:
        """Every rule that needs no body, checked before the body is read so that a refused request costs
        none: a well-formed ``Authorization``, its signed headers present, the date, region, service and
        clock skew and a signed body (not ``UNSIGNED-PAYLOAD``). Raises a ``SignatureRejected``.
        ``headers``: as received, or a dict by lower-case name when no name is repeated (the server has
        that at hand, and reading the pairs again was a good part of the cost)."""
        if isinstance(headers, dict):
            found, sent = headers, None
        else:
            found = _header_values(headers)
            # Only when a name is repeated: its values as sent, for the rules below (one Authorization;
            # the date and body hash read as one text), which judge them as they did before the values
            # were joined.
            sent = None if len(found) == len(headers) else _header_map(headers)
        authorization = found.get("authorization") if sent is None else None
        # A client sends the same header but for the signature all day: once its credential passed the
        # checks below that depend on it alone, the header's kept part stands for it.
        if (
            authorization is not None
            and (credential := self._accepted.get(authorization[:-64])) is not None
            and _SIGNATURE.fullmatch(authorization, len(authorization) - 64)
        ):
            signature, kept, usual = authorization[-64:], True, None
        else:
            kept = False
            credential, signature, usual = self._read_credential(authorization, sent)
        if not found.keys() >= credential.names:
            absent = next(name for name in credential.signed_headers if name not in found)
            raise InvalidSignature(f"Signed header {_shown(absent)} is not in the request")
        amz_date = _trimall(found["x-amz-date"] if sent is None else ",".join(sent["x-amz-date"]))
        request_time = _parse_amz_date(amz_date)
        if credential.date != amz_date[:8]:
            raise InvalidSignature(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
                f"{_shown(credential.date)} != '{amz_date[:8]}', from '{amz_date}'."
            )
        if not kept:
            # Checked here, after the signed headers and the date, so that a request wrong in several ways
            # gets the error it always got.
            self._check_scope(credential)
            if usual is not None:
                self._keep(usual, credential)
        now = self._clock()
        if not now - self._max_skew <= request_time <= now + self._max_skew:
            self._refuse_time(amz_date, request_time, now)
        if sent is None:
            declared = found.get("x-amz-content-sha256")
        else:
            declared_values = sent.get("x-amz-content-sha256")
            declared = None if declared_values is None else ",".join(declared_values)
        declared_hash = None if declared is None else _trimall(declared)
        if declared_hash is not None and declared_hash.startswith(_UNSIGNED_PAYLOADS):
            raise InvalidSignature(f"{_shown(declared_hash)} is not accepted: the body must be signed")
        # An unknown key is not refused here: it waits for the body and a decoy HMAC like a wrong secret,
        # and gets the same answer, so neither the answer nor its timing tells which key ids exist.
        secret = self._secret_for(credential.access_key_id)
        return SignedHead(credential, signature, amz_date, request_time, declared_hash, secret, found)

    def _read_credential(
        self, authorization: str | None, sent: dict[str, list[str]] | None
    ) -> tuple[_Credential, str, str | None]:
        """The credential and signature of a request's Authorization (``sent``: every header's values when
        a name is repeated, else None and ``authorization`` is the one sent, if any), and the header's part
        before the signature when it has the usual form and may be kept once its scope is checked."""
        if sent is None:
            auth = None if authorization is None else _usual_authorization(authorization)
            usual = None if auth is None or authorization is None else authorization[:-64]
            if auth is None:
                auth = _parse_any_authorization(None if authorization is None else [authorization])
        else:
            usual = None
            auth = _parse_authorization(sent.get("authorization"))
        credential = auth.credential
        if not credential.signs_required:
            for required in ("host", "x-amz-date"):
                if required not in credential.signed_headers:
                    raise InvalidSignature(f"'{required}' must be among the SignedHeaders")
        return credential, auth.signature, usual

    def _check_scope(self, credential: _Credential) -> None:
        if credential.region != self._region:
            raise InvalidSignature(
                f"Credential should be scoped to a valid region: '{self._region}', "
                f"not {_shown(credential.region)}."
            )
        if credential.service != self._service:
            raise InvalidSignature(
                f"Credential should be scoped to correct service: '{self._service}', "
                f"not {_shown(credential.service)}."
            )

    def _keep(self, before_signature: str, credential: _Credential) -> None:
        if len(before_signature) <= _KEPT_BEFORE_SIGNATURE:
            # Bounded, and keyed by text that holds no secret: anyone may fill it, at the cost of their
            # own requests (emptied when full: the usual clients send a handful of these).
            if len(self._accepted) >= _KEPT_CREDENTIALS:
                self._accepted.clear()
            self._accepted[before_signature] = credential

    def verify(self, request: SignedRequest, head: SignedHead | None = None) -> str:
        """The access key ID that validly signed ``request``; raises a ``SignatureRejected`` otherwise.
        ``head`` is what check_head returned for the request's headers, if it was called already."""
        if head is None:
            head = self.check_head(request.headers)
        return self.check_body(head, request.method, request.path, request.query, request.body)

    def check_body(self, head: SignedHead, method: str, path: str, query: str, body: bytes) -> str:
        """``verify`` once ``check_head`` has passed: the request's line (``path`` raw, as on the wire,
        without the query) and body, taken as they are, without a ``SignedRequest`` made of them."""
        credential = head.credential
        payload_hash = hashlib.sha256(body).hexdigest()
        if head.declared_hash is not None and head.declared_hash != payload_hash:
            raise InvalidSignature("The x-amz-content-sha256 header does not match the SHA-256 of the body")
        canonical = _canonical_request(
            method,
            path,
            query,
            head.headers,
            credential.signed_headers,
            credential.signed_list,
            payload_hash,
            True,
        )
        expected = _mac(
            _keyed_for(
                head.secret or self._decoy_secret, credential.date, credential.region, credential.service
            ),
            string_to_sign(head.amz_date, credential.scope, canonical).encode(),
        )
        if not hmac.compare_digest(expected, head.signature) or head.secret is None:
            raise SignatureMismatch()
        # Only now, with the signature proven, is it remembered: forged ones must not fill the map.
        if self._seen is not None and not self._seen.first_use(
            head.signature, head.request_time + self._max_skew, self._clock()
        ):
            raise ReplayedSignature("This signature has already been used; sign each request afresh.")
        return credential.access_key_id

    def forget(self, authorization: str) -> None:
        """Let a verified signature be used again: its request failed on our side (5xx), so a client's
        retry, which within the same second carries the same signature, must not look like a replay."""
        if self._seen is None:
            return
        try:
            self._seen.forget(_parse_authorization([authorization]).signature)
        except SignatureRejected:
            return

    def _refuse_time(self, amz_date: str, request_time: float, now: float) -> None:
        skew = self._max_skew
        shown = f"{skew // 60} min" if skew % 60 == 0 else f"{skew} s"
        if request_time < now - skew:
            raise SignatureExpired(
                f"Signature expired: {amz_date} is now earlier than {_amz_date(now - skew)} "
                f"({_amz_date(now)} - {shown}.)"
            )
        raise SignatureExpired(
            f"Signature not yet current: {amz_date} is still later than {_amz_date(now + skew)} "
            f"({_amz_date(now)} + {shown}.)"
        )
