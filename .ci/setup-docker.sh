#!/usr/bin/env bash
# Make a Docker engine answer on this machine: install Debian's docker.io when dockerd is missing,
# start dockerd in the background and wait until `docker info` works. Does nothing when an engine
# already answers. Needs root unless an engine is already running.
set -euo pipefail
# shellcheck source=.ci/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

LOG=/tmp/dockerd.log
PIDFILE=/var/run/docker.pid
WAIT_S=60

if docker info >/dev/null 2>&1; then
    log "Docker engine already answers"
    exit 0
fi
need_root "starting a Docker engine"

if ! command -v dockerd >/dev/null 2>&1; then
    apt_install docker.io
fi

# A dockerd killed earlier leaves its pid file behind, and a new one then refuses to start.
pid=""
if [[ -f $PIDFILE ]]; then
    pid=$(<"$PIDFILE")
    if [[ -n $pid ]] && [[ $(ps -o comm= -p "$pid" 2>/dev/null) == dockerd ]]; then
        log "dockerd (pid $pid) is already running; waiting for it to answer"
    else
        log "removing stale $PIDFILE (pid ${pid:-none} is not a live dockerd)"
        rm -f "$PIDFILE"
        pid=""
    fi
fi

if [[ -z $pid ]]; then
    log "starting dockerd (log: $LOG)"
    setsid dockerd >"$LOG" 2>&1 </dev/null &
    pid=$!
fi

deadline=$((SECONDS + WAIT_S))
until docker info >/dev/null 2>&1; do
    if ! kill -0 "$pid" 2>/dev/null; then
        log "dockerd exited before it answered; last lines of $LOG:"
        tail -n 30 "$LOG" >&2 || true
        exit 1
    fi
    if ((SECONDS >= deadline)); then
        log "dockerd did not answer within ${WAIT_S}s; last lines of $LOG:"
        tail -n 30 "$LOG" >&2 || true
        exit 1
    fi
    sleep 0.2
done
log "Docker engine ready: server $(docker version --format '{{.Server.Version}}')"
