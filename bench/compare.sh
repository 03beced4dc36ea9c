#!/usr/bin/env bash
# The performance harness: wakegate side by side with nginx and HAProxy, in one run.
#
#   bench/compare.sh [--secs S] [--rounds R] [--rate N] [--colds N] [--conns N] [--sizes "0 1k 64k"] [--quick]
#
# One fixed fast backend (nginx, 1 worker: /0, and /1k and /64k from files with sendfile, so their
# head and body leave in two writes; /1kw: 1 KiB in one write) is started as wakegate's
# instance; nginx (1 worker, keepalive upstream) and HAProxy (nbthread 1, http-reuse always) proxy
# to that same backend, and wakegate (workers: 1, access log off) routes to it. Then:
#   1. closed loop: wrk -t1 -c64 for each body size and target (direct, nginx, haproxy, wakegate),
#      rounds interleaved; medians, ratios to direct and to nginx/HAProxy;
#      then system calls per request for each proxy (perf stat, kernel tracepoints);
#   2. open loop: bench's wakegate_load at a fixed rate, latency from each request's scheduled time;
#   3. memory: idle RSS, RSS per idle keep-alive connection (for all three proxies), per held request;
#   4. cold-start overhead: first response from zero minus the instance's own time to ready;
#   5. scaling: wakegate with 2 workers against 1 worker (wrk -t2): req/s, CPU per request, and
#      how evenly the two worker threads share the work.
# Results: a markdown report on stdout and bench/out/compare-<time>/ (raw wrk output, CSV).
# Needs a built tree (scripts/test.sh); installs nginx-light, haproxy and wrk if missing.
# Run on an otherwise idle machine: the load generator, the proxy and the backend share the cores.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

secs=5 rounds=3 rate=20000 colds=50 conns=64 idle_conns=2000 sizes="0 1k 64k"
while (($#)); do
  case $1 in
    --secs) secs=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --colds) colds=$2; shift 2 ;;
    --conns) conns=$2; shift 2 ;;
    --sizes) sizes=$2; shift 2 ;;
    --quick) secs=2 rounds=1 rate=5000 colds=5 idle_conns=500; shift ;;
    *) echo "usage: bench/compare.sh [--secs S] [--rounds R] [--rate N] [--colds N] [--conns N] [--sizes \"0 1k 64k\"] [--quick]" >&2; exit 2 ;;
  esac
done
for size in $sizes; do
  case $size in 0 | 1k | 1kw | 64k) ;; *) echo "compare.sh: --sizes takes 0, 1k, 1kw and 64k, not $size" >&2; exit 2 ;; esac
done

for p in nginx-light haproxy wrk linux-perf; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null
done
bin=${WAKEGATE_BIN:-build/app/wakegate}
load=${WAKEGATE_LOAD:-build/bench/wakegate_load}
for f in "$bin" "$load"; do [[ -x $f ]] || { echo "compare.sh: $f missing: run scripts/test.sh first" >&2; exit 1; }; done
ulimit -n "$(ulimit -Hn)"  # many idle connections in the memory run

out=bench/out/compare-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"
source bench/lib.sh  # tmp, pids and their cleanup; the backend; start_wakegate

start_wakegate wg1 1 1 "$backend_cmd"
backend=$(wait_line "$tmp/wg1.log" '"instance ready"' | addr_of)
sleep 0.3  # let the idle process settle before the idle RSS reading
wg_idle_rss=$(rss_kb "$wg_pid")

# --- nginx and HAProxy as proxies to the same backend ----------------------------------------
ngx_port=$(free_port)
cat >"$tmp/nginx-proxy.conf" <<NGX
worker_processes 1;
daemon off;
pid $tmp/nginx-proxy.pid;
error_log $tmp/nginx-proxy.log;
events { worker_connections 16384; }
http { access_log off;
  upstream backend { server $backend; keepalive 128; keepalive_requests 10000000; }
  server { listen 127.0.0.1:$ngx_port; keepalive_requests 10000000; keepalive_timeout 300s;
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Host \$host; proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme; } } }
NGX
/usr/sbin/nginx -c "$tmp/nginx-proxy.conf" &
ngx_master=$!
pids+=("$ngx_master")
hap_port=$(free_port)
cat >"$tmp/haproxy.cfg" <<HAP
global
  nbthread 1
  maxconn 9000
