#!/usr/bin/env bash
# Lint and render helm/nemo-run-k8s with the real helm binary, with default and with full values,
# and show that the schema rejects a bad value. The detailed checks live in tests/helm/.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "${repo_root}/.ci/setup-helm.sh"
helm="${HELM:-${repo_root}/.tools/bin/helm}"
chart="${repo_root}/helm/nemo-run-k8s"
full="${chart}/ci/full-values.yaml"

echo "== helm lint --strict (default values)"
"${helm}" lint --strict "${chart}"
echo "== helm lint --strict (full values)"
"${helm}" lint --strict "${chart}" --values "${full}"
echo "== helm template (default values)"
"${helm}" template prep "${chart}" --namespace team-a | grep -E '^(kind|  name):'
echo "== helm template (full values)"
"${helm}" template prep "${chart}" --namespace ml-platform --values "${full}" \
    | grep -E '^(kind|  name):'
echo "== schema rejects a bad value (persistence.size=lots)"
if rejected="$("${helm}" template prep "${chart}" --set persistence.size=lots 2>&1)"; then
    echo "check-chart: the schema accepted persistence.size=lots" >&2
    exit 1
fi
echo "${rejected}"
echo "check-chart: ok"
