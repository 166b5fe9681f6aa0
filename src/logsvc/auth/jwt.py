"""OIDC/JWT bearer-token verification against the identity provider's published keys (JWKS).

Each rule exists because of a known way to fool a JWT verifier:

* The accepted algorithms come from configuration, never from the token, and only asymmetric ones may be
  configured. ``alg: none`` is an unsigned token, and with an HMAC algorithm (HS256) anyone could sign
  using the provider's *public* key as the shared secret: the classic key-confusion forgery.
* The token's ``alg`` is checked before any key is looked up, so a token refused anyway never costs a
  JWKS fetch.
* The key is chosen by ``kid``. An unknown ``kid`` triggers one refetch, since the provider may have
  rotated its keys, but no more often than the cooldown allows: otherwise a stream of made-up ``kid``
  values would make the service hammer the provider. A token without ``kid`` may use the only key of a
  single-key JWKS; with several keys the choice would be a guess.
* The JWKS is fetched over HTTPS (plain HTTP only on loopback, for tests and local emulators): whoever
  can alter the key set in transit can sign tokens.
* ``exp``, ``iss`` and ``sub`` are required: a token that never expires is a credential forever, the
  issuer ties the token to our provider, and the subject is who is calling.
* The audience must be this service, so a token the same provider issued to another application does
  not work here. Cognito access tokens name the application in ``client_id`` instead of ``aud``; that is
  accepted only with ``token_use`` "access", so no other kind of Cognito token passes that way.
* Clocks drift, so ``exp``, ``nbf`` and ``iat`` get a small leeway. Keys below PyJWT's minimum size
  (RSA under 2048 bits) are refused, because a factorable key lets anyone sign.
* Rejection details go back to unauthenticated callers and into logs, so they never contain the token
  or anything read from it.
"""

from __future__ import annotations

import base64
import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
from jwt.types import Options

from logsvc.auth.policy import claim_values
from logsvc.errors import AuthenticationFailed, ConfigError, Forbidden

__all__ = ["JwtVerifier", "TokenClaims"]

