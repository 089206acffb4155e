#!/usr/bin/env bash
# Build the local Python base image without any registry: mmdebstrap writes a Debian bookworm root
# filesystem as a tar stream and `docker import` turns it into an image. The image is tagged
#   nemo-run-k8s/base-python:<hash of the recipe below + the apt mirror>   (the content tag)
#   nemo-run-k8s/base-python:local                                          (what images/ builds on)
# and the build is skipped when the content tag already exists. Prints the content tag on stdout.
# Needs root and a running Docker engine (.ci/setup-docker.sh).
set -euo pipefail
# shellcheck source=.ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REPO=nemo-run-k8s/base-python
SUITE=bookworm
VARIANT=essential # Essential: yes packages: bash, coreutils, dash, apt's dpkg, ...
INCLUDE=python3,python3-venv,libstdc++6,ca-certificates # libstdc++6: torch needs it
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
