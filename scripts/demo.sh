#!/usr/bin/env bash
# The demo: builds wakegate and runs it in the foreground with config/examples/fastapi.yaml,
# a FastAPI app that starts on the first request and scales back to zero when idle.
#   scripts/demo.sh           # interactive; Ctrl-C stops wakegate and its instances
#   scripts/demo.sh --smoke   # non-interactive check: one request through a cold start, then SIGTERM
# WAKEGATE_BIN=path uses that binary instead of building build/app/wakegate.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

config=config/examples/fastapi.yaml
mode=${1:-}
if [[ $mode != "" && $mode != --smoke ]]; then
  echo "usage: scripts/demo.sh [--smoke]" >&2
  exit 2
fi

bin=${WAKEGATE_BIN:-}
if [[ -z $bin ]]; then
  scripts/deps.sh
  cmake --preset release >/dev/null
  cmake --build build --target wakegate -j "$(nproc)"
  bin=build/app/wakegate
fi

if [[ $mode == "" ]]; then
  cat <<'EOF'

wakegate demo: app "hello" (FastAPI, config/examples/fastapi.yaml), 0 instances until asked.
  curl -H 'Host: hello.localhost' http://127.0.0.1:8080/     # first request cold-starts the app
  curl -H 'Host: hello.localhost' 'http://127.0.0.1:8080/slow?ms=2000'
  curl http://127.0.0.1:9090/status                          # instances; also /metrics, /healthz
It scales back to zero after 30 s without requests. Ctrl-C stops wakegate and its instances.

EOF
  exec "$bin" run --config "$config"
fi

# --smoke: the same app on free ports (port 0, read back from the "listening" log lines), so it
# never collides with a demo already running. Every wait is a bounded poll.
tmp=$(mktemp -d)
pid=""
cleanup() {
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
  echo "demo smoke: FAILED: $*" >&2
  [[ -n $pid ]] && ! alive && echo "demo smoke: wakegate is no longer running" >&2
  echo "--- wakegate log (last 40 lines) ---" >&2
  tail -n 40 "$tmp/log" >&2 || true
  exit 1
}

alive() { kill -0 "$pid" 2>/dev/null; }

# retry TRIES CMD...: runs CMD every 0.2 s until it succeeds (0) or TRIES runs failed or wakegate died (1).
retry() {
  local tries=$1
  shift
  for ((i = 0; i < tries; i++)); do
    "$@" && return 0
    alive || return 1
    sleep 0.2
  done
  return 1
}

# The address of listener $1 from a line like {"msg":"listening","listener":"http","address":"127.0.0.1:41234"}.
address_of() {
  sed -n "/\"msg\": *\"listening\"/{/\"listener\": *\"$1\"/s/.*\"address\": *\"\\([^\"]*\\)\".*/\\1/p}" "$tmp/log" | tail -n 1
}
have_addresses() { [[ -n $(address_of http) && -n $(address_of admin) ]]; }
is_ready() { [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$admin/readyz") == 200 ]]; }

sed -e 's#^\( *http:\) *127\.0\.0\.1:8080#\1 127.0.0.1:0#' \
    -e 's#^\( *admin:\) *127\.0\.0\.1:9090#\1 127.0.0.1:0#' \
    -e "s#^\\( *cwd:\\) *fastapi\\b#\\1 $PWD/config/examples/fastapi#" \
    "$config" >"$tmp/fastapi.yaml"
[[ $(grep -cE '127\.0\.0\.1:0|cwd: /' "$tmp/fastapi.yaml") == 3 ]] || fail "could not rewrite $config for free ports"

"$bin" run --config "$tmp/fastapi.yaml" 2>"$tmp/log" &
pid=$!

retry 150 have_addresses || fail "no 'listening' log lines within 30 s"
http=$(address_of http)
admin=$(address_of admin)
retry 150 is_ready || fail "admin /readyz at $admin not 200 within 30 s"
echo "demo smoke: wakegate up, proxy $http, admin $admin; cold-starting app hello"

code=$(curl -s -o "$tmp/body" -w '%{http_code}' --max-time 90 -H 'Host: hello.localhost' "http://$http/") || true
[[ $code == 200 ]] || fail "GET / through a cold start: status $code, body: $(cat "$tmp/body" 2>/dev/null)"
grep -q '"hello from wakegate"' "$tmp/body" || fail "unexpected body: $(cat "$tmp/body")"
echo "demo smoke: 200 $(cat "$tmp/body")"
app_pid=$(sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' "$tmp/body")

kill -TERM "$pid"
for _ in $(seq 225); do alive || break; sleep 0.2; done  # 45 s: drain + instance stop_timeout
alive && fail "wakegate still running 45 s after SIGTERM"
status=0
wait "$pid" || status=$?
pid=""
((status == 0)) || fail "wakegate exited with status $status after SIGTERM (expected 0)"
if [[ -n $app_pid ]] && kill -0 "$app_pid" 2>/dev/null; then
  fail "app instance (pid $app_pid) still running after wakegate exited"
fi
echo "demo smoke: ok"
