"""What the verifier keeps between signed requests (decision 43): the usual Authorization header's credential
with the pieces each request needs of it, and the HMAC of each signing key; and the failed-auth throttle's
note that nobody has failed yet, by which requests with credentials skip finding their address."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from logsvc.auth.ratelimit import FailedAuthThrottle
from logsvc.auth.sigv4 import SignedRequest, SigV4Verifier, sign
from logsvc.auth.sigv4 import _keyed_for as keyed_for
from logsvc.auth.sigv4 import _parse_any_authorization as parse_any_authorization
from logsvc.auth.sigv4 import _usual_authorization as usual_authorization
from logsvc.errors import InvalidSignature, SignatureExpired, SignatureMismatch

KEY = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"  # AWS's documented example secret
NOW = datetime(2025, 6, 15, 12, 0, 0, tzinfo=UTC)


def signed(body: bytes, *, secret: str = SECRET, host: str = "logs.example.com") -> SignedRequest:
    request = SignedRequest("POST", "/logs", "", [("Host", host), ("Content-Type", "application/json")], body)
    added = sign(request, access_key_id=KEY, secret_access_key=secret, now=NOW)
    return replace(request, headers=[*request.headers, *added])


def authorization(request: SignedRequest) -> str:
    return next(value for name, value in request.headers if name == "Authorization")


def test_the_kept_credential_holds_what_each_request_builds_from_it() -> None:
    header = authorization(signed(b"{}"))
    usual = usual_authorization(header)
    assert usual is not None
    credential = usual.credential
    assert credential.scope == "20250615/us-east-1/execute-api/aws4_request"
    assert credential.signed_list == "content-type;host;x-amz-content-sha256;x-amz-date"
    assert credential.names == frozenset(credential.signed_headers)
    assert credential.signs_required
    # The general parser makes the same, piece for piece (the derived pieces are not compared by ==).
    general = parse_any_authorization([header]).credential
    assert (general.scope, general.signed_list, general.names, general.signs_required) == (
        credential.scope,
        credential.signed_list,
        credential.names,
        credential.signs_required,
    )
    # Another request of the client: the same kept credential, its own signature.
    other = usual_authorization(authorization(signed(b"[]")))
    assert other is not None
    assert other.credential is credential
    assert other.signature != usual.signature


def test_a_credential_not_signing_host_and_date_is_refused_from_the_kept_reading() -> None:
    request = signed(b"{}")
    header = authorization(request).replace(
        "SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date",
        "SignedHeaders=content-type;x-amz-content-sha256;x-amz-date",
    )
    usual = usual_authorization(header)
    assert usual is not None
    assert not usual.credential.signs_required
    headers = {name.lower(): value for name, value in request.headers} | {"authorization": header}
    with pytest.raises(InvalidSignature, match="'host' must be among the SignedHeaders"):
        SigV4Verifier({KEY: SECRET}.get, clock=NOW.timestamp).check_head(headers)


def headers_of(request: SignedRequest, **replaced: str) -> dict[str, str]:
    """The request's headers as the server has them, by lower-case name, with some replaced."""
    return {name.lower(): value for name, value in request.headers} | replaced


@pytest.mark.parametrize(
    ("signature", "error", "message"),
    [
        ("A" * 64, InvalidSignature, "Signature must be 64 lowercase hexadecimal digits"),
        ("é" * 64, InvalidSignature, "Signature must be 64 lowercase hexadecimal digits"),
        ("0" * 63, InvalidSignature, "Signature must be 64 lowercase hexadecimal digits"),
        ("0" * 64, SignatureMismatch, None),
    ],
)
def test_a_header_accepted_before_with_another_signature_is_judged_afresh(
    signature: str, error: type[Exception], message: str | None
) -> None:
    checker = SigV4Verifier({KEY: SECRET}.get, clock=NOW.timestamp)
    accepted = signed(b'{"n":1}')
    assert checker.verify(accepted) == KEY
    header = authorization(accepted)
    forged = headers_of(accepted, authorization=header[:-64] + signature)
    with pytest.raises(error, match=message):
        checker.verify(replace(accepted, headers=list(forged.items())))


