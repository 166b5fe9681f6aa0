"""The verifier's quicker readings give what its general ones give (decision 31): the usual Authorization
header read by one regular expression, and the HMAC computed over hashlib's SHA-256 (botocore's real signer
checks the whole signature in test_sigv4)."""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from unittest.mock import patch

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from logsvc.auth.sigv4 import _USUAL_AUTHORIZATION, signing_key
from logsvc.auth.sigv4 import _keyed as keyed
from logsvc.auth.sigv4 import _mac as mac
from logsvc.auth.sigv4 import _parse_any_authorization as parse_any_authorization
from logsvc.auth.sigv4 import _parse_authorization as read_authorization

KEY = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"  # AWS's documented example secret
NOW = datetime(2025, 6, 15, 12, 0, 0, tzinfo=UTC)


def botocore_authorization() -> str:
    request = AWSRequest(method="POST", url="https://logs.example.com/logs", data=b"{}")
    with patch("botocore.auth.get_current_datetime", return_value=NOW.replace(tzinfo=None)):
        SigV4Auth(Credentials(KEY, SECRET), "execute-api", "us-east-1").add_auth(request)
    header: str = request.headers["Authorization"]
    return header


def test_the_usual_header_is_read_as_the_general_parser_reads_it() -> None:
    header = botocore_authorization()
    assert _USUAL_AUTHORIZATION.fullmatch(header) is not None
    usual = read_authorization([header])
    assert usual == parse_any_authorization([header])
    assert usual.access_key_id == KEY
    assert usual.signed_headers == ("host", "x-amz-date")


def test_other_spellings_of_the_same_parameters_read_the_same() -> None:
    header = botocore_authorization()
    usual = read_authorization([header])
    credential, signed_headers, signature = header.partition(" ")[2].split(", ")
    for variant in (
        header.replace(", ", ","),  # the regular expression's other form
        f"AWS4-HMAC-SHA256 {signature}, {credential}, {signed_headers}",  # only the general parser's
        f" AWS4-HMAC-SHA256 {credential},  {signed_headers} , {signature} ",
    ):
        assert read_authorization([variant]) == usual


def test_the_signature_is_hmac_sha256_of_the_derived_key() -> None:
    derived = signing_key(SECRET, "20250615", "us-east-1", "execute-api")
    # The derived key (32 bytes) and, for the construction's other branches, keys as long as a block,
    # longer (hashed first) and empty.
    for key in (derived, b"k" * 64, b"\x00" + b"k" * 64, bytes(range(200)), b""):
        for text in ("", "AWS4-HMAC-SHA256\n20250615T120000Z\nscope\n" + "ab" * 32, "é" * 5000):
            expected = hmac.new(key, text.encode(), "sha256").hexdigest()
            assert mac(keyed(key), text.encode()) == expected
            assert mac(keyed(key), text.encode()) == expected  # the kept states are copied, never changed
