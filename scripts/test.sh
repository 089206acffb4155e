#!/usr/bin/env bash
# The test command. On a fresh machine it sets up everything first:
#   .venv with the package and test tools; as root (or wherever Docker already answers): the
#   Docker engine, the local base images and a loopback registry; helm and kubectl in .tools/bin;
#   as root, when the cluster tests are selected (no arguments, or tests/cluster among them), a
#   real single-node Kubernetes cluster with the Kubeflow training operator (.ci/setup-k8s.sh,
#   about a minute warm; the first build on a machine takes much longer, see README), whose admin
#   kubeconfig the cluster tests get in NRK_CLUSTER_KUBECONFIG.
# Then it runs pytest; extra arguments go to pytest (e.g. `bash scripts/test.sh tests/config -x`).
# Without Docker (not root, no engine) the Docker tests skip, except under CI=true, where a
# missing engine fails the run instead of hiding the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh
if [ "$(id -u)" = 0 ] || docker info >/dev/null 2>&1; then
    bash .ci/setup-docker.sh
    bash .ci/setup-base-image.sh        # nemo-run-k8s/base-python: python3 only
    bash .ci/setup-base-image.sh torch  # nemo-run-k8s/base-torch: + Debian's torch 1.13 (cpu's base)
    bash images/build.sh cpu
    bash .ci/setup-registry.sh --auth
    # The Python-mismatch test fetches Debian's pypy3 with `apt-get download`: apt needs its lists.
    apt-cache show pypy3 >/dev/null 2>&1 || apt-get update -q >/dev/null
fi
bash .ci/setup-helm.sh
export PATH="$PWD/.tools/bin:$PATH"
wants_cluster=false
[ $# -eq 0 ] && wants_cluster=true
for arg in "$@"; do
    case $arg in tests | tests/ | tests/cluster*) wants_cluster=true ;; esac
done
if $wants_cluster && [ "$(id -u)" = 0 ]; then
    NRK_CLUSTER_KUBECONFIG=$(bash .ci/setup-k8s.sh)
    export NRK_CLUSTER_KUBECONFIG
fi
exec .venv/bin/python -m pytest "$@"
