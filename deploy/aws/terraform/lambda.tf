# Two functions from one package: ingest (POST /logs) and read (GET /logs, /logs/recent, /logs/{log_id},
# /logs/stats, /logs/{log_id}/context, /services).
# Each has its own execution role holding only what its handler calls.

locals {
  store_url = "dynamodb://${aws_dynamodb_table.logs.name}?region=${local.region}&shards=${var.shards}"

  # Client role ARN -> logsvc role and service scope. The handlers map the caller's assumed-role ARN
  # (arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION) to the role ARN (arn:aws:iam::ACCOUNT:role/NAME) and
  # look it up here; a caller not in this map is refused.
  aws_principals = {
    for name, client in local.client_roles : aws_iam_role.client[name].arn => {
      role     = name
      services = client.services
    }
  }

  # LOGSVC_JWT_SERVICE_CLAIM matters only with enable_cognito: Cognito cannot emit the default claim name
  # (logsvc:services), so a user's services come from the custom attribute in cognito.tf.
  lambda_environment = {
    LOGSVC_STORE             = local.store_url
    LOGSVC_AWS_PRINCIPALS    = jsonencode(local.aws_principals)
    LOGSVC_RETENTION_DAYS    = tostring(var.retention_days)
    LOGSVC_JWT_SERVICE_CLAIM = "custom:services"
  }
}

# ---------------------------------------------------------------------------------------------------------------
# Log groups (created before the functions so that retention and encryption apply from the first line)
# ---------------------------------------------------------------------------------------------------------------

resource "aws_cloudwatch_log_group" "lambda" {
  for_each = local.lambda_log_group_names

  name              = each.value
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
}

# ---------------------------------------------------------------------------------------------------------------
# Execution roles
# ---------------------------------------------------------------------------------------------------------------

data "aws_iam_policy_document" "lambda_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "ingest" {
  name               = "${var.name_prefix}-ingest-lambda"
  description        = "Execution role of the ${var.name_prefix} ingest function"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
}

resource "aws_iam_role" "read" {
  name               = "${var.name_prefix}-read-lambda"
  description        = "Execution role of the ${var.name_prefix} read function"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
}

# DynamoDB and the table's customer managed key: when a principal reads or writes the table, DynamoDB decrypts
# the table key with KMS *as that principal* (CloudTrail shows Decrypt by the caller, invokedBy
# dynamodb.amazonaws.com); GenerateDataKey and CreateGrant happen once, when the table is created, by DynamoDB
# and the creating principal. So each function needs kms:Decrypt, only via DynamoDB, only for this table, and
# nothing else on the key. Source: AWS KMS Developer Guide, "How Amazon DynamoDB uses AWS KMS" (sections
# "Table keys", "Decrypt" and "DynamoDB encryption context").
#
# The Lambda environment is encrypted with the same key: Lambda creates a grant for the execution role when the
# function is created, so the roles need no KMS permission for it.

data "aws_iam_policy_document" "ingest" {
  statement {
    sid       = "WriteLogItems"
    actions   = ["dynamodb:PutItem", "dynamodb:BatchWriteItem"]
    resources = [aws_dynamodb_table.logs.arn]
  }

  # logsvc.storage.dynamodb reads the table's shard count from the item pk = "#config" when it opens the table
  # (and again for /readyz). This GetItem reaches that one partition and no log entry.
  statement {
    sid       = "ReadShardCountOnly"
    actions   = ["dynamodb:GetItem"]
    resources = [aws_dynamodb_table.logs.arn]

    condition {
      test     = "ForAllValues:StringEquals"
      variable = "dynamodb:LeadingKeys"
      values   = ["#config"]
    }
  }

  statement {
    sid       = "DecryptTableKeyViaDynamoDB"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.this.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["dynamodb.${local.region}.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "kms:EncryptionContext:aws:dynamodb:tableName"
      values   = [aws_dynamodb_table.logs.name]
    }
  }

  statement {
    sid       = "WriteOwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.lambda["ingest"].arn}:*"]
  }

  # X-Ray's PutTraceSegments and PutTelemetryRecords act on no resource: "*" is the only Resource they accept.
  statement {
    sid       = "SendTraces"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"]
  }
}

