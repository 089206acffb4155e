#!/usr/bin/env bash
# The base image the cluster tests build their job images on: it must carry torch (the 2-node
# gloo all-reduce) and the client's Python minor version. Prints its name on stdout:
# a Debian bookworm root filesystem with Debian's python3-torch (1.13, CPU only) and
# python3-numpy, made with mmdebstrap and `docker import` (PyPI's Linux torch wheel is the
# multi-GB CUDA build; Debian's is CPU-only and a few hundred MB), tagged
# nemo-run-k8s/cluster-base:<recipe hash> and reused while the recipe is unchanged.
# Debian's torch 1.13 predates Python 3.11: its torchrun iterates an IntFlag expecting the zero
# member (Python 3.11 no longer yields it) and dies with "AttributeError: 'NoneType' object has
# no attribute 'get'" before starting any process. The entrypoint repairs that at run time
# (nemo_run_k8s/runtime/torchrun.py); one sed fixes the file here too, for plain `torchrun` (the
# Kubeflow SDK's jobs in bench/run_all.py --rows cluster).
# Not nemo-run-k8s/cpu:local: its tag moves whenever images/build.sh runs (on a shared engine, in
# the middle of a test run).
# Needs a Docker engine (.ci/setup-docker.sh) and root for mmdebstrap.
set -euo pipefail
# shellcheck source=.ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REPO=nemo-run-k8s/cluster-base
SUITE=bookworm
INCLUDE=python3,python3-venv,python3-pip,python3-torch,python3-numpy,libstdc++6,ca-certificates
HOOKS=/usr/share/mmdebstrap/hooks/merged-usr
BUILD_LOG=/tmp/nemo-run-k8s-cluster-base.log
TORCH_API=/usr/lib/python3/dist-packages/torch/distributed/elastic/multiprocessing/api.py
PATCH="sed -i 's/for s in Std:/for s in Std.__members__.values():/' $TORCH_API"
CHANGES=(
    'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
    'ENV LANG=C.UTF-8'
    'CMD ["/bin/bash"]'
)

docker info >/dev/null 2>&1 || die "no Docker engine answers; run .ci/setup-docker.sh first"
mirror=$(apt_mirror "$SUITE") || die "no '$SUITE' mirror in this machine's apt sources"
recipe="suite=$SUITE include=$INCLUDE hooks=${HOOKS##*/} mirror=$mirror patch=$PATCH"
for change in "${CHANGES[@]}"; do recipe+=" change=$change"; done
image="$REPO:$(printf '%s' "$recipe" | short_hash)"
if ! image_exists "$image"; then
    need_root "building the cluster test base image (mmdebstrap)"
    apt_install mmdebstrap
    log "building $image (Debian $SUITE + python3-torch; log: $BUILD_LOG)"
    import=(docker import)
    for change in "${CHANGES[@]}"; do import+=(--change "$change"); done
    if ! mmdebstrap --quiet --variant=essential --hook-dir="$HOOKS" --include="$INCLUDE" \
        "$SUITE" - "$mirror" 2>"$BUILD_LOG" | "${import[@]}" - "$image-rootfs" >/dev/null; then
        tail -n 30 "$BUILD_LOG" >&2
        docker image rm "$image-rootfs" >/dev/null 2>&1 || true
        die "building $image failed (mmdebstrap log: $BUILD_LOG)"
    fi
    printf 'FROM %s\nRUN %s && grep -q "Std.__members__" %s\n' "$image-rootfs" "$PATCH" \
        "$TORCH_API" | docker build -q -t "$image" - >>"$BUILD_LOG" 2>&1 ||
        die "patching torchrun in $image failed (log: $BUILD_LOG)"
    docker image rm "$image-rootfs" >/dev/null 2>&1 || true
fi
printf '%s\n' "$image"
