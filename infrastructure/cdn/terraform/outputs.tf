output "ruleset_ids" {
  description = "The rulesets this configuration owns."
  value = {
    cache       = cloudflare_ruleset.cache.id
    firewall    = cloudflare_ruleset.firewall.id
    managed_waf = cloudflare_ruleset.managed_waf.id
    rate_limit  = cloudflare_ruleset.rate_limit.id
  }
}

output "origin_records" {
  description = "Origin region => proxied DNS name (reachable only through the Worker)."
  value       = { for region, record in cloudflare_dns_record.origin : region => record.name }
}
