"""JwtVerifier against real keys, real tokens and a real JWKS endpoint served on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from logsvc.auth.jwt import JwtVerifier, TokenClaims
from logsvc.errors import AuthenticationFailed, ConfigError, Forbidden

ISSUER = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Example"
AUDIENCE = "logsvc-app-client"
OMIT: Any = object()


@dataclass(frozen=True)
class SigningKey:
    """A private key as the identity provider holds it, and the public JWK it publishes."""

    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    kid: str
    alg: str

    @property
    def jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        algorithm = RSAAlgorithm if isinstance(public, rsa.RSAPublicKey) else ECAlgorithm
        return {**algorithm.to_jwk(public, as_dict=True), "kid": self.kid, "alg": self.alg, "use": "sig"}

    def sign(self, claims: dict[str, Any], *, headers: dict[str, Any] | None = None) -> str:
        """A token; ``headers`` replaces the default header, which names this key's kid."""
        headers = {"kid": self.kid} if headers is None else headers
        return jwt.encode(claims, self.private, algorithm=self.alg, headers=headers)


def rsa_key(kid: str, bits: int = 2048) -> SigningKey:
    return SigningKey(rsa.generate_private_key(public_exponent=65537, key_size=bits), kid, "RS256")


def claims(**overrides: Any) -> dict[str, Any]:
    """Valid claims for our issuer and audience; ``name=OMIT`` leaves a claim out."""
    now = int(time.time())
    base = {"iss": ISSUER, "aud": AUDIENCE, "sub": "user-1", "iat": now, "exp": now + 300, **overrides}
    return {name: value for name, value in base.items() if value is not OMIT}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value).encode())


def rejection(verifier: JwtVerifier, token: str) -> AuthenticationFailed:
    """The error ``verify`` raises, after checking it is a 401 whose detail repeats nothing of the token."""
    with pytest.raises(AuthenticationFailed) as caught:
        verifier.verify(token)
    error = caught.value
    assert error.status == 401
    assert all(part not in error.detail for part in token.split(".") if len(part) >= 8)
    return error


class JwksServer:
    """A JWKS endpoint on a free port of 127.0.0.1 whose keys and status a test can change."""

    def __init__(self, keys: list[dict[str, Any]]) -> None:
        self.keys = keys
        self.status = 200
        self.requests = 0
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/.well-known/jwks.json"
        # A short poll interval, because shutdown() waits for the next poll and a test waits for shutdown().
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.01,), daemon=True)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                endpoint.requests += 1
                body = json.dumps({"keys": endpoint.keys}).encode()
                self.send_response(endpoint.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                """Silenced: the default writes every request to stderr."""

        return Handler


@pytest.fixture(scope="module")
def rsa_signer() -> SigningKey:
    return rsa_key("rsa-1")


@pytest.fixture(scope="module")
def ec_signer() -> SigningKey:
    return SigningKey(ec.generate_private_key(ec.SECP256R1()), "ec-1", "ES256")


@pytest.fixture
def jwks_server(rsa_signer: SigningKey, ec_signer: SigningKey) -> Iterator[JwksServer]:
    server = JwksServer([rsa_signer.jwk, ec_signer.jwk])
    server.thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()
    server.thread.join()


@pytest.fixture
def verifier(jwks_server: JwksServer) -> JwtVerifier:
    return JwtVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_url=jwks_server.url)


def jwks_file(tmp_path: Path, *signers: SigningKey) -> Path:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [signer.jwk for signer in signers]}))
    return path


# Accepted tokens


def test_valid_rs256(verifier: JwtVerifier, rsa_signer: SigningKey) -> None:
    token_claims = claims(**{"cognito:groups": ["writers"]})
    assert verifier.verify(rsa_signer.sign(token_claims)) == TokenClaims(
        subject="user-1", roles=("writers",), services=None, expires_at=token_claims["exp"]
    )


def test_valid_es256(verifier: JwtVerifier, ec_signer: SigningKey) -> None:
    assert verifier.verify(ec_signer.sign(claims(sub="user-2"))).subject == "user-2"


