# The log table (DESIGN.md section 4). logsvc.storage.dynamodb writes the keys:
#   pk  = "<service_name>#<shard>"          base table partition key: each service's writes spread over `shards`
#   sk  = "<ts µs, 19 digits>#<log_id>"     newest first within a partition; no two entries share a key
#   gpk = "<day>#<shard>"                   GSI by_time: the newest entries across services, without a Scan
#   id  = "<log_id>"                        GSI by_id (keys only): GET /logs/{log_id}
#   apk = "<hour received>#<shard>"         GSI by_arrival, sort key ask = "<received µs>#<log_id>": what
#                                           arrived after a point, for GET /logs/tail (decision 23)
# plus a few bookkeeping items (pk "#config" holds the shard count; "#service" and "#day" list what exists).
# GSI reads are eventually consistent. The handlers set the TTL attribute expires_at from retention_days.
resource "aws_dynamodb_table" "logs" {
  name                        = "${var.name_prefix}-logs"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "pk"
  range_key                   = "sk"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "pk"
    type = "S"
  }

  attribute {
    name = "sk"
    type = "S"
  }

  attribute {
    name = "gpk"
    type = "S"
  }

  attribute {
    name = "id"
    type = "S"
  }

  attribute {
    name = "apk"
    type = "S"
  }

  attribute {
    name = "ask"
    type = "S"
  }

  global_secondary_index {
    name            = "by_time"
    hash_key        = "gpk"
    range_key       = "sk"
    projection_type = "ALL"
  }

  global_secondary_index {
    name            = "by_id"
    hash_key        = "id"
    projection_type = "KEYS_ONLY"
  }

  global_secondary_index {
    name            = "by_arrival"
    hash_key        = "apk"
    range_key       = "ask"
    projection_type = "ALL"
  }

  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.this.arn
  }

  point_in_time_recovery {
    enabled = true
  }
}

# The shard count, recorded once: the store reads it at start-up and refuses a URL that names another count,
# since a read must query every shard ever written. ignore_changes keeps the recorded value when var.shards
# changes later, so that the functions fail loudly instead of silently missing entries.
resource "aws_dynamodb_table_item" "config" {
  table_name = aws_dynamodb_table.logs.name
  hash_key   = aws_dynamodb_table.logs.hash_key
  range_key  = aws_dynamodb_table.logs.range_key
  item = jsonencode({
    pk     = { S = "#config" }
    sk     = { S = "#config" }
    shards = { N = tostring(var.shards) }
  })

  lifecycle {
    ignore_changes = [item]
  }
}
