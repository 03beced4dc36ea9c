#!/usr/bin/env bash
# Builds the asan preset (AddressSanitizer + UndefinedBehaviorSanitizer) and runs the unit and
# integration tests under it. Exits with ctest's status. Runs from any directory.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/deps.sh
cmake --preset asan
cmake --build build-asan -j "$(nproc)"

# Any sanitizer report fails the process that made it (and so the test that ran it); leaks are
# reported at exit. The streaming test's memory bound allows for shadow memory and quarantine.
export ASAN_OPTIONS=abort_on_error=1:detect_leaks=1:detect_stack_use_after_return=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export WAKEGATE_TEST_RSS_LIMIT_MIB=512
export WAKEGATE_TEST_SANITIZED=1  # tests that cannot run under the sanitizers skip themselves
exec ctest --test-dir build-asan --output-on-failure -j2 --timeout 600 --no-tests=error \
  --label-regex '^(unit|integration)$'
