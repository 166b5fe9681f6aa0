"""SigV4 as the server checks it (decision 40): the head read from the request's header dict, the rest from
the request line and body, and the Authorization header read but for its signature once per client."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from unittest.mock import patch

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import given, settings
from hypothesis import strategies as st

from logsvc.auth.sigv4 import SignedRequest, SigV4Verifier, sign
from logsvc.auth.sigv4 import _parse_any_authorization as parse_any_authorization
from logsvc.auth.sigv4 import _parse_authorization as read_authorization
from logsvc.errors import InvalidSignature, SignatureMismatch, SignatureRejected

KEY = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"  # AWS's documented example secret
NOW = datetime(2025, 6, 15, 12, 0, 0, tzinfo=UTC)
HOST = "logs.example.com"


def verifier() -> SigV4Verifier:
    return SigV4Verifier({KEY: SECRET}.get, clock=NOW.timestamp)


def botocore_signed(body: bytes, headers: dict[str, str], query: str = "") -> SignedRequest:
    url = f"https://{HOST}/logs" + (f"?{query}" if query else "")
    request = AWSRequest(method="POST", url=url, data=body, headers=headers)
    with patch("botocore.auth.get_current_datetime", return_value=NOW.replace(tzinfo=None)):
        SigV4Auth(Credentials(KEY, SECRET), "execute-api", "us-east-1").add_auth(request)
    received = [("Host", HOST), *request.headers.items()]
    return SignedRequest("POST", "/logs", query, received, body)


def by_name(request: SignedRequest) -> dict[str, str]:
    """The headers as the server's header dict holds them (lower-case names; no name repeated)."""
    return {name.lower(): value for name, value in request.headers}


@settings(max_examples=50, deadline=None)
@given(
    body=st.binary(max_size=64),
    value=st.text(st.sampled_from("ab c\t,;="), max_size=8),
    query=st.sampled_from(["", "a=1", "b=2&a=1", "x=%20y"]),
)
def test_botocore_signatures_verify_from_the_header_dict(body: bytes, value: str, query: str) -> None:
    request = botocore_signed(body, {"Content-Type": "application/json", "X-Test": value.strip()}, query)
    checker = verifier()
    head = checker.check_head(by_name(request))
    assert checker.check_body(head, "POST", "/logs", query, body) == KEY
    assert checker.verify(request) == KEY


def test_the_header_dict_path_refuses_what_the_pairs_path_refuses() -> None:
    request = botocore_signed(b'{"message":"hi"}', {"Content-Type": "application/json"})
    checker = verifier()
    head = checker.check_head(by_name(request))
    with pytest.raises(SignatureMismatch):
        checker.check_body(head, "POST", "/logs", "", b'{"message":"changed"}')
    ours = SignedRequest("POST", "/logs", "", [("Host", HOST)], b"{}")
    ours = replace(
        ours, headers=[*ours.headers, *sign(ours, access_key_id=KEY, secret_access_key=SECRET, now=NOW)]
    )
    with pytest.raises(InvalidSignature, match="does not match the SHA-256 of the body"):
        checker.check_body(checker.check_head(by_name(ours)), "POST", "/logs", "", b"[]")
    with pytest.raises(SignatureMismatch):
        checker.check_body(head, "POST", "/logs", "a=1", b'{"message":"hi"}')
    changed = by_name(request) | {"content-type": "text/plain"}
    with pytest.raises(SignatureMismatch):
        checker.check_body(checker.check_head(changed), "POST", "/logs", "", b'{"message":"hi"}')


def test_a_repeated_signed_header_verifies_from_the_pairs() -> None:
    """A name sent twice is signed as its values joined by commas, each trimmed; the server then reads
    the pairs, as its header dict keeps only one value of each name."""
    unsigned = SignedRequest(
        "POST", "/logs", "", [("Host", HOST), ("X-Test", " a  b "), ("x-test", "c")], b"{}"
    )
    request = replace(
        unsigned,
        headers=[*unsigned.headers, *sign(unsigned, access_key_id=KEY, secret_access_key=SECRET, now=NOW)],
    )
    checker = verifier()
    assert checker.verify(request) == KEY
    head = checker.check_head(request.headers)
    assert head.headers["x-test"] == "a b,c"
    one_value = [(name, value) for name, value in request.headers if name != "x-test"]
    with pytest.raises(SignatureMismatch):
        checker.verify(replace(request, headers=one_value))


def test_a_repeated_date_or_body_hash_is_judged_as_sent() -> None:
    request = botocore_signed(b"{}", {})
    date = next(value for name, value in request.headers if name == "X-Amz-Date")
    doubled = replace(request, headers=[*request.headers, ("x-amz-date", f" {date} ")])
    with pytest.raises(InvalidSignature, match=f"not '{date}, {date}'"):
        verifier().check_head(doubled.headers)
    unsigned = replace(request, headers=[*request.headers, ("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")])
    with pytest.raises(InvalidSignature, match="is not accepted"):
        verifier().check_head(unsigned.headers)


def mutations() -> st.SearchStrategy[str]:
    """The usual header, and headers a character or a cut away from it, in the usual form or not."""
    header = botocore_signed(b"{}", {"Content-Type": "application/json"}).headers
    usual = next(value for name, value in header if name == "Authorization")
    pieces = st.sampled_from(["", " ", ",", ", ", ";", ";;", "host;host", "Host", "0", "A", "é", "=", "/"])
    return st.one_of(
        st.just(usual),
        st.tuples(st.integers(0, len(usual)), st.integers(0, 3), pieces).map(
            lambda change: usual[: change[0]] + change[2] + usual[change[0] + change[1] :]
        ),
        st.integers(0, len(usual)).map(lambda cut: usual[:cut]),
        st.integers(0, 80).map(lambda cut: usual[:-64] + "host;host, Signature=" + usual[-64:][cut:]),
    )


def outcome(header: str, read: object) -> object:
    try:
        return read([header])  # type: ignore[operator]
    except SignatureRejected as refused:
        return (type(refused), refused.detail)


@settings(max_examples=300, deadline=None)
@given(header=mutations())
def test_the_header_read_but_for_its_signature_reads_as_the_general_parser(header: str) -> None:
    expected = outcome(header, parse_any_authorization)
    assert outcome(header, read_authorization) == expected
    assert outcome(header, read_authorization) == expected  # read again: from the kept part


def test_a_long_header_is_read_without_being_kept() -> None:
    request = botocore_signed(b"{}", {f"X-Long-{n}": "v" for n in range(60)})
    header = next(value for name, value in request.headers if name == "Authorization")
    assert len(header) > 512 + 64
    assert read_authorization([header]) == parse_any_authorization([header])
    assert verifier().verify(request) == KEY