# Every asymmetric JWS algorithm PyJWT implements; HS* and "none" are left out on purpose.
_ASYMMETRIC_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}).union(
    {"ES256", "ES256K", "ES384", "ES512", "ES521", "EdDSA"}
)
# A JWKS fetch happens while a request waits, so it must give up long before PyJWT's default of 30 s.
_JWKS_FETCH_TIMEOUT_SECONDS = 5.0
# PyJWKClientConnectionError covers what urllib raises, but not all that can go wrong: a connection reset
# while the body is read surfaces as OSError, a body that is not JSON as ValueError, and a set without
# usable keys as PyJWKSetError.
_JWKS_FETCH_FAILURES = (jwt.PyJWKClientConnectionError, jwt.PyJWKSetError, OSError, ValueError)


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What the service needs from a verified token."""

    subject: str
    roles: tuple[str, ...] | None  # None: the token has no role claim
    services: tuple[str, ...] | None  # None: the token has no service claim
    expires_at: int | None


class JwtVerifier:
    """Verifies bearer tokens issued by one OIDC provider for one audience; safe to share between threads."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks_url: str | None = None,
        jwks_file: str | Path | None = None,
        role_claim: str = "cognito:groups",
        service_claim: str = "logsvc:services",
        algorithms: Sequence[str] = ("RS256", "ES256"),
        leeway_seconds: int = 30,
        jwks_cache_seconds: int = 300,
        jwks_refetch_cooldown_seconds: float = 30.0,
    ) -> None:
        if not issuer or not audience:
            raise ConfigError("JWT verification needs both an issuer and an audience")
        refused = sorted(set(algorithms) - _ASYMMETRIC_ALGORITHMS)
        if refused or not algorithms:
            raise ConfigError(
                f"JWT algorithms must be one or more of {', '.join(sorted(_ASYMMETRIC_ALGORITHMS))}; "
                f"got {list(algorithms)}"
            )
        if leeway_seconds < 0 or jwks_cache_seconds <= 0 or jwks_refetch_cooldown_seconds < 0:
            raise ConfigError("JWT leeway and JWKS cooldown must be >= 0 and the JWKS cache lifetime > 0")
        self._issuer = issuer
        self._audience = audience
        self._role_claim = role_claim
        self.service_claim = service_claim
        # A tuple, not a set: membership then compares with ==, so an unhashable "alg" in a hostile
        # header is simply not found instead of raising TypeError.
        self._algorithms = tuple(algorithms)
        self._leeway = leeway_seconds
        self._options: Options = {"require": ["exp", "iss", "sub"], "enforce_minimum_key_length": True}
        self._keys: jwt.PyJWKClient | jwt.PyJWKSet
        if jwks_url is not None and jwks_file is None:
            parts = urlsplit(jwks_url)
            if parts.scheme != "https" and not (parts.scheme == "http" and _is_loopback(parts.hostname)):
                raise ConfigError(f"the JWKS URL must use https (http only on loopback): {jwks_url}")
            self._keys = jwt.PyJWKClient(
                jwks_url,
                lifespan=jwks_cache_seconds,
                timeout=_JWKS_FETCH_TIMEOUT_SECONDS,
                cooldown_duration=jwks_refetch_cooldown_seconds,
            )
        elif jwks_file is not None and jwks_url is None:
            self._keys = _load_jwks_file(Path(jwks_file))
        else:
            raise ConfigError("JWT verification needs exactly one of a JWKS URL or a JWKS file")

    def verify(self, token: str) -> TokenClaims:
        """The claims of a valid ``token``; otherwise `AuthenticationFailed`, its code saying why."""
        header, payload = _unverified_header_and_payload(token)
        if header.get("alg") not in self._algorithms:
            raise AuthenticationFailed(
                f"the bearer token is not signed with an accepted algorithm ({', '.join(self._algorithms)})",
                code="invalid_token",
            )
        key = self._signing_key(header.get("kid"))
        # PyJWT checks "aud" whenever the token has one; a token without it can only be a Cognito access
        # token, checked below once the signature is known to be good.
        has_audience = "aud" in payload
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=self._algorithms,
                issuer=self._issuer,
                audience=self._audience if has_audience else None,
                leeway=self._leeway,
                options=self._options,
            )
        except jwt.PyJWTError as exc:
            raise _rejection(exc) from exc
        if not has_audience and not (
            claims.get("token_use") == "access" and claims.get("client_id") == self._audience
        ):
            raise _wrong_audience()
        if not claims["sub"]:
            raise AuthenticationFailed("the bearer token's subject ('sub') is empty", code="invalid_token")
        services = claim_values(claims.get(self.service_claim), self.service_claim)
        if services is None and not has_audience:
            # A Cognito access token never carries the user's attributes: its missing service claim says
            # nothing of the user's scope, where an ID token's means every service. Read as every service,
            # it would free a scoped user from the scope.
            raise Forbidden(
                f"this Cognito access token has no '{self.service_claim}' claim, so its user's services are "
                "unknown; send the ID token"
            )
        return TokenClaims(
            subject=claims["sub"],
            roles=claim_values(claims.get(self._role_claim), self._role_claim),
            services=services,
            expires_at=int(claims["exp"]),
        )

    def _signing_key(self, kid: str | None) -> jwt.PyJWK:
        keys = [key for key in self._key_set() if key.public_key_use in ("sig", None)]
        if kid is None:
            if len(keys) == 1:
                return keys[0]
            raise AuthenticationFailed(
                "the bearer token does not name its signing key ('kid') and the identity provider does not "
                "publish exactly one",
                code="unknown_key",
            )
        for key in keys:
            if key.key_id == kid:
                return key
        if isinstance(self._keys, jwt.PyJWKSet):
            raise _unknown_key()
        try:
            # Refetches the JWKS once, cooldown permitting, in case the provider has rotated its keys.
            return self._keys.get_signing_key(kid)
        except _JWKS_FETCH_FAILURES as exc:
            raise _jwks_unavailable() from exc
        except jwt.PyJWKClientError as exc:
            raise _unknown_key() from exc

    def _key_set(self) -> jwt.PyJWKSet:
        if isinstance(self._keys, jwt.PyJWKSet):
            return self._keys
        try:
            return self._keys.get_jwk_set()
        # Here a PyJWKClientError can only mean a fetch gone wrong, such as a body that is not an object.
        except (*_JWKS_FETCH_FAILURES, jwt.PyJWKClientError) as exc:
            raise _jwks_unavailable() from exc