data "aws_iam_policy_document" "read" {
  statement {
    sid       = "ReadLogItems"
    actions   = ["dynamodb:Query", "dynamodb:GetItem"]
    resources = [aws_dynamodb_table.logs.arn, "${aws_dynamodb_table.logs.arn}/index/*"]
  }

  statement {
    sid       = "DecryptTableKeyViaDynamoDB"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.this.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["dynamodb.${local.region}.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "kms:EncryptionContext:aws:dynamodb:tableName"
      values   = [aws_dynamodb_table.logs.name]
    }
  }

  statement {
    sid       = "WriteOwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.lambda["read"].arn}:*"]
  }

  # X-Ray's PutTraceSegments and PutTelemetryRecords act on no resource: "*" is the only Resource they accept.
  statement {
    sid       = "SendTraces"
    actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "ingest" {
  name   = "least-privilege"
  role   = aws_iam_role.ingest.id
  policy = data.aws_iam_policy_document.ingest.json
}

resource "aws_iam_role_policy" "read" {
  name   = "least-privilege"
  role   = aws_iam_role.read.id
  policy = data.aws_iam_policy_document.read.json
}

# ---------------------------------------------------------------------------------------------------------------
# Functions
# ---------------------------------------------------------------------------------------------------------------

resource "aws_lambda_function" "ingest" {
  function_name                  = "${var.name_prefix}-ingest"
  description                    = "Simple Log Service: POST /logs"
  role                           = aws_iam_role.ingest.arn
  runtime                        = "python3.12"
  architectures                  = [var.lambda_architecture]
  handler                        = "logsvc.aws.handlers.ingest"
  filename                       = var.lambda_package
  source_code_hash               = filebase64sha256(var.lambda_package)
  memory_size                    = var.ingest_memory_size
  timeout                        = var.ingest_timeout
  reserved_concurrent_executions = var.ingest_reserved_concurrency
  kms_key_arn                    = aws_kms_key.this.arn

  environment {
    variables = local.lambda_environment
  }

  tracing_config {
    mode = "Active"
  }

  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.lambda["ingest"].name
  }

  depends_on = [aws_iam_role_policy.ingest]
}

resource "aws_lambda_function" "read" {
  function_name                  = "${var.name_prefix}-read"
  description                    = "Simple Log Service: GET /logs, /logs/recent, /logs/stats, /logs/{log_id}, /services"
  role                           = aws_iam_role.read.arn
  runtime                        = "python3.12"
  architectures                  = [var.lambda_architecture]
  handler                        = "logsvc.aws.handlers.read"
  filename                       = var.lambda_package
  source_code_hash               = filebase64sha256(var.lambda_package)
  memory_size                    = var.read_memory_size
  timeout                        = var.read_timeout
  reserved_concurrent_executions = var.read_reserved_concurrency
  kms_key_arn                    = aws_kms_key.this.arn

  environment {
    variables = local.lambda_environment
  }

  tracing_config {
    mode = "Active"
  }

  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.lambda["read"].name
  }

  depends_on = [aws_iam_role_policy.read]
}

# API Gateway may invoke each function only through this API's stage and the routes that belong to it.
resource "aws_lambda_permission" "api_ingest" {
  statement_id  = "AllowApiGatewayPostLogs"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.ingest.function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_api_gateway_rest_api.this.execution_arn}/${var.stage_name}/POST/logs"
}

resource "aws_lambda_permission" "api_ingest_otlp" {
  statement_id  = "AllowApiGatewayPostOtlpLogs"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.ingest.function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_api_gateway_rest_api.this.execution_arn}/${var.stage_name}/POST/v1/logs"
}

resource "aws_lambda_permission" "api_read" {
  for_each = {
    logs     = "GET/logs"
    recent   = "GET/logs/recent"
    by_id    = "GET/logs/*"
    services = "GET/services"
  }

  statement_id  = "AllowApiGatewayRead-${each.key}"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.read.function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_api_gateway_rest_api.this.execution_arn}/${var.stage_name}/${each.value}"
}
