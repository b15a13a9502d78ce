variable "zone_id" {
  description = "The Cloudflare zone id (32 hex digits) of the election site."
  type        = string
  validation {
    condition     = can(regex("^[0-9a-f]{32}$", var.zone_id))
    error_message = "zone_id must be the 32 hex digits shown on the zone's overview page."
  }
}

variable "zone_name" {
  description = "The zone's host name, e.g. vote.example."
  type        = string
  default     = "vote.example"
}

variable "origins" {
  description = "Origin region name => the gateway host name of that region's cluster (origin.<region>.vote.example)."
  type        = map(string)
  default = {
    "eu-west" = "origin-eu-west.vote.example"
    "us-east" = "origin-us-east.vote.example"
  }
}

variable "origin_addresses" {
  description = "Origin region name => the public address of its gateway load balancer."
  type        = map(string)
}

variable "worker_script" {
  description = "The edge Worker's script name (wrangler.toml `name`)."
  type        = string
  default     = "surge-edge"
}
