# terraform apply -var-file=environments/prod.tfvars   (external_id: TF_VAR_external_id, never in this file)
region      = "eu-west-1"
environment = "prod"
name_prefix = "logsvc"

deletion_protection = true
retention_days      = 30
log_retention_days  = 365
shards              = 4

lambda_architecture         = "arm64"
lambda_package              = "../../../dist/lambda/logsvc-lambda-arm64.zip"
ingest_memory_size          = 1024
read_memory_size            = 1024
ingest_reserved_concurrency = 200
read_reserved_concurrency   = 100

throttle_rate_limit  = 1000
throttle_burst_limit = 2000

# Replace with the role(s) of the producing and reading applications.
trusted_principal_arns = [
  "arn:aws:iam::222222222222:role/app-log-shipper",
  "arn:aws:iam::222222222222:role/ops-log-reader",
]

ingest_services = ["*"]
read_services   = ["*"]
admin_services  = ["*"]

# Replace with the on-call address.
alarm_email                  = "oncall@example.com"
api_5xx_threshold            = 5
api_latency_p99_threshold_ms = 2000
