#!/usr/bin/env bash
# Builds the tsan preset (ThreadSanitizer) and runs the unit and integration tests under it
# (Docker, ACME and testssl tests excluded: they add no threads of wakegate's own). Not in CI
# (about 6 min to build and 1 min to run on 2 cores); run it after changing anything shared
# between threads. Exits non-zero when a test fails or any process wrote a TSan report.
# Runs from any directory.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/deps.sh
cmake --preset tsan
cmake --build build-tsan -j "$(nproc)"

# The integration harness keeps wakegate's stderr only when an assertion fails, so reports go to
# files (one per process) and are checked afterwards.
reports=$(mktemp -d)
export TSAN_OPTIONS="halt_on_error=0 second_deadlock_stack=1 log_path=$reports/tsan"
export WAKEGATE_TEST_RSS_LIMIT_MIB=1024
status=0
ctest --test-dir build-tsan --output-on-failure -j2 --timeout 600 --no-tests=error \
  --label-regex '^(unit|integration)$' -E 'docker|acme|testssl' || status=$?
if compgen -G "$reports/tsan*" >/dev/null; then
  echo "tsan.sh: ThreadSanitizer reports:" >&2
  cat "$reports"/tsan* >&2
  status=1
else
  echo "tsan.sh: no ThreadSanitizer report"
fi
rm -rf "$reports"
exit "$status"
