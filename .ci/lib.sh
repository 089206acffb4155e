# Shared helpers for the .ci/setup-*.sh scripts and images/build.sh. Source it; do not run it.
# shellcheck shell=bash

# Where apt-get output goes; shown on failure.
APT_LOG=/tmp/nemo-run-k8s-apt.log

# log MESSAGE...: progress goes to stderr so stdout stays free for results (an image name).
log() { printf '[%s] %s\n' "${0##*/}" "$*" >&2; }

# die MESSAGE...: print an error and stop.
die() {
    log "error: $*"
    exit 1
}

# need_root WHAT: stop with a clear message unless running as root.
need_root() {
    [[ ${EUID:-$(id -u)} -eq 0 ]] ||
        die "$1 needs root (apt-get, daemons): run this script as root, or do that step by hand"
}

# is_installed PACKAGE: whether dpkg has PACKAGE fully installed.
is_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# apt_install PACKAGE...: install the missing ones, without recommends. `apt-get update` runs only
# when apt knows none of them yet or when the install fails on stale lists.
apt_install() {
    local missing=() pkg
    for pkg in "$@"; do
        is_installed "$pkg" || missing+=("$pkg")
    done
    ((${#missing[@]})) || return 0
    need_root "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    local install=(apt-get install -y -q --no-install-recommends "${missing[@]}")
    if ! apt-cache show "${missing[@]}" >/dev/null 2>&1; then
        log "apt-get update (apt does not know ${missing[*]} yet)"
        apt_run apt-get update -q
    fi
    log "apt-get install ${missing[*]} (log: $APT_LOG)"
    if ! "${install[@]}" >>"$APT_LOG" 2>&1; then
        log "install failed; refreshing package lists and retrying once"
        apt_run apt-get update -q
        apt_run "${install[@]}"
    fi
}

# apt_run COMMAND...: run an apt command with its output in the apt log; show the log on failure.
apt_run() {
    "$@" >>"$APT_LOG" 2>&1 && return 0
    tail -n 30 "$APT_LOG" >&2
    die "'$*' failed (full log: $APT_LOG)"
}

# apt_mirror [SUITE]: print the Debian mirror URI that this machine's apt sources use for SUITE
# (default bookworm), from deb822 files (/etc/apt/sources.list.d/*.sources) or one-line lists.
apt_mirror() {
    local suite=${1:-bookworm} file uri
    for file in /etc/apt/sources.list.d/*.sources; do
        [[ -f $file ]] || continue
        # deb822: stanzas split by blank lines; take a "deb" stanza whose Suites holds SUITE.
        uri=$(awk -v suite="$suite" '
            function flush() {
                wanted = (" " suites " ") ~ (" " suite " ")
                if (types ~ /(^| )deb( |$)/ && wanted && enabled != "no")
                    { split(uris, u, " "); print u[1]; found = 1; exit }
                types = suites = uris = enabled = ""
            }
            /^[[:space:]]*$/ { flush(); next }
            /^#/ { next }
            tolower($1) == "types:" { $1 = ""; types = $0; sub(/^ +/, "", types) }
            tolower($1) == "suites:" { $1 = ""; suites = $0; sub(/^ +/, "", suites) }
            tolower($1) == "uris:" { $1 = ""; uris = $0; sub(/^ +/, "", uris) }
            tolower($1) == "enabled:" { enabled = tolower($2) }
            END { if (!found) flush() }
        ' "$file")
        [[ -n $uri ]] && { printf '%s\n' "$uri"; return 0; }
    done
    for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f $file ]] || continue
        # one-line form: deb [options] URI SUITE COMPONENT...
        uri=$(awk -v suite="$suite" '
            $1 == "deb" {
                i = 2
                if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                if ($(i + 1) == suite) { print $i; exit }
            }
        ' "$file")
        [[ -n $uri ]] && { printf '%s\n' "$uri"; return 0; }
    done
    return 1
}

# short_hash: the first 12 hex digits of the sha256 of stdin.
short_hash() {
    sha256sum | cut -c1-12
}

# image_exists NAME: whether the local engine has the image NAME.
image_exists() {
    docker image inspect "$1" >/dev/null 2>&1
}
