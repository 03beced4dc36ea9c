#!/usr/bin/env bash
# A testssl.sh scan of wakegate's https listener (ECDSA P-256 certificate made here with openssl):
# fails on any finding rated HIGH or CRITICAL, and prints the MEDIUM/LOW ones for the record.
# Fast options keep it to a couple of minutes. Needs WAKEGATE_BIN and the testssl package.
set -euo pipefail
bin=${WAKEGATE_BIN:?WAKEGATE_BIN must name the wakegate binary}
command -v testssl >/dev/null || { echo "testssl not installed (scripts/deps.sh installs testssl.sh)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$tmp"' EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/ca.key" -out "$tmp/ca.pem" \
  -subj "/CN=wakegate testssl CA" -days 400 -addext basicConstraints=critical,CA:TRUE 2>/dev/null
# A certificate like a CA would issue (a year, a CRL URI), so that the scan rates the listener, not
# the test certificate.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/site.key" -out "$tmp/site.pem" \
  -subj "/CN=site.test" -addext "subjectAltName=DNS:site.test" -addext "crlDistributionPoints=URI:http://ca.test/crl" \
  -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -days 365 2>/dev/null
cat >"$tmp/wg.yaml" <<YAML
listen: { http: 127.0.0.1:0, admin: 127.0.0.1:0, https: 127.0.0.1:0 }
access_log: false
tls:
  certificates: [{ cert: site.pem, key: site.key }]
apps:
  - name: site
    hosts: [site.test]
    backend: { process: { command: [/bin/sleep, "3600"] } }
YAML
"$bin" run --config "$tmp/wg.yaml" 2>"$tmp/wg.log" &
port=""
for _ in $(seq 1 200); do  # poll for the listening line, 10 s at most
  port=$(sed -n 's/.*"listener":"https","address":"127.0.0.1:\([0-9]*\)".*/\1/p' "$tmp/wg.log" | head -1)
  [[ -n $port ]] && break
  sleep 0.05
done
[[ -n $port ]] || { echo "wakegate did not start:"; cat "$tmp/wg.log"; exit 1; }

# Protocols, cipher categories, forward secrecy, server defaults, vulnerabilities, no DNS lookups.
timeout 240 testssl --quiet --color 0 --warnings off --openssl-timeout 5 --nodns min --ip 127.0.0.1 \
  --protocols --std --fs --server-defaults --vulnerable --sneaky \
  --add-ca "$tmp/ca.pem" --jsonfile "$tmp/scan.json" "site.test:$port" >"$tmp/scan.txt" 2>&1 || true
[[ -s $tmp/scan.json ]] || { echo "testssl produced no result:"; cat "$tmp/scan.txt"; exit 1; }
python3 - "$tmp/scan.json" <<'PY'
import json, sys
findings = json.load(open(sys.argv[1]))
bad = [f for f in findings if f.get("severity") in ("HIGH", "CRITICAL")]
for f in findings:
    if f.get("severity") in ("MEDIUM", "LOW", "HIGH", "CRITICAL"):
        print(f"{f['severity']:8} {f['id']}: {f['finding']}")
print(f"testssl: {len(findings)} results, {len(bad)} HIGH/CRITICAL")
sys.exit(1 if bad else 0)
PY
