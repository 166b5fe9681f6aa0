"""SigV4: AWS's test suite, agreement with botocore and requests-aws4auth, and every way to be refused."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from unittest.mock import patch
from urllib.parse import quote, urlsplit

import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.utils import normalize_url_path
from hypothesis import given, settings
from hypothesis import strategies as st
from requests_aws4auth import AWS4Auth

from logsvc.auth.sigv4 import (
    SignedRequest,
    SigV4Verifier,
    canonical_request,
    sign,
    signing_key,
    string_to_sign,
)
from logsvc.errors import (
    InvalidSignature,
    MissingAuthenticationToken,
    ReplayedSignature,
    SignatureExpired,
    SignatureRejected,
)

# AWS's published SigV4 test suite, vendored with its licence (tests/vendor/aws-sigv4-test-suite/LICENSE).
SUITE = Path(__file__).parents[1] / "vendor" / "aws-sigv4-test-suite" / "v4"
CASES = sorted(path.name for path in SUITE.iterdir())

HOST = "example.amazonaws.com"
KEY = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
NOW = datetime(2025, 6, 15, 12, 30, 45, tzinfo=UTC)
AMZ_NOW = "20250615T123045Z"
BODY = json.dumps(
    {
        "service_name": "checkout",
        "level": "INFO",
        "message": "order placed",
        "timestamp": "2025-06-15T12:30:45.123456Z",
        "metadata": {"order": 12345678, "customer": "c-0042", "total_cents": 129900, "currency": "EUR"},
    }
).encode()
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<scope>[^,]+), "
    r"SignedHeaders=(?P<signed>[^,]+), Signature=(?P<signature>[0-9a-f]{64})"
)


# ---- helpers ---------------------------------------------------------------------------------------------


def parse_http(text: str) -> SignedRequest:
    """A request as the suite writes it: request line, headers (folded lines continue a value), blank, body.

    The request target may contain raw spaces and UTF-8, so the protocol is split off the right.
    """
    head, _, body = text.partition("\n\n")
    request_line, *lines = head.split("\n")
    method, _, rest = request_line.partition(" ")
    path, _, query = rest.rsplit(" ", 1)[0].partition("?")
    headers: list[tuple[str, str]] = []
    for line in lines:
        if line[:1] in (" ", "\t"):
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip()}")
        elif line:
            name, _, value = line.partition(":")
            headers.append((name, value))
    return SignedRequest(method, path, query, headers, body.encode())


def header(request: SignedRequest, name: str) -> str:
    return next(value for key, value in request.headers if key.lower() == name)


@dataclass(frozen=True)
class Authorization:
    key: str
    scope: str
    signed_headers: list[str]
    signature: str


def parse_authorization(value: str) -> Authorization:
    match = _AUTHORIZATION.fullmatch(value)
    assert match is not None, value
    return Authorization(match["key"], match["scope"], match["signed"].split(";"), match["signature"])


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hmac_hex(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), "sha256").hexdigest()


def changed(text: str) -> str:
    """``text`` with its last character replaced by another."""
    return text[:-1] + ("A" if text[-1:] != "A" else "B")


def with_header_changed(request: SignedRequest, name: str, change: Callable[[str], str]) -> SignedRequest:
    headers = list(request.headers)
    index = max(i for i, (key, _) in enumerate(headers) if key.lower() == name)
    headers[index] = (headers[index][0], change(headers[index][1]))
    return replace(request, headers=headers)


@dataclass(frozen=True)
class Case:
    name: str
    context: dict[str, Any]
    unsigned: SignedRequest
    signed: SignedRequest
    canonical: str
    string_to_sign: str
    signature: str

    @property
    def timestamp(self) -> datetime:
        return datetime.fromisoformat(self.context["timestamp"])

    def verifier(self) -> SigV4Verifier:
        credentials = self.context["credentials"]
        return SigV4Verifier(
            {credentials["access_key_id"]: credentials["secret_access_key"]}.get,
            region=self.context["region"],
            service=self.context["service"],
            clock=self.timestamp.timestamp,
        )


@cache
def load(name: str) -> Case:
    folder = SUITE / name

    def read(file: str) -> str:
        return (folder / file).read_text(encoding="utf-8")

    return Case(
        name,
        json.loads(read("context.json")),
        parse_http(read("request.txt")),
        parse_http(read("header-signed-request.txt")),
        read("header-canonical-request.txt"),
        read("header-string-to-sign.txt"),
        read("header-signature.txt").strip(),
    )


def normalization_matters(case: Case) -> bool:
    """Whether the case signs an unnormalized path that normalizing would change (the verifier normalizes)."""
    auth = parse_authorization(header(case.signed, "authorization"))
    normalized = canonical_request(case.signed, auth.signed_headers, sha256(case.signed.body))
    return normalized != case.canonical


# ---- 1. AWS's test suite ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CASES)
def test_suite_canonical_request_string_to_sign_and_signature(name: str) -> None:
    case = load(name)
    auth = parse_authorization(header(case.signed, "authorization"))
    amz_date = header(case.signed, "x-amz-date")
    canonical = canonical_request(
        case.signed, auth.signed_headers, sha256(case.signed.body), normalize_path=case.context["normalize"]
    )
    assert canonical == case.canonical
    assert string_to_sign(amz_date, auth.scope, canonical) == case.string_to_sign
    date, region, service, _ = auth.scope.split("/")
    secret = case.context["credentials"]["secret_access_key"]
    signature = hmac_hex(signing_key(secret, date, region, service), case.string_to_sign)
    assert signature == case.signature == auth.signature


@pytest.mark.parametrize("name", CASES)
def test_suite_verifier_accepts_the_signed_request(name: str) -> None:
    case = load(name)
    if normalization_matters(case):
        # The suite's S3-style signature over a path with dot segments or repeated slashes: the verifier
        # applies the normalizing rule of every other service (see SigV4Verifier), so it must refuse it.
        with pytest.raises(InvalidSignature, match="does not match"):
            case.verifier().verify(case.signed)
    else:
        assert case.verifier().verify(case.signed) == case.context["credentials"]["access_key_id"]


@pytest.mark.parametrize("name", CASES)
def test_suite_signer(name: str) -> None:
    """sign() always signs the body (X-Amz-Content-Sha256), so it reproduces the cases that do exactly."""
    case = load(name)
    credentials = case.context["credentials"]
    omit_token = case.context.get("omit_session_token", False)
    added = sign(
        case.unsigned,
        access_key_id=credentials["access_key_id"],
        secret_access_key=credentials["secret_access_key"],
        region=case.context["region"],
        service=case.context["service"],
        now=case.timestamp,
        session_token=None if omit_token else credentials.get("token"),
    )
    if case.context["sign_body"]:
        assert dict(added)["Authorization"] == header(case.signed, "authorization")
    assert case.verifier().verify(replace(case.unsigned, headers=[*case.unsigned.headers, *added]))


def mutations(case: Case) -> dict[str, Callable[[SignedRequest], SignedRequest]]:
    request = case.signed
    found: dict[str, Callable[[SignedRequest], SignedRequest]] = {
        "method": lambda r: replace(r, method=changed(r.method)),
        "path": lambda r: replace(r, path=changed(r.path)),
        "body": lambda r: replace(r, body=changed(r.body.decode()).encode()),
        "signature": lambda r: with_header_changed(
            r, "authorization", lambda v: v[:-1] + ("0" if v[-1] != "0" else "1")
        ),
    }
    if request.query:
        found["query"] = lambda r: replace(r, query=changed(r.query))
    for name in parse_authorization(header(request, "authorization")).signed_headers:
        found[f"header {name}"] = header_changer(name)
    return found


def header_changer(name: str) -> Callable[[SignedRequest], SignedRequest]:
    return lambda request: with_header_changed(request, name, changed)


MUTATIONS = [
    (name, mutation)
    for name in CASES
    if not normalization_matters(load(name))
    for mutation in mutations(load(name))
]


@pytest.mark.parametrize(("name", "mutation"), MUTATIONS, ids=[f"{n}-{m}" for n, m in MUTATIONS])
def test_suite_single_change_is_refused(name: str, mutation: str) -> None:
    """A body is changed where there is one and added where there is none."""
    case = load(name)
    checker = case.verifier()
    tampered = mutations(case)[mutation](case.signed)
    assert tampered != case.signed
    with pytest.raises(InvalidSignature):
        checker.verify(tampered)
    assert checker.verify(case.signed)


# ---- 2. Agreement with real clients ----------------------------------------------------------------------

methods = st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
any_text = st.characters(exclude_categories=("Cs",))
segments = st.sampled_from(["", ".", "..", "...", " ", "a b", "é", "%", "+", "~"]) | st.text(
    any_text, min_size=1, max_size=8
)
RESERVED = "!$&'()*+,;=:@"


@st.composite
def paths(draw: st.DrawFn, reserved: str = RESERVED) -> str:
    """Percent-encoded paths as clients send them; some leave sub-delimiters raw, as requests does."""
    safe = draw(st.sampled_from(["-_.~", "-_.~" + reserved]))
    parts = draw(st.lists(segments, max_size=5))
    trailing = "/" if parts and draw(st.booleans()) else ""
    return "/" + "/".join(quote(part, safe=safe) for part in parts) + trailing


query_words = st.sampled_from(["", "a", "A", "b", "a b", "é", "1+1", "k=v", "&", "~", "%41", "/"]) | st.text(
    any_text, max_size=6
)
query_params = st.lists(st.tuples(query_words, query_words), max_size=6)
bodies = st.binary(max_size=256)
PRINTABLE = [chr(c) for c in range(0x20, 0x7F)]
header_names = st.text(
    st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"), min_size=1, max_size=8
)


def header_values(excluded: str = "") -> st.SearchStrategy[str]:
    """Printable ASCII with tabs and runs of spaces, which canonicalization collapses."""
    pieces = [c for c in PRINTABLE if c not in excluded] + ["\t", "   "]
    return st.lists(st.sampled_from(pieces), max_size=16).map("".join)


def wire(method: str, url: str, headers: Any, body: bytes | None) -> SignedRequest:
    """The request as the server sees it: Host added by the HTTP client, values stripped by the server."""
    parts = urlsplit(url)
    received = [("Host", HOST), *((name, value.strip(" \t")) for name, value in headers.items())]
    return SignedRequest(method, parts.path, parts.query, received, body or b"")


def verifier_at(moment: datetime) -> SigV4Verifier:
    return SigV4Verifier({KEY: SECRET}.get, clock=moment.timestamp)


@settings(max_examples=200, deadline=None)
@given(
    method=methods,
    path=paths(),
    params=query_params,
    # Names unique regardless of case: botocore signs both of two names differing only in case (joined with a
    # comma) but sends only one of them, so no server could verify such a request.
    headers=st.lists(
        st.tuples(header_names.map("X-Test-{}".format), header_values()),
        max_size=4,
        unique_by=lambda header: header[0].lower(),
    ),
    body=bodies,
)
def test_botocore_agrees_and_its_signatures_verify(
    method: str, path: str, params: list[tuple[str, str]], headers: list[tuple[str, str]], body: bytes
) -> None:
    request = AWSRequest(
        method=method, url=f"https://{HOST}{path}", params=params, headers=dict(headers), data=body
    )
    signer = SigV4Auth(Credentials(KEY, SECRET), "execute-api", "us-east-1")
    with patch("botocore.auth.get_current_datetime", return_value=NOW.replace(tzinfo=None)):
        signer.add_auth(request)
    prepared = request.prepare()
    auth = parse_authorization(request.headers["Authorization"])
    del request.headers["Authorization"]
    expected = signer.canonical_request(request)

    received = wire(method, prepared.url, prepared.headers, prepared.body)
    canonical = canonical_request(received, auth.signed_headers, sha256(body))
    assert canonical == expected
    assert string_to_sign(AMZ_NOW, auth.scope, canonical) == signer.string_to_sign(request, expected)
    assert verifier_at(NOW).verify(received) == KEY
    # An HTTP stack may resolve dot segments and merge slashes in transit; botocore signed the result anyway.
    assert verifier_at(NOW).verify(replace(received, path=normalize_url_path(received.path))) == KEY


@settings(max_examples=100, deadline=None)
@given(
    method=methods,
    # requests-aws4auth signs urlparse(url).path, which drops ";params" from the last segment: no raw ';'.
    path=paths(reserved=RESERVED.replace(";", "")),
    params=query_params,
    # It signs content-type and x-amz-* with whitespace collapsed by shlex, which leaves quoted runs alone
    # (AWS's rule collapses them too): no quotes.
    amz_headers=st.lists(
        st.tuples(
            header_names.map("X-Amz-Meta-{}".format),
            header_values(excluded="\"'"),
        ),
        max_size=3,
    ),
    content_type=st.sampled_from([None, "application/json", "text/plain;  charset=utf-8"]),
    body=bodies,
)
def test_requests_aws4auth_signatures_verify(
    method: str,
    path: str,
    params: list[tuple[str, str]],
    amz_headers: list[tuple[str, str]],
    content_type: str | None,
    body: bytes,
) -> None:
    headers = {name: value.lstrip(" \t") for name, value in amz_headers}
    if content_type is not None:
        headers["Content-Type"] = content_type
    prepared = requests.Request(
        method, f"https://{HOST}{path}", params=params, headers=headers, data=body
    ).prepare()
    AWS4Auth(KEY, SECRET, "us-east-1", "execute-api")(prepared)
    assert prepared.method is not None
    assert prepared.url is not None
    assert isinstance(prepared.body, bytes | None)
    received = wire(prepared.method, prepared.url, prepared.headers, prepared.body)
    assert SigV4Verifier({KEY: SECRET}.get).verify(received) == KEY


# ---- 3. Refusals ----------------------------------------------------------------------------------------


def small_post(body: bytes = BODY) -> SignedRequest:
    return SignedRequest("POST", "/logs", "", [("Host", HOST), ("Content-Type", "application/json")], body)


def signed(request: SignedRequest, *, at: datetime = NOW, **options: Any) -> SignedRequest:
    credentials = {"access_key_id": KEY, "secret_access_key": SECRET} | options
    return replace(request, headers=[*request.headers, *sign(request, now=at, **credentials)])


def hand_signed(
    request: SignedRequest,
    signed_headers: list[str],
    *,
    extra: list[tuple[str, str]] | None = None,
    scope_date: str = AMZ_NOW[:8],
    payload_hash: str | None = None,
) -> SignedRequest:
    """Signed with exactly the given headers, scope date and payload hash, which sign() would not choose."""
    dated = replace(request, headers=[*request.headers, ("X-Amz-Date", AMZ_NOW), *(extra or [])])
    scope = f"{scope_date}/us-east-1/execute-api/aws4_request"
    canonical = canonical_request(dated, signed_headers, payload_hash or sha256(request.body))
    signature = hmac_hex(
        signing_key(SECRET, scope_date, "us-east-1", "execute-api"), string_to_sign(AMZ_NOW, scope, canonical)
    )
    authorization = (
        f"AWS4-HMAC-SHA256 Credential={KEY}/{scope}, SignedHeaders={';'.join(signed_headers)}, "
        f"Signature={signature}"
    )
    return replace(dated, headers=[*dated.headers, ("Authorization", authorization)])


def verifier(offset_seconds: float = 0.0, **options: Any) -> SigV4Verifier:
    return SigV4Verifier({KEY: SECRET}.get, clock=lambda: NOW.timestamp() + offset_seconds, **options)


def test_signed_request_verifies_to_its_access_key() -> None:
    assert verifier().verify(signed(small_post())) == KEY


def test_hand_signed_helper_makes_valid_signatures() -> None:
    assert verifier().verify(hand_signed(small_post(), ["content-type", "host", "x-amz-date"])) == KEY


def test_wrong_secret_is_refused() -> None:
    with pytest.raises(InvalidSignature, match="does not match the signature you provided"):
        verifier().verify(signed(small_post(), secret_access_key="not-the-secret"))


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("region", "eu-west-1", "valid region: 'us-east-1', not 'eu-west-1'"),
        ("service", "execute-api-2", "correct service: 'execute-api', not 'execute-api-2'"),
    ],
)
def test_other_scope_is_refused_naming_both(option: str, value: str, message: str) -> None:
    with pytest.raises(InvalidSignature, match=re.escape(message)):
        verifier().verify(signed(small_post(), **{option: value}))


@pytest.mark.parametrize(
    ("offset", "message"),
    [
        (
            301,
            "Signature expired: 20250615T123045Z is now earlier than 20250615T123046Z "
            "(20250615T123546Z - 5 min.)",
        ),
        (
            -301,
            "Signature not yet current: 20250615T123045Z is still later than 20250615T123044Z "
            "(20250615T122544Z + 5 min.)",
        ),
    ],
)
def test_skew_beyond_five_minutes_is_refused(offset: int, message: str) -> None:
    with pytest.raises(SignatureExpired) as raised:
        verifier(offset).verify(signed(small_post()))
    assert raised.value.detail == message


@pytest.mark.parametrize("offset", [300, -300])
def test_skew_of_exactly_five_minutes_is_accepted(offset: int) -> None:
    assert verifier(offset).verify(signed(small_post())) == KEY


def test_identical_requests_are_accepted_by_default_as_api_gateway_does() -> None:
    checker = verifier()
    request = signed(small_post())
    assert checker.verify(request) == KEY
    assert checker.verify(request) == KEY


def test_replay_is_refused_with_the_guard_on() -> None:
    checker = verifier(replay_guard=True)
    request = signed(small_post())
    assert checker.verify(request) == KEY
    with pytest.raises(ReplayedSignature):
        checker.verify(request)


def test_a_forgotten_signature_may_be_retried() -> None:
    """After our 5xx, a client retry within the same second carries the same signature; it must pass."""
    checker = verifier(replay_guard=True)
    request = signed(small_post())
    assert checker.verify(request) == KEY
    authorization = next(value for name, value in request.headers if name.lower() == "authorization")
    checker.forget(authorization)
    assert checker.verify(request) == KEY
    with pytest.raises(ReplayedSignature):
        checker.verify(request)
    checker.forget("garbage")  # an unparsable header is simply nothing to forget


def test_concurrent_replays_let_exactly_one_through() -> None:
    checker = verifier(replay_guard=True)
    request = signed(small_post())
    outcomes: list[str] = []
    start = threading.Barrier(8)

    def attempt() -> None:
        start.wait()
        try:
            outcomes.append(checker.verify(request))
        except ReplayedSignature as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == [KEY] + ["replayed_signature"] * 7


def test_replay_memory_is_bounded_forgetting_the_soonest_to_expire() -> None:
    checker = verifier(replay_guard=True, replay_window_entries=2)
    first, second, third = (signed(small_post(), at=NOW + timedelta(seconds=offset)) for offset in (-2, 2, 1))
    for request in (first, second, third):
        assert checker.verify(request) == KEY
    for request in (second, third):
        with pytest.raises(ReplayedSignature):
            checker.verify(request)
    assert checker.verify(first) == KEY


def test_body_swapped_after_signing_is_refused() -> None:
    request = signed(small_post())
    with pytest.raises(InvalidSignature, match="x-amz-content-sha256 header does not match"):
        verifier().verify(replace(request, body=BODY.replace(b"placed", b"forged")))


def test_body_swapped_after_signing_without_content_hash_header_is_refused() -> None:
    request = hand_signed(small_post(), ["host", "x-amz-date"])
    with pytest.raises(InvalidSignature, match="does not match the signature"):
        verifier().verify(replace(request, body=BODY.replace(b"placed", b"forged")))


@pytest.mark.parametrize("declared", ["UNSIGNED-PAYLOAD", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"])
def test_unsigned_payload_is_refused(declared: str) -> None:
    request = hand_signed(
        small_post(),
        ["host", "x-amz-content-sha256", "x-amz-date"],
        extra=[("X-Amz-Content-Sha256", declared)],
        payload_hash=declared,
    )
    with pytest.raises(InvalidSignature, match=f"'{declared}' is not accepted"):
        verifier().verify(request)


@pytest.mark.parametrize("required", ["host", "x-amz-date"])
def test_host_and_date_must_be_signed(required: str) -> None:
    others = [name for name in ["content-type", "host", "x-amz-date"] if name != required]
    with pytest.raises(InvalidSignature, match=f"'{required}' must be among the SignedHeaders"):
        verifier().verify(hand_signed(small_post(), others))


def test_signed_header_missing_from_request_is_refused() -> None:
    request = hand_signed(small_post(), ["content-type", "host", "x-amz-date"])
    stripped = replace(request, headers=[h for h in request.headers if h[0] != "Content-Type"])
    with pytest.raises(InvalidSignature, match="'content-type' is not in the request"):
        verifier().verify(stripped)


def test_missing_authorization_is_refused() -> None:
    with pytest.raises(MissingAuthenticationToken, match="Missing Authentication Token"):
        verifier().verify(small_post())


GOOD_SCOPE = f"Credential={KEY}/20250615/us-east-1/execute-api/aws4_request"
GOOD_SIGNATURE = "Signature=" + "0" * 64


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        ("garbage", "must use AWS4-HMAC-SHA256"),
        ("Bearer abc.def.ghi", "must use AWS4-HMAC-SHA256"),
        ("AWS4-HMAC-SHA256", "requires 'Credential' parameter. .* requires 'Signature' parameter"),
        (f"AWS4-HMAC-SHA256 {GOOD_SCOPE}, {GOOD_SIGNATURE}", "requires 'SignedHeaders' parameter"),
        (f"AWS4-HMAC-SHA256 {GOOD_SCOPE}, SignedHeaders=host, Signature", "unexpected or repeated element"),
        (f"AWS4-HMAC-SHA256 {GOOD_SCOPE}, {GOOD_SCOPE}, SignedHeaders=host, {GOOD_SIGNATURE}", "repeated"),
        (f"AWS4-HMAC-SHA256 {GOOD_SCOPE}, Region=x, SignedHeaders=host, {GOOD_SIGNATURE}", "unexpected"),
        (
            f"AWS4-HMAC-SHA256 Credential={KEY}/20250615/us-east-1/execute-api, SignedHeaders=host, "
            f"{GOOD_SIGNATURE}",
            "Credential is mal-formed",
        ),
        (
            f"AWS4-HMAC-SHA256 Credential={KEY}/20250615//execute-api/aws4_request, SignedHeaders=host, "
            f"{GOOD_SIGNATURE}",
            "Credential is mal-formed",
        ),
        (f"AWS4-HMAC-SHA256 {GOOD_SCOPE}, SignedHeaders=Host;x-amz-date, {GOOD_SIGNATURE}", "lowercase"),
        (f"AWS4-HMAC-SHA256 {GOOD_SCOPE}, SignedHeaders=host;;x-amz-date, {GOOD_SIGNATURE}", "lowercase"),
        (f"AWS4-HMAC-SHA256 {GOOD_SCOPE}, SignedHeaders=host;host, {GOOD_SIGNATURE}", "distinct"),
        (f"AWS4-HMAC-SHA256 {GOOD_SCOPE}, SignedHeaders=host, Signature=" + "A" * 64, "hexadecimal"),
        (f"AWS4-HMAC-SHA256 {GOOD_SCOPE}, SignedHeaders=host, Signature=é" + "0" * 63, "hexadecimal"),
    ],
)
def test_malformed_authorization_is_refused(authorization: str, message: str) -> None:
    request = replace(small_post(), headers=[*small_post().headers, ("Authorization", authorization)])
    with pytest.raises(InvalidSignature, match=message):
        verifier().verify(request)


def test_two_authorization_headers_are_refused() -> None:
    request = signed(small_post())
    doubled = replace(
        request, headers=[*request.headers, ("Authorization", header(request, "authorization"))]
    )
    with pytest.raises(InvalidSignature, match="Only one Authorization header"):
        verifier().verify(doubled)


def test_an_unknown_key_is_refused_exactly_as_a_wrong_secret_is() -> None:
    """Same class, code and message, and the same work (a decoy HMAC after the body): a caller cannot
    tell whether an access key id exists."""
    refusals = []
    for request in (
        signed(small_post(), access_key_id="AKIDNOBODYKNOWS"),
        signed(small_post(), secret_access_key="not-the-secret"),
    ):
        head = verifier().check_head(request.headers)  # neither is refused before the body
        with pytest.raises(SignatureRejected) as refused:
            verifier().verify(request, head)
        refusals.append((type(refused.value), refused.value.code, refused.value.detail))
    assert refusals[0] == refusals[1]
    assert issubclass(refusals[0][0], InvalidSignature)


def test_scope_date_other_than_request_date_is_refused() -> None:
    request = hand_signed(small_post(), ["host", "x-amz-date"], scope_date="20250614")
    with pytest.raises(InvalidSignature, match="Date in Credential scope does not match"):
        verifier().verify(request)


@pytest.mark.parametrize("amz_date", ["2025-06-15T12:30:45Z", "20251315T123045Z", "20250615T123045"])
def test_malformed_amz_date_is_refused(amz_date: str) -> None:
    request = with_header_changed(signed(small_post()), "x-amz-date", lambda _: amz_date)
    with pytest.raises(InvalidSignature, match="X-Amz-Date must be a UTC time"):
        verifier().verify(request)


def test_content_type_added_after_signing_is_ignored() -> None:
    request = signed(replace(small_post(), headers=[("Host", HOST)]))
    later = replace(request, headers=[*request.headers, ("Content-Type", "application/json")])
    assert verifier().verify(later) == KEY


def test_signed_header_repeated_after_signing_is_refused() -> None:
    request = signed(small_post())
    with pytest.raises(InvalidSignature, match="does not match the signature"):
        verifier().verify(replace(request, headers=[*request.headers, ("Host", "evil.example")]))


def test_method_case_matters() -> None:
    with pytest.raises(InvalidSignature, match="does not match the signature"):
        verifier().verify(replace(signed(small_post()), method="post"))


def test_session_token_is_signed_and_accepted() -> None:
    request = signed(small_post(), session_token="FwoGZXIvYXdzEXAMPLE")
    assert header(request, "x-amz-security-token") == "FwoGZXIvYXdzEXAMPLE"
    assert "x-amz-security-token" in parse_authorization(header(request, "authorization")).signed_headers
    assert verifier().verify(request) == KEY


def test_every_refusal_is_a_403_signature_rejection() -> None:
    for exc in (InvalidSignature, MissingAuthenticationToken, SignatureExpired):
        assert issubclass(exc, SignatureRejected)
        assert exc.status == 403


def test_everything_but_the_signature_is_checked_from_the_headers_alone() -> None:
    checker = verifier()
    for request, error in [
        (
            with_header_changed(signed(small_post()), "authorization", lambda _: "AWS4-HMAC-SHA256 x"),
            InvalidSignature,
        ),
        (signed(small_post(), region="eu-west-1"), InvalidSignature),
    ]:
        with pytest.raises(error):
            checker.check_head(request.headers)
    request = signed(small_post())
    head = checker.check_head(request.headers)
    with pytest.raises(InvalidSignature, match="x-amz-content-sha256 header does not match"):
        checker.verify(replace(request, body=b'{"message": "other"}'), head)
    assert checker.verify(request, head) == KEY


# ---- the signer and the building blocks -----------------------------------------------------------------


def test_signing_key_is_cached() -> None:
    assert signing_key(SECRET, "20250615", "us-east-1", "execute-api") is signing_key(
        SECRET, "20250615", "us-east-1", "execute-api"
    )


def test_signer_needs_aware_time_and_a_host() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        sign(small_post(), access_key_id=KEY, secret_access_key=SECRET, now=datetime(2025, 6, 15))
    with pytest.raises(ValueError, match="Host header"):
        sign(replace(small_post(), headers=[]), access_key_id=KEY, secret_access_key=SECRET)


def test_signer_replaces_its_own_headers_and_skips_hop_by_hop_ones() -> None:
    request = replace(
        small_post(),
        headers=[*small_post().headers, ("User-Agent", "test"), ("X-Amz-Date", "19990101T000000Z")],
    )
    added = dict(sign(request, access_key_id=KEY, secret_access_key=SECRET, now=NOW))
    assert added["X-Amz-Date"] == AMZ_NOW
    assert parse_authorization(added["Authorization"]).signed_headers == [
        "content-type",
        "host",
        "x-amz-content-sha256",
        "x-amz-date",
    ]


def test_canonical_request_needs_every_signed_header() -> None:
    with pytest.raises(ValueError, match="x-amz-date"):
        canonical_request(small_post(), ["host", "x-amz-date"], sha256(BODY))


def test_canonical_query_decodes_then_encodes_strictly() -> None:
    request = SignedRequest("GET", "/", "b=2&a=%7e+x&&a=1&c&%e1%88%b4=%2B", [("Host", HOST)], b"")
    canonical = canonical_request(request, ["host"], sha256(b""))
    assert canonical.split("\n")[2] == "%E1%88%B4=%2B&a=1&a=~%20x&b=2&c="


def test_canonical_path_is_double_encoded_and_normalized_unless_asked_not_to() -> None:
    request = SignedRequest("GET", "/a%20b//./c/../d/", "", [("Host", HOST)], b"")
    assert canonical_request(request, ["host"], sha256(b"")).split("\n")[1] == "/a%2520b/d/"
    raw = canonical_request(request, ["host"], sha256(b""), normalize_path=False)
    assert raw.split("\n")[1] == "/a%2520b//./c/../d/"