def test_expired_within_leeway_is_accepted(verifier: JwtVerifier, rsa_signer: SigningKey) -> None:
    now = int(time.time())
    assert verifier.verify(rsa_signer.sign(claims(iat=now - 600, exp=now - 10))).expires_at == now - 10


def test_audience_list_naming_us_is_accepted(verifier: JwtVerifier, rsa_signer: SigningKey) -> None:
    assert verifier.verify(rsa_signer.sign(claims(aud=["other-app", AUDIENCE]))).subject == "user-1"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (["readers", "writers"], ("readers", "writers")),
        ("readers writers", ("readers", "writers")),
        ("readers,writers", ("readers", "writers")),
        (" readers, writers ", ("readers", "writers")),
        ([], ()),
        (OMIT, None),  # no claim at all: jwt_default_roles decides (auth/policy.py token_principal)
    ],
)
def test_role_claim_forms(
    verifier: JwtVerifier, rsa_signer: SigningKey, value: Any, expected: tuple[str, ...] | None
) -> None:
    assert verifier.verify(rsa_signer.sign(claims(**{"cognito:groups": value}))).roles == expected


def test_role_and_service_claim_names_are_configurable(
    jwks_server: JwksServer, rsa_signer: SigningKey
) -> None:
    verifier = JwtVerifier(
        issuer=ISSUER, audience=AUDIENCE, jwks_url=jwks_server.url, role_claim="roles", service_claim="apps"
    )
    token = rsa_signer.sign(claims(roles=["admin"], apps="billing-*", **{"cognito:groups": ["ignored"]}))
    verified = verifier.verify(token)
    assert (verified.roles, verified.services) == (("admin",), ("billing-*",))


def test_service_claim(verifier: JwtVerifier, rsa_signer: SigningKey) -> None:
    token = rsa_signer.sign(claims(**{"logsvc:services": ["checkout-*", "billing"]}))
    assert verifier.verify(token).services == ("checkout-*", "billing")


def test_cognito_access_token_with_client_id_and_no_aud(
    verifier: JwtVerifier, rsa_signer: SigningKey
) -> None:
    token = rsa_signer.sign(
        claims(aud=OMIT, client_id=AUDIENCE, token_use="access", **{"logsvc:services": ["billing"]})
    )
    assert verifier.verify(token).services == ("billing",)


def test_cognito_access_token_without_the_service_claim_is_refused_not_every_service(
    verifier: JwtVerifier, rsa_signer: SigningKey
) -> None:
    """Cognito puts the user's attributes in ID tokens only: an access token's missing claim is not the
    "every service" of an ID token's (a pre-token-generation trigger may add the claim; then it counts)."""
    token = rsa_signer.sign(claims(aud=OMIT, client_id=AUDIENCE, token_use="access", scope="openid"))
    with pytest.raises(Forbidden, match="has no 'logsvc:services' claim, so its user's services are unknown"):
        verifier.verify(token)
    assert verifier.verify(rsa_signer.sign(claims())).services is None  # an ID token's: every service


# Rejected tokens


def test_expired(verifier: JwtVerifier, rsa_signer: SigningKey) -> None:
    now = int(time.time())
    assert rejection(verifier, rsa_signer.sign(claims(iat=now - 600, exp=now - 60))).code == "token_expired"


@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_not_yet_valid(verifier: JwtVerifier, rsa_signer: SigningKey, claim: str) -> None:
    future = int(time.time()) + 300
    token = rsa_signer.sign(claims(**{claim: future}, exp=future + 300))
    assert rejection(verifier, token).code == "token_not_yet_valid"


@pytest.mark.parametrize("audience", ["other-app", ["other-app", "third-app"], None])
def test_wrong_audience(verifier: JwtVerifier, rsa_signer: SigningKey, audience: Any) -> None:
    assert rejection(verifier, rsa_signer.sign(claims(aud=audience))).code == "invalid_audience"


@pytest.mark.parametrize(
    "extra",
    [
        {"client_id": "other-app", "token_use": "access"},
        {"client_id": AUDIENCE, "token_use": "id"},
        {"client_id": AUDIENCE},
        {"token_use": "access"},
    ],
)
def test_token_without_aud_must_be_our_cognito_access_token(
    verifier: JwtVerifier, rsa_signer: SigningKey, extra: dict[str, str]
) -> None:
    assert rejection(verifier, rsa_signer.sign(claims(aud=OMIT, **extra))).code == "invalid_audience"