defaults
  mode http
  timeout connect 5s
  timeout client 300s
  timeout server 300s
  timeout http-keep-alive 300s
  option http-keep-alive
  option forwardfor
  http-reuse always
frontend in
  bind 127.0.0.1:$hap_port
  http-request set-header X-Forwarded-Proto http
  default_backend app
backend app
  server b1 $backend
HAP
haproxy -f "$tmp/haproxy.cfg" -db 2>"$tmp/haproxy.log" &
hap_pid=$!
pids+=("$hap_pid")
wait_port "$ngx_port"
wait_port "$hap_port"
ngx_worker=$(pgrep -P "$ngx_master" | head -1)

url_of() {  # target path -> url
  case $1 in
    direct) echo "http://$backend$2" ;;
    nginx) echo "http://127.0.0.1:$ngx_port$2" ;;
    haproxy) echo "http://127.0.0.1:$hap_port$2" ;;
    wakegate) echo "http://$wg_http$2" ;;
  esac
}
targets=(direct nginx haproxy wakegate)

# --- 1. closed loop --------------------------------------------------------------------------
echo "round,size,target,rps,p50_ms,p99_ms,user_us,sys_us,backend_us,client_us" >"$out/closed.csv"
# CPU the proxy process spent per request, user and kernel (from /proc/PID/stat): where a proxy's
# time goes, which req/s on shared cores cannot tell. Not for direct (the backend is not a proxy).
# Also the backend's and the load generator's CPU per request (user + kernel): the three share the
# cores, so a proxy that makes the others work harder per request (more wake-ups, smaller
# batches) costs throughput as surely as its own CPU does.
tick=$(getconf CLK_TCK)
pid_of() { case $1 in nginx) echo "$ngx_worker" ;; haproxy) echo "$hap_pid" ;; wakegate) echo "$wg_pid" ;; *) echo "" ;; esac; }
backend_worker=$(pgrep -P "$(pgrep -f "b-${backend##*:}.conf" | head -1)" | head -1 || true)
[[ -n $backend_worker ]] || { echo "compare.sh: the backend's worker process not found" >&2; exit 1; }
# "times" after wrk in a subshell: its second line is the children's (wrk's) user and kernel time.
client_cpu() { awk 'NR == 2 { n = 0; for (i = 1; i <= 2; i++) { split($i, a, "m"); sub("s", "", a[2]); n += a[1] * 60 + a[2] }; print n }'; }
echo "closed loop: $rounds rounds x sizes $sizes x ${#targets[@]} targets x ${secs}s (wrk -t1 -c$conns)" >&2
for round in $(seq 1 "$rounds"); do
  for size in $sizes; do
    for t in "${targets[@]}"; do
      f="$out/wrk-$round-$size-$t.txt"
      pid=$(pid_of "$t")
      read -r u0 s0 < <(cpu_ticks "$pid")
      read -r bu0 bs0 < <(cpu_ticks "$backend_worker")
      client_s=$( (export LC_ALL=C; wrk -t1 -c"$conns" -d"${secs}s" --latency -H 'Host: bench.test' "$(url_of "$t" "/$size")" >"$f"; times) | client_cpu)
      read -r u1 s1 < <(cpu_ticks "$pid")
      read -r bu1 bs1 < <(cpu_ticks "$backend_worker")
      n=$(awk '/requests in/ {print $1}' "$f")
      cpu=$(awk -v a="$u0" -v b="$u1" -v c="$s0" -v d="$s1" -v n="$n" -v t="$tick" -v p="$pid" \
        -v bk="$((bu1 - bu0 + bs1 - bs0))" -v cl="$client_s" \
        'BEGIN { if (n == 0) { print ",,,"; exit }
                 if (p == "") printf ",,"; else printf "%.2f,%.2f,", (b-a)*1e6/t/n, (d-c)*1e6/t/n
                 printf "%.2f,%.2f", bk*1e6/t/n, cl*1e6/n }')
      rps=$(awk '/Requests\/sec/ {print $2}' "$f")
      p50=$(to_ms "$(awk '$1=="50%" {print $2}' "$f")")
      p99=$(to_ms "$(awk '$1=="99%" {print $2}' "$f")")
      if grep -q "Non-2xx\|Socket errors" "$f"; then echo "compare.sh: errors in $f:" $(grep "Non-2xx\|Socket errors" "$f") >&2; fi
      echo "$round,$size,$t,$rps,$p50,$p99,$cpu" >>"$out/closed.csv"
    done
  done
done

# --- 1b. system calls, context switches and TCP segments per request --------------------------
# Over one wrk run per proxy and body size (each of --sizes but 64k): the system calls the proxy process made
# (perf on kernel tracepoints), its threads' context switches (/proc/PID/task/*/status) and the
# TCP segments the whole host sent (nstat; loopback carries only this benchmark): what the kernel
# part of the CPU per request is made of. Also how often the proxy makes the others wake: wrk's and
# the backend's epoll_wait calls and context switches (perf stat). Writes that go out in bursts can
# let one wake-up of theirs find several ready sockets.
# Skipped when tracepoints are not available (no linux-perf, or no permission).
syscalls=(recvfrom sendto sendmsg read readv write writev epoll_wait)
wake_events=syscalls:sys_enter_epoll_wait,context-switches
echo "size,target,requests,${syscalls[*]},ctx_switches,tcp_segments,client_epoll_wait,client_ctx_switches,backend_epoll_wait,backend_ctx_switches" |
  tr ' ' ',' >"$out/syscalls.csv"
perf_count() { awk -F, -v e="$2" '$3 == e {print $1 + 0}' "$1"; }  # perf stat -x, file, event -> count
ctx_switches() { cat /proc/"$1"/task/*/status | awk '/_ctxt_switches:/ {n += $2} END {print n + 0}'; }
out_segs() { nstat -az TcpOutSegs | awk '$1 == "TcpOutSegs" {print $2}'; }
if perf stat -e syscalls:sys_enter_recvfrom -x, -o /dev/null -- true 2>/dev/null; then
  events=$(printf 'syscalls:sys_enter_%s,' "${syscalls[@]}")
  echo "system calls: sizes ${sizes/64k/} x 3 proxies x ${secs}s (perf stat)" >&2
  for size in ${sizes/64k/}; do
    for t in nginx haproxy wakegate; do
      pid=$(pid_of "$t")
      f="$out/syscalls-$size-$t.txt"
      perf stat -e "${events%,}" -x, -o "$f" -p "$pid" -- sleep "$((secs + 1))" &
      sp=$!
      perf stat -e "$wake_events" -x, -o "$f.backend" -p "$backend_worker" -- sleep "$((secs + 1))" &
      bp=$!
      sleep 0.3  # perf attaches before the load starts
      c0=$(ctx_switches "$pid") g0=$(out_segs)
      n=$(perf stat -e "$wake_events" -x, -o "$f.client" -- \
        wrk -t1 -c"$conns" -d"${secs}s" -H 'Host: bench.test' "$(url_of "$t" "/$size")" | awk '/requests in/ {print $1}')
      c1=$(ctx_switches "$pid") g1=$(out_segs)
      wait "$sp" "$bp"
      row="$size,$t,$n"
      for c in "${syscalls[@]}"; do row+=",$(perf_count "$f" "syscalls:sys_enter_$c")"; done
      row+=",$((c1 - c0)),$((g1 - g0))"
      for w in client backend; do
        row+=",$(perf_count "$f.$w" syscalls:sys_enter_epoll_wait),$(perf_count "$f.$w" context-switches)"
      done
      echo "$row" >>"$out/syscalls.csv"
    done
  done
else
  echo "compare.sh: perf tracepoints unavailable; system calls not counted" >&2
fi

# --- 2. open loop ------------------------------------------------------------------------------
echo "round,target,achieved_rps,errors,p50_us,p99_us,p999_us" >"$out/open.csv"
echo "open loop: $rounds rounds x ${#targets[@]} targets x ${secs}s at $rate req/s" >&2
for round in $(seq 1 "$rounds"); do
  for t in "${targets[@]}"; do
    hp=$(url_of "$t" "" | sed 's|http://||')
    line=$("$load" rate --target "$hp" --host bench.test --path /1k --rate "$rate" --duration "$secs" \
      --warmup 1 --connections "$conns" || true)
    echo "$line" >"$out/open-$round-$t.txt"
    kv() { sed -n "s/.*\b$1=\([0-9.]*\).*/\1/p" <<<"$line"; }
    echo "$round,$t,$(kv achieved_rps),$(kv errors),$(kv p50_us),$(kv p99_us),$(kv p999_us)" >>"$out/open.csv"
  done
done

# --- 3. memory ---------------------------------------------------------------------------------
hold_measure() {  # pid target-hostport extra-args... -> KiB per connection
  local pid=$1 hp=$2
  shift 2
  local before after fifo="$tmp/hold.fifo"
  before=$(rss_kb "$pid")
  rm -f "$fifo"; mkfifo "$fifo"
  "$load" hold --target "$hp" --host bench.test --path /0 --connections "$idle_conns" --seconds 60 "$@" >"$fifo" &
  local hpid=$!
  local ready
  read -r ready <"$fifo" || true
  sleep 0.5  # let the server finish the last accepts before reading its RSS
  after=$(rss_kb "$pid")
  kill "$hpid" 2>/dev/null || true
  wait "$hpid" 2>/dev/null || true
  awk -v a="$after" -v b="$before" -v n="$idle_conns" -v r="$ready" 'BEGIN { printf "%.2f %s\n", (a-b)/n, r }'
}
echo "memory: $idle_conns idle keep-alive connections per proxy, then $idle_conns held requests" >&2
read -r wg_idle_kb wg_idle_ready < <(hold_measure "$wg_pid" "$wg_http" --request-first)
read -r ngx_idle_kb _ < <(hold_measure "$ngx_worker" "127.0.0.1:$ngx_port" --request-first)
read -r hap_idle_kb _ < <(hold_measure "$hap_pid" "127.0.0.1:$hap_port" --request-first)
stop_pid "$wg_pid"

# Held requests: an app whose instance never becomes ready within the measurement.
start_wakegate held 1 0 "exec sleep 120"
read -r wg_held_kb wg_held_ready < <(hold_measure "$wg_pid" "$wg_http")
stop_pid "$wg_pid"

# --- 4. cold starts ----------------------------------------------------------------------------
echo "cold starts: $colds" >&2
access_log=true start_wakegate cold 1 0 "$backend_cmd"
for _ in $(seq 1 "$colds"); do
  curl -s -o /dev/null -H 'Host: bench.test' "http://$wg_http/0"
  for _ in $(seq 1 200); do
    curl -s "http://$wg_admin/status" | grep -q '"instances":\[\]' && break
    sleep 0.05  # poll until it is back at zero
  done
done
stop_pid "$wg_pid"
cp "$tmp/cold.log" "$out/cold.log"

# --- 5. two workers ----------------------------------------------------------------------------
echo "scaling: wakegate 1 vs 2 workers, wrk -t2 -c$conns" >&2
# Where the cores are shared, req/s cannot show scaling; what can: the CPU a request costs with
# 2 workers against 1 (contention between workers would raise it) and how evenly the worker
# threads (named wg-worker-N) share the work.
worker_ticks() {  # pid -> utime+stime of each worker thread, one per line
  local t c
  for t in /proc/"$1"/task/*; do
    c=$(cat "$t/comm" 2>/dev/null) || continue
    [[ $c == wg-worker-* ]] && awk '{print $14 + $15}' "$t/stat"
  done
}
echo "round,workers,rps,requests,cpu_us_per_req,busiest_worker_share" >"$out/scaling.csv"
for round in $(seq 1 "$rounds"); do
  for w in 1 2; do
    start_wakegate "w$w" "$w" 1 "$backend_cmd"
    wait_line "$tmp/w$w.log" '"instance ready"' >/dev/null
    read -r u0 s0 < <(cpu_ticks "$wg_pid")
    mapfile -t before < <(worker_ticks "$wg_pid")
    f="$out/scaling-$round-$w.txt"
    wrk -t2 -c"$conns" -d"${secs}s" -H 'Host: bench.test' "http://$wg_http/0" >"$f"
    read -r u1 s1 < <(cpu_ticks "$wg_pid")
    mapfile -t after < <(worker_ticks "$wg_pid")
    rps=$(awk '/Requests\/sec/ {print $2}' "$f")
    n=$(awk '/requests in/ {print $1}' "$f")
    busiest=0 all=0
    for i in "${!after[@]}"; do
      d=$((after[i] - ${before[i]:-0}))
      all=$((all + d))
      ((d > busiest)) && busiest=$d
    done
    stats=$(awk -v u="$((u1 - u0 + s1 - s0))" -v n="$n" -v t="$tick" -v b="$busiest" -v a="$all" \
      'BEGIN { printf "%.2f,%.2f", u * 1e6 / t / n, (a > 0 ? b / a : 0) }')
    echo "$round,$w,$rps,$n,$stats" >>"$out/scaling.csv"
    stop_pid "$wg_pid"
  done
done

# --- report ------------------------------------------------------------------------------------
/usr/bin/python3 - "$out" "$wg_idle_rss" "$wg_idle_kb" "$ngx_idle_kb" "$hap_idle_kb" "$wg_held_kb" \
  "$idle_conns" "$wg_idle_ready" "$wg_held_ready" "$(nproc)" "$secs" "$rounds" "$rate" "$conns" <<'PY' | tee "$out/report.md"
import csv, json, statistics, sys
(out, idle_rss, wg_idle, ngx_idle, hap_idle, wg_held, n, idle_ready, held_ready, cores, secs, rounds,
 rate, conns) = sys.argv[1:]
med = statistics.median
rows = list(csv.DictReader(open(f"{out}/closed.csv")))
sizes = list(dict.fromkeys(r["size"] for r in rows))  # as run, in order
print(f"# wakegate vs nginx vs HAProxy ({cores} cores, loopback, one worker each; medians of {rounds} "
      f"interleaved rounds of {secs}s)\n")
print(f"## Closed loop: wrk -t1 -c{conns}, keep-alive\n")
print("CPU per request (us): the proxy's user and kernel time, then the backend's and the load generator's "
      "(user + kernel).\n")
print("| body | target | req/s | x direct | x nginx | x haproxy | p50 ms | p99 ms | CPU us/req user | sys | backend | wrk |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for size in sizes:
    m = {}
    for t in ["direct", "nginx", "haproxy", "wakegate"]:
        rs = [r for r in rows if r["size"] == size and r["target"] == t]
        cpu = [r for r in rs if r["user_us"]]
        others = [r for r in rs if r["backend_us"]]
        m[t] = (med(float(r["rps"]) for r in rs), med(float(r["p50_ms"]) for r in rs),
                med(float(r["p99_ms"]) for r in rs),
                (f"{med(float(r['user_us']) for r in cpu):.2f} | {med(float(r['sys_us']) for r in cpu):.2f}" if cpu else "- | -") +
                (f" | {med(float(r['backend_us']) for r in others):.2f} | {med(float(r['client_us']) for r in others):.2f}"
                 if others else " | - | -"))
    for t, (rps, p50, p99, cpu) in m.items():
        print(f"| {size} | {t} | {rps:,.0f} | {rps / m['direct'][0]:.2f} | {rps / m['nginx'][0]:.2f} | "
              f"{rps / m['haproxy'][0]:.2f} | {p50:.2f} | {p99:.2f} | {cpu} |")
# The machine's speed drifts between rounds (shared cores): each round's targets ran minutes apart
# at most, so a round's own ratio is steadier than the ratio of medians above.
# A distribution-free confidence interval for the median of the per-round ratios: the order
# statistics x(k) and x(n+1-k) with the largest k for which each tail's binomial(n, 1/2) probability
# is at most 2.5 % (k = 1, the whole range, up to 8 rounds: 94 % coverage for 5, 75 % for 3);
# its coverage is printed with it.
def median_ci(xs):
    from math import comb
    xs, n = sorted(xs), len(xs)
    below = lambda k: sum(comb(n, i) for i in range(k)) / 2 ** n  # P(fewer than k rounds below the median)
    k = max([k for k in range(1, n // 2 + 1) if below(k) <= 0.025], default=1)
    return xs[k - 1], xs[n - k], 1 - 2 * below(k)
print("\nPer-round ratios (wakegate's req/s over the other target's in the same round): median "
      "[confidence interval of the median, its coverage] (min-max). An interval that holds 1.00 is a tie "
      "at this number of rounds.\n")
print("| body | x nginx | x haproxy | rounds wakegate ahead of both, p99 at or below both |")
print("|---|---|---|---:|")
for size in sizes:
    by_round = {}
    for r in rows:
        if r["size"] == size:
            by_round.setdefault(r["round"], {})[r["target"]] = r
    ratios = {"nginx": [], "haproxy": []}
    ahead = 0
    for rd in by_round.values():
        if not all(t in rd for t in ("wakegate", "nginx", "haproxy")):
            continue
        w = rd["wakegate"]
        for t in ratios:
            ratios[t].append(float(w["rps"]) / float(rd[t]["rps"]))
        if all(float(w["rps"]) >= float(rd[t]["rps"]) and float(w["p99_ms"]) <= float(rd[t]["p99_ms"])
               for t in ("nginx", "haproxy")):
            ahead += 1
    def cell(xs):
        if not xs:
            return "-"
        lo, hi, cover = median_ci(xs)
        return f"{med(xs):.2f} [{lo:.2f}-{hi:.2f}, {cover:.0%}] ({min(xs):.2f}-{max(xs):.2f})"
    print(f"| {size} | {cell(ratios['nginx'])} | {cell(ratios['haproxy'])} | {ahead} of {len(ratios['nginx'])} |")
orows = list(csv.DictReader(open(f"{out}/open.csv")))
print(f"\n## Open loop: {rate} req/s, 1 KiB bodies, {conns} connections, latency from scheduled send\n")
print("| target | achieved req/s | errors | p50 us | p99 us | p99.9 us |")
print("|---|---:|---:|---:|---:|---:|")
for t in ["direct", "nginx", "haproxy", "wakegate"]:
    rs = [r for r in orows if r["target"] == t and r["p50_us"]]
    if not rs:
        print(f"| {t} | - | - | - | - | - |"); continue
    f = lambda k: med(float(r[k] or 0) for r in rs)
    print(f"| {t} | {f('achieved_rps'):,.0f} | {f('errors'):.0f} | {f('p50_us'):.0f} | {f('p99_us'):.0f} | {f('p999_us'):.0f} |")
print("\n## Memory\n")
print(f"- wakegate idle RSS (one app, one instance, no connection): {int(idle_rss) / 1024:.1f} MiB")
print(f"- per idle keep-alive connection ({n} connections; {idle_ready}): wakegate {float(wg_idle):.1f} KiB, "
      f"nginx worker {float(ngx_idle):.1f} KiB, HAProxy {float(hap_idle):.1f} KiB")
print(f"- per held request ({n} requests held for a cold app; {held_ready}): wakegate {float(wg_held):.1f} KiB")
ready, held = [], []
for line in open(f"{out}/cold.log"):
    if not line.startswith("{"):
        continue
    d = json.loads(line)
    if d.get("msg") == "instance ready":
        ready.append(d["start_ms"])
    if d.get("type") == "access" and d.get("held"):
        held.append(d["duration_ms"])
over = sorted(h - r for h, r in zip(held, ready))
q = lambda xs, p: xs[min(len(xs) - 1, int(p * len(xs)))] if xs else float("nan")
print("\n## Cold start from zero\n")
print(f"- {len(over)} cold starts; instance's own time to ready p50 {q(sorted(ready), .5):.1f} ms")
print(f"- overhead (first response minus time to ready): p50 {q(over, .5):.2f} ms, p99 {q(over, .99):.2f} ms")
scrows = list(csv.DictReader(open(f"{out}/syscalls.csv")))
if scrows:
    extra = ("ctx_switches", "tcp_segments", "client_epoll_wait", "client_ctx_switches",
             "backend_epoll_wait", "backend_ctx_switches")
    names = [k for k in scrows[0] if k not in ("size", "target", "requests") + extra]
    used = [k for k in names if any(int(r[k] or 0) > 0 for r in scrows)]
    print(f"\n## System calls, context switches and TCP segments per request (wrk -t1 -c{conns})\n")
    print("System calls of the proxy process (perf stat); its threads' context switches; TCP segments "
          "sent by the whole host (the client's, the proxy's and the backend's).\n")
    print("| body | target | " + " | ".join(used) + " | total calls | context switches | TCP segments |")
    print("|---|---|" + "---:|" * (len(used) + 3))
    for r in scrows:
        n = int(r["requests"])
        per = [int(r[k] or 0) / n for k in used]
        print(f"| {r['size']} | {r['target']} | " + " | ".join(f"{v:.2f}" for v in per) +
              f" | {sum(per):.2f} | {int(r['ctx_switches']) / n:.3f} | {int(r['tcp_segments']) / n:.2f} |")
    print(f"\nHow often each proxy made the others wake, per request: `wrk`'s and the backend's "
          "`epoll_wait` calls and context switches (perf stat).\n")
    print("| body | target | wrk epoll_wait | wrk context switches | backend epoll_wait | backend context switches |")
    print("|---|---|---:|---:|---:|---:|")
    for r in scrows:
        n = int(r["requests"])
        print(f"| {r['size']} | {r['target']} | " + " | ".join(f"{int(r[k] or 0) / n:.3f}" for k in extra[2:]) + " |")
srows = list(csv.DictReader(open(f"{out}/scaling.csv")))
w1 = med(float(r["rps"]) for r in srows if r["workers"] == "1")
w2 = med(float(r["rps"]) for r in srows if r["workers"] == "2")
print(f"\n## Workers (wrk -t2 -c{conns}, empty bodies)\n")
print(f"- 1 worker {w1:,.0f} req/s, 2 workers {w2:,.0f} req/s: {w2 / w1:.2f}x on {cores} cores "
      "shared with wrk and the backend")
c1 = med(float(r["cpu_us_per_req"]) for r in srows if r["workers"] == "1")
c2 = med(float(r["cpu_us_per_req"]) for r in srows if r["workers"] == "2")
share = med(float(r["busiest_worker_share"]) for r in srows if r["workers"] == "2")
print(f"- CPU per request (user + kernel, whole process): 1 worker {c1:.2f} us, 2 workers {c2:.2f} us; "
      f"with 2 workers the busier thread did {share:.0%} of the workers' CPU")
print(f"\nraw data: {out}/")
PY
