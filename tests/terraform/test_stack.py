"""The security properties of the Terraform stack, checked on the parsed files (no AWS, no terraform binary).

`terraform fmt -check` and `terraform validate` run in CI (.github/workflows/ci.yml), where Terraform is
installed; these tests hold the properties issue 5 asks for, so that a change that loses one fails here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from logsvc.endpoints import ENDPOINTS
from tests.terraform.stack import (
    STACK_DIR,
    TF_FILES,
    TFVARS_FILES,
    Stack,
    expr,
    interpolated,
    load,
    single,
)

KEY_ARN = expr("aws_kms_key.this.arn")
TABLE_ARN = expr("aws_dynamodb_table.logs.arn")
TOPIC_ARN = expr("aws_sns_topic.alarms.arn")
IAM_OR_COGNITO = expr('var.enable_cognito ? "COGNITO_USER_POOLS" : "AWS_IAM"')


def actions_of(statements: list[dict[str, Any]]) -> set[str]:
    return {action for statement in statements for action in statement["actions"]}


# ----------------------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------------------


def test_the_stack_has_the_expected_files() -> None:
    names = {path.name for path in TF_FILES}
    assert names == {
        "versions.tf",
        "variables.tf",
        "dynamodb.tf",
        "kms.tf",
        "lambda.tf",
        "api.tf",
        "iam_clients.tf",
        "cognito.tf",
        "alarms.tf",
        "outputs.tf",
    }
    assert {path.name for path in TFVARS_FILES} == {"dev.tfvars", "prod.tfvars"}


@pytest.mark.parametrize("path", TF_FILES + TFVARS_FILES, ids=lambda path: path.name)
def test_every_file_parses(path: Path) -> None:
    parsed = load(path)
    assert parsed, f"{path.name} parsed to nothing"


def test_providers_and_versions(stack: Stack) -> None:
    (terraform,) = stack.terraform
    assert terraform["required_version"] == ">= 1.5"
    aws = single(terraform["required_providers"])["aws"]
    assert aws["source"] == "hashicorp/aws"
    assert re.fullmatch(r"~> 5\.\d+", aws["version"]), aws["version"]
    tags = single(stack.providers["aws"]["default_tags"])["tags"]
    assert "var.tags" in tags
    assert "Environment = var.environment" in tags


def test_every_reference_resolves(stack: Stack) -> None:
    """A stand-in for part of `terraform validate`: no var., local., data. or resource reference dangles."""
    everything: list[Any] = [
        stack.resources,
        stack.data,
        stack.variables,
        stack.locals,
        stack.outputs,
        stack.providers,
    ]
    texts = [text for part in everything for text in interpolated(part)]
    assert texts
    missing: set[str] = set()
    for text in texts:
        for name in re.findall(r"\bvar\.(\w+)", text):
            if name not in stack.variables:
                missing.add(f"var.{name}")
        for name in re.findall(r"\blocal\.(\w+)", text):
            if name not in stack.locals:
                missing.add(f"local.{name}")
        for type_, name in re.findall(r"\bdata\.(aws_\w+)\.(\w+)", text):
            if name not in stack.data.get(type_, {}):
                missing.add(f"data.{type_}.{name}")
        for type_, name in re.findall(r"(?<![\w.])(aws_\w+)\.(\w+)", text):
            if name not in stack.resources.get(type_, {}):
                missing.add(f"{type_}.{name}")
    assert not missing, f"undeclared references: {sorted(missing)}"


def test_every_variable_is_described_and_typed(stack: Stack) -> None:
    for name, body in stack.variables.items():
        assert body.get("description"), f"variable {name} has no description"
        assert body.get("type"), f"variable {name} has no type"


@pytest.mark.parametrize("path", TFVARS_FILES, ids=lambda path: path.name)
def test_tfvars_set_only_declared_variables_and_no_secret(stack: Stack, path: Path) -> None:
    values = load(path)
    undeclared = set(values) - set(stack.variables)
    assert not undeclared, f"{path.name} sets undeclared variables {sorted(undeclared)}"
    assert "external_id" not in values, "the external ID is a secret: pass it with TF_VAR_external_id"
    for name, body in stack.variables.items():
        if "default" not in body:
            assert name in values or name == "external_id", f"{path.name} does not set required {name}"


# ----------------------------------------------------------------------------------------------------------
# DynamoDB and KMS
# ----------------------------------------------------------------------------------------------------------


def test_table_keys_indexes_and_billing(stack: Stack) -> None:
    table = stack.resource("aws_dynamodb_table", "logs")
    assert table["name"] == "${var.name_prefix}-logs"
    assert table["billing_mode"] == "PAY_PER_REQUEST"
    assert (table["hash_key"], table["range_key"]) == ("pk", "sk")
    assert {(a["name"], a["type"]) for a in table["attribute"]} == {
        ("pk", "S"),
        ("sk", "S"),
        ("gpk", "S"),
        ("id", "S"),
        ("apk", "S"),
        ("ask", "S"),
    }
    indexes = {index["name"]: index for index in table["global_secondary_index"]}
    assert set(indexes) == {"by_time", "by_id", "by_arrival"}
    assert (indexes["by_arrival"]["hash_key"], indexes["by_arrival"]["range_key"]) == ("apk", "ask")
    assert (indexes["by_time"]["hash_key"], indexes["by_time"]["range_key"]) == ("gpk", "sk")
    assert indexes["by_time"]["projection_type"] == "ALL"
    assert indexes["by_id"]["hash_key"] == "id"
    assert "range_key" not in indexes["by_id"]
    assert indexes["by_id"]["projection_type"] == "KEYS_ONLY"


def test_table_pitr_ttl_and_customer_managed_key(stack: Stack) -> None:
    table = stack.resource("aws_dynamodb_table", "logs")
    assert single(table["point_in_time_recovery"])["enabled"] is True
    ttl = single(table["ttl"])
    assert ttl == {"attribute_name": "expires_at", "enabled": True}
    sse = single(table["server_side_encryption"])
    assert sse["enabled"] is True
    assert sse["kms_key_arn"] == KEY_ARN


def test_the_shard_count_is_recorded_once(stack: Stack) -> None:
    item = stack.resource("aws_dynamodb_table_item", "config")
    assert item["table_name"] == expr("aws_dynamodb_table.logs.name")
    assert '"#config"' in item["item"]
    assert "tostring(var.shards)" in item["item"]
    assert single(item["lifecycle"])["ignore_changes"] == ["item"]


def test_deletion_protection_defaults_on_and_is_wired(stack: Stack) -> None:
    assert stack.variables["deletion_protection"]["default"] is True
    assert stack.variables["deletion_protection"]["type"] == "bool"
    table = stack.resource("aws_dynamodb_table", "logs")
    assert table["deletion_protection_enabled"] == expr("var.deletion_protection")


def test_key_rotates_and_has_an_alias(stack: Stack) -> None:
    key = stack.resource("aws_kms_key", "this")
    assert key["enable_key_rotation"] is True
    assert key["deletion_window_in_days"] >= 7
    assert key["policy"] == expr("data.aws_iam_policy_document.kms.json")
    alias = stack.resource("aws_kms_alias", "this")
    assert alias["name"].startswith("alias/")
    assert alias["target_key_id"] == expr("aws_kms_key.this.key_id")


def test_key_policy_lets_logs_and_alarms_use_the_key_and_no_one_else(stack: Stack) -> None:
    statements = {statement["sid"]: statement for statement in stack.statements("kms")}
    principals = {sid: single(statement["principals"]) for sid, statement in statements.items()}

    admin = statements["AccountAdministersKey"]
    assert principals["AccountAdministersKey"] == {
        "type": "AWS",
        "identifiers": ["arn:${local.partition}:iam::${local.account_id}:root"],
    }
    assert admin["actions"] == ["kms:*"]

    logs = statements["CloudWatchLogsEncryptsOurLogGroups"]
    assert principals["CloudWatchLogsEncryptsOurLogGroups"] == {
        "type": "Service",
        "identifiers": ["logs.${local.region}.amazonaws.com"],
    }
    condition = single(logs["condition"])
    assert condition["variable"] == "kms:EncryptionContext:aws:logs:arn"
    assert condition["values"] == expr("local.encrypted_log_group_arns")

    alarms = statements["CloudWatchAlarmsPublishToEncryptedTopic"]
    assert principals["CloudWatchAlarmsPublishToEncryptedTopic"] == {
        "type": "Service",
        "identifiers": ["cloudwatch.amazonaws.com"],
    }
    assert set(alarms["actions"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}

    # No statement opens the key to every AWS principal.
    for sid, principal in principals.items():
        assert "*" not in principal["identifiers"], sid


def test_every_log_group_and_the_topic_use_the_key(stack: Stack) -> None:
    groups = stack.resources["aws_cloudwatch_log_group"]
    assert set(groups) == {"lambda", "api_access", "api_execution"}
    for name, group in groups.items():
        assert group["kms_key_id"] == KEY_ARN, name
        assert group["retention_in_days"] == expr("var.log_retention_days"), name
    assert stack.resource("aws_sns_topic", "alarms")["kms_master_key_id"] == KEY_ARN
    # The key policy names exactly these groups (its condition), by the same names the resources use.
    assert groups["lambda"]["for_each"] == expr("local.lambda_log_group_names")
    assert groups["api_access"]["name"] == expr("local.api_access_log_group_name")
    assert groups["api_execution"]["name"] == expr("local.api_execution_log_group_name")
    arns = stack.locals["encrypted_log_group_arns"]
    for name in ("lambda_log_group_names", "api_access_log_group_name", "api_execution_log_group_name"):
        assert f"local.{name}" in arns


# ----------------------------------------------------------------------------------------------------------
# Lambda
# ----------------------------------------------------------------------------------------------------------

FUNCTIONS = {"ingest": "logsvc.aws.handlers.ingest", "read": "logsvc.aws.handlers.read"}


@pytest.mark.parametrize("name", FUNCTIONS)
def test_functions_runtime_package_tracing_and_limits(stack: Stack, name: str) -> None:
    function = stack.resource("aws_lambda_function", name)
    assert function["function_name"] == f"${{var.name_prefix}}-{name}"
    assert function["runtime"] == "python3.12"
    assert function["handler"] == FUNCTIONS[name]
    assert function["architectures"] == [expr("var.lambda_architecture")]
    assert function["filename"] == expr("var.lambda_package")
    assert function["source_code_hash"] == expr("filebase64sha256(var.lambda_package)")
    assert single(function["tracing_config"]) == {"mode": "Active"}
    assert function["reserved_concurrent_executions"] == expr(f"var.{name}_reserved_concurrency")
    assert function["memory_size"] == expr(f"var.{name}_memory_size")
    assert function["timeout"] == expr(f"var.{name}_timeout")
    assert function["role"] == expr(f"aws_iam_role.{name}.arn")
    assert function["kms_key_arn"] == KEY_ARN
    assert single(function["environment"])["variables"] == expr("local.lambda_environment")
    assert single(function["logging_config"])["log_group"] == expr(
        f'aws_cloudwatch_log_group.lambda["{name}"].name'
    )


def test_architecture_and_package_variables(stack: Stack) -> None:
    architecture = stack.variables["lambda_architecture"]
    assert architecture["default"] == "arm64"
    condition = single(architecture["validation"])["condition"]
    assert '"arm64"' in condition
    assert '"x86_64"' in condition
    assert stack.variables["lambda_package"]["default"] == "../../../dist/lambda/logsvc-lambda-arm64.zip"


def test_function_environment(stack: Stack) -> None:
    environment = stack.locals["lambda_environment"]
    assert set(environment) == {
        "LOGSVC_STORE",
        "LOGSVC_AWS_PRINCIPALS",
        "LOGSVC_RETENTION_DAYS",
        "LOGSVC_JWT_SERVICE_CLAIM",
        "LOGSVC_JWT_DEFAULT_ROLES",
    }
    # Empty unless the operator opts in: a Cognito user in no group may do nothing.
    assert environment["LOGSVC_JWT_DEFAULT_ROLES"] == expr("jsonencode(var.cognito_default_roles)")
    assert stack.variables["cognito_default_roles"]["default"] == []
    assert environment["LOGSVC_STORE"] == expr("local.store_url")
    assert stack.locals["store_url"] == (
        "dynamodb://${aws_dynamodb_table.logs.name}?region=${local.region}&shards=${var.shards}"
    )
    assert stack.variables["shards"]["default"] == 4
    assert environment["LOGSVC_RETENTION_DAYS"] == expr("tostring(var.retention_days)")
    assert stack.variables["retention_days"]["default"] == 30
    assert environment["LOGSVC_AWS_PRINCIPALS"] == expr("jsonencode(local.aws_principals)")
    # Every client role ARN -> {role = its logsvc role, services = its scope}.
    principals = stack.locals["aws_principals"]
    assert "for name, client in local.client_roles" in principals
    assert "aws_iam_role.client[name].arn =>" in principals
    assert "role = name" in principals
    assert "services = client.services" in principals
    for role in ("ingest", "read", "admin"):
        assert stack.locals["client_roles"][role]["services"] == expr(f"var.{role}_services")
        assert stack.variables[f"{role}_services"]["default"] == ["*"]


def _dynamodb(statements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for s in statements if any(a.startswith("dynamodb:") for a in s["actions"])]


def test_ingest_role_writes_only(stack: Stack) -> None:
    statements = stack.statements("ingest")
    write = next(s for s in statements if s["sid"] == "WriteLogItems")
    assert sorted(write["actions"]) == ["dynamodb:BatchWriteItem", "dynamodb:PutItem"]
    assert write["resources"] == [TABLE_ARN]
    assert "condition" not in write
    # The one read: the shard-count item the store opens the table with, and nothing else in the table.
    other = [s for s in _dynamodb(statements) if s is not write]
    assert len(other) == 1
    (config,) = other
    assert config["actions"] == ["dynamodb:GetItem"]
    assert config["resources"] == [TABLE_ARN]
    assert single(config["condition"]) == {
        "test": "ForAllValues:StringEquals",
        "variable": "dynamodb:LeadingKeys",
        "values": ["#config"],
    }
    dynamodb_actions = actions_of(_dynamodb(statements))
    assert dynamodb_actions == {"dynamodb:PutItem", "dynamodb:BatchWriteItem", "dynamodb:GetItem"}


def test_read_role_reads_only(stack: Stack) -> None:
    statements = _dynamodb(stack.statements("read"))
    assert len(statements) == 1
    (read,) = statements
    assert sorted(read["actions"]) == ["dynamodb:GetItem", "dynamodb:Query"]
    assert read["resources"] == [TABLE_ARN, "${aws_dynamodb_table.logs.arn}/index/*"]


@pytest.mark.parametrize("name", FUNCTIONS)
def test_execution_roles_have_nothing_else(stack: Stack, name: str) -> None:
    statements = stack.statements(name)
    by_sid = {s["sid"]: s for s in statements}
    # KMS: Decrypt of the table key, through DynamoDB, for this table only.
    kms = by_sid["DecryptTableKeyViaDynamoDB"]
    assert kms["actions"] == ["kms:Decrypt"]
    assert kms["resources"] == [KEY_ARN]
    conditions = {c["variable"]: (c["test"], c["values"]) for c in kms["condition"]}
    assert conditions == {
        "kms:ViaService": ("StringEquals", ["dynamodb.${local.region}.amazonaws.com"]),
        "kms:EncryptionContext:aws:dynamodb:tableName": ("StringEquals", ["${aws_dynamodb_table.logs.name}"]),
    }
    # Logs: only its own log group.
    logs = by_sid["WriteOwnLogs"]
    assert sorted(logs["actions"]) == ["logs:CreateLogStream", "logs:PutLogEvents"]
    assert logs["resources"] == [f'${{aws_cloudwatch_log_group.lambda["{name}"].arn}}:*']
    # X-Ray is the only statement on "*" (its actions take no resource).
    xray = by_sid["SendTraces"]
    assert sorted(xray["actions"]) == ["xray:PutTelemetryRecords", "xray:PutTraceSegments"]
    for statement in statements:
        if "*" in statement["resources"]:
            assert statement is xray, statement["sid"]
    services = {action.split(":")[0] for action in actions_of(statements)}
    assert services == {"dynamodb", "kms", "logs", "xray"}
    # The role carries only this policy.
    assert stack.resource("aws_iam_role_policy", name)["policy"] == expr(
        f"data.aws_iam_policy_document.{name}.json"
    )
    assert stack.resource("aws_iam_role", name)["assume_role_policy"] == expr(
        "data.aws_iam_policy_document.lambda_assume.json"
    )
    attachments = stack.resources.get("aws_iam_role_policy_attachment", {})
    assert all(f"aws_iam_role.{name}." not in a["role"] for a in attachments.values())


def test_no_identity_policy_has_wildcard_actions(stack: Stack) -> None:
    for name, policy in stack.data["aws_iam_policy_document"].items():
        if name == "kms":  # the key policy: its account-root statement is how IAM policies apply to the key
            continue
        for statement in policy["statement"]:
            for action in statement["actions"]:
                assert "*" not in action, f"{name}/{statement.get('sid')}: {action}"


def test_api_gateway_may_invoke_each_function_only_on_its_routes(stack: Stack) -> None:
    execution = "${aws_api_gateway_rest_api.this.execution_arn}/${var.stage_name}/"
    ingest = stack.resource("aws_lambda_permission", "api_ingest")
    assert ingest["function_name"] == expr("aws_lambda_function.ingest.function_name")
    assert ingest["principal"] == "apigateway.amazonaws.com"
    assert ingest["source_arn"] == execution + "POST/logs"
    otlp = stack.resource("aws_lambda_permission", "api_ingest_otlp")
    assert otlp["function_name"] == expr("aws_lambda_function.ingest.function_name")
    assert otlp["source_arn"] == execution + "POST/v1/logs"
    loki = stack.resource("aws_lambda_permission", "api_ingest_loki")
    assert loki["function_name"] == expr("aws_lambda_function.ingest.function_name")
    assert loki["source_arn"] == execution + "POST/loki/api/v1/push"
    compat = stack.resource("aws_lambda_permission", "api_ingest_compat_cognito")
    assert compat["function_name"] == expr("aws_lambda_function.ingest.function_name")
    assert compat["source_arn"] == execution + "POST/compat/cognito/logs"
    read = stack.resource("aws_lambda_permission", "api_read")
    assert read["function_name"] == expr("aws_lambda_function.read.function_name")
    assert read["principal"] == "apigateway.amazonaws.com"
    assert read["source_arn"] == execution + "${each.value}"
    # GET/logs/* is /logs/{log_id}, /logs/{log_id}/context, /logs/stats and /logs/tail: "*" spans "/" here.
    assert sorted(read["for_each"].values()) == [
        "GET/compat/cognito/logs",
        "GET/logs",
        "GET/logs/*",
        "GET/logs/recent",
        "GET/services",
    ]


# ----------------------------------------------------------------------------------------------------------
# API Gateway
# ----------------------------------------------------------------------------------------------------------

ROUTES = {
    "post_logs": ("POST", "logs", "ingest"),
    "get_logs": ("GET", "logs", "read"),
    "get_logs_recent": ("GET", "logs_recent", "read"),
    "get_logs_tail": ("GET", "logs_tail", "read"),
    "get_logs_stats": ("GET", "logs_stats", "read"),
    "get_log_by_id": ("GET", "log_by_id", "read"),
    "get_log_context": ("GET", "log_context", "read"),
    "get_services": ("GET", "services", "read"),
    "post_v1_logs": ("POST", "v1_logs", "ingest"),
    "post_loki_push": ("POST", "loki_push", "ingest"),
    "post_compat_cognito_logs": ("POST", "compat_cognito_logs", "ingest"),
    "get_compat_cognito_logs": ("GET", "compat_cognito_logs", "read"),
}

PATHS = {
    "logs": "/logs",
    "logs_recent": "/logs/recent",
    "logs_tail": "/logs/tail",
    "logs_stats": "/logs/stats",
    "log_by_id": "/logs/{log_id}",
    "log_context": "/logs/{log_id}/context",
    "services": "/services",
    "v1_logs": "/v1/logs",
    "compat_cognito_logs": "/compat/cognito/logs",
    "loki_push": "/loki/api/v1/push",
}


def test_the_api_routes_are_those_the_route_table_gives_the_functions() -> None:
    served = {(e.method, e.path, e.function) for e in ENDPOINTS if e.function is not None}
    assert {(verb, PATHS[path], function) for verb, path, function in ROUTES.values()} == served


def test_api_is_regional_and_its_paths(stack: Stack) -> None:
    api = stack.resource("aws_api_gateway_rest_api", "this")
    assert single(api["endpoint_configuration"])["types"] == ["REGIONAL"]
    resources = stack.resources["aws_api_gateway_resource"]
    assert {name: r["path_part"] for name, r in resources.items()} == {
        "logs": "logs",
        "logs_recent": "recent",
        "logs_tail": "tail",
        "logs_stats": "stats",
        "log_by_id": "{log_id}",
        "log_context": "context",
        "services": "services",
        "v1": "v1",
        "v1_logs": "logs",
        "loki": "loki",
        "loki_api": "api",
        "loki_api_v1": "v1",
        "loki_push": "push",
        "compat": "compat",
        "compat_cognito": "cognito",
        "compat_cognito_logs": "logs",
    }
    assert resources["logs"]["parent_id"] == expr("aws_api_gateway_rest_api.this.root_resource_id")
    assert resources["services"]["parent_id"] == expr("aws_api_gateway_rest_api.this.root_resource_id")
    assert resources["logs_recent"]["parent_id"] == expr("aws_api_gateway_resource.logs.id")
    assert resources["logs_tail"]["parent_id"] == expr("aws_api_gateway_resource.logs.id")
    assert resources["logs_stats"]["parent_id"] == expr("aws_api_gateway_resource.logs.id")
    assert resources["log_by_id"]["parent_id"] == expr("aws_api_gateway_resource.logs.id")
    assert resources["log_context"]["parent_id"] == expr("aws_api_gateway_resource.log_by_id.id")
    assert resources["v1_logs"]["parent_id"] == expr("aws_api_gateway_resource.v1.id")
    assert resources["loki"]["parent_id"] == expr("aws_api_gateway_rest_api.this.root_resource_id")
    assert resources["loki_api"]["parent_id"] == expr("aws_api_gateway_resource.loki.id")
    assert resources["loki_api_v1"]["parent_id"] == expr("aws_api_gateway_resource.loki_api.id")
    assert resources["loki_push"]["parent_id"] == expr("aws_api_gateway_resource.loki_api_v1.id")
    assert resources["compat_cognito_logs"]["parent_id"] == expr("aws_api_gateway_resource.compat_cognito.id")
    assert resources["compat_cognito"]["parent_id"] == expr("aws_api_gateway_resource.compat.id")
    # OTLP's and Loki's protobuf bodies must reach the ingest function as sent (base64), not as text.
    assert api["binary_media_types"] == ["application/x-protobuf"]


def test_exactly_the_methods_of_the_route_table(stack: Stack) -> None:
    methods = stack.resources["aws_api_gateway_method"]
    assert {name: (m["http_method"], m["resource_id"]) for name, m in methods.items()} == {
        name: (verb, expr(f"aws_api_gateway_resource.{path}.id")) for name, (verb, path, _) in ROUTES.items()
    }


def test_every_method_requires_iam_unless_cognito_is_on(stack: Stack) -> None:
    assert stack.variables["enable_cognito"]["default"] is False
    for name, method in stack.resources["aws_api_gateway_method"].items():
        # With enable_cognito = false (the default) this is AWS_IAM; it is never NONE or CUSTOM.
        assert method["authorization"] == IAM_OR_COGNITO, name
        assert method["authorizer_id"] == expr(
            "var.enable_cognito ? aws_api_gateway_authorizer.cognito[0].id : null"
        ), name
    assert "NONE" not in "".join(str(m) for m in stack.resources["aws_api_gateway_method"].values())


def test_every_method_is_validated(stack: Stack) -> None:
    validator = stack.resource("aws_api_gateway_request_validator", "this")
    assert validator["validate_request_body"] is True
    assert validator["validate_request_parameters"] is True
    for name, method in stack.resources["aws_api_gateway_method"].items():
        assert method["request_validator_id"] == expr("aws_api_gateway_request_validator.this.id"), name


def test_ingest_body_model_and_read_parameters(stack: Stack) -> None:
    methods = stack.resources["aws_api_gateway_method"]
    assert methods["post_logs"]["request_models"] == {
        "application/json": expr("aws_api_gateway_model.ingest_body.name")
    }
    model = stack.resource("aws_api_gateway_model", "ingest_body")
    assert model["content_type"] == "application/json"
    schema = model["schema"]
    assert 'type = ["object", "array"]' in schema  # one entry, an array, or {"logs": [...]}
    assert "logs = {" in schema
    assert "required" not in schema  # field rules are the function's, with its detailed errors

    for name in ("get_logs", "get_logs_recent", "get_logs_tail"):
        assert methods[name]["request_parameters"] == expr("local.list_query_parameters"), name
    declared = stack.locals["list_query_parameters"]
    names = {key.removeprefix("method.request.querystring.") for key in declared}
    assert names == {
        "service_name",
        "level",
        "severity",
        "min_level",
        "log_type",
        "since",
        "until",
        "hours",
        "q",
        "limit",
        "cursor",
    }
    assert not any(declared.values()), "every query parameter is optional"
    assert methods["get_log_by_id"]["request_parameters"] == {"method.request.path.log_id": True}
    compat = methods["get_compat_cognito_logs"]["request_parameters"]
    assert {key.removeprefix("method.request.querystring."): v for key, v in compat.items()} == {
        "severity": False,
        "limit": False,
        "startKey": False,
    }
    # The other reads take what the route table documents for them.
    documented = {(e.method, e.path): e for e in ENDPOINTS}
    stats = stack.locals["stats_query_parameters"]
    assert methods["get_logs_stats"]["request_parameters"] == expr("local.stats_query_parameters")
    assert {key.removeprefix("method.request.querystring.") for key in stats} == set(
        documented[("GET", "/logs/stats")].query.__struct_fields__  # type: ignore[union-attr]
    )
    assert not any(stats.values())
    context = methods["get_log_context"]["request_parameters"]
    assert context.pop("method.request.path.log_id") is True
    assert {key.removeprefix("method.request.querystring.") for key in context} == set(
        documented[("GET", "/logs/{log_id}/context")].query.__struct_fields__  # type: ignore[union-attr]
    )
    assert not any(context.values())
    services = stack.locals["services_query_parameters"]
    assert methods["get_services"]["request_parameters"] == expr("local.services_query_parameters")
    assert {key.removeprefix("method.request.querystring.") for key in services} == set(
        documented[("GET", "/services")].query.__struct_fields__  # type: ignore[union-attr]
    )
    assert not any(services.values())


def test_every_method_has_its_lambda_proxy_integration(stack: Stack) -> None:
    integrations = stack.resources["aws_api_gateway_integration"]
    assert set(integrations) == set(ROUTES)
    for name, (_, path, function) in ROUTES.items():
        integration = integrations[name]
        assert integration["http_method"] == expr(f"aws_api_gateway_method.{name}.http_method")
        assert integration["resource_id"] == expr(f"aws_api_gateway_resource.{path}.id")
        assert integration["type"] == "AWS_PROXY"
        assert integration["integration_http_method"] == "POST"
        assert integration["uri"] == expr(f"aws_lambda_function.{function}.invoke_arn")


def test_deployment_follows_the_configuration(stack: Stack) -> None:
    deployment = stack.resource("aws_api_gateway_deployment", "this")
    trigger = deployment["triggers"]["redeployment"]
    assert trigger.startswith("${sha1(jsonencode(")
    for name in ROUTES:
        assert f"aws_api_gateway_method.{name}" in trigger
        assert f"aws_api_gateway_integration.{name}" in trigger
    assert "aws_api_gateway_model.ingest_body" in trigger
    assert "aws_api_gateway_request_validator.this" in trigger
    assert single(deployment["lifecycle"])["create_before_destroy"] is True


def test_stage_tracing_and_json_access_logs(stack: Stack) -> None:
    stage = stack.resource("aws_api_gateway_stage", "this")
    assert stage["xray_tracing_enabled"] is True
    assert stage["deployment_id"] == expr("aws_api_gateway_deployment.this.id")
    logs = single(stage["access_log_settings"])
    assert logs["destination_arn"] == expr("aws_cloudwatch_log_group.api_access.arn")
    log_format = logs["format"]
    assert log_format.startswith("${jsonencode({")
    fields = dict(re.findall(r'(\w+) = "(\$context\.[\w.]+)"', log_format))
    assert fields == fields | {
        "requestId": "$context.requestId",
        "ip": "$context.identity.sourceIp",
        "caller": "$context.identity.caller",
        "user": "$context.identity.user",
        "requestTime": "$context.requestTime",
        "httpMethod": "$context.httpMethod",
        "resourcePath": "$context.resourcePath",
        "status": "$context.status",
        "protocol": "$context.protocol",
        "responseLength": "$context.responseLength",
        "integrationLatency": "$context.integrationLatency",
    }


def test_stage_throttling_metrics_and_logging(stack: Stack) -> None:
    (settings_resource,) = stack.resources["aws_api_gateway_method_settings"].values()
    assert settings_resource["method_path"] == "*/*"
    assert settings_resource["stage_name"] == expr("aws_api_gateway_stage.this.stage_name")
    settings = single(settings_resource["settings"])
    assert settings["throttling_rate_limit"] == expr("var.throttle_rate_limit")
    assert settings["throttling_burst_limit"] == expr("var.throttle_burst_limit")
    assert stack.variables["throttle_rate_limit"]["default"] == 1000
    assert stack.variables["throttle_burst_limit"]["default"] == 2000
    assert settings["metrics_enabled"] is True
    assert settings["logging_level"] == "INFO"
    assert settings["data_trace_enabled"] is False


def test_api_gateway_account_logging_role_is_optional(stack: Stack) -> None:
    assert stack.variables["manage_api_gateway_account"]["type"] == "bool"
    count = expr("var.manage_api_gateway_account ? 1 : 0")
    assert stack.resource("aws_api_gateway_account", "this")["count"] == count
    assert stack.resource("aws_iam_role", "api_gateway_cloudwatch")["count"] == count
    attachment = stack.resource("aws_iam_role_policy_attachment", "api_gateway_cloudwatch")
    assert attachment["policy_arn"].endswith(
        ":iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"
    )


# ----------------------------------------------------------------------------------------------------------
# Client roles and Cognito
# ----------------------------------------------------------------------------------------------------------


def test_client_roles_require_the_external_id(stack: Stack) -> None:
    roles = stack.resources["aws_iam_role"]
    client = roles["client"]
    assert client["for_each"] == expr("local.client_roles")
    assert client["name"] == "${var.name_prefix}-${each.key}"
    assert set(stack.locals["client_roles"]) == {"ingest", "read", "admin"}
    assert client["assume_role_policy"] == expr("data.aws_iam_policy_document.client_assume.json")
    statement = single(stack.policy("client_assume")["statement"])
    assert statement["actions"] == ["sts:AssumeRole"]
    assert single(statement["principals"]) == {
        "type": "AWS",
        "identifiers": expr("var.trusted_principal_arns"),
    }
    assert single(statement["condition"]) == {
        "test": "StringEquals",
        "variable": "sts:ExternalId",
        "values": [expr("var.external_id")],
    }
    external_id = stack.variables["external_id"]
    assert external_id["sensitive"] is True
    assert "default" not in external_id
    assert any("length(var.external_id) > 0" in v["condition"] for v in external_id["validation"])
    # Every other role is a service role (Lambda, API Gateway), never assumable by a client.
    for name in set(roles) - {"client"}:
        assert "client_assume" not in roles[name]["assume_role_policy"], name


def test_client_roles_invoke_only_their_methods(stack: Stack) -> None:
    routes = {role: body["routes"] for role, body in stack.locals["client_roles"].items()}
    assert routes == {
        "ingest": ["POST/logs", "POST/v1/logs", "POST/loki/api/v1/push"],
        "read": ["GET/logs", "GET/logs/recent", "GET/logs/*", "GET/services"],
        "admin": [
            "POST/logs",
            "POST/v1/logs",
            "POST/loki/api/v1/push",
            "GET/logs",
            "GET/logs/recent",
            "GET/logs/*",
            "GET/services",
        ],
    }
    invoke = stack.policy("client_invoke")
    assert invoke["for_each"] == expr("local.client_roles")
    statement = single(invoke["statement"])
    assert statement["actions"] == ["execute-api:Invoke"]
    arn = "${aws_api_gateway_rest_api.this.execution_arn}/${var.stage_name}/${route}"
    assert statement["resources"] == expr(f'[for route in each.value.routes : "{arn}"]')
    attached = stack.resource("aws_iam_role_policy", "client_invoke")
    assert attached["for_each"] == expr("local.client_roles")
    assert attached["role"] == expr("aws_iam_role.client[each.key].id")
    assert attached["policy"] == expr("data.aws_iam_policy_document.client_invoke[each.key].json")


def test_cognito_is_optional_and_strict(stack: Stack) -> None:
    count = expr("var.enable_cognito ? 1 : 0")
    for type_, name in (
        ("aws_cognito_user_pool", "this"),
        ("aws_cognito_user_pool_client", "this"),
        ("aws_api_gateway_authorizer", "cognito"),
    ):
        assert stack.resource(type_, name)["count"] == count, type_
    assert stack.resource("aws_cognito_user_group", "roles")["for_each"] == expr("local.cognito_groups")
    assert stack.locals["cognito_groups"] == expr(
        'var.enable_cognito ? toset(["ingest", "read", "admin"]) : toset([])'
    )

    pool = stack.resource("aws_cognito_user_pool", "this")
    policy = single(pool["password_policy"])
    assert policy["minimum_length"] >= 12
    assert all(policy[f"require_{kind}"] is True for kind in ("lowercase", "uppercase", "numbers", "symbols"))
    assert pool["mfa_configuration"] == expr("var.cognito_mfa_configuration")
    assert stack.variables["cognito_mfa_configuration"]["default"] == "ON"
    assert single(pool["admin_create_user_config"])["allow_admin_create_user_only"] is True
    add_ons = single(pool["user_pool_add_ons"])
    assert add_ons["advanced_security_mode"] == expr('var.cognito_threat_protection ? "ENFORCED" : "OFF"')
    assert stack.variables["cognito_threat_protection"]["default"] is True

    authorizer = stack.resource("aws_api_gateway_authorizer", "cognito")
    assert authorizer["type"] == "COGNITO_USER_POOLS"
    assert authorizer["provider_arns"] == [expr("aws_cognito_user_pool.this[0].arn")]


def test_cognito_users_carry_a_service_scope_only_admins_set(stack: Stack) -> None:
    """custom:services holds a user's service patterns; the app client can read it but never write it."""
    pool = stack.resource("aws_cognito_user_pool", "this")
    (services,) = [attribute for attribute in pool["schema"] if attribute["name"] == "services"]
    assert services["attribute_data_type"] == "String"
    assert services["mutable"] is True  # an administrator can change a user's scope
    assert services["developer_only_attribute"] is False
    # Without the constraints block the provider plans a replacement of the pool on every run.
    assert single(services["string_attribute_constraints"]) == {"min_length": 0, "max_length": 2048}

    client = stack.resource("aws_cognito_user_pool_client", "this")
    assert "custom:services" in client["read_attributes"]  # else Cognito leaves it out of the ID token
    # A user's access token may write whatever the client may (UpdateUserAttributes). No list at all, or an
    # empty one, leaves every attribute writable: so the list is explicit, not empty, and custom-free.
    writable = client["write_attributes"]
    assert writable
    assert "custom:services" not in writable
    assert not [name for name in writable if name.startswith("custom:")]
    assert set(writable) <= set(client["read_attributes"])


