#!/bin/sh
# Give the image python3 with venv support. Bases that carry it already (the local Debian base)
# are left alone; bare ones (nvidia/cuda) get it from their own distribution via apt.
set -eu
if python3 -c 'import ensurepip, venv' 2>/dev/null; then
    echo "python3 with venv already present: $(python3 --version)"
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends python3 python3-venv ca-certificates
rm -rf /var/lib/apt/lists/*
