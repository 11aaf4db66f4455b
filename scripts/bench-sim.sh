#!/usr/bin/env bash
# Sets up the PyElastica peer (a Python venv in .venv-bench; benchmark tooling, not a product
# dependency), builds in release and runs `lumen bench sim` with the peer side by side.
# Extra arguments go to the command, e.g. `scripts/bench-sim.sh --json`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    apt-get update >&2 && apt-get install -y python3-venv >&2
fi
if [ ! -x .venv-bench/bin/python ] || ! .venv-bench/bin/python -c 'import elastica' 2>/dev/null; then
    python3 -m venv .venv-bench >&2
    .venv-bench/bin/pip install --quiet 'pyelastica==1.0.0' >&2
fi
swift build -c release --product lumen >&2
exec .build/release/lumen bench sim --peer-python .venv-bench/bin/python "$@"
