"""Mapping the identity API Gateway authenticated to a role and service scope (no AWS, no store)."""

from __future__ import annotations

import pytest

from logsvc.auth.policy import Role, claim_values
from logsvc.aws.events import Identity
from logsvc.aws.identity import PrincipalMap, iam_key
from logsvc.errors import AuthenticationFailed, ConfigError, Forbidden
from logsvc.settings import AwsGrant, load_settings


@pytest.mark.parametrize(
    ("arn", "key"),
    [
        ("arn:aws:iam::123456789012:role/app", ("aws", "123456789012", "role", "app")),
        ("arn:aws:iam::123456789012:role/teams/pay/app", ("aws", "123456789012", "role", "app")),
        ("arn:aws:sts::123456789012:assumed-role/app/session-1", ("aws", "123456789012", "role", "app")),
        ("arn:aws:sts::123456789012:assumed-role/app/a@b.example", ("aws", "123456789012", "role", "app")),
        ("arn:aws-cn:sts::123456789012:assumed-role/app/s", ("aws-cn", "123456789012", "role", "app")),
        ("arn:aws:iam::123456789012:user/ops/alice", ("aws", "123456789012", "user", "alice")),
        # IAM Identity Center: the role sits under a long path; its sessions are named after the user.
        (
            "arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_Ops_0a1b",
            ("aws", "123456789012", "role", "AWSReservedSSO_Ops_0a1b"),
        ),
        (
            "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Ops_0a1b/alice@example.com",
            ("aws", "123456789012", "role", "AWSReservedSSO_Ops_0a1b"),
        ),
        ("arn:aws:iam::123456789012:root", None),
        ("arn:aws:sts::123456789012:federated-user/bob", None),
        ("arn:aws:sts::123456789012:assumed-role/no-session", None),
        ("AROAEXAMPLE:session", None),
        ("", None),
    ],
)
def test_iam_key(arn: str, key: tuple[str, ...] | None) -> None:
    assert iam_key(arn) == key


def _map() -> PrincipalMap:
    return PrincipalMap(
        {
            "arn:aws:iam::123456789012:role/service-role/ingester": AwsGrant(Role.INGEST, ("pay*",)),
            "arn:aws:iam::123456789012:user/alice": AwsGrant(Role.ADMIN),
        }
    )


def _iam(arn: str) -> Identity:
    return Identity(
        kind="iam", arn=arn, caller="AROAEXAMPLE:s", access_key="ASIAEXAMPLE", account="123456789012"
    )


def test_an_assumed_role_session_matches_its_role_whatever_the_path() -> None:
    principal = _map().principal(_iam("arn:aws:sts::123456789012:assumed-role/ingester/build-7"))
    assert principal.roles == frozenset({Role.INGEST})
    assert principal.services == ("pay*",)
    assert principal.id == "arn:aws:sts::123456789012:assumed-role/ingester/build-7"
    assert principal.method == "aws_iam"
    assert _map().principal(_iam("arn:aws:iam::123456789012:user/alice")).roles == frozenset({Role.ADMIN})


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:sts::210987654321:assumed-role/ingester/s",  # another account
        "arn:aws:sts::123456789012:assumed-role/Ingester/s",  # another name (ARNs compare exactly)
        "arn:aws:sts::123456789012:assumed-role/alice/s",  # a role named as the user
        "arn:aws:iam::123456789012:user/ingester",  # a user named as the role
        "arn:aws-us-gov:sts::123456789012:assumed-role/ingester/s",  # another partition
        "arn:aws:iam::123456789012:root",
        "",
    ],
)
def test_anything_else_is_forbidden(arn: str) -> None:
    with pytest.raises(Forbidden, match="aws_principals"):
        _map().principal(_iam(arn))


def test_no_identity_is_unauthenticated_and_a_lambda_authorizer_is_forbidden() -> None:
    with pytest.raises(AuthenticationFailed) as missing:
        _map().principal(None)
    assert missing.value.code == "missing_authentication_token"
    with pytest.raises(Forbidden, match="Lambda authorizer"):
        _map().principal(Identity(kind="lambda"))


