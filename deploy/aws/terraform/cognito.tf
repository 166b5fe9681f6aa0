# Optional: Cognito user pool authorization instead of IAM (enable_cognito). Users are created by an
# administrator only and put in one of the groups ingest, read, admin; the handlers take the role from the
# token's cognito:groups claim. See api.tf for why IAM stays the default.

locals {
  cognito_groups = var.enable_cognito ? toset(["ingest", "read", "admin"]) : toset([])
}

resource "aws_cognito_user_pool" "this" {
  count = var.enable_cognito ? 1 : 0

  name                     = "${var.name_prefix}-users"
  deletion_protection      = var.deletion_protection ? "ACTIVE" : "INACTIVE"
  username_attributes      = ["email"]
  auto_verified_attributes = ["email"]
  mfa_configuration        = var.cognito_mfa_configuration
  user_pool_tier           = var.cognito_threat_protection ? "PLUS" : "ESSENTIALS"

  admin_create_user_config {
    allow_admin_create_user_only = true
  }

  password_policy {
    minimum_length                   = 14
    require_lowercase                = true
    require_uppercase                = true
    require_numbers                  = true
    require_symbols                  = true
    temporary_password_validity_days = 1
  }

  software_token_mfa_configuration {
    enabled = true
  }

  account_recovery_setting {
    recovery_mechanism {
      name     = "verified_email"
      priority = 1
    }
  }

  # Threat protection (compromised credentials, adaptive authentication) needs the PLUS plan.
  user_pool_add_ons {
    advanced_security_mode = var.cognito_threat_protection ? "ENFORCED" : "OFF"
  }
}

resource "aws_cognito_user_pool_client" "this" {
  count = var.enable_cognito ? 1 : 0

  name                          = "${var.name_prefix}-cli"
  user_pool_id                  = aws_cognito_user_pool.this[0].id
  generate_secret               = false
  explicit_auth_flows           = ["ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]
  prevent_user_existence_errors = "ENABLED"
  enable_token_revocation       = true
  access_token_validity         = 60
  id_token_validity             = 60
  refresh_token_validity        = 12

  token_validity_units {
    access_token  = "minutes"
    id_token      = "minutes"
    refresh_token = "hours"
  }
}

resource "aws_cognito_user_group" "roles" {
  for_each = local.cognito_groups

  name         = each.key
  user_pool_id = aws_cognito_user_pool.this[0].id
  description  = "logsvc role ${each.key}"
}

resource "aws_api_gateway_authorizer" "cognito" {
  count = var.enable_cognito ? 1 : 0

  name            = "${var.name_prefix}-cognito"
  rest_api_id     = aws_api_gateway_rest_api.this.id
  type            = "COGNITO_USER_POOLS"
  provider_arns   = [aws_cognito_user_pool.this[0].arn]
  identity_source = "method.request.header.Authorization"
}
