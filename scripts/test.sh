#!/usr/bin/env bash
# The test command: installs dependencies, configures and builds the release preset, runs ctest.
# Exits with ctest's status. Runs from any directory.
#   WAKEGATE_TEST_LABEL=unit scripts/test.sh         # only one label: unit or integration
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/deps.sh
# A Docker daemon and the test image for the Docker tests (they report SKIPPED with the reason if not).
scripts/docker-up.sh || echo "test.sh: Docker is not usable: the Docker tests will be skipped" >&2
cmake --preset release
cmake --build build -j "$(nproc)"

ctest_args=(--test-dir build --output-on-failure -j2 --timeout 300 --no-tests=error)
if [[ -n ${WAKEGATE_TEST_LABEL:-} ]]; then
  ctest_args+=(--label-regex "^${WAKEGATE_TEST_LABEL}\$")
fi
exec ctest "${ctest_args[@]}"
