#!/usr/bin/env bash
# Warms Surge's caches before a surge: the origin fetches each URL through its own public
# routes (POST /performance/cache/warm), filling L1 and L2 as a reader's request would.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=SCRIPTDIR/lib.sh
source "$here/lib.sh"

usage() {
  cat <<'USAGE'
Usage: warm-cache.sh [--file FILE] [--concurrency N] [URL-OR-PATH]...

Warms each URL (https://vote.example/api/elections/7) or path (/api/elections/7), read from
the arguments and/or FILE (one per line, # comments). Prints how many were warmed and which
failed; exits non-zero if any failed.

Environment:
  SURGE_ADMIN_URL         origin base URL, e.g. http://127.0.0.1:8080
  SURGE_ADMIN_TOKEN_FILE  file holding the admin token (or SURGE_ADMIN_TOKEN)
USAGE
}

items=() concurrency=8
while (($#)); do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --file) [[ $# -ge 2 ]] || usage_error "--file needs a value"
      [[ -r "$2" ]] || usage_error "cannot read '$2'"
      while IFS= read -r line || [[ -n "$line" ]]; do
        line="${line%%#*}"
        line="${line//[[:space:]]/}"
        [[ -n "$line" ]] && items+=("$line")
      done <"$2"
      shift 2 ;;
    --concurrency) [[ $# -ge 2 ]] || usage_error "--concurrency needs a value"
      if ! [[ "$2" =~ ^[0-9]+$ ]] || (($2 < 1 || $2 > 64)); then
        usage_error "concurrency '$2': a number from 1 to 64"
      fi
      concurrency="$2"; shift 2 ;;
    -*) usage_error "unknown option '$1'" ;;
    *) items+=("$1"); shift ;;
  esac
done
((${#items[@]} > 0)) || usage_error "name at least one URL or path to warm"
for item in "${items[@]}"; do
  [[ "$item" =~ ^(/|https?://)[^[:space:]]*$ ]] || usage_error "'$item' is neither a path (/api/...) nor an absolute URL"
done

need curl
report="$(admin_call POST /performance/cache/warm "{\"urls\":$(json_array "${items[@]}"),\"concurrency\":$concurrency}")"
printf '%s\n' "$report"
[[ "$report" == *'"failed":[]'* ]] || die "some URLs could not be warmed (see \"failed\" above)"
