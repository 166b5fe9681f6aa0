# ---------------------------------------------------------------------------------------------------------------
# Where and what
# ---------------------------------------------------------------------------------------------------------------

variable "region" {
  description = "AWS region to deploy into."
  type        = string
}

variable "environment" {
  description = "Environment name, used in tags (dev, staging, prod, ...)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,15}$", var.environment))
    error_message = "environment must be lower-case letters, digits and hyphens, at most 16 characters."
  }
}

variable "name_prefix" {
  description = "Prefix of every resource name (table, functions, roles, API, log groups)."
  type        = string
  default     = "logsvc"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,31}$", var.name_prefix))
    error_message = "name_prefix must be 2-32 lower-case letters, digits and hyphens, starting with a letter."
  }
}

variable "tags" {
  description = "Extra tags applied to every resource through the provider's default_tags."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------

variable "deletion_protection" {
  description = "DynamoDB deletion protection (and Cognito user pool deletion protection). Turn off only to destroy the stack."
  type        = bool
  default     = true
}

variable "shards" {
  description = "Write shards per service (DESIGN.md section 4). Changing it on a table with data needs a migration."
  type        = number
  default     = 4

  validation {
    condition     = var.shards >= 1 && var.shards <= 64 && floor(var.shards) == var.shards
    error_message = "shards must be a whole number from 1 to 64."
  }
}

variable "retention_days" {
  description = "Days a log entry is kept; the handlers set the DynamoDB TTL attribute expires_at at write time."
  type        = number
  default     = 30

  validation {
    condition     = var.retention_days >= 1 && floor(var.retention_days) == var.retention_days
    error_message = "retention_days must be a whole number of at least 1."
  }
}

variable "log_retention_days" {
  description = "Retention of the service's own CloudWatch log groups (Lambda, API access and execution logs)."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be one of the values CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, ..., 365, ..., 3653)."
  }
}

# ---------------------------------------------------------------------------------------------------------------
# Lambda
# ---------------------------------------------------------------------------------------------------------------

variable "lambda_package" {
  description = "Path (relative to this directory) of the deployment zip built by `logsvc aws package`."
  type        = string
  default     = "../../../dist/lambda/logsvc-lambda-arm64.zip"
}

variable "lambda_architecture" {
  description = "Instruction set of both functions; must match the package (arm64 or x86_64)."
  type        = string
  default     = "arm64"

  validation {
    condition     = contains(["arm64", "x86_64"], var.lambda_architecture)
    error_message = "lambda_architecture must be arm64 or x86_64."
  }
}

variable "ingest_memory_size" {
  description = "Memory (MB) of the ingest function; CPU scales with it."
  type        = number
  default     = 512

  validation {
    condition     = var.ingest_memory_size >= 128 && var.ingest_memory_size <= 10240
    error_message = "ingest_memory_size must be between 128 and 10240 MB."
  }
}

variable "read_memory_size" {
  description = "Memory (MB) of the read function; CPU scales with it."
  type        = number
  default     = 512

  validation {
    condition     = var.read_memory_size >= 128 && var.read_memory_size <= 10240
    error_message = "read_memory_size must be between 128 and 10240 MB."
  }
}

variable "ingest_timeout" {
  description = "Timeout (seconds) of the ingest function. API Gateway gives up after 29 s."
  type        = number
  default     = 20

  validation {
    condition     = var.ingest_timeout >= 1 && var.ingest_timeout <= 29
    error_message = "ingest_timeout must be between 1 and 29 seconds (the API Gateway integration limit)."
  }
}

variable "read_timeout" {
  description = "Timeout (seconds) of the read function. API Gateway gives up after 29 s."
  type        = number
  default     = 10

  validation {
    condition     = var.read_timeout >= 1 && var.read_timeout <= 29
    error_message = "read_timeout must be between 1 and 29 seconds (the API Gateway integration limit)."
  }
}

variable "ingest_reserved_concurrency" {
  description = "Reserved concurrency of the ingest function: a ceiling that protects the account and the table."
  type        = number
  default     = 100

  validation {
    condition     = var.ingest_reserved_concurrency >= 1
    error_message = "ingest_reserved_concurrency must be at least 1 (0 would reject every request)."
  }
}

variable "read_reserved_concurrency" {
  description = "Reserved concurrency of the read function: a ceiling that protects the account and the table."
  type        = number
  default     = 50

  validation {
    condition     = var.read_reserved_concurrency >= 1
    error_message = "read_reserved_concurrency must be at least 1 (0 would reject every request)."
  }
}

# ---------------------------------------------------------------------------------------------------------------
# API
# ---------------------------------------------------------------------------------------------------------------

variable "stage_name" {
  description = "API Gateway stage name (the first path segment of the invoke URL)."
  type        = string
  default     = "v1"

  validation {
    condition     = can(regex("^[A-Za-z0-9_]{1,64}$", var.stage_name))
    error_message = "stage_name must be 1-64 letters, digits or underscores."
  }
}

variable "throttle_rate_limit" {
  description = "Steady-state requests per second allowed on the stage (every method)."
  type        = number
  default     = 1000

  validation {
    condition     = var.throttle_rate_limit > 0
    error_message = "throttle_rate_limit must be positive."
  }
}

