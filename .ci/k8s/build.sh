#!/usr/bin/env bash
# Build the CI cluster's components from their Go modules into a cache outside the repository,
# keyed on component version + Go version, so a warm machine builds nothing.
# Usage: build.sh [component...]   (kubernetes etcd coredns operator images; default all)
# Prints nothing on success except with NRK_VERBOSE=1; a failed build prints its log tail.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck disable=SC1091
source "$HERE/versions.env"
CACHE="${NRK_K8S_CACHE:-/var/cache/nemo-run-k8s}"
GOV="$(go env GOVERSION)"
export CGO_ENABLED=0 GOFLAGS="-p=${NRK_GO_P:-2} -mod=mod" GOTOOLCHAIN=local
LDFLAGS="-s -w"

key() {
    case "$1" in
    kubernetes) echo "kubernetes-$K8S_VERSION-$GOV-r2" ;;
    etcd) echo "etcd-$ETCD_VERSION-$GOV" ;;
    coredns) echo "coredns-$COREDNS_VERSION-$GOV-$(sha256sum "$HERE/coredns/main.go" | cut -c1-12)" ;;
    operator) echo "training-operator-$TRAINING_OPERATOR_VERSION-$GOV" ;;
    images) echo "images-$GOV-$(cat "$HERE"/images/go.mod "$HERE"/images/*/main.go | sha256sum | cut -c1-12)" ;;
    esac
}

# bindir COMPONENT: the cache folder of a built component (exists only once complete).
bindir() { echo "$CACHE/bin/$(key "$1")"; }

build_one() {
    local c="$1" out tmp log start
    out="$(bindir "$c")"
    [[ -d "$out" ]] && return 0
    mkdir -p "$CACHE/bin" "$CACHE/logs"
    tmp="$out.tmp.$$"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    log="$CACHE/logs/$(key "$c").log"
    start=$(date +%s)
    if ! (
        set -x
        case "$c" in
        kubernetes)
            cd "$HERE"
            # What the Kubernetes build stamps in (hack/lib/version.sh); without it the
            # components call themselves v0.0.0-master and version checks (helm's) misfire.
            local v=k8s.io/component-base/version minor=${K8S_VERSION#v1.}
            minor=${minor%%.*}
            local stamp="-X $v.gitVersion=$K8S_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor"
            stamp+=" -X $v.gitTreeState=clean -X $v.buildDate=1970-01-01T00:00:00Z"
            stamp+=" -X ${v/component-base/client-go/pkg}.gitVersion=$K8S_VERSION"
            go build -trimpath -ldflags="$LDFLAGS $stamp" -o "$tmp/" \
                k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
                k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet
            ;;
        etcd)
            cd "$HERE/etcd"
            go build -trimpath -ldflags="$LDFLAGS" -o "$tmp/etcd" .
            ;;
        coredns)
            cd "$HERE/coredns"
            go build -trimpath -ldflags="$LDFLAGS" -o "$tmp/coredns" .
            ;;
        operator)
            cd "$HERE/operator"
            go build -trimpath -ldflags="$LDFLAGS" -o "$tmp/training-operator" \
                github.com/kubeflow/training-operator/cmd/training-operator.v1
            ;;
        images)
            cd "$HERE/images"
            go build -trimpath -ldflags="$LDFLAGS" -o "$tmp/pause" ./pause
            go build -trimpath -ldflags="$LDFLAGS" -o "$tmp/wait-for-dns" ./wait-for-dns
            ;;
        esac
    ) >"$log" 2>&1; then
        echo "build of $c failed (log: $log):" >&2
        tail -30 "$log" >&2
        rm -rf "$tmp"
        return 1
    fi
    echo "built $c in $(($(date +%s) - start)) s" >>"$log"
    echo "$(($(date +%s) - start))" >"$tmp/.build-seconds"
    mv "$tmp" "$out"
    [[ "${NRK_VERBOSE:-0}" == 1 ]] && echo "built $c in $(($(date +%s) - start)) s -> $out" >&2
    return 0
}

if [[ "${1:-}" == "--bindir" ]]; then
    bindir "$2"
    exit 0
fi
components=("$@")
[[ ${#components[@]} -gt 0 ]] || components=(images kubernetes etcd coredns operator)
for c in "${components[@]}"; do build_one "$c"; done