def _unverified_header_and_payload(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims read without any check, only to pick the key and the audience rule.

    PyJWT's own parsing costs about 40 µs a token (a third of a whole verification), and it parses the
    token again anyway when it verifies it. Reading it loosely here cannot let a bad token through: PyJWT
    re-checks the algorithm against the allowed ones and against the key, and fails on an "aud" it was
    not told to expect as on one it was told to expect and cannot find.
    """
    try:
        header_segment, payload_segment, _ = token.split(".")
        header, payload = (
            json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
            for segment in (header_segment, payload_segment)
        )
    except (ValueError, RecursionError):
        header = payload = None
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise AuthenticationFailed("the bearer token is not a well-formed JWT", code="invalid_token")
    # Checked here because an odd "kid" would otherwise be looked up, and cost a refetch, before PyJWT
    # refuses it.
    if not isinstance(header.get("kid", ""), str):
        raise AuthenticationFailed("the bearer token's key id ('kid') is not a string", code="invalid_token")
    return header, payload


def _is_loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _load_jwks_file(path: Path) -> jwt.PyJWKSet:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the JWKS file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"the JWKS file {path} must hold a JSON object with a 'keys' list")
    try:
        return jwt.PyJWKSet.from_dict(data)
    except jwt.PyJWTError as exc:
        raise ConfigError(f"the JWKS file {path} holds no usable key: {exc}") from None


def _rejection(exc: jwt.PyJWTError) -> AuthenticationFailed:
    """The 401 for a PyJWT error; PyJWT's own messages are not passed on as some quote the token."""
    if isinstance(exc, jwt.ExpiredSignatureError):
        return AuthenticationFailed("the bearer token has expired; obtain a new one", code="token_expired")
    if isinstance(exc, jwt.ImmatureSignatureError):
        return AuthenticationFailed(
            "the bearer token is not valid yet; check that the clocks of client and server agree",
            code="token_not_yet_valid",
        )
    if isinstance(exc, jwt.InvalidAudienceError):
        return _wrong_audience()
    if isinstance(exc, jwt.InvalidIssuerError):
        return AuthenticationFailed(
            "the bearer token was not issued by the identity provider this service trusts",
            code="invalid_issuer",
        )
    if isinstance(exc, jwt.MissingRequiredClaimError):
        # PyJWT reports an "aud" that is present but empty as missing.
        if exc.claim == "aud":
            return _wrong_audience()
        return AuthenticationFailed(
            f"the bearer token lacks the required '{exc.claim}' claim", code="invalid_token"
        )
    if isinstance(exc, jwt.InvalidSignatureError):
        return AuthenticationFailed("the bearer token's signature is not valid", code="invalid_token")
    if isinstance(exc, jwt.InvalidAlgorithmError):
        return AuthenticationFailed(
            "the bearer token's algorithm does not match the key it names", code="invalid_token"
        )
    if isinstance(exc, jwt.InvalidKeyError):
        return AuthenticationFailed(
            "the bearer token was signed with a key too weak to trust", code="invalid_token"
        )
    return AuthenticationFailed("the bearer token is malformed or has invalid claims", code="invalid_token")


def _wrong_audience() -> AuthenticationFailed:
    return AuthenticationFailed("the bearer token was not issued for this service", code="invalid_audience")


def _unknown_key() -> AuthenticationFailed:
    return AuthenticationFailed(
        "the bearer token is signed with a key the identity provider does not publish", code="unknown_key"
    )


def _jwks_unavailable() -> AuthenticationFailed:
    return AuthenticationFailed(
        "the identity provider's signing keys could not be fetched, so the bearer token cannot be checked; "
        "try again later",
        code="jwks_unavailable",
    )
