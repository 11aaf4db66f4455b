#!/usr/bin/env bash
# Installs the Debian packages Lumen builds against, when any is missing.
# Usage: scripts/setup.sh        (run as root, or with sudo available)
set -euo pipefail

packages=(pkg-config make gcc libc6-dev iproute2 tshark libeigen3-dev libopencv-dev libserialport-dev libdcmtk-dev dcmtk)
# The OpenIGTLink reference library and its example programs: an independent client in the recording tests.
packages+=(g++ libopenigtlink-dev openigtlink-examples)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}" >&2
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { echo "setup: need root (or sudo) to install ${missing[*]}" >&2; exit 1; }
        sudo="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

command -v swift >/dev/null || { echo "setup: swift is not on PATH (Lumen needs Swift 6.3)" >&2; exit 1; }
