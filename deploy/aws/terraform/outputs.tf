output "api_invoke_url" {
  description = "Base URL of the API (append /logs, /logs/recent, /logs/{log_id})."
  value       = aws_api_gateway_stage.this.invoke_url
}

output "api_id" {
  description = "REST API id."
  value       = aws_api_gateway_rest_api.this.id
}

output "table_name" {
  description = "DynamoDB table name."
  value       = aws_dynamodb_table.logs.name
}

output "table_arn" {
  description = "DynamoDB table ARN."
  value       = aws_dynamodb_table.logs.arn
}

output "store_url" {
  description = "Store URL for `logsvc serve --store ...` against the same table."
  value       = local.store_url
}

output "ingest_role_arn" {
  description = "Role for clients that write logs (assume with the external ID)."
  value       = aws_iam_role.client["ingest"].arn
}

output "read_role_arn" {
  description = "Role for clients that read logs (assume with the external ID)."
  value       = aws_iam_role.client["read"].arn
}

output "admin_role_arn" {
  description = "Role for clients that read and write logs (assume with the external ID)."
  value       = aws_iam_role.client["admin"].arn
}

output "kms_key_arn" {
  description = "Customer managed key of the table, the Lambda environment, the log groups and the alarm topic."
  value       = aws_kms_key.this.arn
}

output "sns_topic_arn" {
  description = "Topic the alarms publish to."
  value       = aws_sns_topic.alarms.arn
}

output "cognito_user_pool_id" {
  description = "Cognito user pool id (null unless enable_cognito)."
  value       = one(aws_cognito_user_pool.this[*].id)
}

output "cognito_client_id" {
  description = "Cognito app client id (null unless enable_cognito)."
  value       = one(aws_cognito_user_pool_client.this[*].id)
}