@pytest.mark.parametrize("name", FUNCTIONS)
def test_functions_read_services_from_the_cognito_attribute(stack: Stack, name: str) -> None:
    # Cognito cannot emit the default claim name (logsvc:services).
    function = stack.resource("aws_lambda_function", name)
    assert single(function["environment"])["variables"] == expr("local.lambda_environment")
    assert stack.locals["lambda_environment"]["LOGSVC_JWT_SERVICE_CLAIM"] == "custom:services"


# ----------------------------------------------------------------------------------------------------------
# Alarms and outputs
# ----------------------------------------------------------------------------------------------------------


def test_every_alarm_notifies_the_topic_on_alarm_and_ok(stack: Stack) -> None:
    assert stack.locals["alarm_actions"] == [TOPIC_ARN]
    alarms = stack.resources["aws_cloudwatch_metric_alarm"]
    assert alarms
    for name, alarm in alarms.items():
        assert alarm["alarm_actions"] == expr("local.alarm_actions"), name
        assert alarm["ok_actions"] == expr("local.alarm_actions"), name


def test_every_alarm_threshold_is_a_variable(stack: Stack) -> None:
    for name, alarm in stack.resources["aws_cloudwatch_metric_alarm"].items():
        match = re.fullmatch(r"\$\{var\.(\w+)\}", str(alarm["threshold"]))
        assert match, f"{name}: threshold {alarm['threshold']!r} is not a variable"
        assert match.group(1) in stack.variables, name


