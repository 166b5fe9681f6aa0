# The AWS shape of Simple Log Service: API Gateway (REST, IAM or Cognito) -> two Lambda functions -> DynamoDB.
# Run from this directory:
#   terraform init
#   terraform apply -var-file=environments/dev.tfvars -var="external_id=..."
terraform {
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.83 is the first 5.x release with aws_cognito_user_pool.user_pool_tier (needed for threat protection).
      version = "~> 5.83"
    }
  }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = merge(var.tags, {
      Application = "logsvc"
      Environment = var.environment
      ManagedBy   = "terraform"
    })
  }
}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name
}
