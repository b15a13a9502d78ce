#!/usr/bin/env bash
# Soak: runs bench/scenarios/soak.toml against a fresh origin (embedded store, L1 bounded to
# --l1-mib) and samples the origin every 10 s: resident memory, open descriptors and
# established connections. Prints the samples and the verdict: RSS within the L1 bound plus
# --overhead-mib and flat over the last third of the run, descriptors back to where they
# started once the load has stopped (while it runs they follow the connections the open-model
# load holds, which grow whenever the origin is short of CPU); p99 per minute for the record.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  cat <<'HELP'
Usage: bench/soak.sh [--time-scale 1] [--l1-mib 32] [--overhead-mib 128] [--out DIR]

  --time-scale    multiply the scenario's 10 minutes (0.1 for a one-minute rehearsal)
  --l1-mib        the origin's L1 byte bound (SURGE_L1_MAX_BYTES)
  --overhead-mib  what RSS may exceed the L1 bound by: the runtime and code, the key memo
                  (up to 100,000 recent URLs), allocator slack, connection buffers
  --out           where the samples and the surge-load report go (default target/soak)

Builds surge-origin and surge-load with the bench profile unless SURGE_ORIGIN_BIN and
SURGE_LOAD_BIN name binaries. Everything listens on 127.0.0.1.
HELP
}

time_scale=1 l1_mib=32 overhead_mib=128 out=target/soak
while (($#)); do
  case "$1" in
    --time-scale) time_scale="${2:?--time-scale needs a number}"; shift 2 ;;
    --l1-mib) l1_mib="${2:?--l1-mib needs a number}"; shift 2 ;;
    --overhead-mib) overhead_mib="${2:?--overhead-mib needs a number}"; shift 2 ;;
    --out) out="${2:?--out needs a directory}"; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "soak: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[[ "$time_scale" =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "soak: --time-scale '$time_scale' is not a number" >&2; exit 2; }
for n in "$l1_mib" "$overhead_mib"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "soak: '$n' is not a positive whole number of MiB" >&2; exit 2; }
done

if [[ -z "${SURGE_ORIGIN_BIN:-}" || -z "${SURGE_LOAD_BIN:-}" ]]; then
  cargo build --profile bench -p surge-origin -p surge-bench --bins
  SURGE_ORIGIN_BIN="${SURGE_ORIGIN_BIN:-target/release/surge-origin}"
  SURGE_LOAD_BIN="${SURGE_LOAD_BIN:-target/release/surge-load}"
fi
mkdir -p "$out"
read -r port admin_port < <(python3 bench/ports.py 2)
SURGE_LISTEN="127.0.0.1:$port" SURGE_ADMIN_LISTEN="127.0.0.1:$admin_port" SURGE_L1_MAX_BYTES=$((l1_mib * 1024 * 1024)) SURGE_L1_MAX_ITEMS=1000000 \
  RUST_LOG=warn "$SURGE_ORIGIN_BIN" >"$out/origin.log" 2>&1 &
origin=$!
trap 'kill "$origin" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break
  sleep 0.1
done

sample() {
  local rss fds conns
  rss=$(awk '/^VmRSS/ {print int($2 / 1024)}' "/proc/$origin/status")
  fds=$(find "/proc/$origin/fd" -mindepth 1 -maxdepth 1 | wc -l)
  conns=$(grep -c " 01 " "/proc/$origin/net/tcp" || true)
  printf '%s,%s,%s,%s\n' "$(date +%s)" "$rss" "$fds" "$conns"
}
echo "unix_time,rss_mib,fds,established" >"$out/samples.csv"
sample >>"$out/samples.csv"
"$SURGE_LOAD_BIN" run --scenario bench/scenarios/soak.toml --target "http://127.0.0.1:$port" \
  --time-scale "$time_scale" --timeout 5s --quiet --out "$out/report.json" &
load=$!
while kill -0 "$load" 2>/dev/null; do
  sleep 10
  sample >>"$out/samples.csv"
done
wait "$load" || true
sample >>"$out/samples.csv"

python3 - "$out" "$l1_mib" "$overhead_mib" <<'PY'
import csv, json, sys
out, l1, overhead = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rows = list(csv.DictReader(open(f"{out}/samples.csv")))
rss = [int(r["rss_mib"]) for r in rows]
fds = [int(r["fds"]) for r in rows]
conns = [int(r["established"]) for r in rows]
report = json.load(open(f"{out}/report.json"))
print(f"samples: {len(rows)} (every 10 s)")
print(f"RSS MiB: start {rss[0]}, max {max(rss)}, end {rss[-1]} (bound {l1} + {overhead} = {l1 + overhead})")
half = len(rows) // 2
print(f"descriptors: start {fds[0]}, max {max(fds)}, end {fds[-1]} after the load; second-half range {min(fds[half:])}–{max(fds[half:])}")
print(f"established connections: max {max(conns)}, end {conns[-1]}")
lat = report["latency"]
print(f"surge-load: {report['requests']} requests, {report['errors']} errors, {report['rps']:.0f}/s; p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms, max {lat['max']:.1f} ms")
minutes = {}
for sec in report["timeline"]:
    minutes.setdefault(sec["t"] // 60, []).append(sec["p99"])
print("p99 by minute (ms, worst second):", ", ".join(f"{max(v):.1f}" for _, v in sorted(minutes.items())))
third = max(1, len(rows) // 3)
settled, last = max(rss[: len(rss) - third]), max(rss[len(rss) - third :])
print(f"RSS over the last third: max {last} MiB against {settled} MiB before it")
ok = (
    max(rss) <= l1 + overhead
    and last <= settled * 1.05 + 4
    and fds[-1] <= fds[0] + 4
)
print("verdict:", "bounded" if ok else "NOT bounded")
sys.exit(0 if ok else 1)
PY
