#!/usr/bin/env bash
# Installs everything wakegate needs from Debian 12's archive (build, tests, demo, coverage).
# Idempotent: checks each package with dpkg-query and installs only the missing ones; prints
# nothing when all are there. Needs root (or sudo) only when something is missing.
set -euo pipefail

packages=(
  build-essential g++ cmake ninja-build pkg-config
  libboost1.81-all-dev
  libboost-json1.81-dev  # not part of libboost1.81-all-dev on Debian 12
  libssl-dev libyaml-cpp-dev
  catch2 libbenchmark-dev
  prometheus             # promtool, to check /metrics
  python3-fastapi uvicorn curl  # the demo app and the integration tests
  gcovr
  gnuplot-nox tzdata    # the scaling simulator's plots; schedule time zones
  pebble testssl.sh  # HTTPS tests: ACME test CA (+ pebble-challtestsrv, its DNS), the TLS scan
  docker.io busybox-static  # the Docker backend's tests: a daemon and a registry-free test image
  docker-registry           # ... and a registry of their own on loopback, to test pulls
  clang-14 libclang-rt-14-dev  # libFuzzer targets (scripts/fuzz.sh)
)

missing=()
for pkg in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)
  [[ $status == ii* ]] || missing+=("$pkg")
done
((${#missing[@]} == 0)) && exit 0

echo "deps.sh: installing ${missing[*]}"
# sudo resets the environment, hence `env`.
run=(env DEBIAN_FRONTEND=noninteractive)
if ((EUID != 0)); then
  if ! command -v sudo >/dev/null; then
    echo "deps.sh: must run as root to install: ${missing[*]}" >&2
    exit 1
  fi
  run=(sudo "${run[@]}")
fi
"${run[@]}" apt-get update -q
"${run[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
