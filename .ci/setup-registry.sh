#!/usr/bin/env bash
# Run real image registries (Distribution v2, Debian's docker-registry package) on loopback:
#   127.0.0.1:5000  no authentication                        (always)
#   127.0.0.1:5001  htpasswd authentication, tester/secret   (with --auth; for auth-failure tests)
# Each is skipped when it already answers. Storage lives under /var/tmp/nemo-run-k8s-registry.
# Docker trusts loopback registries over plain HTTP, so no daemon settings are needed.
set -euo pipefail
# shellcheck source=.ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROOT=/var/tmp/nemo-run-k8s-registry
WAIT_S=30
AUTH_USER=tester
AUTH_PASSWORD=secret

usage() {
    echo "usage: $0 [--auth]   (--auth also starts the htpasswd-protected registry on :5001)" >&2
    exit 2
}

with_auth=false
case "$*" in
"") ;;
--auth) with_auth=true ;;
*) usage ;;
esac

# v2_status PORT: the HTTP status of GET /v2/ on 127.0.0.1:PORT ("000" when nothing answers).
v2_status() {
    curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$1/v2/" || true
}

# start_registry PORT NAME EXPECTED_STATUS [AUTH_YAML]: write the config and start the registry.
start_registry() {
    local port=$1 name=$2 expected=$3 auth=${4:-} status
    status=$(v2_status "$port")
    if [[ $status == "$expected" ]]; then
        log "registry $name already answers on 127.0.0.1:$port"
        return 0
    fi
    [[ $status == 000 ]] ||
        die "127.0.0.1:$port answers GET /v2/ with $status, not $expected: something else runs there"

    local dir=$ROOT/$name
    mkdir -p "$dir/storage"
    cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
$auth
EOF
    log "starting registry $name on 127.0.0.1:$port (log: $dir/registry.log)"
    setsid docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 </dev/null &
    local pid=$! deadline=$((SECONDS + WAIT_S))
    until [[ $(v2_status "$port") == "$expected" ]]; do
        if ! kill -0 "$pid" 2>/dev/null || ((SECONDS >= deadline)); then
            tail -n 20 "$dir/registry.log" >&2 || true
            die "registry $name did not answer on 127.0.0.1:$port"
        fi
        sleep 0.2
    done
}

plain_up=false
[[ $(v2_status 5000) == 200 ]] && plain_up=true
auth_up=false
[[ $(v2_status 5001) == 401 ]] && auth_up=true
if ! $plain_up || { $with_auth && ! $auth_up; }; then
    need_root "starting the registries"
    packages=(docker-registry)
    $with_auth && packages+=(apache2-utils) # htpasswd -B: the registry accepts bcrypt only
    apt_install "${packages[@]}"
fi

start_registry 5000 plain 200
if $with_auth; then
    mkdir -p "$ROOT/auth"
    htpasswd_file=$ROOT/auth/htpasswd
    if [[ ! -s $htpasswd_file ]]; then
        htpasswd -Bbn "$AUTH_USER" "$AUTH_PASSWORD" >"$htpasswd_file"
    fi
    start_registry 5001 auth 401 "auth:
  htpasswd:
    realm: nemo-run-k8s-test
    path: $htpasswd_file"
fi