def test_a_credential_one_verifier_accepted_is_checked_by_another_against_its_own_scope() -> None:
    request = signed(b"{}")
    assert SigV4Verifier({KEY: SECRET}.get, clock=NOW.timestamp).verify(request) == KEY
    elsewhere = SigV4Verifier({KEY: SECRET}.get, clock=NOW.timestamp, region="eu-west-1")
    with pytest.raises(InvalidSignature, match="scoped to a valid region: 'eu-west-1'"):
        elsewhere.check_head(headers_of(request))
    other_service = SigV4Verifier({KEY: SECRET}.get, clock=NOW.timestamp, service="logs")
    with pytest.raises(InvalidSignature, match="scoped to correct service: 'logs'"):
        other_service.check_head(headers_of(request))


@pytest.mark.parametrize(
    ("scope", "wrong"),
    [
        ({"region": "eu-west-1"}, "scoped to a valid region"),
        ({"service": "logs"}, "scoped to correct service"),
    ],
)
def test_a_credential_of_another_scope_gets_the_error_it_always_got_first(
    scope: dict[str, str], wrong: str
) -> None:
    """The region and service are judged after the signed headers and the date, as they always were, so
    that a request wrong in several ways gets the same error whether or not its credential could be kept."""
    checker = SigV4Verifier({KEY: SECRET}.get, clock=NOW.timestamp)
    request = SignedRequest("POST", "/logs", "", [("Host", "h"), ("Content-Type", "application/json")], b"{}")
    request = replace(
        request,
        headers=[
            *request.headers,
            *sign(request, access_key_id=KEY, secret_access_key=SECRET, now=NOW, **scope),
        ],
    )
    without_type = headers_of(request)
    del without_type["content-type"]
    repeated = [(name, value) for name, value in request.headers if name != "Content-Type"]
    for headers, message in [
        (without_type, "Signed header 'content-type' is not in the request"),
        ([*repeated, ("X-Seen", "1"), ("X-Seen", "2")], "Signed header 'content-type' is not in the request"),
        (headers_of(request, **{"x-amz-date": "soon"}), "X-Amz-Date must be a UTC time"),
        (
            headers_of(request, **{"x-amz-date": "20250616T120000Z"}),
            "Date in Credential scope does not match",
        ),
        (headers_of(request), wrong),
        (headers_of(request), wrong),  # nothing of it was kept
    ]:
        with pytest.raises(InvalidSignature, match=message):
            checker.check_head(headers)


def test_an_accepted_credential_still_needs_its_signed_headers_a_current_date_and_a_held_key() -> None:
    held = {KEY: SECRET}
    now = [NOW.timestamp()]
    checker = SigV4Verifier(held.get, clock=lambda: now[0])
    request = signed(b"{}")
    assert checker.verify(request) == KEY
    without_type = headers_of(request)
    del without_type["content-type"]
    with pytest.raises(InvalidSignature, match="Signed header 'content-type' is not in the request"):
        checker.check_head(without_type)
    with pytest.raises(InvalidSignature, match="Date in Credential scope does not match"):
        checker.check_head(headers_of(request, **{"x-amz-date": "20250616T120000Z"}))
    now[0] += 3600
    with pytest.raises(SignatureExpired):
        checker.check_head(headers_of(request))
    now[0] = NOW.timestamp()
    del held[KEY]  # revoked
    with pytest.raises(SignatureMismatch):
        checker.verify(signed(b"[]"))


def test_each_signing_key_is_derived_and_keyed_once_and_kept_apart_by_secret() -> None:
    checker = SigV4Verifier({KEY: SECRET}.get, clock=NOW.timestamp)
    first, second = signed(b'{"n":1}'), signed(b'{"n":2}')
    assert checker.verify(first) == KEY
    before = keyed_for.cache_info()
    assert checker.verify(second) == KEY
    after = keyed_for.cache_info()
    assert (after.hits, after.misses) == (before.hits + 1, before.misses)
    # The same key id, day, region and service with another secret: another kept HMAC, and the
    # signature made with the first secret does not verify under it.
    other = SigV4Verifier({KEY: SECRET + "x"}.get, clock=NOW.timestamp)
    with pytest.raises(SignatureMismatch):
        other.verify(signed(b'{"n":3}'))
    assert other.verify(signed(b'{"n":3}', secret=SECRET + "x")) == KEY


def test_the_throttle_notes_the_first_failure() -> None:
    throttle = FailedAuthThrottle(6)
    assert not throttle.anyone_failed
    assert throttle.delay("203.0.113.9") == 0.0
    throttle.failed("203.0.113.9")
    assert throttle.anyone_failed
    off = FailedAuthThrottle(0)
    off.failed("203.0.113.9")
    assert not off.anyone_failed  # off: it refuses nobody, so nobody need be looked up
