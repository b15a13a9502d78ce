#!/usr/bin/env bash
# Side-by-side anchors: the origin answering cached pages from L1, against nginx
# proxy_cache and Varnish answering the same pages from their caches, under the same wrk
# settings, alternating rounds on one machine. Everything listens on 127.0.0.1.
set -euo pipefail

usage() {
  cat <<'HELP'
Usage: bench/compare-anchors.sh [--duration 10s] [--connections 64] [--threads 1] [--rounds 3]
                                [--pages "/api/elections/1/ballot /elections/1 /elections/20"]
                                [--out FILE]

Measures requests/s and p99 of each cached page — by default the JSON ballot, the HTML
election page and the long ballot's ~16 KiB page of the embedded demo — served by
  origin   surge-origin, L1 hit
  nginx    nginx proxy_cache hit in front of the origin
  varnish  Varnish hit in front of the origin
with the same wrk settings, alternating the three servers page by page for --rounds rounds,
and prints the median of each with the origin's ratios. --out appends the table (Markdown)
to FILE.

Needs nginx, varnish and wrk (apt-get install nginx varnish wrk) and a release build of
surge-origin (built here unless SURGE_ORIGIN_BIN names one).
HELP
}

duration=10s connections=64 threads=1 rounds=3 out=""
pages="/api/elections/1/ballot /elections/1 /elections/20"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --duration) duration="${2:?--duration needs a value like 10s}"; shift 2 ;;
    --connections) connections="${2:?--connections needs a number}"; shift 2 ;;
    --threads) threads="${2:?--threads needs a number}"; shift 2 ;;
    --rounds) rounds="${2:?--rounds needs a number}"; shift 2 ;;
    --pages) pages="${2:?--pages needs paths like /elections/1}"; shift 2 ;;
    --out) out="${2:?--out needs a file}"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "compare-anchors: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
for n in "$connections" "$threads" "$rounds"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "compare-anchors: '$n' is not a positive number" >&2; exit 2; }
done
for page in $pages; do
  [[ "$page" =~ ^/[A-Za-z0-9/_.-]*$ ]] || { echo "compare-anchors: '$page' is not a path like /elections/1" >&2; exit 2; }
done
for tool in nginx varnishd wrk curl; do
  command -v "$tool" >/dev/null || PATH="$PATH:/usr/sbin"
  command -v "$tool" >/dev/null || { echo "compare-anchors: $tool not found: apt-get install nginx varnish wrk curl" >&2; exit 2; }
done

root="$(cd "$(dirname "$0")/.." && pwd)"
origin_bin="${SURGE_ORIGIN_BIN:-}"
if [[ -z "$origin_bin" ]]; then
  cargo build --release -q -p surge-origin --manifest-path "$root/Cargo.toml"
  origin_bin="$root/target/release/surge-origin"
fi

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [[ -f "$work/varnish.pid" ]]; then kill "$(cat "$work/varnish.pid")" 2>/dev/null || true; fi
  sleep 0.5
  rm -rf "$work"
}
trap cleanup EXIT

wait_for() {
  for _ in $(seq 1 100); do curl -fsS -o /dev/null "$1" 2>"$work/curl.log" && return 0; sleep 0.1; done
  echo "compare-anchors: $1 did not answer; logs:" >&2
  tail -n 20 "$work"/*.log "$work"/nginx/error.log >&2 2>/dev/null || true
  exit 1
}

read -r origin_port admin_port nginx_port varnish_port < <(python3 "$root/bench/ports.py" 4)
SURGE_LISTEN="127.0.0.1:$origin_port" SURGE_ADMIN_LISTEN="127.0.0.1:$admin_port" RUST_LOG=error "$origin_bin" >"$work/origin.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$origin_port/healthz"

mkdir -p "$work/nginx/cache"
cat >"$work/nginx/nginx.conf" <<NGINX
worker_processes auto;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
daemon off;
events { worker_connections 4096; }
http {
  access_log off;
  proxy_cache_path $work/nginx/cache levels=1:2 keys_zone=anchor:16m max_size=64m inactive=10m;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  upstream origin { server 127.0.0.1:$origin_port; keepalive 64; }
  server {
    listen 127.0.0.1:$nginx_port;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache anchor;
      proxy_cache_valid 200 10m;
      proxy_ignore_headers Cache-Control Expires Set-Cookie;
    }
  }
}
NGINX
if [[ $EUID -eq 0 ]]; then
  # nginx's workers drop to nobody: let them reach the cache.
  chmod 755 "$work"
  chown -R nobody:nogroup "$work/nginx"
fi
nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" &
pids+=($!)

cat >"$work/anchor.vcl" <<VCL
vcl 4.1;
backend origin { .host = "127.0.0.1"; .port = "$origin_port"; }
sub vcl_backend_response { set beresp.ttl = 10m; unset beresp.http.Set-Cookie; }
VCL
varnishd -a "127.0.0.1:$varnish_port" -f "$work/anchor.vcl" -s malloc,64m \
  -n "$work/varnish" -P "$work/varnish.pid" -j none >"$work/varnish.log" 2>&1

first=${pages%% *}
wait_for "http://127.0.0.1:$nginx_port$first"
wait_for "http://127.0.0.1:$varnish_port$first"
declare -A size
for page in $pages; do
  size[$page]=$(curl -fsS "http://127.0.0.1:$origin_port$page" | wc -c)
  # Warm every cache, then check each answers from it.
  for port in "$origin_port" "$nginx_port" "$varnish_port"; do curl -fsS -o /dev/null "http://127.0.0.1:$port$page"; done
  [[ "$(curl -fsS -D - -o /dev/null "http://127.0.0.1:$origin_port$page" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-surge-tier"{print $2}')" == "l1" ]] \
    || { echo "compare-anchors: the origin did not answer $page from L1" >&2; exit 1; }
done

declare -A rps p99
measure() {
  local name=$1 port=$2 page=$3 report
  report=$(wrk -t"$threads" -c"$connections" -d"$duration" --latency "http://127.0.0.1:$port$page")
  rps[$name$page]+="$(awk '/^Requests\/sec:/{print $2}' <<<"$report") "
  p99[$name$page]+="$(awk '$1=="99%"{v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' <<<"$report") "
}
median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }

for round in $(seq 1 "$rounds"); do
  for page in $pages; do
    echo "round $round/$rounds: $page" >&2
    measure origin "$origin_port" "$page"
    measure nginx "$nginx_port" "$page"
    measure varnish "$varnish_port" "$page"
  done
done

table="| page (cache hit) | server | requests/s (median of $rounds) | p99 ms (median) | origin / server requests/s |
| --- | --- | ---: | ---: | ---: |"
for page in $pages; do
  o=$(median "${rps[origin$page]}")
  for name in origin nginx varnish; do
    r=$(median "${rps[$name$page]}")
    case $name in
      origin) label="surge-origin L1"; versus="" ;;
      nginx) label="nginx proxy_cache"; versus=$(ratio "$o" "$r") ;;
      varnish) label="Varnish"; versus=$(ratio "$o" "$r") ;;
    esac
    table+="
| \`$page\` (${size[$page]} B) | $label | $r | $(median "${p99[$name$page]}") | $versus |"
  done
done
table+="

(wrk -t$threads -c$connections -d$duration --latency, $(nproc) cores, $(date -u +%Y-%m-%d))"
echo "$table"
if [[ -n "$out" ]]; then printf '\n%s\n' "$table" >>"$out"; fi
