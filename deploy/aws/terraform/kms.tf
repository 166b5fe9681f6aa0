# One customer managed key for everything the stack stores: the table, the Lambda environment, the log groups
# and the alarm topic. Rotated yearly by KMS.
resource "aws_kms_key" "this" {
  description             = "${var.name_prefix}: DynamoDB table, Lambda environment, log groups, alarm topic"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms.json
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.name_prefix}"
  target_key_id = aws_kms_key.this.key_id
}

locals {
  # Log groups are named here, not read from their resources: the key policy must exist before the encrypted
  # log groups can be created.
  lambda_log_group_names = {
    ingest = "/aws/lambda/${var.name_prefix}-ingest"
    read   = "/aws/lambda/${var.name_prefix}-read"
  }
  api_access_log_group_name    = "/aws/apigateway/${var.name_prefix}-access"
  api_execution_log_group_name = "API-Gateway-Execution-Logs_${aws_api_gateway_rest_api.this.id}/${var.stage_name}"

  encrypted_log_group_arns = [
    for name in concat(values(local.lambda_log_group_names), [local.api_access_log_group_name, local.api_execution_log_group_name]) :
    "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:${name}"
  ]
}

# A key policy's Resource is always the key itself: "*" there means "this key", not "every resource". The three
# IAM checks below are written for identity policies and cannot tell; they are suppressed for this document only
# (every other policy document in the stack is still checked by them).
data "aws_iam_policy_document" "kms" {
  # checkov:skip=CKV_AWS_109: key policy; Resource "*" is this key, and the account root must administer it
  # checkov:skip=CKV_AWS_111: key policy; Resource "*" is this key, and the account root must administer it
  # checkov:skip=CKV_AWS_356: key policy; Resource "*" is this key, and the account root must administer it

  # The account administers the key; IAM policies in the account decide who else may use it (the Lambda
  # execution roles get kms:Decrypt through IAM, see lambda.tf).
  statement {
    sid       = "AccountAdministersKey"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  # DynamoDB reads key metadata directly (the grants it creates for the table, on behalf of the principal that
  # creates the table, come through the statement above). Source: the AWS KMS Developer Guide, "How Amazon
  # DynamoDB uses AWS KMS" (services-dynamodb), key policy and "Using grants to authorize DynamoDB".
  statement {
    sid       = "DynamoDBDescribesKey"
    actions   = ["kms:Describe*", "kms:Get*", "kms:List*"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["dynamodb.amazonaws.com"]
    }
  }

  # CloudWatch Logs encrypts this stack's log groups, and only those (encryption context = log group ARN).
  statement {
    sid       = "CloudWatchLogsEncryptsOurLogGroups"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = local.encrypted_log_group_arns
    }
  }

  # CloudWatch alarms publish to the encrypted SNS topic: publishing needs a data key from this key
  # (AWS re:Post, "configure a CloudWatch alarm with an encrypted SNS topic"). Which alarms may publish is
  # limited by the topic policy (alarms.tf).
  statement {
    sid       = "CloudWatchAlarmsPublishToEncryptedTopic"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
  }
}