variable "throttle_burst_limit" {
  description = "Burst (token bucket size) allowed on the stage (every method)."
  type        = number
  default     = 2000

  validation {
    condition     = var.throttle_burst_limit > 0 && floor(var.throttle_burst_limit) == var.throttle_burst_limit
    error_message = "throttle_burst_limit must be a positive whole number."
  }
}

variable "minimum_compression_size" {
  description = "Responses of at least this many bytes are gzip-compressed for clients that send Accept-Encoding (-1: no compression)."
  type        = number
  default     = 1024

  validation {
    condition     = var.minimum_compression_size >= -1 && var.minimum_compression_size <= 10485760
    error_message = "minimum_compression_size must be -1 (off) or 0-10485760 bytes."
  }
}

variable "manage_api_gateway_account" {
  description = "Set the account-wide (per region) CloudWatch role API Gateway logs with. Turn off if another stack already manages aws_api_gateway_account in this region."
  type        = bool
  default     = true
}

# ---------------------------------------------------------------------------------------------------------------
# Clients
# ---------------------------------------------------------------------------------------------------------------

variable "trusted_principal_arns" {
  description = "IAM principals (accounts, roles, users) allowed to assume the ingest, read and admin client roles."
  type        = list(string)

  validation {
    condition     = length(var.trusted_principal_arns) > 0 && alltrue([for arn in var.trusted_principal_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:", arn))])
    error_message = "trusted_principal_arns must hold at least one IAM ARN (arn:aws:iam::123456789012:...)."
  }
}

variable "external_id" {
  description = "sts:ExternalId the trusted principals must present to assume a client role. Pass it with -var or TF_VAR_external_id; never commit it."
  type        = string
  sensitive   = true

  validation {
    condition     = length(var.external_id) > 0
    error_message = "external_id must not be empty."
  }

  validation {
    condition     = can(regex("^[A-Za-z0-9+=,.@:/_-]{2,1224}$", var.external_id))
    error_message = "external_id must be 2-1224 characters of letters, digits and +=,.@:/-_ (what STS accepts)."
  }
}

variable "ingest_services" {
  description = "Service names (glob patterns) the ingest role may write."
  type        = list(string)
  default     = ["*"]
}

variable "read_services" {
  description = "Service names (glob patterns) the read role may read."
  type        = list(string)
  default     = ["*"]
}

variable "admin_services" {
  description = "Service names (glob patterns) the admin role may read and write."
  type        = list(string)
  default     = ["*"]
}

# ---------------------------------------------------------------------------------------------------------------
# Cognito (optional)
# ---------------------------------------------------------------------------------------------------------------

variable "enable_cognito" {
  description = "Authorize with Cognito user pool JWTs instead of IAM (SigV4). A REST API method has exactly one authorization type, so this switches every method over."
  type        = bool
  default     = false
}

variable "cognito_default_roles" {
  description = "Roles of a Cognito user in no group (an ID token without cognito:groups), e.g. [\"ingest\", \"read\"] for the older Cognito clients' users. Empty: such a user may do nothing."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for role in var.cognito_default_roles : contains(["ingest", "read", "admin"], role)])
    error_message = "cognito_default_roles may hold only ingest, read and admin."
  }
}

variable "cognito_mfa_configuration" {
  description = "MFA for Cognito users: ON (required) or OPTIONAL."
  type        = string
  default     = "ON"

  validation {
    condition     = contains(["ON", "OPTIONAL"], var.cognito_mfa_configuration)
    error_message = "cognito_mfa_configuration must be ON or OPTIONAL."
  }
}

variable "cognito_threat_protection" {
  description = "Cognito threat protection (formerly advanced security) in ENFORCED mode; needs the PLUS feature plan, which costs more per user."
  type        = bool
  default     = true
}

# ---------------------------------------------------------------------------------------------------------------
# Alarms
# ---------------------------------------------------------------------------------------------------------------

variable "alarm_email" {
  description = "E-mail address subscribed to the alarm topic (empty: no subscription)."
  type        = string
  default     = ""
}

variable "alarm_period" {
  description = "Period (seconds) of every alarm's metric."
  type        = number
  default     = 300
}

variable "alarm_evaluation_periods" {
  description = "Consecutive periods over the threshold before an alarm fires."
  type        = number
  default     = 1
}

variable "lambda_errors_threshold" {
  description = "Lambda Errors (sum per period, per function) at or above which the alarm fires."
  type        = number
  default     = 1
}

variable "lambda_throttles_threshold" {
  description = "Lambda Throttles (sum per period, per function) at or above which the alarm fires."
  type        = number
  default     = 1
}

variable "api_5xx_threshold" {
  description = "API Gateway 5XXError (sum per period) at or above which the alarm fires."
  type        = number
  default     = 5
}

variable "api_latency_p99_threshold_ms" {
  description = "API Gateway Latency p99 (milliseconds) above which the alarm fires."
  type        = number
  default     = 2000
}

variable "dynamodb_throttle_threshold" {
  description = "DynamoDB throttled requests / throttle events (sum per period) at or above which the alarms fire."
  type        = number
  default     = 1
}
