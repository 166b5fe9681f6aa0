"""SigV4 (botocore, requests-aws4auth), OIDC tokens and TLS, each against a real server on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import http.client
import ipaddress
import json
import ssl
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from requests_aws4auth import AWS4Auth

from logsvc.auth.credential_service import NewCredential
from logsvc.auth.policy import Role
from logsvc.auth.sigv4 import SignedRequest, sign
from logsvc.client import AwsCredentials, Client
from tests.conftest import ServerProcess, ServerThread, make_key, make_settings


def fresh_body() -> bytes:
    """A body no other test sends, so that its entry is told apart from every other test's."""
    return json.dumps(
        {"service_name": "signed", "message": f"signed by an AWS client {uuid.uuid4()}"}
    ).encode()


@pytest.fixture(scope="module")
def signed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerThread, NewCredential]]:
    server = ServerThread(make_settings(tmp_path_factory.mktemp("sigv4") / "data")).start()
    yield server, make_key(server.settings, Role.INGEST)
    server.stop()


def botocore_headers(
    url: str, body: bytes, key: NewCredential, *, secret: str | None = None, region: str = "us-east-1"
) -> dict[str, str]:
    request = AWSRequest(method="POST", url=url, data=body)
    SigV4Auth(
        Credentials(key.access_key_id, secret or key.secret_access_key), "execute-api", region
    ).add_auth(request)
    return dict(request.headers.items())


def post_signed(url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    # Content-Type added after signing, as some clients do: an unsigned header must not matter.
    return httpx.post(url, content=body, headers={**headers, "Content-Type": "application/json"}, timeout=10)


def test_botocore_signed_request_is_accepted(signed_server: tuple[ServerThread, NewCredential]) -> None:
    server, key = signed_server
    url = f"{server.url}/logs"
    body = fresh_body()
    response = post_signed(url, body, botocore_headers(url, body, key))
    assert response.status_code == 201, response.text


def test_requests_aws4auth_signed_request_is_accepted(
    signed_server: tuple[ServerThread, NewCredential],
) -> None:
    server, key = signed_server
    auth = AWS4Auth(key.access_key_id, key.secret_access_key, "us-east-1", "execute-api")
    # A query string is part of what is signed: a mapping naming our own fields, out of order, changes
    # nothing of the entry, so it only tests the canonicalisation.
    query = "time_field=timestamp&message_field=message&level_field=level"
    for url in (f"{server.url}/logs", f"{server.url}/logs?{query}"):
        response = requests.post(
            url, data=fresh_body(), auth=auth, timeout=10, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 201, response.text


def test_our_signer_is_accepted(signed_server: tuple[ServerThread, NewCredential]) -> None:
    server, key = signed_server
    host = server.url.removeprefix("http://")
    body = fresh_body()
    request = SignedRequest("POST", "/logs", "", [("Host", host), ("Content-Type", "application/json")], body)
    added = sign(request, access_key_id=key.access_key_id, secret_access_key=key.secret_access_key)
    response = httpx.post(f"{server.url}/logs", content=body, headers=[*request.headers, *added], timeout=10)
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("wrong secret", 403, "invalid_signature"),
        ("other region", 403, "invalid_signature"),
        ("skew 5 min + 1 s", 403, "signature_expired"),
        ("body swapped after signing", 403, "invalid_signature"),
        ("unknown key", 403, "invalid_signature"),
        ("unsigned", 401, "missing_authentication_token"),
    ],
)
def test_bad_signatures_are_refused(
    signed_server: tuple[ServerThread, NewCredential], case: str, status: int, code: str
) -> None:
    server, key = signed_server
    url = f"{server.url}/logs"
    body = fresh_body()
    if case == "wrong secret":
        headers = botocore_headers(url, body, key, secret="not-the-secret")
    elif case == "other region":
        headers = botocore_headers(url, body, key, region="eu-west-1")
    elif case == "skew 5 min + 1 s":
        host = server.url.removeprefix("http://")
        late = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5, seconds=1)
        request = SignedRequest("POST", "/logs", "", [("Host", host)], body)
        headers = dict(
            sign(request, access_key_id=key.access_key_id, secret_access_key=key.secret_access_key, now=late)
        )
    elif case == "body swapped after signing":
        headers = botocore_headers(url, body, key)
        body = body.replace(b"signed by", b"forged by")
    elif case == "unknown key":
        stranger = NewCredential("LSKNOBODYKNOWSME", "s" * 40, "lsk_x", (Role.ADMIN,), (), None)
        headers = botocore_headers(url, body, stranger)
    else:
        headers = {}
    response = post_signed(url, body, headers)
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert response.headers["content-type"] == "application/problem+json"


