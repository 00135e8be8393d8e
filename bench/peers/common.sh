# shellcheck shell=bash
# shellcheck disable=SC2034  # used by the scripts that source this file
# Shared helpers of the peer scripts (bench/peers/*.sh); sourced, not run.
#
# Every peer listens on loopback only, with TLS, and takes one account
# (BENCH_MQTT_USER / BENCH_MQTT_PASSWORD). The certificate and key are made
# once with openssl and kept in bench/.cache/tls.

PEERS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BENCH_DIR="$(cd "$PEERS_DIR/.." && pwd)"
CACHE_DIR="${BENCH_CACHE_DIR:-$BENCH_DIR/.cache}"
TLS_DIR="$CACHE_DIR/tls"
TEMPLATES_DIR="$PEERS_DIR/templates"

BENCH_MQTT_USER="${BENCH_MQTT_USER:-bench}"
BENCH_MQTT_PASSWORD="${BENCH_MQTT_PASSWORD:-bench-password-0123}"

# Brokers and their clients hold one descriptor per connection; 100k
# sessions need more than 100k. A process may raise its soft limit only up to
# its hard limit, and the hard limit only with CAP_SYS_RESOURCE.
BENCH_NOFILE="${BENCH_NOFILE:-1048576}"

log() { echo "[$(basename "$0" .sh)] $*" >&2; }
die() { log "error: $*"; exit 1; }

# Raise this shell's open-files limit as far as allowed; children inherit it.
raise_nofile() {
    ulimit -Hn "$BENCH_NOFILE" 2>/dev/null || true
    local hard
    hard="$(ulimit -Hn)"
    if [ "$hard" = unlimited ] || [ "$hard" -ge "$BENCH_NOFILE" ]; then
        ulimit -n "$BENCH_NOFILE"
    else
        ulimit -n "$hard"
    fi
}

# apt-get install, only when something is missing. Services the packages
# would start are stopped afterwards by the peer's own script.
apt_install() {
    local missing=()
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Waits for another apt/dpkg to finish instead of failing on its lock.
    local apt=(apt-get -o DPkg::Lock::Timeout=600 install -y)
    "${apt[@]}" "${missing[@]}" >&2 \
        || { apt-get -o DPkg::Lock::Timeout=600 update >&2 && "${apt[@]}" "${missing[@]}" >&2; }
}

# A private CA and a server certificate for 127.0.0.1 and localhost, signed
# by it. Clients trust ca.pem (the server certificate is not a CA, so rustls
# and OpenSSL clients both accept the chain). Reused when present.
ensure_tls() {
    if [ -s "$TLS_DIR/ca.pem" ] && [ -s "$TLS_DIR/server.pem" ] && [ -s "$TLS_DIR/server.key" ]; then
        return 0
    fi
    command -v openssl >/dev/null || apt_install openssl
    mkdir -p "$TLS_DIR"
    local tmp
    tmp="$(mktemp -d)"
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/ca.key" 2>/dev/null
    openssl req -x509 -new -key "$tmp/ca.key" -sha256 -days 3650 -subj "/CN=imbox bench CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$tmp/ca.pem" 2>/dev/null
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/server.key" 2>/dev/null
    openssl req -new -key "$tmp/server.key" -subj "/CN=localhost" -out "$tmp/server.csr" 2>/dev/null
    cat >"$tmp/ext.cnf" <<'EOF'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost
EOF
    openssl x509 -req -in "$tmp/server.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -CAcreateserial \
        -sha256 -days 3650 -extfile "$tmp/ext.cnf" -out "$tmp/server.pem" 2>/dev/null
    # A certificate file with the chain, for servers that want one file.
    cat "$tmp/server.pem" "$tmp/ca.pem" >"$tmp/chain.pem"
    cat "$tmp/server.pem" "$tmp/server.key" >"$tmp/server-with-key.pem"
    chmod 600 "$tmp/ca.key" "$tmp/server.key" "$tmp/server-with-key.pem"
    mv "$tmp"/ca.key "$tmp"/ca.pem "$tmp"/server.key "$tmp"/server.pem "$tmp"/chain.pem \
        "$tmp"/server-with-key.pem "$TLS_DIR"/
    rm -rf "$tmp"
    log "made a CA and a certificate for 127.0.0.1/localhost in $TLS_DIR"
}

