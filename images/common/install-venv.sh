#!/bin/sh
# Create /opt/venv on the image's python3 and install the pinned requirements from the wheels
# that images/build.sh put into the build context (containers cannot reach a package index).
# Usage: install-venv.sh PYTHON_VERSION [SYSTEM_SITE_PACKAGES]
#   PYTHON_VERSION        the minor version the image claims to carry (the label), e.g. 3.11
#   SYSTEM_SITE_PACKAGES  true: the venv sees the base's packages (cpu: Debian's python3-torch);
#                         false (default): a plain venv, torch comes from the wheels (cuda)
set -eu
expected=$1
system_site_packages=${2:-false}
actual=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [ "$actual" != "$expected" ]; then
    echo "error: the base image carries Python $actual but the build says $expected" \
        "(build arg PYTHON_VERSION); bundles pickled under one minor version do not load" \
        "reliably under another, so the image label must be right" >&2
    exit 1
fi
case $system_site_packages in
true) python3 -m venv --system-site-packages /opt/venv ;;
false) python3 -m venv /opt/venv ;;
*)
    echo "error: SYSTEM_SITE_PACKAGES must be true or false, not '$system_site_packages'" >&2
    exit 1
    ;;
esac
if [ -s /tmp/wheels/requirements.txt ]; then
    /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --no-index \
        --find-links /tmp/wheels -r /tmp/wheels/requirements.txt
fi
/opt/venv/bin/python -c 'import numpy, torch; torch.from_numpy(numpy.ones(2))' || {
    echo "error: torch and numpy must import in /opt/venv: give the flavor a requirements.txt" \
        "or a base whose system Python has them (with SYSTEM_SITE_PACKAGES=true)" >&2
    exit 1
}