def test_the_alarms_cover_lambda_api_and_dynamodb(stack: Stack) -> None:
    alarms = stack.resources["aws_cloudwatch_metric_alarm"]
    metrics = {(a["namespace"], a["metric_name"]) for a in alarms.values()}
    assert metrics >= {
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Throttles"),
        ("AWS/ApiGateway", "5XXError"),
        ("AWS/ApiGateway", "Latency"),
        ("AWS/DynamoDB", "ThrottledRequests"),
        ("AWS/DynamoDB", expr("each.key")),  # ReadThrottleEvents and WriteThrottleEvents
    }
    for name in ("lambda_errors", "lambda_throttles"):
        assert alarms[name]["for_each"] == expr("local.functions")
        assert alarms[name]["dimensions"] == {"FunctionName": expr("each.value")}
    assert set(stack.locals["functions"]) == {"ingest", "read"}
    latency = alarms["api_latency_p99"]
    assert latency["extended_statistic"] == "p99"
    assert "statistic" not in latency
    assert alarms["dynamodb_throttle_events"]["for_each"] == expr(
        'toset(["ReadThrottleEvents", "WriteThrottleEvents"])'
    )
    for alarm in alarms.values():
        if alarm["namespace"] == "AWS/DynamoDB":
            assert alarm["dimensions"]["TableName"] == expr("aws_dynamodb_table.logs.name")


