# REST API:
#   POST /logs            -> ingest
#   GET  /logs            -> read
#   GET  /logs/recent     -> read
#   GET  /logs/tail       -> read (the tail's polling page: API Gateway cannot stream)
#   GET  /logs/stats      -> read
#   GET  /logs/{log_id}   -> read
#   GET  /logs/{log_id}/context -> read
#   GET  /services        -> read
#   POST /v1/logs         -> ingest (OTLP/HTTP logs: protobuf or JSON)
#   POST /loki/api/v1/push -> ingest (Loki's push: snappy-compressed protobuf or JSON)
#   POST /compat/cognito/logs -> ingest   the older Cognito clients' shapes (docs/migrating.md); their raw
#   GET  /compat/cognito/logs -> read     ID token is what the Cognito authorizer takes anyway
#
# The older function-URL clients' routes (/compat/function-url/...) are not here: those clients send no
# credentials, and nothing in this API is ever NONE (decision 22).
#
# Authorization: every method is AWS_IAM (SigV4; the caller needs execute-api:Invoke on that method, which only
# the client roles in iam_clients.tf have), or COGNITO_USER_POOLS when enable_cognito is true. A REST API
# method takes exactly one authorization type, so the switch is all or nothing; the default (false) is IAM, the
# safer of the two: short-lived signed credentials, per-method permissions checked by API Gateway itself, and
# nothing to sign up for. With Cognito, any valid token of the pool passes API Gateway, so the pool admits
# users only by an administrator and the handlers derive the role from the cognito:groups claim.
# Nothing is ever NONE.

