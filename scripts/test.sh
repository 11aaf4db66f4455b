#!/usr/bin/env bash
# Sets up, builds and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The firmware reference's own C99 unit tests, with the system compiler.
make -C hil/firmware test
# The DriveLink and EtherCAT decoders under libFuzzer, 10^6 inputs each.
bash fuzz/run.sh 1000000
swift build --build-tests
swift test --skip-build
