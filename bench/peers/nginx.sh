#!/usr/bin/env bash
# render() reads the template variables by name, so several look unused:
# shellcheck disable=SC2034
# nginx (Debian package) for the attachment benchmark: HTTPS on
# 127.0.0.1:18443 with the benchmark's certificate, a directory /upload/
# that takes files by PUT (WebDAV) and serves them by GET (sendfile on).
#
#   nginx.sh install      apt-get install nginx (idempotent), stop the packaged service, the TLS files
#   nginx.sh start DIR    config, document root and temporary files in DIR; prints PID=, URL=, CA=
#   nginx.sh stop DIR     SIGQUIT (graceful) and wait
#   nginx.sh pid DIR      the master's pid
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
PEER_PIDFILE=nginx.pid

PORT="${NGINX_PORT:-18443}"
# Bodies up to 4 GiB: the benchmark's file is 256 MiB by default.
MAX_BODY="${NGINX_MAX_BODY:-4g}"

# The package's own server (started by its init script where services
# start) listens on port 80 and would take CPU during the run: stop it.
stop_packaged() {
    local pidfile=/run/nginx.pid pid
    if [ -s "$pidfile" ]; then
        pid="$(cat "$pidfile")"
        if kill -0 "$pid" 2>/dev/null && grep -q nginx "/proc/$pid/comm" 2>/dev/null; then
            log "stopping the packaged nginx service (pid $pid)"
            service nginx stop >/dev/null 2>&1 || stop_pid "$pid"
        fi
    fi
}

cmd_install() {
    apt_install nginx
    stop_packaged
    ensure_tls
}

cmd_start() {
    local DIR
    DIR="$(mkdir -p "$1" && cd "$1" && pwd)"
    command -v nginx >/dev/null || die "nginx is not installed: run $0 install"
    ensure_tls
    stop_packaged
    require_free_port "$PORT"
    mkdir -p "$DIR/www/upload" "$DIR/tmp"
    rm -f "$DIR/nginx.pid"
    local CERT="$TLS_DIR/server.pem" KEY="$TLS_DIR/server.key" RUN_USER
    RUN_USER="$(id -un)"
    render "$TEMPLATES_DIR/nginx.conf" "$DIR/nginx.conf" DIR PORT CERT KEY MAX_BODY RUN_USER
    # -e: the error log before the configuration is read (the package's
    # default, /var/log/nginx/error.log, may not be writable).
    nginx -t -q -e "$DIR/error.log" -p "$DIR" -c "$DIR/nginx.conf" >&2 \
        || die "nginx refuses $DIR/nginx.conf; log: $(tail -5 "$DIR/error.log" 2>/dev/null)"
    nginx -e "$DIR/error.log" -p "$DIR" -c "$DIR/nginx.conf"
    local pid=""
    for _ in $(seq 1 50); do
        [ -s "$DIR/nginx.pid" ] && pid="$(cat "$DIR/nginx.pid")" && break
        sleep 0.1
    done
    [ -n "$pid" ] || die "nginx did not write its pid file; log: $(tail -5 "$DIR/error.log" 2>/dev/null)"
    if ! wait_tls "$PORT" "$pid" 30; then
        stop_pid "$pid" 10
        die "nginx does not accept TLS on $PORT; log: $(tail -5 "$DIR/error.log" 2>/dev/null)"
    fi
    echo "PID=$pid"
    echo "URL=https://127.0.0.1:$PORT/upload/"
    echo "CA=$TLS_DIR/ca.pem"
}

cmd_stop() {
    local pidfile="$1/nginx.pid" pid
    [ -s "$pidfile" ] || { log "not running (no $pidfile)"; return 0; }
    pid="$(cat "$pidfile")"
    # SIGQUIT: finish the requests in flight, then exit; SIGTERM after 30 s.
    kill -QUIT "$pid" 2>/dev/null || true
    local i=0
    while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 300 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    stop_pid "$pid" 10
    rm -f "$pidfile"
}

peer_main "$@"
