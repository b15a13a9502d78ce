# shellcheck shell=bash
# Helpers shared by the operator scripts: errors, the admin token (from a file or the
# environment, never from the command line), and one checked call to the origin's admin API.

die() {
  echo "error: $*" >&2
  exit 1
}

usage_error() {
  echo "error: $*" >&2
  echo "run with --help for usage" >&2
  exit 2
}

need() {
  command -v "$1" >/dev/null 2>&1 || die "$1 is required: install it (apt-get install $1)"
}

# The admin API base URL: SURGE_ADMIN_URL, e.g. http://127.0.0.1:9090 (a port-forward to the
# admin listener).
admin_url() {
  local url="${SURGE_ADMIN_URL:-}"
  [[ -n "$url" ]] || die "set SURGE_ADMIN_URL to the origin's admin listener, e.g. http://127.0.0.1:9090 (kubectl port-forward -n surge svc/api-gateway 9090:9090)"
  [[ "$url" =~ ^https?://[^[:space:]/]+(:[0-9]+)?/?$ ]] || die "SURGE_ADMIN_URL=$url is not a base URL like http://127.0.0.1:9090"
  printf '%s' "${url%/}"
}

# The admin token: SURGE_ADMIN_TOKEN_FILE (preferred) or SURGE_ADMIN_TOKEN.
admin_token() {
  if [[ -n "${SURGE_ADMIN_TOKEN_FILE:-}" ]]; then
    [[ -r "$SURGE_ADMIN_TOKEN_FILE" ]] || die "SURGE_ADMIN_TOKEN_FILE=$SURGE_ADMIN_TOKEN_FILE is not readable"
    tr -d '[:space:]' <"$SURGE_ADMIN_TOKEN_FILE"
  elif [[ -n "${SURGE_ADMIN_TOKEN:-}" ]]; then
    printf '%s' "$SURGE_ADMIN_TOKEN"
  else
    die "set SURGE_ADMIN_TOKEN_FILE (a file holding the admin token) or SURGE_ADMIN_TOKEN"
  fi
}

# A JSON string literal for $1 (quotes and backslashes escaped; control characters refused).
json_string() {
  local s="$1"
  [[ "$s" =~ [[:cntrl:]] ]] && die "control characters are not allowed in ${s@Q}"
  s="${s//\\/\\\\}"
  s="${s//\"/\\\"}"
  printf '"%s"' "$s"
}

# A JSON array of strings from the arguments.
json_array() {
  local out="" item
  for item in "$@"; do
    out+="${out:+,}$(json_string "$item")"
  done
  printf '[%s]' "$out"
}

# admin_call METHOD PATH [JSON]: prints the response body; fails with the API's message on
# a status of 400 or more. A 207 (some tier failed) prints the report and fails.
admin_call() {
  local method="$1" path="$2" body="${3:-}" base token response status
  base="$(admin_url)"
  token="$(admin_token)"
  # The token reaches curl on standard input (`-H @-`), never on its command line, where
  # any user could read it in `ps`.
  local args=(--silent --show-error --max-time 60 -X "$method" -w '\n%{http_code}'
    -H @- -H "Accept: application/json")
  if [[ -n "$body" ]]; then
    args+=(-H "Content-Type: application/json" --data-binary "$body")
  fi
  response="$(printf 'Authorization: Bearer %s\n' "$token" | curl "${args[@]}" "$base$path")" \
    || die "cannot reach $base$path"
  status="${response##*$'\n'}"
  response="${response%$'\n'*}"
  printf '%s\n' "$response"
  case "$status" in
    2[0-9][0-9]) [[ "$status" != 207 ]] || die "HTTP 207: some tier failed (see its line above)" ;;
    *) die "HTTP $status from $method $path" ;;
  esac
}