def test_wrong_issuer(verifier: JwtVerifier, rsa_signer: SigningKey) -> None:
    token = rsa_signer.sign(claims(iss="https://evil.example.com/"))
    assert rejection(verifier, token).code == "invalid_issuer"


def test_unknown_kid_is_refused_without_hammering_the_provider(
    verifier: JwtVerifier, jwks_server: JwksServer
) -> None:
    stranger = rsa_key("not-published")
    for _ in range(3):
        assert rejection(verifier, stranger.sign(claims())).code == "unknown_key"
    assert jwks_server.requests == 1


@pytest.mark.parametrize("header", [{"alg": "none"}, {"alg": "none", "kid": "rsa-1", "typ": "JWT"}])
def test_alg_none_is_refused(verifier: JwtVerifier, jwks_server: JwksServer, header: dict[str, str]) -> None:
    token = f"{b64url_json(header)}.{b64url_json(claims())}."
    assert rejection(verifier, token).code == "invalid_token"
    assert jwks_server.requests == 0


def test_hs256_signed_with_the_public_key_is_refused(
    verifier: JwtVerifier, jwks_server: JwksServer, rsa_signer: SigningKey
) -> None:
    public_pem = rsa_signer.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = f"{b64url_json({'alg': 'HS256', 'typ': 'JWT', 'kid': 'rsa-1'})}.{b64url_json(claims())}"
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    assert rejection(verifier, f"{signing_input}.{b64url(signature)}").code == "invalid_token"
    assert jwks_server.requests == 0


def test_non_string_kid_is_refused_before_any_fetch(
    verifier: JwtVerifier, jwks_server: JwksServer, rsa_signer: SigningKey
) -> None:
    _, payload, signature = rsa_signer.sign(claims()).split(".")
    token = f"{b64url_json({'alg': 'RS256', 'kid': ['rsa-1']})}.{payload}.{signature}"
    assert rejection(verifier, token).code == "invalid_token"
    assert jwks_server.requests == 0


def test_tampered_payload(verifier: JwtVerifier, rsa_signer: SigningKey) -> None:
    header, _, signature = rsa_signer.sign(claims()).split(".")
    forged = f"{header}.{b64url_json(claims(sub='admin', **{'cognito:groups': ['admins']}))}.{signature}"
    error = rejection(verifier, forged)
    assert (error.code, error.detail) == ("invalid_token", "the bearer token's signature is not valid")


def test_algorithm_must_match_the_key_it_names(
    verifier: JwtVerifier, ec_signer: SigningKey, rsa_signer: SigningKey
) -> None:
    assert (
        rejection(verifier, ec_signer.sign(claims(), headers={"kid": rsa_signer.kid})).code == "invalid_token"
    )


@pytest.mark.parametrize(
    "token",
    ["", "garbage", "a.b.c", "a.b", "eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln", "...", "\u00e9.\u00e9.\u00e9"],
)
def test_garbage(verifier: JwtVerifier, token: str) -> None:
    assert rejection(verifier, token).code == "invalid_token"


@pytest.mark.parametrize("claim", ["exp", "iss", "sub"])
def test_missing_required_claim(verifier: JwtVerifier, rsa_signer: SigningKey, claim: str) -> None:
    error = rejection(verifier, rsa_signer.sign(claims(**{claim: OMIT})))
    assert (error.code, error.detail) == (
        "invalid_token",
        f"the bearer token lacks the required '{claim}' claim",
    )


@pytest.mark.parametrize("value", [42, ["readers", 7], {"readers": True}])
def test_malformed_role_claim(verifier: JwtVerifier, rsa_signer: SigningKey, value: Any) -> None:
    assert rejection(verifier, rsa_signer.sign(claims(**{"cognito:groups": value}))).code == "invalid_token"


def test_empty_subject(verifier: JwtVerifier, rsa_signer: SigningKey) -> None:
    assert rejection(verifier, rsa_signer.sign(claims(sub=""))).code == "invalid_token"


