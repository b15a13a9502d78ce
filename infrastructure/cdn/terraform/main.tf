# The election zone on Cloudflare: strict TLS to the origins with authenticated origin pulls,
# DNS for the site and each origin region, the rulesets generated from the shared policy
# (../cloudflare/*.json, written by `cargo xtask cdn-rules`, so Terraform and the policy
# cannot disagree), the legacy page rules, and the route that puts the Worker in front.

locals {
  rules_dir  = "${path.module}/../cloudflare"
  cache      = jsondecode(file("${local.rules_dir}/cache-rules.json"))
  firewall   = jsondecode(file("${local.rules_dir}/firewall-rules.json"))
  managed    = jsondecode(file("${local.rules_dir}/waf-managed.json"))
  rate_limit = jsondecode(file("${local.rules_dir}/rate-limit-rules.json"))
  page_rules = jsondecode(file("${local.rules_dir}/page-rules.json")).rules
  # The generator writes page-rule targets for this host; they are applied to var.zone_name,
  # the same variable the zone, its DNS and the Worker route use.
  generated_host = "vote.example"

  zone_settings = {
    ssl                      = "strict"
    always_use_https         = "on"
    min_tls_version          = "1.2"
    tls_1_3                  = "on"
    automatic_https_rewrites = "on"
    http3                    = "on"
    early_hints              = "on"
    tls_client_auth          = "on" # authenticated origin pulls; the gateway checks the client certificate
    security_level           = "medium"
    browser_check            = "on"
  }
}

# --- Zone settings ------------------------------------------------------------------------

resource "cloudflare_zone_setting" "this" {
  for_each   = local.zone_settings
  zone_id    = var.zone_id
  setting_id = each.key
  value      = each.value
}

# --- DNS ----------------------------------------------------------------------------------

resource "cloudflare_dns_record" "site" {
  zone_id = var.zone_id
  name    = var.zone_name
  type    = "A"
  content = "192.0.2.1" # placeholder target: every request is answered by the Worker route
  proxied = true
  ttl     = 1
  comment = "Served by the surge-edge Worker; the address is never reached."
}

resource "cloudflare_dns_record" "origin" {
  for_each = var.origins
  zone_id  = var.zone_id
  name     = each.value
  type     = "A"
  content  = var.origin_addresses[each.key]
  proxied  = true
  ttl      = 1
  comment  = "Origin region ${each.key} (gateway load balancer)."
}

# --- Rulesets (generated from shared/policy) ----------------------------------------------

resource "cloudflare_ruleset" "cache" {
  zone_id     = var.zone_id
  name        = local.cache.name
  description = local.cache.description
  kind        = "zone"
  phase       = local.cache.phase
  rules       = local.cache.rules
}

resource "cloudflare_ruleset" "firewall" {
  zone_id     = var.zone_id
  name        = local.firewall.name
  description = local.firewall.description
  kind        = "zone"
  phase       = local.firewall.phase
  # First: origin hosts answer only this zone's Worker (a direct request would skip the edge's
  # caching, limits and signature); then the rules generated from the policy.
  rules = concat([{
    description = "Origin hosts answer only the edge Worker"
    expression  = "(http.host in {${join(" ", [for host in values(var.origins) : "\"${host}\""])}} and cf.worker.upstream_zone ne \"${var.zone_name}\")"
    action      = "block"
    enabled     = true
  }], local.firewall.rules)
}

resource "cloudflare_ruleset" "managed_waf" {
  zone_id     = var.zone_id
  name        = local.managed.name
  description = local.managed.description
  kind        = "zone"
  phase       = local.managed.phase
  rules       = local.managed.rules
}

resource "cloudflare_ruleset" "rate_limit" {
  zone_id     = var.zone_id
  name        = local.rate_limit.name
  description = local.rate_limit.description
  kind        = "zone"
  phase       = local.rate_limit.phase
  rules       = local.rate_limit.rules
}

# --- Page rules ---------------------------------------------------------------------------

resource "cloudflare_page_rule" "rule" {
  for_each = {
    for rule in local.page_rules :
    replace(rule.targets[0].constraint.value, local.generated_host, var.zone_name) => rule
  }
  zone_id  = var.zone_id
  target   = each.key
  priority = each.value.priority
  status   = each.value.status
  actions = {
    for action in each.value.actions :
    action.id => try(action.value, true)
  }
}

# --- The edge Worker in front of everything -----------------------------------------------

resource "cloudflare_workers_route" "edge" {
  zone_id = var.zone_id
  pattern = "${var.zone_name}/*"
  script  = var.worker_script
}
