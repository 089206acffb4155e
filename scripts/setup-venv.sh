#!/usr/bin/env bash
# Creates .venv with nemo_run_k8s (editable) and its docker, k8s and dev extras.
# Idempotent: skipped when .venv already matches pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
stamp=".venv/.nemo-run-k8s-stamp"
want=$(sha256sum pyproject.toml | cut -c1-16)
if [ -x .venv/bin/python ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    exit 0
fi
echo "setting up .venv (python: $($PYTHON --version 2>&1)) ..." >&2
"$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[docker,k8s,dev]'
echo "$want" >"$stamp"