def test_two_entries_for_one_role_must_agree() -> None:
    with pytest.raises(ConfigError, match="same role"):
        PrincipalMap(
            {
                "arn:aws:iam::123456789012:role/a/app": AwsGrant(Role.INGEST),
                "arn:aws:iam::123456789012:role/b/app": AwsGrant(Role.ADMIN),
            }
        )
    with pytest.raises(ConfigError, match="not an IAM role or user ARN"):
        PrincipalMap({"arn:aws:sts::123456789012:assumed-role/app/s": AwsGrant(Role.READ)})


@pytest.mark.parametrize(
    ("value", "values"),
    [
        (["admin", "read"], ("admin", "read")),
        ("[admin read]", ("admin", "read")),
        ("admin,read", ("admin", "read")),
        ("admin, read", ("admin", "read")),
        ("read", ("read",)),
        ("[read]", ("read",)),
        ("[]", ()),
        ("", ()),
        (None, None),
    ],
)
def test_claim_values_in_every_rendering(value: object, values: tuple[str, ...] | None) -> None:
    assert claim_values(value, "groups") == values


def test_jwt_claims_give_roles_and_services() -> None:
    mapping = PrincipalMap({}, role_claim="groups", service_claim="custom:services")
    claims = {"sub": "u-1", "groups": "[logsvc-read ingest other]", "custom:services": "checkout*,billing"}
    principal = mapping.principal(Identity(kind="jwt", claims=claims))
    assert principal.id == "oidc:u-1"
    assert principal.roles == frozenset({Role.READ, Role.INGEST})
    assert principal.services == ("checkout*", "billing")
    assert mapping.principal(Identity(kind="jwt", claims={"sub": "u-2"})).roles == frozenset()


@pytest.mark.parametrize("claim", ["", "[]", ",", []])
def test_a_service_claim_naming_no_service_fails_closed(claim: object) -> None:
    mapping = PrincipalMap({}, role_claim="groups", service_claim="custom:services")
    claims = {"sub": "u-1", "groups": "read", "custom:services": claim}
    with pytest.raises(Forbidden, match="names no service"):
        mapping.principal(Identity(kind="jwt", claims=claims))


def test_the_setting_reaches_the_map_from_the_environment() -> None:
    settings = load_settings(
        environ={
            "LOGSVC_AWS_PRINCIPALS": (
                '{"arn:aws:iam::123456789012:role/r": {"role": "read", "services": ["a*"]}}'
            ),
            "LOGSVC_JWT_ROLE_CLAIM": "groups",
        }
    )
    mapping = PrincipalMap.from_settings(settings)
    principal = mapping.principal(_iam("arn:aws:sts::123456789012:assumed-role/r/s"))
    assert (principal.roles, principal.services) == (frozenset({Role.READ}), ("a*",))
    jwt = mapping.principal(Identity(kind="jwt", claims={"sub": "x", "groups": ["admin"]}))
    assert jwt.roles == frozenset({Role.ADMIN})


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('{"arn:aws:iam::1234:role/r": {"role": "read"}}', "not an IAM role or user ARN"),
        ('{"arn:aws:sts::123456789012:assumed-role/r/s": {"role": "read"}}', "not an IAM role or user ARN"),
        ('{"arn:aws:iam::123456789012:role/r": {"role": "owner"}}', "role"),
        ('{"arn:aws:iam::123456789012:role/r": {"role": "read", "services": ["a b"]}}', "services"),
        ('{"arn:aws:iam::123456789012:role/r": {"role": "read", "scope": []}}', "scope"),
        ("[]", "aws_principals"),
        ("{nope", "LOGSVC_AWS_PRINCIPALS must be a JSON object"),
    ],
)
def test_bad_settings_are_refused_at_start(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(environ={"LOGSVC_AWS_PRINCIPALS": value})
