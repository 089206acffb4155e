#!/usr/bin/env bash
# The main job: sets up .venv on first use, then runs examples/quickstart.py's job on the local
# executor (no Docker needed). Extra arguments go to `nemo-run-k8s run`, e.g.
#   bash scripts/run-example.sh optimizer.lr=0.1 trainer.max_epochs=50
#   bash scripts/run-example.sh --executor docker      # needs a Docker engine and base image
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh
exec .venv/bin/nemo-run-k8s run examples/quickstart.py:experiment "$@"
