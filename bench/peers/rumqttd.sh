#!/usr/bin/env bash
# render() reads the template variables by name, so several look unused:
# shellcheck disable=SC2034
# rumqttd (crates.io, built with `cargo install`) for the imbox benchmark:
# MQTT 3.1.1 over TLS on 127.0.0.1:18884, one account, no disk persistence
# (rumqttd has none; see DURABILITY.md).
#
#   rumqttd.sh install      cargo install rumqttd into bench/.cache/cargo (idempotent) and the TLS files
#   rumqttd.sh start DIR    config and log in DIR; prints PID=, URL=, CA=, USER=, PASSWORD=
#   rumqttd.sh stop DIR     SIGTERM and wait
#   rumqttd.sh pid DIR      the broker's pid
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
PEER_PIDFILE=rumqttd.pid

PORT="${RUMQTTD_PORT:-18884}"
RUMQTTD_VERSION="${RUMQTTD_VERSION:-0.20.0}"
CARGO_ROOT="$CACHE_DIR/cargo"
RUMQTTD="$CARGO_ROOT/bin/rumqttd"

installed_version() {
    [ -x "$RUMQTTD" ] && "$RUMQTTD" --version 2>/dev/null | awk '{print $2}'
}

cmd_install() {
    if [ "$(installed_version || true)" != "$RUMQTTD_VERSION" ]; then
        log "cargo install rumqttd $RUMQTTD_VERSION into $CARGO_ROOT (about 5 minutes on 2 cores)"
        local start=$SECONDS
        # Not --locked: the lock file published with rumqttd 0.20.0 pins
        # metrics 0.22.1, which current rustc rejects (E0521 in
        # metrics/src/recorder/mod.rs); unlocked, cargo takes the newest
        # semver-compatible dependencies (metrics 0.22.4 builds). The broker
        # itself stays pinned to RUMQTTD_VERSION.
        cargo install rumqttd --version "$RUMQTTD_VERSION" --root "$CARGO_ROOT" --force >&2
        log "rumqttd built in $((SECONDS - start)) s"
    fi
    ensure_tls
}

cmd_start() {
    local DIR
    DIR="$(mkdir -p "$1" && cd "$1" && pwd)"
    [ -x "$RUMQTTD" ] || die "rumqttd is not installed: run $0 install"
    ensure_tls
    require_free_port "$PORT"
    local CERT="$TLS_DIR/chain.pem" KEY="$TLS_DIR/server.key" USER="$BENCH_MQTT_USER" PASSWORD="$BENCH_MQTT_PASSWORD"
    render "$TEMPLATES_DIR/rumqttd.toml" "$DIR/rumqttd.toml" RUMQTTD_VERSION PORT CERT KEY USER PASSWORD

    raise_nofile
    log "open-files limit for rumqttd: $(ulimit -n)"
    # Its own session, so that a Ctrl-C of the caller's terminal reaches it
    # only through `stop`.
    setsid "$RUMQTTD" -q -c "$DIR/rumqttd.toml" </dev/null >"$DIR/rumqttd.log" 2>&1 &
    local pid=$!
    echo "$pid" >"$DIR/rumqttd.pid"
    if ! wait_tls "$PORT" "$pid" 30; then
        stop_pid "$pid" 10
        die "rumqttd does not accept TLS on $PORT; log: $(tail -20 "$DIR/rumqttd.log")"
    fi
    print_vars "$pid" "$PORT"
}


cmd_stop() {
    local pidfile="$1/rumqttd.pid"
    [ -s "$pidfile" ] || { log "not running (no $pidfile)"; return 0; }
    stop_pid "$(cat "$pidfile")" 30
    rm -f "$pidfile"
}

peer_main "$@"
