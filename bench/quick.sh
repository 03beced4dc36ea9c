#!/usr/bin/env bash
# Quick numbers until the full harness of the performance issue exists:
#   1. keep-alive throughput and p99, direct to an nginx instance vs through wakegate (1 worker each);
#   2. cold-start overhead: time to first response from zero minus the instance's own time to ready.
# Usage: bench/quick.sh [seconds per wrk run, default 5] [cold starts, default 20]
# Needs: a built build/app/wakegate (scripts/test.sh builds it), nginx-light, wrk (installed if missing).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
secs=${1:-5}
colds=${2:-20}
for p in nginx-light wrk; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null
done
bin=${WAKEGATE_BIN:-build/app/wakegate}
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$tmp"' EXIT

cat >"$tmp/nginx.tmpl" <<NGX
worker_processes 1;
daemon off;
pid $tmp/nginx-PORT.pid;
error_log stderr;
events { worker_connections 4096; }
http { access_log off; server { listen 127.0.0.1:PORT; keepalive_requests 1000000;
       location / { return 200 "hello\n"; } } }
NGX
app() {  # name min scale_to_zero_after
  cat <<APP
  - name: $1
    hosts: [$1.test]
    min_instances: $2
    max_instances: 1
    scale_to_zero_after: $3
    scale_down_delay: 0s
    backend:
      process:
        command: [/bin/sh, -c, "sed s/PORT/\$PORT/g $tmp/nginx.tmpl > $tmp/n-\$PORT.conf && exec /usr/sbin/nginx -c $tmp/n-\$PORT.conf"]
APP
}
{
  echo "listen: { http: 127.0.0.1:0, admin: 127.0.0.1:0 }"
  echo "workers: 1"
  echo "access_log: false"
  echo "scale_interval: 100ms"
  echo "apps:"
  app warm 1 5m
} >"$tmp/wg.yaml"

wait_line() {  # file pattern -> the line, within 10 s
  for _ in $(seq 1 200); do
    grep -m1 "$2" "$1" 2>/dev/null && return 0
    sleep 0.05  # poll
  done
  echo "timed out waiting for $2 in $1" >&2
  return 1
}
"$bin" run --config "$tmp/wg.yaml" 2>"$tmp/wg.log" &
wg_pid=$!
http=$(wait_line "$tmp/wg.log" '"listener":"http"' | sed 's/.*"address":"\([^"]*\)".*/\1/')
admin=$(wait_line "$tmp/wg.log" '"listener":"admin"' | sed 's/.*"address":"\([^"]*\)".*/\1/')
inst=$(wait_line "$tmp/wg.log" '"instance ready"' | sed 's/.*"address":"\([^"]*\)".*/\1/')

echo "== throughput: wrk -t1 -c64 -d${secs}s, 6-byte responses, 2 rounds interleaved"
for round in 1 2; do
  for target in direct wakegate; do
    if [[ $target == direct ]]; then out=$(wrk -t1 -c64 -d"${secs}s" --latency "http://$inst/")
    else out=$(wrk -t1 -c64 -d"${secs}s" --latency -H 'Host: warm.test' "http://$http/"); fi
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    printf '  round %d  %-9s %10s req/s  p99 %s\n' "$round" "$target" "$rps" "$p99"
  done
done
kill "$wg_pid"; wait "$wg_pid" 2>/dev/null || true

echo "== cold starts: $colds from zero"
{
  echo "listen: { http: 127.0.0.1:0, admin: 127.0.0.1:0 }"
  echo "scale_interval: 100ms"
  echo "apps:"
  app cold 0 300ms
} >"$tmp/cold.yaml"
"$bin" run --config "$tmp/cold.yaml" 2>"$tmp/cold.log" &
wg_pid=$!
http=$(wait_line "$tmp/cold.log" '"listener":"http"' | sed 's/.*"address":"\([^"]*\)".*/\1/')
admin=$(wait_line "$tmp/cold.log" '"listener":"admin"' | sed 's/.*"address":"\([^"]*\)".*/\1/')
for _ in $(seq 1 "$colds"); do
  curl -s -o /dev/null -H 'Host: cold.test' "http://$http/"
  for _ in $(seq 1 200); do
    curl -s "http://$admin/status" | grep -q '"instances":\[\]' && break
    sleep 0.05  # poll until it is back at zero
  done
done
kill "$wg_pid"; wait "$wg_pid" 2>/dev/null || true
/usr/bin/python3 - "$tmp/cold.log" <<'PY'
import json, sys
ready, held = [], []
for line in open(sys.argv[1]):
    if not line.startswith('{'):
        continue
    d = json.loads(line)
    if d.get('msg') == 'instance ready':
        ready.append(d['start_ms'])
    if d.get('type') == 'access' and d.get('held'):
        held.append(d['duration_ms'])
over = sorted(h - r for h, r in zip(held, ready))
if not over:
    sys.exit("no cold starts measured")
q = lambda xs, p: xs[min(len(xs) - 1, int(p * len(xs)))]
print(f"  instance start (creation to ready, incl. probe interval): p50 {q(sorted(ready), .5):.1f} ms")
print(f"  overhead (first response minus instance start): p50 {q(over, .5):.2f} ms  p99 {q(over, .99):.2f} ms  n={len(over)}")
PY
