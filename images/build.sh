#!/usr/bin/env bash
# Build a runtime base image: images/common/Dockerfile on the base that images/<flavor>/flavor
# names, with the wheels of images/<flavor>/requirements.txt (when the flavor has one: cpu takes
# torch from its base instead), downloaded on the host (containers reach no package index).
#
#   images/build.sh cpu|cuda [--base IMAGE]
#
# Tags nemo-run-k8s/<flavor>:<content hash> (the flavor file, images/common/, the exact wheel
# files, the base image id and its Python version) and skips the build when that tag exists. With
# the flavor's own base it also tags nemo-run-k8s/<flavor>:local. Prints the content tag on stdout.
# Output is quiet when CI=true (the build log is shown on failure) and streamed otherwise.
# Wheels are cached in ${NEMO_RUN_K8S_CACHE:-~/.cache/nemo-run-k8s}/wheels.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=.ci/lib.sh
source "$here/../.ci/lib.sh"

usage() {
    echo "usage: $0 cpu|cuda [--base IMAGE]" >&2
    exit 2
}

(($# >= 1)) || usage
flavor=$1
shift
[[ -f $here/$flavor/flavor ]] || usage
base=""
while (($#)); do
    case $1 in
    --base) (($# >= 2)) || usage; base=$2; shift 2 ;;
    *) usage ;;
    esac
done

flavor_file=$here/$flavor/flavor
requirements=$here/$flavor/requirements.txt
cache=${NEMO_RUN_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nemo-run-k8s}
python=${PYTHON:-python3}
quiet=false
[[ ${CI:-} == true ]] && quiet=true

# flavor_default NAME: the value the flavor file gives NAME.
flavor_default() {
    sed -n "s/^$1=//p" "$flavor_file" | head -n 1
}

default_base=$(flavor_default BASE_IMAGE)
base=${base:-$default_base}

docker info >/dev/null 2>&1 || die "no Docker engine answers; run .ci/setup-docker.sh first"

# The Python minor version decides which wheels fit and goes into the image label. A base that
# carries python3 tells it; a bare one (nvidia/cuda) gets the flavor's declared version,
# which the build itself checks against the python3 it installs.
if image_exists "$base"; then
    base_id=$(docker image inspect --format '{{.Id}}' "$base")
    python_version=$(docker run --rm --entrypoint python3 "$base" \
        -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) ||
        python_version=$(flavor_default PYTHON_VERSION)
else
    [[ $base != nemo-run-k8s/* ]] ||
        die "base image $base not found; run .ci/setup-base-image.sh first"
    log "base image $base is not local; docker build will pull it"
    base_id=$base
    python_version=$(flavor_default PYTHON_VERSION)
fi

# Download the wheels once per (requirements, Python version); SHA256SUMS marks a complete set.
# A flavor without requirements.txt installs no wheels: an empty set.
if [[ -f $requirements ]]; then
    wheels=$cache/wheels/py$python_version-$(short_hash <"$requirements")
else
    wheels=$cache/wheels/none
    mkdir -p "$wheels"
    : >"$wheels/SHA256SUMS"
fi
if [[ ! -f $wheels/SHA256SUMS ]]; then
    log "downloading wheels for Python $python_version into $wheels"
    rm -rf "$wheels.partial"
    mkdir -p "$wheels.partial"
    pip_download=("$python" -m pip download --quiet --disable-pip-version-check
        --only-binary=:all: --python-version "$python_version"
        -r "$requirements" -d "$wheels.partial")
    "${pip_download[@]}" >&2 || die "pip download failed: ${pip_download[*]}"
    (cd "$wheels.partial" && sha256sum -- *.whl >SHA256SUMS)
    rm -rf "$wheels"
    mv "$wheels.partial" "$wheels"
fi

key=$(
    {
        cat "$flavor_file"
        for file in "$here"/common/*; do
            printf '%s\n' "${file##*/}"
            cat "$file"
        done
        cat "$wheels/SHA256SUMS"
        printf 'base=%s python=%s\n' "$base_id" "$python_version"
    } | short_hash
)
image=nemo-run-k8s/$flavor:$key

if image_exists "$image"; then
    log "$image is up to date"
else
    context=$(mktemp -d "$cache/context.XXXXXX")
    trap 'rm -rf "$context"' EXIT
    cp -r "$here/common" "$context/common"
    mkdir "$context/wheels"
    if [[ -f $requirements ]]; then
        # Hard links when the cache and the context share a file system: no 2.6 GB copy.
        cp -l "$wheels"/*.whl "$context/wheels/" 2>/dev/null || cp "$wheels"/*.whl "$context/wheels/"
        cp "$requirements" "$context/wheels/requirements.txt"
    fi

    build=(docker build --force-rm --label "nemo-run-k8s.io/content-key=$key" -t "$image"
        -f "$context/common/Dockerfile"
        --build-arg "BASE_IMAGE=$base" --build-arg "PYTHON_VERSION=$python_version"
        --build-arg "SYSTEM_SITE_PACKAGES=$(flavor_default SYSTEM_SITE_PACKAGES)" "$context")
    log "building $image on $base (Python $python_version)"
    # The classic builder: the SDK uses it too, and buildx is not installed everywhere.
    if $quiet; then
        build_log=$cache/build-$flavor.log
        if ! DOCKER_BUILDKIT=0 "${build[@]}" >"$build_log" 2>&1; then
            tail -n 40 "$build_log" >&2
            die "building $image failed (full log: $build_log)"
        fi
    else
        DOCKER_BUILDKIT=0 "${build[@]}" >&2 || die "building $image failed"
    fi
fi
if [[ $base == "$default_base" ]]; then
    docker tag "$image" "nemo-run-k8s/$flavor:local"
    log "nemo-run-k8s/$flavor:local -> $image"
fi
log "$image: $(docker image inspect --format '{{.Size}}' "$image" | numfmt --to=iec)"
printf '%s\n' "$image"
