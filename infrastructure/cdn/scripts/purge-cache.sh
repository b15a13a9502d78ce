#!/usr/bin/env bash
# Purges Surge's caches in one call: L1 in every origin pod, L2 (Redis) and Cloudflare,
# through the origin's admin API (POST /performance/cache/invalidate).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=SCRIPTDIR/lib.sh
source "$here/lib.sh"

usage() {
  cat <<'USAGE'
Usage: purge-cache.sh [--tag TAG]... [--url URL]... [--prefix HOST/PATH]... [--host HOST]...
                      [--layers l1,l2,l3] [--no-cascade] [--dry-run]
       purge-cache.sh --everything --yes-really [--layers l1,l2,l3]

Purges by tag (election:7), absolute URL, URL prefix without scheme, or host, through the
origin admin API. Prints one line per tier; exits non-zero if any tier failed.

Environment:
  SURGE_ADMIN_URL         origin base URL, e.g. http://127.0.0.1:8080
  SURGE_ADMIN_TOKEN_FILE  file holding the admin token (or SURGE_ADMIN_TOKEN)

Examples:
  purge-cache.sh --tag election:7
  purge-cache.sh --url https://vote.example/api/elections/7/results
  purge-cache.sh --prefix vote.example/api/elections/ --layers l3
USAGE
}

tags=() urls=() prefixes=() hosts=() layers="" cascade=true everything=false really=false dry_run=false
while (($#)); do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --tag) [[ $# -ge 2 ]] || usage_error "--tag needs a value"
      [[ "$2" =~ ^[A-Za-z0-9._:-]{1,128}$ ]] || usage_error "tag '$2': letters, digits and . _ : - only (e.g. election:7)"
      tags+=("$2"); shift 2 ;;
    --url) [[ $# -ge 2 ]] || usage_error "--url needs a value"
      [[ "$2" =~ ^https?://[^[:space:]]+$ ]] || usage_error "url '$2' must be absolute (https://host/path)"
      urls+=("$2"); shift 2 ;;
    --prefix) [[ $# -ge 2 ]] || usage_error "--prefix needs a value"
      [[ "$2" =~ ^[A-Za-z0-9.-]+/[^[:space:]]*$ ]] || usage_error "prefix '$2' must be host/path without a scheme (vote.example/api/)"
      prefixes+=("$2"); shift 2 ;;
    --host) [[ $# -ge 2 ]] || usage_error "--host needs a value"
      [[ "$2" =~ ^[A-Za-z0-9.-]+$ ]] || usage_error "host '$2' is not a host name"
      hosts+=("$2"); shift 2 ;;
    --layers) [[ $# -ge 2 ]] || usage_error "--layers needs a value"
      [[ "$2" =~ ^(l1|l2|l3)(,(l1|l2|l3))*$ ]] || usage_error "layers '$2': a comma list of l1, l2, l3"
      layers="$2"; shift 2 ;;
    --no-cascade) cascade=false; shift ;;
    --everything) everything=true; shift ;;
    --yes-really) really=true; shift ;;
    --dry-run) dry_run=true; shift ;;
    *) usage_error "unknown argument '$1'" ;;
  esac
done

targets=$((${#tags[@]} + ${#urls[@]} + ${#prefixes[@]} + ${#hosts[@]}))
if $everything; then
  ((targets == 0)) || usage_error "--everything cannot be combined with other targets"
  $really || usage_error "--everything empties every cache tier: add --yes-really if you mean it"
  body='{"everything":true'
else
  ((targets > 0)) || usage_error "name something to purge (--tag, --url, --prefix, --host)"
  body="{\"tags\":$(json_array "${tags[@]+"${tags[@]}"}"),\"keys\":$(json_array "${urls[@]+"${urls[@]}"}"),\"prefixes\":$(json_array "${prefixes[@]+"${prefixes[@]}"}"),\"hosts\":$(json_array "${hosts[@]+"${hosts[@]}"}"),\"cascade\":$cascade"
fi
if [[ -n "$layers" ]]; then
  IFS=, read -r -a layer_list <<<"$layers"
  body+=",\"layers\":$(json_array "${layer_list[@]}")"
fi
body+="}"

if $dry_run; then
  printf 'POST /performance/cache/invalidate %s\n' "$body"
  exit 0
fi
need curl
admin_call POST /performance/cache/invalidate "$body"
