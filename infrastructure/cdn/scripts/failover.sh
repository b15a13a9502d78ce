#!/usr/bin/env bash
# Moves traffic off a failing origin region: checks the target region is healthy, scales it
# up for the extra load (emergency scale-up through its admin API), then redeploys the edge
# Worker with the failing region removed from SURGE_GEO's failover order. The edge already
# fails over per request on errors; this makes the move explicit and keeps it.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=SCRIPTDIR/lib.sh
source "$here/lib.sh"

usage() {
  cat <<'USAGE'
Usage: failover.sh --from REGION --to REGION --geo FILE [--replicas N] [--duration 2h]
                   [--reason TEXT] [--apply]

  --from      the failing region (removed from every failover list)
  --to        the region taking its traffic (must stay in the lists)
  --geo       the current SURGE_GEO JSON (regions and failover order)
  --replicas  api-gateway replicas to hold in the target region (default 40)
  --duration  how long the emergency scale-up holds (default 2h)
  --apply     scale and redeploy; without it, print what would be done

Environment (for the target region's origin):
  SURGE_ADMIN_URL         base URL, e.g. http://127.0.0.1:8080
  SURGE_ADMIN_TOKEN_FILE  file holding the admin token (or SURGE_ADMIN_TOKEN)
USAGE
}

from="" to="" geo="" replicas=40 duration="2h" reason="" apply=false
while (($#)); do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --from) [[ $# -ge 2 ]] || usage_error "--from needs a value"; from="$2"; shift 2 ;;
    --to) [[ $# -ge 2 ]] || usage_error "--to needs a value"; to="$2"; shift 2 ;;
    --geo) [[ $# -ge 2 ]] || usage_error "--geo needs a value"; geo="$2"; shift 2 ;;
    --replicas) [[ $# -ge 2 ]] || usage_error "--replicas needs a value"
      if ! [[ "$2" =~ ^[0-9]+$ ]] || (($2 < 1 || $2 > 1000)); then
        usage_error "replicas '$2': a number from 1 to 1000"
      fi
      replicas="$2"; shift 2 ;;
    --duration) [[ $# -ge 2 ]] || usage_error "--duration needs a value"
      [[ "$2" =~ ^[0-9]+(m|h)$ ]] || usage_error "duration '$2': minutes or hours, e.g. 90m or 2h"
      duration="$2"; shift 2 ;;
    --reason) [[ $# -ge 2 ]] || usage_error "--reason needs a value"; reason="$2"; shift 2 ;;
    --apply) apply=true; shift ;;
    *) usage_error "unknown argument '$1'" ;;
  esac
done
[[ -n "$from" && -n "$to" && -n "$geo" ]] || usage_error "--from, --to and --geo are required"
[[ "$from" =~ ^[A-Za-z0-9_-]+$ && "$to" =~ ^[A-Za-z0-9_-]+$ ]] || usage_error "region names are letters, digits, - and _"
[[ "$from" != "$to" ]] || usage_error "--from and --to name the same region"
[[ -r "$geo" ]] || usage_error "cannot read --geo file '$geo'"
need python3
reason="${reason:-failover from $from to $to}"

# The new SURGE_GEO: the failing region dropped from every failover list.
new_geo="$(python3 - "$geo" "$from" "$to" <<'PY'
import json, sys
path, dead, target = sys.argv[1:]
try:
    geo = json.load(open(path))
except ValueError as e:
    sys.exit(f"error: {path} is not JSON: {e}")
regions = geo.get("regions", {})
for name in (dead, target):
    if name not in regions:
        sys.exit(f"error: region {name!r} is not in {path} (regions: {', '.join(sorted(regions))})")
def drop(order):
    kept = [r for r in order if r != dead]
    return kept if kept else [target]
geo["default"] = drop(geo.get("default", []))
for table in ("countries", "continents"):
    for key, order in geo.get(table, {}).items():
        geo[table][key] = drop(order)
if target not in geo["default"]:
    geo["default"].insert(0, target)
print(json.dumps(geo, separators=(",", ":")))
PY
)"

emergency="{\"targets\":{\"api-gateway\":$replicas},\"duration\":\"$duration\",\"reason\":$(json_string "$reason")}"
if ! $apply; then
  echo "would check:    GET  /performance/health on ${SURGE_ADMIN_URL:-<SURGE_ADMIN_URL>}"
  echo "would scale:    POST /performance/scaling/emergency $emergency"
  echo "would deploy:   npx wrangler deploy --var SURGE_GEO:$new_geo"
  echo "(dry run: add --apply to do it)"
  exit 0
fi

need curl
need npx
health="$(admin_call GET /performance/health)"
[[ "$health" == *'"status":"ok"'* ]] || die "region $to is not healthy: $health"
admin_call POST /performance/scaling/emergency "$emergency"
npx wrangler deploy --var "SURGE_GEO:$new_geo"
echo "failover from $from to $to done; revert with this script and the old --geo file when $from recovers"
