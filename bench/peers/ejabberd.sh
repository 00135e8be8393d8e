#!/usr/bin/env bash
# render() reads the template variables by name, so several look unused:
# shellcheck disable=SC2034
# ejabberd 23.01 (Debian package) as an MQTT broker through mod_mqtt for the
# imbox benchmark: MQTT 3.1.1/5 over TLS on 127.0.0.1:18885, one account
# (bench@localhost; the MQTT username `bench` is taken as bench@localhost).
#
#   ejabberd.sh install      apt-get install ejabberd (idempotent) and the TLS files
#   ejabberd.sh start DIR    config, Mnesia spool and logs in DIR; prints PID=, URL=, CA=, USER=, PASSWORD=
#   ejabberd.sh stop DIR     ejabberdctl stop and wait for the node to exit
#   ejabberd.sh pid DIR      the pid of the node's beam.smp
#
# The node runs as the `ejabberd` user, so DIR and its parents must be
# reachable by that user (the script hands DIR to it).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
PEER_PIDFILE=ejabberd.pid

PORT="${EJABBERD_PORT:-18885}"
DIST_PORT="${EJABBERD_DIST_PORT:-18886}"
NODE="${EJABBERD_NODE:-imboxbench@localhost}"
QUEUE_TYPE="${EJABBERD_QUEUE_TYPE:-ram}"
MAX_PORTS="${EJABBERD_MAX_PORTS:-1100000}"
MAX_PROCESSES="${EJABBERD_MAX_PROCESSES:-2500000}"
XMPP_HOST=localhost

# ejabberdctl with this run's settings; extra arguments follow. Run by root,
# ejabberdctl would switch to the `ejabberd` user through `su`, whose PAM
# session resets the open-files limit to PID 1's (1024 here), far too few for
# the benchmark. So it is started as that user already (setpriv keeps the
# limits this shell raised), with the user's HOME for its Erlang cookie.
ctl() {
    local dir="$1"
    shift
    setpriv --reuid=ejabberd --regid=ejabberd --init-groups \
        env HOME="$(getent passwd ejabberd | cut -d: -f6)" USER=ejabberd LOGNAME=ejabberd \
        ejabberdctl --config-dir "$dir/etc" --ctl-config "$dir/etc/ejabberdctl.cfg" \
        --config "$dir/etc/ejabberd.yml" --logs "$dir/log" --spool "$dir/spool" "$@"
}

# The package's own node (ejabberd@localhost, started by its init script where
# services start) would hold ports 5222/5280/1883 and CPU: stop it.
stop_packaged() {
    local pidfile=/run/ejabberd/ejabberd.pid pid
    pid="$( [ -s "$pidfile" ] && cat "$pidfile" || pgrep -u ejabberd -f 'beam.*-s?name ejabberd@' | head -1 || true)"
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        log "stopping the packaged ejabberd service (pid $pid)"
        service ejabberd stop >/dev/null 2>&1 || ejabberdctl stop >/dev/null 2>&1 || true
        stop_pid "$pid" 60
    fi
}

cmd_install() {
    apt_install ejabberd mosquitto-clients
    stop_packaged
    ensure_tls
}

cmd_start() {
    local DIR
    DIR="$(mkdir -p "$1" && cd "$1" && pwd)"
    command -v ejabberdctl >/dev/null || die "ejabberd is not installed: run $0 install"
    ensure_tls
    stop_packaged
    require_free_port "$PORT"
    require_free_port "$DIST_PORT"
    mkdir -p "$DIR/etc" "$DIR/log" "$DIR/spool" "$DIR/tls"
    rm -f "$DIR/ejabberd.pid"

    # The node runs as `ejabberd`: give it copies of the TLS files it may read.
    cp "$TLS_DIR/server.pem" "$TLS_DIR/server.key" "$TLS_DIR/ca.pem" "$DIR/tls/"
    local CERT="$DIR/tls/server.pem" KEY="$DIR/tls/server.key" CA="$DIR/tls/ca.pem" USER="$BENCH_MQTT_USER"
    render "$TEMPLATES_DIR/ejabberd.yml" "$DIR/etc/ejabberd.yml" CERT KEY CA PORT USER QUEUE_TYPE
    render "$TEMPLATES_DIR/ejabberdctl.cfg" "$DIR/etc/ejabberdctl.cfg" NODE DIST_PORT MAX_PORTS MAX_PROCESSES DIR
    cp /etc/ejabberd/inetrc "$DIR/etc/inetrc"
    chown -R ejabberd:ejabberd "$DIR"
    chmod 600 "$DIR/tls/server.key"
    setpriv --reuid=ejabberd --regid=ejabberd --init-groups test -w "$DIR/spool" \
        || die "the ejabberd user cannot write $DIR/spool (is a parent directory closed to it?)"

    raise_nofile
    log "open-files limit for ejabberd: $(ulimit -n)"
    # `start` detaches the node (erl -detached); `started` waits until it answers.
    ctl "$DIR" start
    # Whatever fails from here on, do not leave the node running.
    trap 'cmd_stop "$DIR" >/dev/null 2>&1 || true' EXIT
    if ! ctl "$DIR" started; then
        die "ejabberd did not start; log: $(tail -20 "$DIR/log/ejabberd.log" "$DIR/log/error.log" 2>/dev/null)"
    fi
    local pid=""
    for _ in $(seq 1 50); do
        [ -s "$DIR/ejabberd.pid" ] && pid="$(cat "$DIR/ejabberd.pid")" && break
        sleep 0.1
    done
    [ -n "$pid" ] || die "ejabberd wrote no pid file $DIR/ejabberd.pid"
    # The account; its password is stored as given (auth_password_format: plain).
    ctl "$DIR" register "$BENCH_MQTT_USER" "$XMPP_HOST" "$BENCH_MQTT_PASSWORD" >&2
    wait_tls "$PORT" "$pid" 60 || die "ejabberd does not accept TLS on $PORT; log: $(tail -20 "$DIR/log/ejabberd.log" 2>/dev/null)"
    trap - EXIT
    print_vars "$pid" "$PORT"
}


cmd_stop() {
    local DIR pidfile pid
    [ -d "$1" ] || { log "not running (no $1)"; return 0; }
    DIR="$(cd "$1" && pwd)"
    pidfile="$DIR/ejabberd.pid"
    if [ ! -s "$pidfile" ]; then
        # A start that failed before the node wrote its pid: ask it anyway.
        if [ -f "$DIR/etc/ejabberdctl.cfg" ]; then
            ctl "$DIR" stop >/dev/null 2>&1 || true
        fi
        log "not running (no $pidfile)"
        return 0
    fi
    pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null; then
        ctl "$DIR" stop >/dev/null 2>&1 || true
        # Mnesia closes its tables on the way down; then SIGTERM, then SIGKILL.
        local i=0
        while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 300 ]; do
            sleep 0.1
            i=$((i + 1))
        done
        stop_pid "$pid" 30
    fi
    rm -f "$pidfile"
}

peer_main "$@"
