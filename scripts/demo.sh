#!/usr/bin/env bash
# Sets up, builds in release and runs the main job: `lumen demo`. Extra arguments go to it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build -c release --product lumen >&2
exec .build/release/lumen demo "$@"
