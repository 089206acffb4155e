#!/bin/sh
# Create /opt/venv on the image's python3 and install the pinned requirements from the wheels
# that images/build.sh put into the build context (containers cannot reach a package index).
# Usage: install-venv.sh PYTHON_VERSION   (the minor version the image claims to carry, e.g. 3.11)
set -eu
expected=$1
actual=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [ "$actual" != "$expected" ]; then
    echo "error: the base image carries Python $actual but the build says $expected" \
        "(build arg PYTHON_VERSION); bundles pickled under one minor version do not load" \
        "reliably under another, so the image label must be right" >&2
    exit 1
fi
# --system-site-packages: Debian's pip refuses installs; the venv still sees the base's packages.
python3 -m venv --system-site-packages /opt/venv
/opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --no-index \
    --find-links /tmp/wheels -r /tmp/wheels/requirements.txt
/opt/venv/bin/python -c 'import numpy, torch; torch.from_numpy(numpy.ones(2))'
