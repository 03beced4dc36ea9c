#!/usr/bin/env bash
# Coverage report: configures the `coverage` preset (build-coverage/), builds, runs every test,
# then writes coverage/index.html (+ one page per file) and coverage/summary.txt with gcovr,
# counting only common/ config/ scaler/ proxy/. Exits with ctest's status.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/deps.sh
cmake --preset coverage
cmake --build build-coverage -j "$(nproc)"

# Counters from an earlier run would add up with this one's.
find build-coverage -name '*.gcda' -delete
status=0
ctest --test-dir build-coverage --output-on-failure -j2 --timeout 300 --no-tests=error || status=$?

rm -rf coverage
mkdir -p coverage
gcovr --root . --object-directory build-coverage \
  --filter 'common/' --filter 'config/' --filter 'scaler/' --filter 'proxy/' \
  --exclude 'tests/' --exclude 'bench/' \
  --exclude-unreachable-branches --exclude-throw-branches --gcov-ignore-parse-errors \
  --html-details coverage/index.html --txt coverage/summary.txt --print-summary
echo "coverage: coverage/index.html, coverage/summary.txt"
exit "$status"
