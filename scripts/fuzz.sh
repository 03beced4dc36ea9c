#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/*_fuzz.cpp) with clang-14, ASan and UBSan, and runs each
# for SECONDS (default 60), all at once, on a copy of its seed corpus (tests/fuzz/corpus/<name>).
# Prints each target's executions and coverage; exits non-zero when a target finds a crash (the
# input is saved as build-fuzz/crash-*). Runs from any directory.
#   scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds=${1:-60}

scripts/deps.sh
out=build-fuzz
mkdir -p "$out"
flags=(-std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -fno-omit-frame-pointer -I. -DBOOST_BEAST_USE_STD_STRING_VIEW -DBOOST_ASIO_NO_DEPRECATED
       -DBOOST_ASIO_DISABLE_BOOST_COROUTINE)
clang++-14 "${flags[@]}" tests/fuzz/request_fuzz.cpp proxy/framing.cpp proxy/inspect.cpp \
  proxy/headers.cpp proxy/request_check.cpp proxy/wire.cpp -o "$out/request_fuzz" &
build_request=$!
clang++-14 "${flags[@]}" tests/fuzz/config_fuzz.cpp config/loader.cpp config/config.cpp config/certificate.cpp \
  common/time_zone.cpp -lyaml-cpp -lssl -lcrypto \
  -o "$out/config_fuzz" &
build_config=$!
clang++-14 "${flags[@]}" tests/fuzz/response_fuzz.cpp proxy/framing.cpp proxy/response_head.cpp \
  -o "$out/response_fuzz" &
build_response=$!
wait "$build_request"
wait "$build_config"
wait "$build_response"

pids=()
for name in request config response; do
  mkdir -p "$out/corpus-$name"
  "$out/${name}_fuzz" "$out/corpus-$name" "tests/fuzz/corpus/$name" -max_total_time="$seconds" \
    -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$out/" \
    >"$out/$name.log" 2>&1 &
  pids+=($!)
done
status=0
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || true  # judged from the logs below
done
for name in request config response; do
  log="$out/$name.log"
  runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  cov=$(grep -o 'cov: [0-9]*' <<<"$last" | grep -o '[0-9]*$' || echo "?")
  ft=$(grep -o 'ft: [0-9]*' <<<"$last" | grep -o '[0-9]*$' || echo "?")
  corpus=$(grep -o 'corp: [0-9]*' <<<"$last" | grep -o '[0-9]*$' || echo "?")
  echo "fuzz ${name}: ${seconds}s, ${runs} executions, coverage ${cov} edges, ${ft} features, corpus ${corpus}"
  if grep -qE 'ERROR: (AddressSanitizer|libFuzzer)|runtime error:|(request|response)_fuzz: ' "$log"; then
    echo "fuzz ${name}: FOUND A PROBLEM:" >&2
    grep -E -A30 'ERROR: |runtime error:|(request|response)_fuzz: ' "$log" | head -60 >&2
    status=1
  fi
done
exit "$status"
