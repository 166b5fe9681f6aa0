# The roles clients assume to call the API with SigV4. Each may invoke only its own methods on this API's
# stage, and only principals in trusted_principal_arns presenting the external ID may assume it. The Lambda
# handlers map the caller's role to the logsvc role and service scope (LOGSVC_AWS_PRINCIPALS, lambda.tf).

locals {
  # logsvc role -> the API routes (METHOD/path, as in an execute-api ARN) it may invoke, and its service scope.
  client_roles = {
    ingest = {
      routes   = ["POST/logs", "POST/v1/logs"]
      services = var.ingest_services
    }
    read = {
      routes   = ["GET/logs", "GET/logs/recent", "GET/logs/*", "GET/services"]
      services = var.read_services
    }
    admin = {
      routes   = ["POST/logs", "POST/v1/logs", "GET/logs", "GET/logs/recent", "GET/logs/*", "GET/services"]
      services = var.admin_services
    }
  }
}

data "aws_iam_policy_document" "client_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "AWS"
      identifiers = var.trusted_principal_arns
    }

    condition {
      test     = "StringEquals"
      variable = "sts:ExternalId"
      values   = [var.external_id]
    }
  }
}

resource "aws_iam_role" "client" {
  for_each = local.client_roles

  name                 = "${var.name_prefix}-${each.key}"
  description          = "Simple Log Service client role: ${each.key}"
  assume_role_policy   = data.aws_iam_policy_document.client_assume.json
  max_session_duration = 3600
}

data "aws_iam_policy_document" "client_invoke" {
  for_each = local.client_roles

  statement {
    sid     = "InvokeOwnMethods"
    actions = ["execute-api:Invoke"]
    resources = [
      for route in each.value.routes :
      "${aws_api_gateway_rest_api.this.execution_arn}/${var.stage_name}/${route}"
    ]
  }
}

resource "aws_iam_role_policy" "client_invoke" {
  for_each = local.client_roles

  name   = "invoke-${each.key}-methods"
  role   = aws_iam_role.client[each.key].id
  policy = data.aws_iam_policy_document.client_invoke[each.key].json
}
