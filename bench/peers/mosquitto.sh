#!/usr/bin/env bash
# render() reads the template variables by name, so several look unused:
# shellcheck disable=SC2034
# mosquitto (Debian package) for the imbox benchmark: MQTT 3.1.1/5 over TLS
# on 127.0.0.1:18883, persistence on, one account.
#
#   mosquitto.sh install      apt-get install mosquitto (idempotent) and the TLS files
#   mosquitto.sh start DIR    config, password file and database in DIR; prints PID=, URL=, CA=, USER=, PASSWORD=
#   mosquitto.sh stop DIR     SIGTERM (mosquitto saves its database) and wait
#   mosquitto.sh pid DIR      the broker's pid
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
PEER_PIDFILE=mosquitto.pid

PORT="${MOSQUITTO_PORT:-18883}"

# The package's own broker (started by its init script where services start)
# would take port 1883, memory and CPU during the run: stop it.
stop_packaged() {
    local pidfile=/run/mosquitto/mosquitto.pid pid
    if [ -s "$pidfile" ]; then
        pid="$(cat "$pidfile")"
        if kill -0 "$pid" 2>/dev/null && grep -q mosquitto "/proc/$pid/comm" 2>/dev/null; then
            log "stopping the packaged mosquitto service (pid $pid)"
            service mosquitto stop >/dev/null 2>&1 || stop_pid "$pid"
        fi
    fi
}

cmd_install() {
    apt_install mosquitto mosquitto-clients
    stop_packaged
    ensure_tls
}

cmd_start() {
    local DIR
    DIR="$(mkdir -p "$1" && cd "$1" && pwd)"
    command -v mosquitto >/dev/null || die "mosquitto is not installed: run $0 install"
    ensure_tls
    stop_packaged
    require_free_port "$PORT"
    mkdir -p "$DIR/data"
    rm -f "$DIR/mosquitto.pid"
    local CA="$TLS_DIR/ca.pem" CERT="$TLS_DIR/server.pem" KEY="$TLS_DIR/server.key"
    render "$TEMPLATES_DIR/mosquitto.conf" "$DIR/mosquitto.conf" DIR PORT CA CERT KEY
    rm -f "$DIR/passwd"
    touch "$DIR/passwd"
    chmod 600 "$DIR/passwd"
    mosquitto_passwd -b "$DIR/passwd" "$BENCH_MQTT_USER" "$BENCH_MQTT_PASSWORD"

    raise_nofile
    log "open-files limit for mosquitto: $(ulimit -n)"
    mosquitto -c "$DIR/mosquitto.conf" -d
    local pid=""
    for _ in $(seq 1 50); do
        [ -s "$DIR/mosquitto.pid" ] && pid="$(cat "$DIR/mosquitto.pid")" && break
        sleep 0.1
    done
    [ -n "$pid" ] || die "mosquitto did not write its pid file; log: $(tail -5 "$DIR/mosquitto.log" 2>/dev/null)"
    if ! wait_tls "$PORT" "$pid" 30; then
        stop_pid "$pid" 10
        die "mosquitto does not accept TLS on $PORT; log: $(tail -5 "$DIR/mosquitto.log" 2>/dev/null)"
    fi
    print_vars "$pid" "$PORT"
}


cmd_stop() {
    local pidfile="$1/mosquitto.pid"
    [ -s "$pidfile" ] || { log "not running (no $pidfile)"; return 0; }
    # mosquitto writes its database on SIGTERM; a big one takes a moment.
    stop_pid "$(cat "$pidfile")" 120
    rm -f "$pidfile"
}

peer_main "$@"
