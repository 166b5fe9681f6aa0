# terraform apply -var-file=environments/dev.tfvars   (external_id: TF_VAR_external_id, never in this file)
region      = "eu-west-1"
environment = "dev"
name_prefix = "logsvc-dev"

# A dev table can be destroyed; entries are kept a week; the service's own logs a month.
deletion_protection = false
retention_days      = 7
log_retention_days  = 30

lambda_architecture         = "arm64"
lambda_package              = "../../../dist/lambda/logsvc-lambda-arm64.zip"
ingest_reserved_concurrency = 10
read_reserved_concurrency   = 10

throttle_rate_limit  = 50
throttle_burst_limit = 100

# Replace with the account or role(s) that run the clients.
trusted_principal_arns = ["arn:aws:iam::111111111111:root"]

alarm_email = ""
