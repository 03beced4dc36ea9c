# Shared by bench/compare.sh, bench/ab.sh and bench/tls.sh (sourced, from the repository's root): a temporary
# directory and the processes to stop on exit, the fixed backend (nginx, 1 worker: /0, and /1k and
# /64k from files with sendfile on, so their head and body leave in two writes; /1kw: 1 KiB in one
# write) run by wakegate as its app's instance, and wakegate started with a config of its own.
# Needs $bin (the wakegate binary).

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [[ -n ${KEEP_TMP:-} ]] && echo "kept $tmp" >&2 || rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_line() {  # file pattern -> the line, within 10 s
  for _ in $(seq 1 200); do
    grep -m1 "$2" "$1" 2>/dev/null && return 0
    sleep 0.05  # poll
  done
  echo "${0##*/}: timed out waiting for $2 in $1" >&2
  return 1
}
wait_port() {  # port: until it accepts, within 10 s
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05  # poll
  done
  echo "${0##*/}: nothing listens on $1" >&2
  return 1
}
# A process's user and kernel CPU so far, in clock ticks ("0 0" without a pid).
cpu_ticks() { [[ -n $1 ]] && awk '{print $14, $15}' "/proc/$1/stat" || echo "0 0"; }
# wrk's "850.00us", "1.20ms", "2.00s" -> milliseconds.
to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}; printf "%.3f", v}' <<<"$1"; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
addr_of() { sed 's/.*"address":"\([^"]*\)".*/\1/'; }

# --- the backend: nginx with fixed bodies, started by wakegate as its app's instance ----------
mkdir -p "$tmp/www"
head -c 1024 /dev/zero | tr '\0' 'a' >"$tmp/www/1k"
head -c 65536 /dev/zero | tr '\0' 'a' >"$tmp/www/64k"
chmod a+rx "$tmp" "$tmp/www" && chmod a+r "$tmp"/www/*  # nginx workers run as nobody
cat >"$tmp/backend.tmpl" <<NGX
worker_processes 1;
daemon off;
pid $tmp/backend-PORT.pid;
error_log $tmp/backend-PORT.log;
events { worker_connections 16384; }
http { access_log off; sendfile on; tcp_nodelay on;
  server { listen 127.0.0.1:PORT reuseport; keepalive_requests 10000000; keepalive_timeout 300s; root $tmp/www;
    location = /0 { return 200 ""; }
    location = /1kw { return 200 "$(head -c 1024 /dev/zero | tr '\0' 'a')"; } } }
NGX
backend_cmd="sed s/PORT/\$PORT/g $tmp/backend.tmpl > $tmp/b-\$PORT.conf && exec /usr/sbin/nginx -c $tmp/b-\$PORT.conf"

wakegate_config() {  # workers min_instances app-command -> yaml
  cat <<YAML
listen: { http: 127.0.0.1:0, admin: 127.0.0.1:0 }
workers: $1
access_log: ${access_log:-false}
scale_interval: 100ms
apps:
  - name: bench
    hosts: [bench.test]
    min_instances: $2
    max_instances: 1
    target_concurrency: 100000
    scale_to_zero_after: 300ms
    scale_down_delay: 0s
    queue_size: 100000
    backend:
      process:
        command: [/bin/sh, -c, "$3"]
YAML
}
start_wakegate() {  # name workers min command -> sets wg_pid wg_http wg_admin; binary: $wg_bin or $bin
  wakegate_config "$2" "$3" "$4" >"$tmp/$1.yaml"
  "${wg_bin:-$bin}" run --config "$tmp/$1.yaml" 2>"$tmp/$1.log" &
  wg_pid=$!
  pids+=("$wg_pid")
  wg_http=$(wait_line "$tmp/$1.log" '"listener":"http"' | addr_of)
  wg_admin=$(wait_line "$tmp/$1.log" '"listener":"admin"' | addr_of)
}
stop_pid() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
