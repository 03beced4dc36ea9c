#!/usr/bin/env bash
# CPU instructions wakegate spends per proxied request, counted by callgrind: repeatable whatever
# else the machine is doing, so it tells whether a change made the request path cheaper.
#
#   bench/instructions.sh [requests, default 3000] [path, default /0]
#
# wakegate (workers: 1, access log off) runs under callgrind in front of an nginx instance (not
# under callgrind); two runs send N and 2N keep-alive GETs over 8 connections (bench's
# wakegate_load, open loop at a low rate); the difference of their totals divided by N is the cost
# of one request, start-up excluded. Prints it and the functions that take most of it
# (callgrind_annotate of the 2N run), and keeps the callgrind files in bench/out/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
n=${1:-3000}
path=${2:-/0}
bin=${WAKEGATE_BIN:-build/app/wakegate}
load=${WAKEGATE_LOAD:-build/bench/wakegate_load}
for p in valgrind nginx-light; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null
done
out=bench/out/instructions-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"
tmp=$(mktemp -d)
chmod a+rx "$tmp"
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$tmp"' EXIT

mkdir -p "$tmp/www"
head -c 1024 /dev/zero | tr '\0' 'a' >"$tmp/www/1k"
head -c 65536 /dev/zero | tr '\0' 'a' >"$tmp/www/64k"
chmod -R a+rX "$tmp/www"
cat >"$tmp/backend.tmpl" <<NGX
worker_processes 1;
daemon off;
pid $tmp/backend-PORT.pid;
error_log $tmp/backend.log;
events { worker_connections 1024; }
http { access_log off; server { listen 127.0.0.1:PORT; keepalive_requests 10000000; root $tmp/www;
  location = /0 { return 200 ""; } } }
NGX
cat >"$tmp/wg.yaml" <<YAML
listen: { http: 127.0.0.1:0, admin: 127.0.0.1:0 }
workers: 1
access_log: false
apps:
  - name: bench
    hosts: [bench.test]
    min_instances: 1
    max_instances: 1
    target_concurrency: 1000
    backend:
      process:
        command: [/bin/sh, -c, "sed s/PORT/\$PORT/g $tmp/backend.tmpl > $tmp/b-\$PORT.conf && exec /usr/sbin/nginx -c $tmp/b-\$PORT.conf"]
YAML

run() {  # requests -> total instructions
  local count=$1 log="$tmp/wg-$1.log" cg="$out/callgrind.out.$1"
  valgrind --tool=callgrind --callgrind-out-file="$cg" "$bin" run --config "$tmp/wg.yaml" 2>"$log" &
  local pid=$!
  local http=""
  for _ in $(seq 1 600); do
    if grep -q '"instance ready"' "$log" 2>/dev/null; then
      http=$(grep -m1 '"listener":"http"' "$log" | sed 's/.*"address":"\([^"]*\)".*/\1/')
      break
    fi
    sleep 0.05  # poll: valgrind starts slowly
  done
  [[ -n $http ]] || { echo "instructions.sh: wakegate did not start" >&2; cat "$log" >&2; exit 1; }
  # 400 req/s is well within what wakegate does under callgrind; 8 connections.
  local secs
  secs=$(awk -v n="$count" 'BEGIN { printf "%.3f", n / 400 }')
  "$load" rate --target "$http" --host bench.test --path "$path" --rate 400 --duration "$secs" --warmup 0 \
    --connections 8 >"$tmp/load-$count.txt"
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
  grep -q 'errors=0 ' "$tmp/load-$count.txt" || { echo "instructions.sh: requests failed: $(cat "$tmp/load-$count.txt")" >&2; exit 1; }
  awk '/^summary:/ {print $2} /^totals:/ {print $2}' "$cg" | head -1
}
one=$(run "$n")
two=$(run "$((2 * n))")
per=$(((two - one) / n))
echo "instructions per request ($path, keep-alive, 1 worker): $per   (N=$n: $one, 2N: $two)"
callgrind_annotate --inclusive=no "$out/callgrind.out.$((2 * n))" 2>/dev/null | sed -n '1,/^-* *$/d; p' | head -40 >"$out/top.txt" || true
echo "top functions (self, 2N run): $out/top.txt"
head -25 "$out/top.txt" | cut -c1-160