resource "aws_api_gateway_rest_api" "this" {
  name                     = var.name_prefix
  description              = "Simple Log Service"
  minimum_compression_size = tostring(var.minimum_compression_size)
  # OTLP's and Loki's protobuf bodies reach the ingest function base64-encoded, byte for byte (and OTLP's
  # answers go back so).
  binary_media_types = ["application/x-protobuf"]

  endpoint_configuration {
    types = ["REGIONAL"]
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_api_gateway_resource" "logs" {
  rest_api_id = aws_api_gateway_rest_api.this.id
  parent_id   = aws_api_gateway_rest_api.this.root_resource_id
  path_part   = "logs"
}

resource "aws_api_gateway_resource" "logs_recent" {
  rest_api_id = aws_api_gateway_rest_api.this.id
  parent_id   = aws_api_gateway_resource.logs.id
  path_part   = "recent"
}

resource "aws_api_gateway_resource" "logs_tail" {
  rest_api_id = aws_api_gateway_rest_api.this.id
  parent_id   = aws_api_gateway_resource.logs.id
  path_part   = "tail"
}

resource "aws_api_gateway_resource" "logs_stats" {
  rest_api_id = aws_api_gateway_rest_api.this.id
  parent_id   = aws_api_gateway_resource.logs.id
  path_part   = "stats"
}

resource "aws_api_gateway_resource" "log_by_id" {
  rest_api_id = aws_api_gateway_rest_api.this.id
  parent_id   = aws_api_gateway_resource.logs.id
  path_part   = "{log_id}"
}

resource "aws_api_gateway_resource" "compat" {
  rest_api_id = aws_api_gateway_rest_api.this.id
  parent_id   = aws_api_gateway_rest_api.this.root_resource_id
  path_part   = "compat"
}

resource "aws_api_gateway_resource" "compat_cognito" {
  rest_api_id = aws_api_gateway_rest_api.this.id
  parent_id   = aws_api_gateway_resource.compat.id
  path_part   = "cognito"
}

resource "aws_api_gateway_resource" "compat_cognito_logs" {
  rest_api_id = aws_api_gateway_rest_api.this.id
  parent_id   = aws_api_gateway_resource.compat_cognito.id
  path_part   = "logs"
}

resource "aws_api_gateway_resource" "log_context" {
  rest_api_id = aws_api_gateway_rest_api.this.id
  parent_id   = aws_api_gateway_resource.log_by_id.id
  path_part   = "context"
}

resource "aws_api_gateway_resource" "services" {
  rest_api_id = aws_api_gateway_rest_api.this.id
  parent_id   = aws_api_gateway_rest_api.this.root_resource_id
  path_part   = "services"
}

resource "aws_api_gateway_resource" "v1" {
  rest_api_id = aws_api_gateway_rest_api.this.id
  parent_id   = aws_api_gateway_rest_api.this.root_resource_id
  path_part   = "v1"
}

resource "aws_api_gateway_resource" "v1_logs" {
  rest_api_id = aws_api_gateway_rest_api.this.id
  parent_id   = aws_api_gateway_resource.v1.id
  path_part   = "logs"
}

resource "aws_api_gateway_resource" "loki" {
  rest_api_id = aws_api_gateway_rest_api.this.id
  parent_id   = aws_api_gateway_rest_api.this.root_resource_id
  path_part   = "loki"
}

resource "aws_api_gateway_resource" "loki_api" {
  rest_api_id = aws_api_gateway_rest_api.this.id
  parent_id   = aws_api_gateway_resource.loki.id
  path_part   = "api"
}

resource "aws_api_gateway_resource" "loki_api_v1" {
  rest_api_id = aws_api_gateway_rest_api.this.id
  parent_id   = aws_api_gateway_resource.loki_api.id
  path_part   = "v1"
}

resource "aws_api_gateway_resource" "loki_push" {
  rest_api_id = aws_api_gateway_rest_api.this.id
  parent_id   = aws_api_gateway_resource.loki_api_v1.id
  path_part   = "push"
}

# ---------------------------------------------------------------------------------------------------------------
# Request validation. API Gateway rejects what is not even the right shape; the ingest function then gives the
# detailed, per-entry errors (DESIGN.md section 3), so the schema stays deliberately loose. NDJSON bodies
# (application/x-ndjson) have no model and reach the function as sent.
# ---------------------------------------------------------------------------------------------------------------

resource "aws_api_gateway_request_validator" "this" {
  name                        = "body-and-parameters"
  rest_api_id                 = aws_api_gateway_rest_api.this.id
  validate_request_body       = true
  validate_request_parameters = true
}

resource "aws_api_gateway_model" "ingest_body" {
  rest_api_id  = aws_api_gateway_rest_api.this.id
  name         = "IngestBody"
  description  = "One entry object, an array of entries, or {\"logs\": [...]}"
  content_type = "application/json"

  schema = jsonencode({
    "$schema" = "http://json-schema.org/draft-04/schema#"
    title     = "IngestBody"
    type      = ["object", "array"]
    maxItems  = 10000
    items = {
      type = "object"
    }
    properties = {
      logs = {
        type     = "array"
        maxItems = 10000
        items = {
          type = "object"
        }
      }
    }
  })
}

locals {
  # Query parameters of the listing routes and the tail (DESIGN.md section 3); all optional.
  list_query_parameters = {
    "method.request.querystring.service_name" = false
    "method.request.querystring.level"        = false
    "method.request.querystring.severity"     = false
    "method.request.querystring.min_level"    = false
    "method.request.querystring.log_type"     = false
    "method.request.querystring.since"        = false
    "method.request.querystring.until"        = false
    "method.request.querystring.hours"        = false
    "method.request.querystring.q"            = false
    "method.request.querystring.limit"        = false
    "method.request.querystring.cursor"       = false
  }
  # GET /logs/stats: the same filters, with the bucket width and the grouping instead of the page.
  stats_query_parameters = {
    "method.request.querystring.service_name" = false
    "method.request.querystring.level"        = false
    "method.request.querystring.severity"     = false
    "method.request.querystring.min_level"    = false
    "method.request.querystring.log_type"     = false
    "method.request.querystring.since"        = false
    "method.request.querystring.until"        = false
    "method.request.querystring.hours"        = false
    "method.request.querystring.q"            = false
    "method.request.querystring.interval"     = false
    "method.request.querystring.by"           = false
  }
  # GET /services: a page of the services by name.
  services_query_parameters = {
    "method.request.querystring.limit" = false
    "method.request.querystring.after" = false
  }
}

# ---------------------------------------------------------------------------------------------------------------
# Methods and their Lambda proxy integrations
# ---------------------------------------------------------------------------------------------------------------

resource "aws_api_gateway_method" "post_logs" {
  rest_api_id          = aws_api_gateway_rest_api.this.id
  resource_id          = aws_api_gateway_resource.logs.id
  http_method          = "POST"
  authorization        = var.enable_cognito ? "COGNITO_USER_POOLS" : "AWS_IAM"
  authorizer_id        = var.enable_cognito ? aws_api_gateway_authorizer.cognito[0].id : null
  request_validator_id = aws_api_gateway_request_validator.this.id

  request_models = {
    "application/json" = aws_api_gateway_model.ingest_body.name
  }
}

resource "aws_api_gateway_integration" "post_logs" {
  rest_api_id             = aws_api_gateway_rest_api.this.id
  resource_id             = aws_api_gateway_resource.logs.id
  http_method             = aws_api_gateway_method.post_logs.http_method
  type                    = "AWS_PROXY"
  integration_http_method = "POST"
  uri                     = aws_lambda_function.ingest.invoke_arn
}

resource "aws_api_gateway_method" "get_logs" {
  rest_api_id          = aws_api_gateway_rest_api.this.id
  resource_id          = aws_api_gateway_resource.logs.id
  http_method          = "GET"
  authorization        = var.enable_cognito ? "COGNITO_USER_POOLS" : "AWS_IAM"
  authorizer_id        = var.enable_cognito ? aws_api_gateway_authorizer.cognito[0].id : null
  request_validator_id = aws_api_gateway_request_validator.this.id
  request_parameters   = local.list_query_parameters
}

resource "aws_api_gateway_integration" "get_logs" {
  rest_api_id             = aws_api_gateway_rest_api.this.id
  resource_id             = aws_api_gateway_resource.logs.id
  http_method             = aws_api_gateway_method.get_logs.http_method
  type                    = "AWS_PROXY"
  integration_http_method = "POST"
  uri                     = aws_lambda_function.read.invoke_arn
}

resource "aws_api_gateway_method" "get_logs_recent" {
  rest_api_id          = aws_api_gateway_rest_api.this.id
  resource_id          = aws_api_gateway_resource.logs_recent.id
  http_method          = "GET"
  authorization        = var.enable_cognito ? "COGNITO_USER_POOLS" : "AWS_IAM"
  authorizer_id        = var.enable_cognito ? aws_api_gateway_authorizer.cognito[0].id : null
  request_validator_id = aws_api_gateway_request_validator.this.id
  request_parameters   = local.list_query_parameters
}

resource "aws_api_gateway_integration" "get_logs_recent" {
  rest_api_id             = aws_api_gateway_rest_api.this.id
  resource_id             = aws_api_gateway_resource.logs_recent.id
  http_method             = aws_api_gateway_method.get_logs_recent.http_method
  type                    = "AWS_PROXY"
  integration_http_method = "POST"
  uri                     = aws_lambda_function.read.invoke_arn
}

resource "aws_api_gateway_method" "get_log_by_id" {
  rest_api_id          = aws_api_gateway_rest_api.this.id
  resource_id          = aws_api_gateway_resource.log_by_id.id
  http_method          = "GET"
  authorization        = var.enable_cognito ? "COGNITO_USER_POOLS" : "AWS_IAM"
  authorizer_id        = var.enable_cognito ? aws_api_gateway_authorizer.cognito[0].id : null
  request_validator_id = aws_api_gateway_request_validator.this.id

  request_parameters = {
    "method.request.path.log_id" = true
  }
}

resource "aws_api_gateway_integration" "get_log_by_id" {
  rest_api_id             = aws_api_gateway_rest_api.this.id
  resource_id             = aws_api_gateway_resource.log_by_id.id
  http_method             = aws_api_gateway_method.get_log_by_id.http_method
  type                    = "AWS_PROXY"
  integration_http_method = "POST"
  uri                     = aws_lambda_function.read.invoke_arn
}

resource "aws_api_gateway_method" "get_logs_stats" {
  rest_api_id          = aws_api_gateway_rest_api.this.id
  resource_id          = aws_api_gateway_resource.logs_stats.id
  http_method          = "GET"
  authorization        = var.enable_cognito ? "COGNITO_USER_POOLS" : "AWS_IAM"
  authorizer_id        = var.enable_cognito ? aws_api_gateway_authorizer.cognito[0].id : null
  request_validator_id = aws_api_gateway_request_validator.this.id
  request_parameters   = local.stats_query_parameters
}

resource "aws_api_gateway_integration" "get_logs_stats" {
  rest_api_id             = aws_api_gateway_rest_api.this.id
  resource_id             = aws_api_gateway_resource.logs_stats.id
  http_method             = aws_api_gateway_method.get_logs_stats.http_method
  type                    = "AWS_PROXY"
  integration_http_method = "POST"
  uri                     = aws_lambda_function.read.invoke_arn
}

resource "aws_api_gateway_method" "get_log_context" {
  rest_api_id          = aws_api_gateway_rest_api.this.id
  resource_id          = aws_api_gateway_resource.log_context.id
  http_method          = "GET"
  authorization        = var.enable_cognito ? "COGNITO_USER_POOLS" : "AWS_IAM"
  authorizer_id        = var.enable_cognito ? aws_api_gateway_authorizer.cognito[0].id : null
  request_validator_id = aws_api_gateway_request_validator.this.id

  request_parameters = {
    "method.request.path.log_id"              = true
    "method.request.querystring.before"       = false
    "method.request.querystring.after"        = false
    "method.request.querystring.service_name" = false
  }
}

resource "aws_api_gateway_integration" "get_log_context" {
  rest_api_id             = aws_api_gateway_rest_api.this.id
  resource_id             = aws_api_gateway_resource.log_context.id
  http_method             = aws_api_gateway_method.get_log_context.http_method
  type                    = "AWS_PROXY"
  integration_http_method = "POST"
  uri                     = aws_lambda_function.read.invoke_arn
}

resource "aws_api_gateway_method" "get_services" {
  rest_api_id          = aws_api_gateway_rest_api.this.id
  resource_id          = aws_api_gateway_resource.services.id
  http_method          = "GET"
  authorization        = var.enable_cognito ? "COGNITO_USER_POOLS" : "AWS_IAM"
  authorizer_id        = var.enable_cognito ? aws_api_gateway_authorizer.cognito[0].id : null
  request_validator_id = aws_api_gateway_request_validator.this.id
  request_parameters   = local.services_query_parameters
}

resource "aws_api_gateway_integration" "get_services" {
  rest_api_id             = aws_api_gateway_rest_api.this.id
  resource_id             = aws_api_gateway_resource.services.id
  http_method             = aws_api_gateway_method.get_services.http_method
  type                    = "AWS_PROXY"
  integration_http_method = "POST"
  uri                     = aws_lambda_function.read.invoke_arn
}

# OTLP/HTTP logs: no request model (a protobuf body has none), so the validator checks no body here; the
# function validates every record.
resource "aws_api_gateway_method" "post_v1_logs" {
  rest_api_id          = aws_api_gateway_rest_api.this.id
  resource_id          = aws_api_gateway_resource.v1_logs.id
  http_method          = "POST"
  authorization        = var.enable_cognito ? "COGNITO_USER_POOLS" : "AWS_IAM"
  authorizer_id        = var.enable_cognito ? aws_api_gateway_authorizer.cognito[0].id : null
  request_validator_id = aws_api_gateway_request_validator.this.id
}

resource "aws_api_gateway_integration" "post_v1_logs" {
  rest_api_id             = aws_api_gateway_rest_api.this.id
  resource_id             = aws_api_gateway_resource.v1_logs.id
  http_method             = aws_api_gateway_method.post_v1_logs.http_method
  type                    = "AWS_PROXY"
  integration_http_method = "POST"
  uri                     = aws_lambda_function.ingest.invoke_arn
}

# Loki's push: no request model either (protobuf, or JSON of Loki's shape); the function validates every entry.
resource "aws_api_gateway_method" "post_loki_push" {
  rest_api_id          = aws_api_gateway_rest_api.this.id
  resource_id          = aws_api_gateway_resource.loki_push.id
  http_method          = "POST"
  authorization        = var.enable_cognito ? "COGNITO_USER_POOLS" : "AWS_IAM"
  authorizer_id        = var.enable_cognito ? aws_api_gateway_authorizer.cognito[0].id : null
  request_validator_id = aws_api_gateway_request_validator.this.id
}

resource "aws_api_gateway_integration" "post_loki_push" {
  rest_api_id             = aws_api_gateway_rest_api.this.id
  resource_id             = aws_api_gateway_resource.loki_push.id
  http_method             = aws_api_gateway_method.post_loki_push.http_method
  type                    = "AWS_PROXY"
  integration_http_method = "POST"
  uri                     = aws_lambda_function.ingest.invoke_arn
}

# The older Cognito clients' shapes: the function translates them (logsvc.domain.compat) and holds the rules, so
# API Gateway checks no body model here; the read's parameters are declared, all optional.
resource "aws_api_gateway_method" "post_compat_cognito_logs" {
  rest_api_id          = aws_api_gateway_rest_api.this.id
  resource_id          = aws_api_gateway_resource.compat_cognito_logs.id
  http_method          = "POST"
  authorization        = var.enable_cognito ? "COGNITO_USER_POOLS" : "AWS_IAM"
  authorizer_id        = var.enable_cognito ? aws_api_gateway_authorizer.cognito[0].id : null
  request_validator_id = aws_api_gateway_request_validator.this.id
}

resource "aws_api_gateway_integration" "post_compat_cognito_logs" {
  rest_api_id             = aws_api_gateway_rest_api.this.id
  resource_id             = aws_api_gateway_resource.compat_cognito_logs.id
  http_method             = aws_api_gateway_method.post_compat_cognito_logs.http_method
  type                    = "AWS_PROXY"
  integration_http_method = "POST"
  uri                     = aws_lambda_function.ingest.invoke_arn
}

resource "aws_api_gateway_method" "get_compat_cognito_logs" {
  rest_api_id          = aws_api_gateway_rest_api.this.id
  resource_id          = aws_api_gateway_resource.compat_cognito_logs.id
  http_method          = "GET"
  authorization        = var.enable_cognito ? "COGNITO_USER_POOLS" : "AWS_IAM"
  authorizer_id        = var.enable_cognito ? aws_api_gateway_authorizer.cognito[0].id : null
  request_validator_id = aws_api_gateway_request_validator.this.id

  request_parameters = {
    "method.request.querystring.severity" = false
    "method.request.querystring.limit"    = false
    "method.request.querystring.startKey" = false
  }
}

resource "aws_api_gateway_integration" "get_compat_cognito_logs" {
  rest_api_id             = aws_api_gateway_rest_api.this.id
  resource_id             = aws_api_gateway_resource.compat_cognito_logs.id
  http_method             = aws_api_gateway_method.get_compat_cognito_logs.http_method
  type                    = "AWS_PROXY"
  integration_http_method = "POST"
  uri                     = aws_lambda_function.read.invoke_arn
}

# ---------------------------------------------------------------------------------------------------------------
# Deployment and stage
resource "aws_api_gateway_method" "get_logs_tail" {
  rest_api_id          = aws_api_gateway_rest_api.this.id
  resource_id          = aws_api_gateway_resource.logs_tail.id
  http_method          = "GET"
  authorization        = var.enable_cognito ? "COGNITO_USER_POOLS" : "AWS_IAM"
  authorizer_id        = var.enable_cognito ? aws_api_gateway_authorizer.cognito[0].id : null
  request_validator_id = aws_api_gateway_request_validator.this.id
  request_parameters   = local.list_query_parameters
}

resource "aws_api_gateway_integration" "get_logs_tail" {
  rest_api_id             = aws_api_gateway_rest_api.this.id
  resource_id             = aws_api_gateway_resource.logs_tail.id
  http_method             = aws_api_gateway_method.get_logs_tail.http_method
  type                    = "AWS_PROXY"
  integration_http_method = "POST"
  uri                     = aws_lambda_function.read.invoke_arn
}

# ---------------------------------------------------------------------------------------------------------------

resource "aws_api_gateway_deployment" "this" {
  rest_api_id = aws_api_gateway_rest_api.this.id

  # A new deployment whenever anything it serves changes.
  triggers = {
    redeployment = sha1(jsonencode([
      aws_api_gateway_resource.logs,
      aws_api_gateway_resource.logs_recent,
      aws_api_gateway_resource.logs_tail,
      aws_api_gateway_resource.logs_stats,
      aws_api_gateway_resource.log_by_id,
      aws_api_gateway_resource.log_context,
      aws_api_gateway_resource.services,
      aws_api_gateway_resource.v1,
      aws_api_gateway_resource.v1_logs,
      aws_api_gateway_resource.loki,
      aws_api_gateway_resource.loki_api,
      aws_api_gateway_resource.loki_api_v1,
      aws_api_gateway_resource.loki_push,
      aws_api_gateway_resource.compat,
      aws_api_gateway_resource.compat_cognito,
      aws_api_gateway_resource.compat_cognito_logs,
      aws_api_gateway_request_validator.this,
      aws_api_gateway_model.ingest_body,
      aws_api_gateway_method.post_logs,
      aws_api_gateway_method.get_logs,
      aws_api_gateway_method.get_logs_recent,
      aws_api_gateway_method.get_logs_tail,
      aws_api_gateway_method.get_logs_stats,
      aws_api_gateway_method.get_log_by_id,
      aws_api_gateway_method.get_log_context,
      aws_api_gateway_method.get_services,
      aws_api_gateway_method.post_v1_logs,
      aws_api_gateway_method.post_loki_push,
      aws_api_gateway_method.post_compat_cognito_logs,
      aws_api_gateway_method.get_compat_cognito_logs,
      aws_api_gateway_integration.post_logs,
      aws_api_gateway_integration.get_logs,
      aws_api_gateway_integration.get_logs_recent,
      aws_api_gateway_integration.get_logs_tail,
      aws_api_gateway_integration.get_logs_stats,
      aws_api_gateway_integration.get_log_by_id,
      aws_api_gateway_integration.get_log_context,
      aws_api_gateway_integration.get_services,
      aws_api_gateway_integration.post_v1_logs,
      aws_api_gateway_integration.post_loki_push,
      aws_api_gateway_integration.post_compat_cognito_logs,
      aws_api_gateway_integration.get_compat_cognito_logs,
      aws_api_gateway_authorizer.cognito,
    ]))
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_cloudwatch_log_group" "api_access" {
  name              = local.api_access_log_group_name
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
}

# API Gateway writes execution logs (logging_level below) to this group; creating it here gives it a retention
# and the key instead of API Gateway creating it unencrypted and kept forever.
resource "aws_cloudwatch_log_group" "api_execution" {
  name              = local.api_execution_log_group_name
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
}

resource "aws_api_gateway_stage" "this" {
  rest_api_id          = aws_api_gateway_rest_api.this.id
  deployment_id        = aws_api_gateway_deployment.this.id
  stage_name           = var.stage_name
  description          = "Simple Log Service ${var.environment}"
  xray_tracing_enabled = true

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.api_access.arn
    format = jsonencode({
      requestId          = "$context.requestId"
      ip                 = "$context.identity.sourceIp"
      caller             = "$context.identity.caller"
      user               = "$context.identity.user"
      userArn            = "$context.identity.userArn"
      requestTime        = "$context.requestTime"
      httpMethod         = "$context.httpMethod"
      resourcePath       = "$context.resourcePath"
      status             = "$context.status"
      protocol           = "$context.protocol"
      responseLength     = "$context.responseLength"
      integrationLatency = "$context.integrationLatency"
      errorMessage       = "$context.error.message"
    })
  }

  depends_on = [aws_api_gateway_account.this, aws_cloudwatch_log_group.api_execution]
}

resource "aws_api_gateway_method_settings" "all" {
  rest_api_id = aws_api_gateway_rest_api.this.id
  stage_name  = aws_api_gateway_stage.this.stage_name
  method_path = "*/*"

  settings {
    throttling_rate_limit  = var.throttle_rate_limit
    throttling_burst_limit = var.throttle_burst_limit
    metrics_enabled        = true
    logging_level          = "INFO"
    # Request and response bodies are log entries and may hold personal data: never copied to execution logs.
    data_trace_enabled = false
    caching_enabled    = false
  }
}

# ---------------------------------------------------------------------------------------------------------------
# The account-wide role API Gateway writes CloudWatch logs with (one per account and region)
# ---------------------------------------------------------------------------------------------------------------

data "aws_iam_policy_document" "api_gateway_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["apigateway.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "api_gateway_cloudwatch" {
  count = var.manage_api_gateway_account ? 1 : 0

  name               = "${var.name_prefix}-apigateway-cloudwatch"
  description        = "Lets API Gateway write execution and access logs to CloudWatch Logs"
  assume_role_policy = data.aws_iam_policy_document.api_gateway_assume.json
}

resource "aws_iam_role_policy_attachment" "api_gateway_cloudwatch" {
  count = var.manage_api_gateway_account ? 1 : 0

  role       = aws_iam_role.api_gateway_cloudwatch[0].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"
}

resource "aws_api_gateway_account" "this" {
  count = var.manage_api_gateway_account ? 1 : 0

  cloudwatch_role_arn = aws_iam_role.api_gateway_cloudwatch[0].arn

  depends_on = [aws_iam_role_policy_attachment.api_gateway_cloudwatch]
}
