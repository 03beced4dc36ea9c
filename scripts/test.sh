#!/usr/bin/env bash
# The test command: installs dependencies, configures and builds the release preset, runs ctest.
# Exits with ctest's status. Runs from any directory.
#   WAKEGATE_TEST_LABEL=unit scripts/test.sh         # only one label: unit or integration
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/deps.sh
cmake --preset release
cmake --build build -j "$(nproc)"

ctest_args=(--test-dir build --output-on-failure -j2 --timeout 300 --no-tests=error)
if [[ -n ${WAKEGATE_TEST_LABEL:-} ]]; then
  ctest_args+=(--label-regex "^${WAKEGATE_TEST_LABEL}\$")
fi
exec ctest "${ctest_args[@]}"
