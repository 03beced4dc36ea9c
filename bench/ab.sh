#!/usr/bin/env bash
# Two wakegate builds side by side: does a change make proxying faster?
#
#   bench/ab.sh A B [--path P] [--secs S] [--rounds R] [--conns N]
#
# A and B are wakegate binaries (keep a copy of the old one: cp build/app/wakegate /tmp/wg-old).
# Each runs with one worker in front of its own copy of compare.sh's backend (nginx, 1 worker);
# then `wrk -t1 -c64` on P (default /1k; also /0 and /64k) for S seconds (default 3), A and B
# alternating for R rounds (default 10). Prints, per build, the median req/s and p99 and the CPU
# the wakegate process spent per request (user + kernel, /proc/PID/stat), and each round's B/A
# req/s ratio with their median: the machine's speed drifts between rounds, and a ratio within a
# round (A and B a few seconds apart) drifts less. Raw wrk output: bench/out/ab-<time>/.
# Needs wrk and nginx-light (installed if missing). Run on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

usage() { echo "usage: bench/ab.sh A B [--path P] [--secs S] [--rounds R] [--conns N]" >&2; exit 2; }
(($# >= 2)) || usage
a_bin=$1 b_bin=$2
shift 2
path=/1k secs=3 rounds=10 conns=64
while (($#)); do
  case $1 in
    --path) path=$2; shift 2 ;;
    --secs) secs=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --conns) conns=$2; shift 2 ;;
    *) usage ;;
  esac
done
for f in "$a_bin" "$b_bin"; do [[ -x $f ]] || { echo "ab.sh: $f is not an executable" >&2; exit 1; }; done
for p in nginx-light wrk; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null
done

out=bench/out/ab-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"
bin=$a_bin
source bench/lib.sh  # tmp, pids and their cleanup; the backend; start_wakegate

declare -A pid http
for v in A B; do
  if [[ $v == A ]]; then wg_bin=$a_bin; else wg_bin=$b_bin; fi
  start_wakegate "$v" 1 1 "$backend_cmd"
  wait_line "$tmp/$v.log" '"instance ready"' >/dev/null
  pid[$v]=$wg_pid http[$v]=$wg_http
done
tick=$(getconf CLK_TCK)
for v in A B; do wrk -t1 -c"$conns" -d1s -H 'Host: bench.test' "http://${http[$v]}$path" >/dev/null; done  # warm-up

echo "round,build,rps,p99_ms,user_us,sys_us" >"$out/ab.csv"
echo "A/B: $rounds rounds x 2 builds x ${secs}s, wrk -t1 -c$conns $path" >&2
for round in $(seq 1 "$rounds"); do
  for v in A B; do
    f="$out/wrk-$round-$v.txt"
    read -r u0 s0 < <(cpu_ticks "${pid[$v]}")
    wrk -t1 -c"$conns" -d"${secs}s" --latency -H 'Host: bench.test' "http://${http[$v]}$path" >"$f"
    read -r u1 s1 < <(cpu_ticks "${pid[$v]}")
    if grep -q "Non-2xx\|Socket errors" "$f"; then echo "ab.sh: errors in $f:" $(grep "Non-2xx\|Socket errors" "$f") >&2; fi
    p99=$(to_ms "$(awk '$1=="99%" {print $2}' "$f")")
    awk -v r="$round" -v v="$v" -v p="$p99" -v u0="$u0" -v u1="$u1" -v s0="$s0" -v s1="$s1" -v t="$tick" '
      /requests in/ { n = $1 }
      /Requests\/sec/ { rps = $2 }
      END { printf "%s,%s,%s,%s,%.2f,%.2f\n", r, v, rps, p, (u1-u0)*1e6/t/n, (s1-s0)*1e6/t/n }' "$f" >>"$out/ab.csv"
  done
done

/usr/bin/python3 - "$out/ab.csv" "$a_bin" "$b_bin" <<'PY'
import csv, statistics as st, sys
rows = list(csv.DictReader(open(sys.argv[1])))
by = {v: [r for r in rows if r["build"] == v] for v in "AB"}
med = lambda xs: st.median(float(x) for x in xs)
print("| build | binary | req/s (median) | p99 ms | CPU/request µs (user + kernel) |")
print("|---|---|---:|---:|---:|")
for v, b in zip("AB", sys.argv[2:]):
    r = by[v]
    print(f"| {v} | {b} | {med(x['rps'] for x in r):,.0f} | {med(x['p99_ms'] for x in r):.2f} | "
          f"{med(x['user_us'] for x in r):.2f} + {med(x['sys_us'] for x in r):.2f} |")
ratios = [float(b["rps"]) / float(a["rps"]) for a, b in zip(by["A"], by["B"])]
print(f"\nB/A req/s per round: median {st.median(ratios):.3f} (range {min(ratios):.3f}-{max(ratios):.3f}; "
      f"B ahead in {sum(x > 1 for x in ratios)} of {len(ratios)})")
PY
echo "raw data: $out/"