# render TEMPLATE OUT VAR...: copies TEMPLATE to OUT, replacing @VAR@ by the
# value of the shell variable VAR for each VAR named.
render() {
    local template="$1" out="$2"
    shift 2
    local script=() v val
    for v in "$@"; do
        val="${!v}"
        val="${val//\\/\\\\}"
        val="${val//|/\\|}"
        val="${val//&/\\&}"
        script+=(-e "s|@$v@|$val|g")
    done
    sed "${script[@]}" "$template" >"$out"
    if grep -q '@[A-Z_][A-Z_]*@' "$out"; then
        die "unfilled placeholder in $out: $(grep -o '@[A-Z_][A-Z_]*@' "$out" | sort -u | tr '\n' ' ')"
    fi
}

# Is anything listening on 127.0.0.1:PORT (TCP)?
port_busy() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# wait_tls PORT PID [SECONDS]: waits until a TLS handshake with our CA
# succeeds on 127.0.0.1:PORT, or fails if PID exits or time runs out.
wait_tls() {
    local port="$1" pid="$2" limit="${3:-60}" i=0
    while [ "$i" -lt $((limit * 5)) ]; do
        kill -0 "$pid" 2>/dev/null || return 1
        if port_busy "$port" \
            && echo | timeout 5 openssl s_client -connect "127.0.0.1:$port" -CAfile "$TLS_DIR/ca.pem" \
                -verify_return_error -verify_hostname localhost -brief </dev/null >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.2
        i=$((i + 1))
    done
    return 1
}

# stop_pid PID [SECONDS]: SIGTERM, wait, then SIGKILL.
stop_pid() {
    local pid="$1" limit="${2:-30}" i=0
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do
        if [ "$i" -ge $((limit * 10)) ]; then
            log "pid $pid still running after ${limit}s; SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.2
            break
        fi
        sleep 0.1
        i=$((i + 1))
    done
}

# print_vars PID PORT: the lines `start` prints for run.sh.
print_vars() {
    echo "PID=$1"
    echo "URL=mqtts://127.0.0.1:$2"
    echo "CA=$TLS_DIR/ca.pem"
    echo "USER=$BENCH_MQTT_USER"
    echo "PASSWORD=$BENCH_MQTT_PASSWORD"
}

# Fail unless PORT is free (another broker, or a packaged service, on it).
require_free_port() {
    if port_busy "$1"; then
        die "127.0.0.1:$1 is already in use: $(ss -Hltnp "sport = :$1" 2>/dev/null | head -1)"
    fi
}

usage_exit() {
    echo "usage: $0 install | start DIR | stop DIR | pid DIR" >&2
    exit 2
}

# The pid a peer's pid file names (`NAME.sh pid DIR`); PEER_PIDFILE is the
# file's name inside DIR, set by the peer's script.
cmd_pid() {
    local pidfile="$1/$PEER_PIDFILE"
    [ -s "$pidfile" ] || die "no $pidfile"
    local pid
    pid="$(cat "$pidfile")"
    echo "$pid"
}

# The command line every peer script takes; each defines cmd_install,
# cmd_start and cmd_stop.
peer_main() {
    case "${1:-}" in
        install) cmd_install ;;
        start) [ $# -eq 2 ] || usage_exit; cmd_start "$2" ;;
        stop) [ $# -eq 2 ] || usage_exit; cmd_stop "$2" ;;
        pid) [ $# -eq 2 ] || usage_exit; cmd_pid "$2" ;;
        *) usage_exit ;;
    esac
}