def test_key_below_minimum_size_is_refused(jwks_server: JwksServer, verifier: JwtVerifier) -> None:
    weak = rsa_key("weak-1", bits=1024)
    jwks_server.keys.append(weak.jwk)
    with pytest.warns(jwt.InsecureKeyLengthWarning):
        token = weak.sign(claims())
    assert rejection(verifier, token).code == "invalid_token"


# The JWKS endpoint


def test_jwks_is_fetched_once_and_cached(
    verifier: JwtVerifier, jwks_server: JwksServer, rsa_signer: SigningKey
) -> None:
    for _ in range(5):
        verifier.verify(rsa_signer.sign(claims()))
    assert jwks_server.requests == 1


def test_jwks_server_down() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    verifier = JwtVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_url=f"http://127.0.0.1:{port}/jwks.json")
    assert rejection(verifier, rsa_key("rsa-1").sign(claims())).code == "jwks_unavailable"


def test_jwks_server_error(verifier: JwtVerifier, jwks_server: JwksServer, rsa_signer: SigningKey) -> None:
    jwks_server.status = 500
    assert rejection(verifier, rsa_signer.sign(claims())).code == "jwks_unavailable"


def test_rotated_key_is_picked_up(jwks_server: JwksServer, rsa_signer: SigningKey) -> None:
    verifier = JwtVerifier(
        issuer=ISSUER, audience=AUDIENCE, jwks_url=jwks_server.url, jwks_refetch_cooldown_seconds=0
    )
    verifier.verify(rsa_signer.sign(claims()))
    rotated = rsa_key("rsa-2")
    jwks_server.keys.append(rotated.jwk)
    assert verifier.verify(rotated.sign(claims(sub="after-rotation"))).subject == "after-rotation"
    assert jwks_server.requests == 2


# A JWKS file


def test_jwks_file(tmp_path: Path, rsa_signer: SigningKey, ec_signer: SigningKey) -> None:
    verifier = JwtVerifier(
        issuer=ISSUER, audience=AUDIENCE, jwks_file=jwks_file(tmp_path, rsa_signer, ec_signer)
    )
    assert verifier.verify(rsa_signer.sign(claims())).subject == "user-1"
    assert verifier.verify(ec_signer.sign(claims())).subject == "user-1"
    assert rejection(verifier, rsa_key("rsa-9").sign(claims())).code == "unknown_key"


def test_token_without_kid_may_use_the_only_key(tmp_path: Path, rsa_signer: SigningKey) -> None:
    verifier = JwtVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_file=str(jwks_file(tmp_path, rsa_signer)))
    assert verifier.verify(rsa_signer.sign(claims(), headers={})).subject == "user-1"


def test_token_without_kid_is_refused_when_there_are_several_keys(
    tmp_path: Path, rsa_signer: SigningKey, ec_signer: SigningKey
) -> None:
    verifier = JwtVerifier(
        issuer=ISSUER, audience=AUDIENCE, jwks_file=jwks_file(tmp_path, rsa_signer, ec_signer)
    )
    assert rejection(verifier, rsa_signer.sign(claims(), headers={})).code == "unknown_key"


# Configuration


@pytest.mark.parametrize(
    "settings",
    [
        {"algorithms": ("RS256", "HS256")},
        {"algorithms": ("none",)},
        {"algorithms": ()},
        {"jwks_url": "http://idp.example.com/jwks.json"},
        {"jwks_url": "file:///etc/jwks.json"},
        {"jwks_url": None},
        {"jwks_url": None, "jwks_file": "/nonexistent/jwks.json"},
        {"jwks_file": "/nonexistent/jwks.json"},
        {"issuer": ""},
        {"leeway_seconds": -1},
    ],
)
def test_bad_configuration(settings: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        JwtVerifier(
            **{"issuer": ISSUER, "audience": AUDIENCE, "jwks_url": "https://idp.example.com/jwks", **settings}
        )


def test_jwks_file_without_usable_keys(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [{"kty": "nope"}]}))
    with pytest.raises(ConfigError, match="no usable key"):
        JwtVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_file=path)