def test_alarm_topic_policy_and_optional_email(stack: Stack) -> None:
    statements = {s["sid"]: s for s in stack.statements("alarms_topic")}
    publish = statements["OurAlarmsPublish"]
    assert publish["actions"] == ["sns:Publish"]
    assert single(publish["principals"]) == {"type": "Service", "identifiers": ["cloudwatch.amazonaws.com"]}
    condition = single(publish["condition"])
    assert condition["variable"] == "aws:SourceArn"
    assert condition["values"] == [
        "arn:${local.partition}:cloudwatch:${local.region}:${local.account_id}:alarm:${var.name_prefix}-*"
    ]
    subscription = stack.resource("aws_sns_topic_subscription", "alarm_email")
    assert subscription["count"] == expr('var.alarm_email == "" ? 0 : 1')


def test_outputs(stack: Stack) -> None:
    expected = {
        "api_invoke_url": expr("aws_api_gateway_stage.this.invoke_url"),
        "table_name": expr("aws_dynamodb_table.logs.name"),
        "table_arn": TABLE_ARN,
        "ingest_role_arn": expr('aws_iam_role.client["ingest"].arn'),
        "read_role_arn": expr('aws_iam_role.client["read"].arn'),
        "admin_role_arn": expr('aws_iam_role.client["admin"].arn'),
        "kms_key_arn": KEY_ARN,
        "sns_topic_arn": TOPIC_ARN,
    }
    for name, value in expected.items():
        assert stack.outputs[name]["value"] == value, name
        assert stack.outputs[name].get("description"), name


def test_stack_dir_holds_no_state_or_secrets() -> None:
    leftovers = [
        p.name for p in STACK_DIR.rglob("*") if p.suffix in {".tfstate", ".backup"} or p.name == ".terraform"
    ]
    assert not leftovers