def test_a_signature_does_not_carry_a_request_to_a_path_that_normalizes_to_the_signed_one(
    signed_server: tuple[ServerThread, NewCredential],
) -> None:
    """The signature covers the path normalized, as AWS defines it; the router reads it as sent, where
    /./_bulk is the bulk route of an index (a service) named '.'."""
    server, key = signed_server
    host = server.url.removeprefix("http://")
    body = b'{"create": {}}\n{"message": "signed bulk line"}\n'
    headers = [("Host", host), ("Content-Type", "application/x-ndjson")]
    request = SignedRequest("POST", "/_bulk", "", headers, body)
    signed = [
        *headers,
        *sign(request, access_key_id=key.access_key_id, secret_access_key=key.secret_access_key),
    ]
    for path in ("/./_bulk", "//_bulk", "/x/../_bulk"):
        connection = http.client.HTTPConnection(host, timeout=10)
        try:
            connection.request("POST", path, body=body, headers=dict(signed))
            answer = connection.getresponse()
            problem = json.loads(answer.read())
        finally:
            connection.close()
        assert (answer.status, problem["code"]) == (403, "invalid_signature"), path
        assert "send it as it was signed" in problem["detail"]
    assert httpx.post(f"{server.url}/_bulk", content=body, headers=signed, timeout=10).status_code == 200


def test_identical_signed_requests_are_two_events(signed_server: tuple[ServerThread, NewCredential]) -> None:
    """A heartbeat sent twice in one second carries one signature; API Gateway accepts both, and so do we."""
    server, key = signed_server
    url = f"{server.url}/logs"
    body = fresh_body()
    headers = botocore_headers(url, body, key)
    first, second = post_signed(url, body, headers), post_signed(url, body, headers)
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["log_id"] != second.json()["log_id"]


def test_the_optional_replay_guard_refuses_a_replay_but_never_our_client(tmp_path: Path) -> None:
    server = ServerThread(make_settings(tmp_path / "data", sigv4_replay_guard=True)).start()
    try:
        key = make_key(server.settings, Role.ADMIN)
        url = f"{server.url}/logs"
        body = fresh_body()
        headers = botocore_headers(url, body, key)
        assert post_signed(url, body, headers).status_code == 201
        replayed = post_signed(url, body, headers)
        assert (replayed.status_code, replayed.json()["code"]) == (403, "replayed_signature")
        credentials = AwsCredentials(key.access_key_id, key.secret_access_key)
        # Identical sends in a tight loop: several share a second, so without a unique signed request id
        # they would share a signature.
        with Client(server.url, aws_credentials=credentials) as client:
            sent = [client.send("heartbeat") for _ in range(5)]
        assert len({answer.log_id for answer in sent}) == 5
    finally:
        server.stop()


def test_an_unknown_key_id_is_answered_as_a_wrong_secret(
    signed_server: tuple[ServerThread, NewCredential],
) -> None:
    """The same status, code and detail: an answer that differed would tell which key ids exist."""
    server, key = signed_server
    url = f"{server.url}/logs"
    stranger = NewCredential("LSKNOBODYKNOWSME", "s" * 40, "lsk_x", (Role.ADMIN,), (), None)
    answers = []
    for credential, secret in ((stranger, None), (key, "not-the-secret")):
        body = fresh_body()
        response = post_signed(url, body, botocore_headers(url, body, credential, secret=secret))
        answers.append((response.status_code, response.json()))
    assert answers[0] == answers[1]
    assert answers[0][0] == 403


# ---- OIDC ------------------------------------------------------------------------------------------------

ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_example"


@pytest.fixture(scope="module")
def oidc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerThread, Any]]:
    folder = tmp_path_factory.mktemp("oidc")
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    (folder / "jwks.json").write_text(
        json.dumps({"keys": [{**jwk, "kid": "k1", "alg": "RS256", "use": "sig"}]})
    )
    settings = make_settings(
        folder / "data",
        jwt_issuer=ISSUER,
        jwt_audience="logsvc-client",
        jwt_jwks_file=str(folder / "jwks.json"),
    )
    server = ServerThread(settings).start()
    yield server, private
    server.stop()


