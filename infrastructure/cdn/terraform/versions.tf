terraform {
  required_version = ">= 1.6"
  required_providers {
    cloudflare = {
      source  = "cloudflare/cloudflare"
      version = "~> 5.0"
    }
  }
}

# The API token comes from CLOUDFLARE_API_TOKEN (Zone Settings, DNS, SSL, Rulesets, Page
# Rules and Workers Routes edit on this zone); it never appears in a .tf file.
provider "cloudflare" {}
