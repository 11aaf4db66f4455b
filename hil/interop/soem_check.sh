#!/usr/bin/env bash
# Brings SOEM (PyPI pysoem) up against Lumen's emulated EtherCAT slaves on a veth pair whose
# slave end sits in a network namespace. Needs root. Not part of CI: it reports, it does not assert.
# Usage: hil/interop/soem_check.sh   (from the repository root, after swift build -c release)
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=.build-interop/venv
[ -x "$venv/bin/python" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q pysoem; }
ns=lumen-soem-$$
cleanup() { ip netns del "$ns" 2>/dev/null || true; }
trap cleanup EXIT
ip netns add "$ns"
ip link add lsm$$ type veth peer name lss$$
ip link set lss$$ netns "$ns"
ip link set lsm$$ up
ip netns exec "$ns" ip link set lss$$ up
.build/release/lumen sim ethercat-slaves --interface lss$$ --namespace "$ns" --seconds 20 &
sim=$!
sleep 1
timeout 18 "$venv/bin/python" hil/interop/soem_check.py lsm$$ || true
wait "$sim" || true
