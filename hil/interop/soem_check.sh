#!/usr/bin/env bash
# Brings SOEM (PyPI pysoem) up against Lumen's emulated EtherCAT slaves on a veth pair whose
# slave end sits in a network namespace, and fails unless SOEM reaches OP and exchanges process
# data with the expected working counter. Needs root.
# Usage: hil/interop/soem_check.sh   (LUMEN=path/to/lumen; default .build/release/lumen)
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=.build-interop/venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import pysoem" 2>/dev/null; then
    rm -rf "$venv"
    # No package index, no peer: that is a skip with its reason, not a failed interop.
    if ! { python3 -m venv "$venv" && "$venv/bin/pip" install -q pysoem==1.1.13; }; then
        echo "skipped: SOEM interop check (pysoem could not be installed)"
        exit 0
    fi
fi
ns=lumen-soem-$$
cleanup() { ip netns del "$ns" 2>/dev/null || true; rm -f ".build-interop/slaves-$$.log"; }
trap cleanup EXIT
ip netns add "$ns"
ip link add lsm$$ type veth peer name lss$$
ip link set lss$$ netns "$ns"
ip link set lsm$$ up
ip netns exec "$ns" ip link set lss$$ up
. hil/interop/slaves.sh
start_slaves ".build-interop/slaves-$$.log" \
    "${LUMEN:-.build/release/lumen}" sim ethercat-slaves --interface lss$$ --namespace "$ns" --seconds 20
sim=$SLAVES_PID
status=0
timeout 18 "$venv/bin/python" hil/interop/soem_check.py lsm$$ || status=$?
kill "$sim" 2>/dev/null || true
wait "$sim" 2>/dev/null || true
exit $status
