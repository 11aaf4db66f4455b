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
# SOEM as the master of the emulated EtherCAT slaves (raw Ethernet on a veth pair: root only).
if [ "$(id -u)" -eq 0 ]; then
    LUMEN=.build/debug/lumen bash hil/interop/soem_check.sh
else
    echo "skipped: SOEM interop check (needs root for a veth pair and raw sockets)"
fi
swift test --skip-build