def token(private: Any, **claims: Any) -> str:
    now = int(time.time())
    payload = {"iss": ISSUER, "aud": "logsvc-client", "sub": "user-1", "exp": now + 600, "iat": now, **claims}
    return jwt.encode(payload, private, algorithm="RS256", headers={"kid": "k1"})


def test_oidc_tokens(oidc: tuple[ServerThread, Any]) -> None:
    server, private = oidc
    with httpx.Client(base_url=server.url, timeout=10) as client:
        writer = {"Authorization": f"Bearer {token(private, **{'cognito:groups': ['ingest']})}"}
        assert client.post("/logs", json={"message": "from oidc"}, headers=writer).status_code == 201
        assert client.get("/logs", headers=writer).status_code == 403
        expired = token(private, exp=int(time.time()) - 3600, **{"cognito:groups": ["read"]})
        response = client.get("/logs", headers={"Authorization": f"Bearer {expired}"})
        assert (response.status_code, response.json()["code"]) == (401, "token_expired")
        wrong_audience = token(private, aud="someone-else", **{"cognito:groups": ["read"]})
        response = client.get("/logs", headers={"Authorization": f"Bearer {wrong_audience}"})
        assert (response.status_code, response.json()["code"]) == (401, "invalid_audience")
        reader = token(private, **{"cognito:groups": ["read"], "logsvc:services": ["default"]})
        assert client.get("/logs", headers={"Authorization": f"Bearer {reader}"}).json()["count"] == 1


@pytest.mark.parametrize("claim", ["", [], ",", " ", ["team-[!a]*"]])
def test_a_service_claim_naming_no_service_or_a_bad_pattern_fails_closed(
    oidc: tuple[ServerThread, Any], claim: object
) -> None:
    server, private = oidc
    scoped = token(private, **{"cognito:groups": ["read"], "logsvc:services": claim})
    with httpx.Client(base_url=server.url, timeout=10) as client:
        response = client.get("/logs", headers={"Authorization": f"Bearer {scoped}"})
    assert response.status_code == 403
    assert "logsvc:services" in response.json()["detail"]


# ---- TLS -------------------------------------------------------------------------------------------------


def self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def test_tls(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server = ServerProcess(tmp_path / "data", "--tls-cert", str(cert), "--tls-key", str(key))
    trusted = ssl.create_default_context(cafile=str(cert))
    server.scheme = "https"
    server.verify = trusted
    try:
        server.start()
        response = httpx.post(
            f"{server.url}/logs", json={"message": "over tls"}, headers=server.headers, verify=trusted
        )
        assert response.status_code == 201
        old = ssl.create_default_context(cafile=str(cert))
        with warnings.catch_warnings():  # the point is to speak a deprecated protocol
            warnings.simplefilter("ignore", DeprecationWarning)
            old.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
            old.maximum_version = ssl.TLSVersion.TLSv1_1
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{server.url}/healthz", verify=old)
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{server.port}/healthz")
    finally:
        server.kill()


# ---- HTTP Basic, as log shippers send an API key --------------------------------------------------------


def test_http_basic_carries_an_api_key(signed_server: tuple[ServerThread, NewCredential]) -> None:
    """python-logging-loki, Fluent Bit, Vector, Promtail and Filebeat speak Basic: the API key is the
    password (any user name), or the user name with an empty password."""
    server, key = signed_server
    url = f"{server.url}/logs"
    entry = {"message": "from a shipper"}
    assert httpx.post(url, json=entry, auth=("logsvc", key.api_key)).status_code == 201
    assert httpx.post(url, json=entry, auth=(key.api_key, "")).status_code == 201
    wrong = httpx.post(url, json=entry, auth=("logsvc", "lsk_not_a_key"))
    assert (wrong.status_code, wrong.json()["code"]) == (401, "invalid_api_key")
    for garbage in (b"Basic %%%not-base64", b"Basic \xff\xfe", "Basic é".encode("latin-1")):
        refused = httpx.post(url, json=entry, headers={"Authorization": garbage})
        assert (refused.status_code, refused.json()["code"]) == (401, "invalid_token"), garbage
        assert "Basic credentials" in refused.json()["detail"]
