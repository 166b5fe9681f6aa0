# Optional: Cognito user pool authorization instead of IAM (enable_cognito). Users are created by an
# administrator only and put in one of the groups ingest, read, admin; the handlers take the role from the
# token's cognito:groups claim and the services it covers from custom:services (LOGSVC_JWT_SERVICE_CLAIM in
# lambda.tf). See api.tf for why IAM stays the default.
#
# Clients send the ID token: the methods set no authorization scopes, so the authorizer validates ID tokens,
# and only ID tokens carry user attributes such as custom:services (access tokens do not).

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

  # The services a user may write or read, as comma-separated glob patterns ("payments*,checkout"); in the ID
  # token as custom:services. Unset means every service. Only an administrator sets it
  # (admin-update-user-attributes): the app client below cannot write it. Mutable so that it can be changed;
  # the constraints block keeps the provider from planning a replacement of the pool on every run.
  schema {
    name                     = "services"
    attribute_data_type      = "String"
    mutable                  = true
    required                 = false
    developer_only_attribute = false

    string_attribute_constraints {
      min_length = 0
      max_length = 2048
    }
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

  # Without write_attributes an app client may write the user's attributes with the user's own access token
  # (UpdateUserAttributes), so a user could widen custom:services. The list must not be empty: an empty one
  # leaves every attribute writable. Users may change their display name, nothing else. An attribute appears
  # in the ID token only if the client can read it.
  read_attributes  = ["email", "email_verified", "name", "custom:services"]
  write_attributes = ["name"]

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
