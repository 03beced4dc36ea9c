#!/usr/bin/env bash
# TLS benchmark, wakegate against nginx on the same ECDSA P-256 certificate and the same backend
# (bench/lib.sh's nginx instance that wakegate runs; requests for /0, an empty 200), one worker
# each, in one run:
#   1. full handshakes/s      openssl s_time -new   (TLS 1.3 and TLS 1.2)
#   2. resumed handshakes/s   openssl s_time -reuse (TLS 1.2 session resumption)
#   3. keep-alive requests/s over TLS: wrk -t1 -c64 (and over plain http, for reference)
#   4. memory: KiB of RSS per silent connection and per idle TLS keep-alive connection
#      (bench/tls_hold.py; TLS_MEM_CONNS connections, default 500)
# Usage: bench/tls.sh [seconds per measurement, default 5]
# Needs: a built build/app/wakegate, nginx-light, wrk (installed if missing), openssl.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
secs=${1:-5}
for p in nginx-light wrk; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null
done
bin=${WAKEGATE_BIN:-build/app/wakegate}
source bench/lib.sh  # tmp, pids and their cleanup; the backend (answers /0); wait_line, free_port

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/key.pem" -out "$tmp/cert.pem" \
  -subj "/CN=bench.test" -addext "subjectAltName=DNS:bench.test" -days 2 2>/dev/null

cat >"$tmp/wg.yaml" <<YAML
listen: { http: 127.0.0.1:0, admin: 127.0.0.1:0, https: 127.0.0.1:0 }
workers: 1
access_log: false
tls:
  certificates: [{ cert: $tmp/cert.pem, key: $tmp/key.pem }]
apps:
  - name: bench
    hosts: [bench.test]
    min_instances: 1
    max_instances: 1
    backend:
      process:
        command: [/bin/sh, -c, "$backend_cmd"]
YAML
"$bin" run --config "$tmp/wg.yaml" 2>"$tmp/wg.log" &
wg_pid=$!
pids+=($wg_pid)
wg=$(wait_line "$tmp/wg.log" '"listener":"https"' | addr_of)
wg_plain=$(wait_line "$tmp/wg.log" '"listener":"http"' | addr_of)
inst=$(wait_line "$tmp/wg.log" '"instance ready"' | addr_of)

# nginx as the TLS front for the same backend, settings matching wakegate's.
ngx_port=$(free_port)
ngx_plain_port=$(free_port)
cat >"$tmp/front.conf" <<NGX
worker_processes 1;
daemon off;
pid $tmp/front.pid;
error_log stderr;
events { worker_connections 4096; }
http {
  access_log off;
  upstream backend { server $inst; keepalive 64; }
  server {
    listen 127.0.0.1:$ngx_plain_port;
    keepalive_requests 1000000;
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
  server {
    listen 127.0.0.1:$ngx_port ssl;
    keepalive_requests 1000000;
    ssl_certificate $tmp/cert.pem;
    ssl_certificate_key $tmp/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ecdh_curve X25519:prime256v1:secp384r1;
    ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305;
    ssl_prefer_server_ciphers off;
    ssl_session_cache shared:SSL:10m;
    ssl_session_timeout 1d;
    ssl_session_tickets on;
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
NGX
/usr/sbin/nginx -c "$tmp/front.conf" 2>"$tmp/front.log" &
ngx_master=$!
pids+=($ngx_master)
for _ in $(seq 1 200); do  # poll until nginx answers
  curl -sk -o /dev/null "https://127.0.0.1:$ngx_port/0" && break
  sleep 0.05
done
# Both answer through the same backend.
curl -sfk -H 'Host: bench.test' "https://$wg/0" >/dev/null
curl -sfk "https://127.0.0.1:$ngx_port/0" >/dev/null

s_time() {  # address flags... -> connections per second
  # "N connections in T real seconds" (T whole seconds: the last line, with -new or -reuse)
  openssl s_time -connect "$1" "${@:2}" -time "$secs" 2>/dev/null |
    awk '/real seconds/ {r = ($4 > 0) ? $1 / $4 : 0} END {printf "%.0f", r}'
}
# Memory per connection (4. above): RSS growth (malloc's retention included) of the process that holds the
# connections (nginx's worker), while $conns are open. Measured first, while both processes are
# fresh: after the load runs, malloc hands back memory it kept and the growth reads low. Idle
# connections first for the same reason.
conns=${TLS_MEM_CONNS:-500}
ngx_worker=$(pgrep -P "$ngx_master" | head -1)
per_conn() {  # pid port mode -> KiB per connection
  local before after
  rm -f "$tmp/ready" "$tmp/stop"
  before=$(rss_kb "$1")
  /usr/bin/python3 bench/tls_hold.py "$2" "$conns" "$3" "$tmp/ready" "$tmp/stop" &
  local holder=$!
  for _ in $(seq 1 600); do [[ -e $tmp/ready ]] && break; sleep 0.05; done  # polled, 30 s at most
  after=$(rss_kb "$1")
  touch "$tmp/stop"
  wait "$holder"
  awk -v a="$after" -v b="$before" -v n="$conns" 'BEGIN {printf "%.1f", (a - b) / n}'
}

echo "== $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); ${secs}s per figure; ECDSA P-256; 1 worker each"
printf '%-34s %12s %12s\n' "" wakegate nginx
printf '%-34s %12s %12s\n' "KiB per idle TLS keep-alive conn." "$(per_conn "$wg_pid" "${wg##*:}" idle)" "$(per_conn "$ngx_worker" "$ngx_port" idle)"
printf '%-34s %12s %12s\n' "KiB per silent connection ($conns)" "$(per_conn "$wg_pid" "${wg##*:}" silent)" "$(per_conn "$ngx_worker" "$ngx_port" silent)"
printf '%-34s %12s %12s\n' "full handshakes/s (TLS 1.3)" "$(s_time "$wg" -new -tls1_3)" "$(s_time "127.0.0.1:$ngx_port" -new -tls1_3)"
printf '%-34s %12s %12s\n' "full handshakes/s (TLS 1.2)" "$(s_time "$wg" -new -tls1_2)" "$(s_time "127.0.0.1:$ngx_port" -new -tls1_2)"
printf '%-34s %12s %12s\n' "resumed handshakes/s (TLS 1.2)" "$(s_time "$wg" -reuse -tls1_2)" "$(s_time "127.0.0.1:$ngx_port" -reuse -tls1_2)"
rps() { wrk -t1 -c64 -d"${secs}s" "$@" | awk '/Requests\/sec/ {print $2}'; }
printf '%-34s %12s %12s\n' "keep-alive requests/s (wrk -c64)" "$(rps -H 'Host: bench.test' "https://$wg/0")" "$(rps "https://127.0.0.1:$ngx_port/0")"
printf '%-34s %12s %12s\n' "  same over plain http, reference" "$(rps -H 'Host: bench.test' "http://$wg_plain/0")" "$(rps "http://127.0.0.1:$ngx_plain_port/0")"

