#!/usr/bin/env bash
# Build a local base image without any registry: mmdebstrap writes a Debian bookworm root
# filesystem as a tar stream and `docker import` turns it into an image.
#
#   .ci/setup-base-image.sh [python|torch]
#
#   python (default)  nemo-run-k8s/base-python: python3 and venv, nothing else
#   torch             nemo-run-k8s/base-torch:  the same plus Debian's python3-torch (torch 1.13,
#                     CPU) and python3-numpy in the system Python; what images/cpu builds on
#
# The image is tagged
#   nemo-run-k8s/base-<variant>:<hash of the recipe below + the apt mirror>   (the content tag)
#   nemo-run-k8s/base-<variant>:local                                         (what images/ uses)
# and the build is skipped when the content tag already exists. Prints the content tag on stdout.
# Needs root and a running Docker engine (.ci/setup-docker.sh).
set -euo pipefail
# shellcheck source=.ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SUITE=bookworm
VARIANT=essential # Essential: yes packages: bash, coreutils, dash, apt's dpkg, ...
INCLUDE=python3,python3-venv,libstdc++6,ca-certificates # libstdc++6: torch needs it
case ${1:-python} in
python) REPO=nemo-run-k8s/base-python ;;
# PyPI's Linux torch is the CUDA build (~2.6 GB of wheels); Debian's is CPU-only and needs no
# download outside the apt mirror. Its dependency closure is large (~1.2 GB image).
torch) REPO=nemo-run-k8s/base-torch INCLUDE+=,python3-torch,python3-numpy ;;
*)
    echo "usage: $0 [python|torch]" >&2
    exit 2
    ;;
esac
HOOKS=/usr/share/mmdebstrap/hooks/merged-usr
BUILD_LOG=/tmp/nemo-run-k8s-mmdebstrap.log
# `docker import` gives an image no config at all; these make it behave like a normal base image.
CHANGES=(
    'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
    'ENV LANG=C.UTF-8'
    'CMD ["/bin/bash"]'
)

mirror=$(apt_mirror "$SUITE") ||
    die "no '$SUITE' mirror in this machine's apt sources (/etc/apt/sources.list*)"
recipe="suite=$SUITE variant=$VARIANT include=$INCLUDE hooks=${HOOKS##*/} mirror=$mirror"
for change in "${CHANGES[@]}"; do recipe+=" change=$change"; done
image="$REPO:$(printf '%s' "$recipe" | short_hash)"

docker info >/dev/null 2>&1 || die "no Docker engine answers; run .ci/setup-docker.sh first"
if image_exists "$image"; then
    log "$image is up to date"
else
    need_root "building the base image (mmdebstrap)"
    apt_install mmdebstrap
    log "building $image from $mirror ($SUITE, $VARIANT + $INCLUDE)"
    import=(docker import)
    for change in "${CHANGES[@]}"; do import+=(--change "$change"); done
    if ! mmdebstrap --quiet --variant="$VARIANT" --hook-dir="$HOOKS" --include="$INCLUDE" \
        "$SUITE" - "$mirror" 2>"$BUILD_LOG" | "${import[@]}" - "$image" >/dev/null; then
        tail -n 30 "$BUILD_LOG" >&2
        docker image rm "$image" >/dev/null 2>&1 || true
        die "building $image failed (mmdebstrap log: $BUILD_LOG)"
    fi
fi
docker tag "$image" "$REPO:local"
size=$(docker image inspect --format '{{.Size}}' "$image" | numfmt --to=iec)
log "$REPO:local -> $image ($size)"
printf '%s\n' "$image"
