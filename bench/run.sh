#!/usr/bin/env bash
# The imbox benchmark: imboxd (WebSocket over TLS, and QUIC) and the MQTT
# brokers people would run instead (mosquitto, rumqttd, ejabberd), on this
# machine, in one run, under the same load shape.
#
#   bench/run.sh [standard|full|attachments]
#                      (make bench / make bench-full / make bench-attachments)
#
# standard: idle 10,000 sessions; chat with 1,000 users (direct, then groups
#   of 10, 100 and 1,000); a reconnect storm of 2,000 devices; imboxd start-up with
#   1,000,000 stored messages; a phone's QUIC session (resume latency, bytes
#   while idle) through a counting UDP relay. Budgeted to finish in under 15 minutes on
#   2 cores once built and installed (the first run also builds imboxd and
#   imbox-bench in release mode, installs the peers and seeds the start-up
#   data set; those are timed separately).
# full: the same with 100,000 idle sessions and 10 s load steps.
# attachments: the transfer scenario alone (a few minutes): one 256 MiB file
#   uploaded and downloaded over imboxd's HTTPS (tus) and QUIC transfer
#   streams and over nginx's HTTPS (Debian's package, a WebDAV directory
#   with sendfile on), 5 times each, once with the client offering AES-GCM
#   first and once offering ChaCha20-Poly1305 alone. Any run does it too
#   when BENCH_SCENARIOS names `transfer`.
#
# Results: bench/out/<timestamp>/ (JSON per scenario and system, logs,
# report.md, environment.txt); the plot goes to docs/benchmarks/latency.svg and
# the JSON to docs/benchmarks/results/, so that a later run can be compared
# (the transfer scenario's JSON to docs/benchmarks/attachments/ instead, and
# a run without messaging scenarios leaves the others alone).
#
# Environment knobs (mostly for trying the script on a part of the run):
#   BENCH_SYSTEMS      systems to run, default "imbox-wss imbox-quic mosquitto rumqttd ejabberd"
#   BENCH_SCENARIOS    scenarios to run, default "idle chat group10 group group1000 storm startup phone"
#                      (group: groups of BENCH_GROUP_SIZE, 100 by default; group10 and
#                      group1000: groups of 10 and of 1,000; phone: imbox over QUIC only,
#                      a phone's resume latency and idle bytes through a UDP relay,
#                      about BENCH_PHONE_IDLE_SECONDS + 20 s)
#   BENCH_STEP_SECONDS seconds per load step (standard 5, full 10)
#   BENCH_IDLE_SESSIONS, BENCH_CHAT_USERS, BENCH_CHAT_RATES, BENCH_GROUP_USERS,
#   BENCH_GROUP_SIZE, BENCH_GROUP_RATES, BENCH_GROUP10_RATES, BENCH_GROUP1000_RATES,
#   BENCH_STORM_DEVICES, BENCH_PHONE_RUNS (10), BENCH_PHONE_RTTS_MS ("0,60"),
#   BENCH_PHONE_IDLE_SECONDS (80),
#   BENCH_STARTUP_MESSAGES, BENCH_PROVISION_USERS, BENCH_SOURCES
#   BENCH_TRANSFER_MIB (256), BENCH_TRANSFER_REPETITIONS (5),
#   BENCH_TRANSFER_CIPHERS ("aes-first chacha20"),
#   BENCH_TRANSFER_SYSTEMS ("imbox-https imbox-quic nginx")
#   BENCH_TRANSFER_DIR where the transfer scenario's imboxd data directory and
#                      nginx's files go (default: the run's output directory;
#                      a tmpfs such as /dev/shm/... takes the disk out of the
#                      measurement, and needs about 2 x 5 x 256 MiB of memory)
#   BENCH_NGINX_PORT   nginx's HTTPS port, default 18443
#   BENCH_IMBOX_PORT   imboxd's HTTPS/QUIC port, default 8443
#   BENCH_NO_BUILD=1   use the binaries already in target/release
#   BENCH_STOP_AFTER=imboxd|provision  stop after starting imboxd (build,
#                      identity, start) or after provisioning (to test this script)
set -euo pipefail

MODE="${1:-standard}"
case "$MODE" in
    standard | full | attachments) ;;
    *) echo "usage: $0 [standard|full|attachments]" >&2; exit 2 ;;
esac

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
PEERS_DIR="$BENCH_DIR/peers"
CACHE_DIR="${BENCH_CACHE_DIR:-$BENCH_DIR/.cache}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
IMBOXD="$TARGET_DIR/release/imboxd"
BENCH="$TARGET_DIR/release/imbox-bench"
TS="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="${BENCH_OUT:-$BENCH_DIR/out/$TS}"
RESULTS="$OUT/results"
DOCS_OUT="$ROOT/docs/benchmarks"

# --- sizes ------------------------------------------------------------------
if [ "$MODE" = attachments ]; then
    SYSTEMS="${BENCH_SYSTEMS:-}"
    SCENARIOS="${BENCH_SCENARIOS:-transfer}"
else
    SYSTEMS="${BENCH_SYSTEMS:-imbox-wss imbox-quic mosquitto rumqttd ejabberd}"
    SCENARIOS="${BENCH_SCENARIOS:-idle chat group10 group group1000 storm startup phone}"
fi
if [ "$MODE" = full ]; then
    IDLE_SESSIONS="${BENCH_IDLE_SESSIONS:-100000}"
    STEP_SECONDS="${BENCH_STEP_SECONDS:-10}"
else
    IDLE_SESSIONS="${BENCH_IDLE_SESSIONS:-10000}"
    # 5 s steps (not 10) keep the standard run inside its 15 minutes: chat
    # and group take 11 steps per system, 5 systems.
    STEP_SECONDS="${BENCH_STEP_SECONDS:-5}"
fi
CHAT_USERS="${BENCH_CHAT_USERS:-1000}"
CHAT_RATES="${BENCH_CHAT_RATES:-1000,2000,5000,10000,20000,40000}"
GROUP_USERS="${BENCH_GROUP_USERS:-1000}"
GROUP_SIZE="${BENCH_GROUP_SIZE:-100}"
# Groups of 10 make 9 deliveries per message, groups of 1,000 make 999 (one
# group of every user): the rates keep deliveries per second in the range
# two cores can carry. Every group size starts at 20 msg/s, the step whose
# disk bytes per message the report compares across sizes.
GROUP_RATES="${BENCH_GROUP_RATES:-20,100,200,500,1000,2000}"
GROUP10_RATES="${BENCH_GROUP10_RATES:-20,500,1000,2000,5000,10000}"
GROUP1000_RATES="${BENCH_GROUP1000_RATES:-20,50,100,200}"
STORM_DEVICES="${BENCH_STORM_DEVICES:-2000}"
PHONE_RUNS="${BENCH_PHONE_RUNS:-10}"
PHONE_RTTS_MS="${BENCH_PHONE_RTTS_MS:-0,60}"
PHONE_IDLE_SECONDS="${BENCH_PHONE_IDLE_SECONDS:-80}"
STARTUP_MESSAGES="${BENCH_STARTUP_MESSAGES:-1000000}"
TRANSFER_MIB="${BENCH_TRANSFER_MIB:-256}"
TRANSFER_REPETITIONS="${BENCH_TRANSFER_REPETITIONS:-5}"
TRANSFER_CIPHERS="${BENCH_TRANSFER_CIPHERS:-aes-first chacha20}"
TRANSFER_SYSTEMS="${BENCH_TRANSFER_SYSTEMS:-imbox-https imbox-quic nginx}"
export NGINX_PORT="${BENCH_NGINX_PORT:-18443}"
TRANSFER_DIR="${BENCH_TRANSFER_DIR:-$OUT}"
max() { local m=0 v; for v in "$@"; do [ "$v" -gt "$m" ] && m="$v"; done; echo "$m"; }
# Accounts, one device token each. Chat needs one per user; idle and storm
# use them round robin (a token may back several sessions at once). Each
# account costs imboxd two argon2 hashes (create, log in).
PROVISION_USERS="${BENCH_PROVISION_USERS:-$(max "$CHAT_USERS" "$GROUP_USERS")}"
IMBOX_PASSWORD="${BENCH_IMBOX_PASSWORD:-bench-user-password-0123}"
IMBOX_PORT="${BENCH_IMBOX_PORT:-8443}"
# imboxd's plain-HTTP listener is not measured; kept off the `make run` port.
IMBOX_HTTP_PORT="${BENCH_IMBOX_HTTP_PORT:-18880}"
BUDGET_SECONDS=$((15 * 60))

mkdir -p "$RESULTS"
exec > >(tee -a "$OUT/run.log") 2>&1

RUN_START=$SECONDS
say() { echo "[bench $(date -u +%H:%M:%S) +$((SECONDS - RUN_START))s] $*"; }
die() { say "error: $*"; exit 1; }
has() { case " $1 " in *" $2 "*) return 0 ;; *) return 1 ;; esac; }

# --- cleanup: every process this script started, also on failure -----------
IMBOXD_PID=""
BENCH_PID=""
PEER_RUNNING=""
PEER_DIR=""
declare -A SYSCTL_ORIG=()

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$BENCH_PID" ] && kill -0 "$BENCH_PID" 2>/dev/null; then
        say "stopping imbox-bench (pid $BENCH_PID)"
        kill -TERM "$BENCH_PID" 2>/dev/null || true
        wait "$BENCH_PID" 2>/dev/null || true
    fi
    if [ -n "$PEER_RUNNING" ]; then
        say "stopping $PEER_RUNNING"
        "$PEERS_DIR/$PEER_RUNNING.sh" stop "$PEER_DIR" || true
    fi
    stop_imboxd || true
    restore_sysctls || true
    if [ "$rc" -ne 0 ]; then
        say "FAILED (exit $rc) after $((SECONDS - RUN_START)) s; log: $OUT/run.log"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- phases, timed ------------------------------------------------------------
PHASES=()
MEASURE_START=""
phase() {
    local name="$1"
    shift
    local start=$SECONDS
    say "== $name"
    "$@"
    local took=$((SECONDS - start))
    PHASES+=("$(printf '%-34s %5d s' "$name" "$took")")
    say "== $name: ${took} s"
}

# Runs imbox-bench in the background and waits, so that a signal to this
# script reaches the trap at once (and the trap stops imbox-bench).
bench() {
    say "imbox-bench $*"
    "$BENCH" "$@" &
    BENCH_PID=$!
    local rc=0
    wait "$BENCH_PID" || rc=$?
    BENCH_PID=""
    return "$rc"
}

# --- machine settings ---------------------------------------------------------
set_sysctl() {
    local key="$1" want="$2" path cur
    path="/proc/sys/${key//.//}"
    [ -e "$path" ] || { echo "$key: absent"; return 0; }
    cur="$(tr -s '\t ' ' ' <"$path")"
    if [ "$cur" = "$want" ]; then
        echo "$key = $cur"
    elif echo "$want" >"$path" 2>/dev/null; then
        SYSCTL_ORIG[$key]="$cur"
        echo "$key = $want (was $cur; restored at exit)"
    else
        echo "$key = $cur (wanted $want; not writable here)"
    fi
}

restore_sysctls() {
    local key
    for key in "${!SYSCTL_ORIG[@]}"; do
        echo "${SYSCTL_ORIG[$key]}" >"/proc/sys/${key//.//}" 2>/dev/null || true
    done
    SYSCTL_ORIG=()
}

tune_machine() {
    # Descriptors: one per connection, on both sides. Children inherit this.
    ulimit -Hn 1048576 2>/dev/null || true
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    # (Not in a pipeline: set_sysctl records what to restore in this shell.)
    {
        echo "# machine settings for this run"
        echo "open files (ulimit -n): $(ulimit -n) (hard $(ulimit -Hn))"
        # Ephemeral ports: connections from one source address to one server
        # port. The servers' own ports are reserved, so that no client
        # connection takes one of them as its source port.
        set_sysctl net.ipv4.ip_local_port_range "1024 65535"
        local reserved cur_reserved
        reserved="$IMBOX_PORT,$IMBOX_HTTP_PORT,18883-18886,$NGINX_PORT"
        cur_reserved="$(cat /proc/sys/net/ipv4/ip_local_reserved_ports 2>/dev/null || true)"
        set_sysctl net.ipv4.ip_local_reserved_ports "${cur_reserved:+$cur_reserved,}$reserved"
        # Accept queues: a reconnect storm arrives at once.
        set_sysctl net.core.somaxconn 65535
        set_sysctl net.ipv4.tcp_max_syn_backlog 65535
        # Loopback packets pass the per-CPU backlog; QUIC (UDP) drops there first.
        set_sysctl net.core.netdev_max_backlog 65536
        # UDP socket buffers for QUIC (quinn asks for more than the default cap).
        set_sysctl net.core.rmem_max 16777216
        set_sysctl net.core.wmem_max 16777216
        set_sysctl net.ipv4.tcp_tw_reuse 1
        set_sysctl net.netfilter.nf_conntrack_max 2097152
        set_sysctl fs.file-max 4194304
    } >"$OUT/sysctl.txt"
    cat "$OUT/sysctl.txt"
}

# Sessions this process (and the servers) may hold.
check_capacity() {
    local nofile need
    nofile="$(ulimit -n)"
    # The server holds one descriptor per session; a few thousand spare.
    need=$((IDLE_SESSIONS + 2048))
    if has "$SCENARIOS" idle && [ "$nofile" != unlimited ] && [ "$nofile" -lt "$need" ]; then
        die "$IDLE_SESSIONS idle sessions need at least $need open files per process; the limit here is $nofile (hard $(ulimit -Hn)) and raising the hard limit needs CAP_SYS_RESOURCE, which this machine does not give. Run where it can be raised (e.g. on the Pi: LimitNOFILE= in the unit, or 'ulimit -Hn 1048576' as root), or set BENCH_IDLE_SESSIONS."
    fi
    # Source addresses (127.0.0.2, …): imbox-bench takes one per 25,000
    # connections unless BENCH_SOURCES says otherwise; each gives
    # (ephemeral port range) connections to one server port.
    local lo hi
    read -r lo hi </proc/sys/net/ipv4/ip_local_port_range
    SOURCES="${BENCH_SOURCES:-$(((IDLE_SESSIONS + 24999) / 25000))}"
    if has "$SCENARIOS" idle; then
        say "idle: $IDLE_SESSIONS sessions from $SOURCES loopback source address(es) ($((hi - lo + 1)) ephemeral ports each)"
    fi
}

record_environment() {
    {
        echo "# imbox benchmark: $MODE run, $TS"
        echo "command: bench/run.sh $MODE"
        echo "commit: $(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (with local changes)')"
        echo "kernel: $(uname -srm)"
        echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //') x $(nproc)"
        echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
        echo "os: $(. /etc/os-release && echo "$PRETTY_NAME")"
        echo "rustc: $(rustc --version 2>/dev/null || echo unknown)"
        echo "load average at start (1, 5, 15 min): $(cut -d' ' -f1-3 /proc/loadavg)"
        echo "mosquitto: $(dpkg-query -W -f='${Version}' mosquitto 2>/dev/null || echo not installed)"
        echo "rumqttd: $("$CACHE_DIR/cargo/bin/rumqttd" --version 2>/dev/null || echo not installed)"
        echo "ejabberd: $(dpkg-query -W -f='${Version}' ejabberd 2>/dev/null || echo not installed)"
        echo "erlang: $(dpkg-query -W -f='${Version}' erlang-base 2>/dev/null || echo not installed)"
        echo "nginx: $(dpkg-query -W -f='${Version}' nginx 2>/dev/null || echo not installed)"
        if has "$SCENARIOS" transfer; then
            mkdir -p "$TRANSFER_DIR"
            echo "transfer data: $TRANSFER_DIR ($(df --output=fstype "$TRANSFER_DIR" 2>/dev/null | tail -1 || echo unknown))"
        fi
        echo "openssl: $(openssl version 2>/dev/null || echo not installed)"
        echo "sizes: idle $IDLE_SESSIONS sessions (sources $SOURCES); chat $CHAT_USERS users at $CHAT_RATES msg/s;" \
            "group $GROUP_USERS users in groups of $GROUP_SIZE at $GROUP_RATES msg/s," \
            "of 10 at $GROUP10_RATES msg/s, of 1000 at $GROUP1000_RATES msg/s; steps $STEP_SECONDS s;" \
            "storm $STORM_DEVICES devices; startup $STARTUP_MESSAGES messages;" \
            "transfer $TRANSFER_MIB MiB x $TRANSFER_REPETITIONS to $TRANSFER_SYSTEMS, ciphers $TRANSFER_CIPHERS"
        echo
        cat "$OUT/sysctl.txt"
    } >"$OUT/environment.txt"
}

# --- build and install ------------------------------------------------------
build() {
    if [ "${BENCH_NO_BUILD:-0}" = 1 ]; then
        if [ ! -x "$IMBOXD" ] || { [ ! -x "$BENCH" ] && [ "${BENCH_STOP_AFTER:-}" != imboxd ]; }; then
            die "BENCH_NO_BUILD=1 but $IMBOXD or $BENCH is missing"
        fi
        return 0
    fi
    local packages=(-p imboxd -p imbox-bench)
    # Trying the script before imbox-bench exists: imboxd alone.
    [ "${BENCH_STOP_AFTER:-}" = imboxd ] && packages=(-p imboxd)
    (cd "$ROOT" && cargo build --release "${packages[@]}")
}

install_peers() {
    local p
    for p in mosquitto rumqttd ejabberd; do
        has "$SYSTEMS" "$p" || continue
        local start=$SECONDS
        "$PEERS_DIR/$p.sh" install
        say "$p installed or present ($((SECONDS - start)) s)"
    done
    if has "$SCENARIOS" transfer && has "$TRANSFER_SYSTEMS" nginx; then
        local start=$SECONDS
        "$PEERS_DIR/nginx.sh" install
        say "nginx installed or present ($((SECONDS - start)) s)"
    fi
}

# --- imboxd -----------------------------------------------------------------
IMBOX_DATA="$OUT/imbox"
IMBOX_CONFIG="$OUT/imbox-empty.toml"
PIN=""
# More settings for imboxd, as NAME=VALUE (the transfer scenario's file size).
IMBOXD_ENV=()

port_in_use() {
    ss -Hltn "sport = :$1" 2>/dev/null | grep -q . || ss -Hlun "sport = :$1" 2>/dev/null | grep -q .
}

start_imboxd() {
    port_in_use "$IMBOX_PORT" && die "port $IMBOX_PORT is in use (another imboxd, e.g. make run?): $(ss -Hltunp "sport = :$IMBOX_PORT" | head -2)"
    port_in_use "$IMBOX_HTTP_PORT" && die "port $IMBOX_HTTP_PORT is in use"
    local max_connections=100000
    [ "$MODE" = full ] && max_connections=$((IDLE_SESSIONS + IDLE_SESSIONS / 2))
    [ "$max_connections" -le 1000000 ] || max_connections=1000000
    # limits.sends_per_second / send_burst: the per-device send rate limit is
    # a product guard against one runaway device, not a capacity limit. The
    # chat load sends up to RATE/USERS messages per second from each device
    # (40 at 40,000 msg/s over 1,000 users) in random bursts, so it is set to
    # its maximum to measure the server rather than the guard. The same goes
    # for login attempts (per account and per client address: every device of
    # the benchmark logs in from 127.0.0.x).
    setsid env \
        IMBOX_HTTP__LISTEN="127.0.0.1:$IMBOX_HTTP_PORT" \
        IMBOX_HTTPS__LISTEN="127.0.0.1:$IMBOX_PORT" \
        IMBOX_QUIC__LISTEN="127.0.0.1:$IMBOX_PORT" \
        IMBOX_LIMITS__SENDS_PER_SECOND=100000 \
        IMBOX_LIMITS__SEND_BURST=1000000 \
        IMBOX_LIMITS__LOGIN_ATTEMPTS_PER_MINUTE=10000 \
        IMBOX_LIMITS__MAX_CONNECTIONS="$max_connections" \
        IMBOX_LOG__LEVEL=warn \
        "${IMBOXD_ENV[@]}" \
        "$IMBOXD" --config "$IMBOX_CONFIG" --data-dir "$IMBOX_DATA" run \
        </dev/null >>"$OUT/imboxd.log" 2>&1 &
    IMBOXD_PID=$!
    local i
    for i in $(seq 1 150); do
        kill -0 "$IMBOXD_PID" 2>/dev/null || die "imboxd exited at start; log: $(tail -5 "$OUT/imboxd.log")"
        if [ -S "$IMBOX_DATA/control.sock" ] \
            && echo | timeout 5 openssl s_client -connect "127.0.0.1:$IMBOX_PORT" -brief </dev/null >/dev/null 2>&1; then
            say "imboxd running (pid $IMBOXD_PID, wss://127.0.0.1:$IMBOX_PORT/ws, quic://127.0.0.1:$IMBOX_PORT, open files $(awk '/open files/ {print $4}' "/proc/$IMBOXD_PID/limits"))"
            return 0
        fi
        sleep 0.2
    done
    die "imboxd does not accept TLS on $IMBOX_PORT after 30 s; log: $(tail -5 "$OUT/imboxd.log")"
}

stop_imboxd() {
    [ -n "$IMBOXD_PID" ] || return 0
    if kill -0 "$IMBOXD_PID" 2>/dev/null; then
        kill -TERM "$IMBOXD_PID" 2>/dev/null || true
        local i=0
        while kill -0 "$IMBOXD_PID" 2>/dev/null && [ "$i" -lt 300 ]; do
            sleep 0.1
            i=$((i + 1))
        done
        kill -0 "$IMBOXD_PID" 2>/dev/null && { say "imboxd did not stop in 30 s: SIGKILL"; kill -KILL "$IMBOXD_PID" 2>/dev/null || true; }
    fi
    wait "$IMBOXD_PID" 2>/dev/null || true
    IMBOXD_PID=""
}

prepare_imbox() {
    mkdir -p "$IMBOX_DATA"
    : >"$IMBOX_CONFIG"
    PIN="$("$IMBOXD" --config "$IMBOX_CONFIG" --data-dir "$IMBOX_DATA" identity)"
    [ -n "$PIN" ] || die "imboxd identity printed nothing"
    say "imbox identity (pin): $PIN"
}

provision() {
    bench provision --control-socket "$IMBOX_DATA/control.sock" --users "$PROVISION_USERS" \
        --password "$IMBOX_PASSWORD" --url "wss://127.0.0.1:$IMBOX_PORT/ws" --pin "$PIN" \
        --tokens-out "$OUT/tokens.json" --out "$RESULTS/imbox-provision.json"
}

# --- scenarios: SYSTEM_ARGS, LABEL (file names), NAME (what reports call
# the system) and SERVER_PID set by the caller --------------------------------
SYSTEM_ARGS=()
LABEL=""
NAME=""
SERVER_PID=""

run_scenarios() {
    local common=(--label "$NAME" --server-pid "$SERVER_PID" "${SYSTEM_ARGS[@]}")
    if has "$SCENARIOS" idle; then
        local sources=()
        [ -n "${BENCH_SOURCES:-}" ] && sources=(--sources "$BENCH_SOURCES")
        phase "$LABEL idle ($IDLE_SESSIONS)" \
            bench idle "${common[@]}" --sessions "$IDLE_SESSIONS" "${sources[@]}" --out "$RESULTS/$LABEL-idle.json"
    fi
    if has "$SCENARIOS" chat; then
        phase "$LABEL chat direct ($CHAT_USERS users)" \
            bench chat "${common[@]}" --users "$CHAT_USERS" --rates "$CHAT_RATES" --step-seconds "$STEP_SECONDS" \
            --out "$RESULTS/$LABEL-chat.json"
    fi
    # Groups of 1,000 with the 1,000 users of the standard run: one group
    # of everybody.
    if has "$SCENARIOS" group10; then run_group 10 "$GROUP10_RATES" group10; fi
    if has "$SCENARIOS" group; then run_group "$GROUP_SIZE" "$GROUP_RATES" group; fi
    if has "$SCENARIOS" group1000; then run_group 1000 "$GROUP1000_RATES" group1000; fi
    if has "$SCENARIOS" storm; then
        phase "$LABEL storm ($STORM_DEVICES devices)" \
            bench storm "${common[@]}" --devices "$STORM_DEVICES" --out "$RESULTS/$LABEL-storm.json"
    fi
}

# Group chat with groups of $1 at rates $2; results in $LABEL-$3.json.
run_group() {
    local size="$1" rates="$2" name="$3"
    local common=(--label "$NAME" --server-pid "$SERVER_PID" "${SYSTEM_ARGS[@]}")
    phase "$LABEL chat groups of $size" \
        bench chat "${common[@]}" --users "$GROUP_USERS" --group-size "$size" --rates "$rates" \
        --step-seconds "$STEP_SECONDS" --out "$RESULTS/$LABEL-$name.json"
}

run_imbox() {
    local transport="$1" url
    case "$transport" in
        wss) url="wss://127.0.0.1:$IMBOX_PORT/ws" NAME="imbox (WebSocket/TLS)" ;;
        quic) url="quic://127.0.0.1:$IMBOX_PORT" NAME="imbox (QUIC)" ;;
    esac
    # A fresh process per transport (same data), so that each idle
    # measurement starts from imboxd's own baseline.
    phase "imboxd start" start_imboxd
    LABEL="imbox-$transport"
    SERVER_PID="$IMBOXD_PID"
    SYSTEM_ARGS=(--system imbox --url "$url" --pin "$PIN" --tokens "$OUT/tokens.json")
    run_scenarios
    # A phone's session (QUIC only): the client library through a counting
    # UDP relay, after the load (a quiet box, as a phone finds it).
    if [ "$transport" = quic ] && has "$SCENARIOS" phone; then
        phase "$LABEL phone" \
            bench phone --url "$url" --pin "$PIN" --tokens "$OUT/tokens.json" --runs "$PHONE_RUNS" \
            --rtts-ms "$PHONE_RTTS_MS" --idle-seconds "$PHONE_IDLE_SECONDS" --label "$NAME" \
            --out "$RESULTS/$LABEL-phone.json"
    fi
    stop_imboxd
}

start_peer() {
    local peer="$1"
    PEER_DIR="$OUT/$peer"
    mkdir -p "$PEER_DIR"
    # Set first: if start fails half-way, the trap still calls `stop`.
    PEER_RUNNING="$peer"
    "$PEERS_DIR/$peer.sh" start "$PEER_DIR" >"$PEER_DIR/vars"
}

run_peer() {
    local peer="$1" key value
    declare -A vars=()
    phase "$peer start" start_peer "$peer"
    while IFS='=' read -r key value; do
        [ -n "$key" ] && vars[$key]="$value"
    done <"$PEER_DIR/vars"
    if [ -z "${vars[PID]:-}" ] || ! kill -0 "${vars[PID]}" 2>/dev/null; then
        die "$peer did not start"
    fi
    say "$peer running (pid ${vars[PID]}, ${vars[URL]})"
    LABEL="$peer"
    NAME="$peer"
    SERVER_PID="${vars[PID]}"
    SYSTEM_ARGS=(--system mqtt --url "${vars[URL]}" --ca "${vars[CA]}" --mqtt-user "${vars[USER]}" --mqtt-password "${vars[PASSWORD]}")
    run_scenarios
    "$PEERS_DIR/$peer.sh" stop "$PEER_DIR"
    PEER_RUNNING=""
}

run_startup() {
    # The seeded data directory is kept between runs: seeding a million
    # messages takes far longer than the measurement. It is keyed by the
    # store's source, so a change of the database layout seeds anew.
    local key dir
    key="$(git -C "$ROOT" rev-parse --short HEAD:server/src/store 2>/dev/null || echo nogit)"
    dir="$CACHE_DIR/startup-$STARTUP_MESSAGES-$key"
    mkdir -p "$dir"
    bench startup --imboxd "$IMBOXD" --messages "$STARTUP_MESSAGES" --data-dir "$dir" --label imbox \
        --out "$RESULTS/imbox-startup.json"
}

# nginx for the transfer scenario, its files where the transfers' data goes
# (its log and configuration are copied to $OUT/nginx at the end).
start_transfer_nginx() {
    PEER_DIR="$TRANSFER_DIR/nginx"
    mkdir -p "$PEER_DIR"
    PEER_RUNNING=nginx
    "$PEERS_DIR/nginx.sh" start "$PEER_DIR" >"$PEER_DIR/vars"
}

# The transfer scenario (make bench-attachments): for each cipher offer, a
# fresh imboxd data directory with one account (the box keeps every upload,
# so the files of one offer are deleted before the next), nginx beside it,
# and imbox-bench taking turns between them.
run_transfer() {
    local offer url="" ca="" nginx_pid="" imbox_args=()
    if has "$TRANSFER_SYSTEMS" nginx; then
        declare -A vars=()
        local key value
        phase "nginx start" start_transfer_nginx
        while IFS='=' read -r key value; do
            [ -n "$key" ] && vars[$key]="$value"
        done <"$PEER_DIR/vars"
        nginx_pid="${vars[PID]:-}"
        if [ -z "$nginx_pid" ] || ! kill -0 "$nginx_pid" 2>/dev/null; then
            die "nginx did not start"
        fi
        url="${vars[URL]}"
        ca="${vars[CA]}"
        say "nginx running (pid $nginx_pid, $url)"
    fi
    local max_file=$((TRANSFER_MIB > 100 ? TRANSFER_MIB : 100))
    local saved_data="$IMBOX_DATA"
    for offer in $TRANSFER_CIPHERS; do
        imbox_args=()
        if has "$TRANSFER_SYSTEMS" imbox-https || has "$TRANSFER_SYSTEMS" imbox-quic; then
            IMBOX_DATA="$TRANSFER_DIR/transfer-imbox-$offer"
            IMBOXD_ENV=("IMBOX_MEDIA__MAX_FILE_MIB=$max_file")
            prepare_imbox
            phase "imboxd start" start_imboxd
            bench provision --control-socket "$IMBOX_DATA/control.sock" --users 1 \
                --password "$IMBOX_PASSWORD" --url "wss://127.0.0.1:$IMBOX_PORT/ws" --pin "$PIN" \
                --tokens-out "$IMBOX_DATA/tokens.json"
            imbox_args=(--tokens "$IMBOX_DATA/tokens.json" --pin "$PIN" --imbox-pid "$IMBOXD_PID")
            has "$TRANSFER_SYSTEMS" imbox-https && imbox_args+=(--imbox-https "https://127.0.0.1:$IMBOX_PORT")
            has "$TRANSFER_SYSTEMS" imbox-quic && imbox_args+=(--imbox-quic "quic://127.0.0.1:$IMBOX_PORT")
        fi
        local nginx_args=()
        [ -n "$url" ] && nginx_args=(--nginx "$url" --nginx-ca "$ca" --nginx-pid "$nginx_pid")
        phase "transfer $TRANSFER_MIB MiB x $TRANSFER_REPETITIONS ($offer)" \
            bench transfer "${imbox_args[@]}" "${nginx_args[@]}" --size-mib "$TRANSFER_MIB" \
            --repetitions "$TRANSFER_REPETITIONS" --ciphers "$offer" --out-dir "$RESULTS"
        if [ "${#imbox_args[@]}" -gt 0 ]; then
            stop_imboxd
            # Only the uploads are big; the log stays in $OUT/imboxd.log.
            rm -rf "$IMBOX_DATA"
        fi
        IMBOXD_ENV=()
    done
    IMBOX_DATA="$saved_data"
    if [ -n "$url" ]; then
        "$PEERS_DIR/nginx.sh" stop "$PEER_DIR"
        PEER_RUNNING=""
        rm -rf "$PEER_DIR/www" "$PEER_DIR/tmp"
        if [ "$PEER_DIR" != "$OUT/nginx" ]; then
            mkdir -p "$OUT/nginx"
            cp -r "$PEER_DIR"/. "$OUT/nginx/"
            rm -rf "$PEER_DIR"
        fi
    fi
    [ "$TRANSFER_DIR" = "$OUT" ] || rmdir "$TRANSFER_DIR" 2>/dev/null || true
}

report() {
    bench report --results "$RESULTS" --markdown-out "$OUT/report.md" --plot-out "$OUT/latency.svg"
    # The published results are those of the latest run (git keeps the
    # earlier ones): the messaging scenarios' with the plot in
    # docs/benchmarks/results/, the transfer scenario's in
    # docs/benchmarks/attachments/; a run without one kind leaves its
    # published results alone.
    local json=() transfer=() f
    for f in "$RESULTS"/*.json; do
        [ -e "$f" ] || continue
        case "$(basename "$f")" in
            transfer-*) transfer+=("$f") ;;
            *) json+=("$f") ;;
        esac
    done
    [ "${#json[@]}" -gt 0 ] || [ "${#transfer[@]}" -gt 0 ] || die "no results in $RESULTS"
    if [ "${#json[@]}" -gt 0 ]; then
        mkdir -p "$DOCS_OUT/results"
        cp "$OUT/latency.svg" "$DOCS_OUT/latency.svg"
        rm -f "$DOCS_OUT/results/"*.json
        cp "${json[@]}" "$DOCS_OUT/results/"
        cp "$OUT/environment.txt" "$DOCS_OUT/results/environment.txt"
    fi
    if [ "${#transfer[@]}" -gt 0 ]; then
        mkdir -p "$DOCS_OUT/attachments"
        rm -f "$DOCS_OUT/attachments/"*.json
        cp "${transfer[@]}" "$DOCS_OUT/attachments/"
        cp "$OUT/environment.txt" "$DOCS_OUT/attachments/environment.txt"
    fi
}

# --- the run ----------------------------------------------------------------
say "imbox benchmark, $MODE run; output in $OUT"
phase "machine settings" tune_machine
check_capacity
phase "build (release)" build
phase "install peers" install_peers
record_environment

MEASURE_START=$SECONDS
if has "$SYSTEMS" imbox-wss || has "$SYSTEMS" imbox-quic || [ -n "${BENCH_STOP_AFTER:-}" ]; then
    prepare_imbox
    phase "imboxd start" start_imboxd
    [ "${BENCH_STOP_AFTER:-}" = imboxd ] && { say "stopping after imboxd start (BENCH_STOP_AFTER)"; exit 0; }
    phase "provision ($PROVISION_USERS users)" provision
    [ "${BENCH_STOP_AFTER:-}" = provision ] && { say "stopping after provision (BENCH_STOP_AFTER)"; exit 0; }
    # Provisioning hashes two passwords per account (argon2, 19 MiB each, in
    # parallel), and the allocator keeps that memory: the measured imboxd
    # starts afresh on the provisioned data.
    stop_imboxd
fi

for system in $SYSTEMS; do
    case "$system" in
        imbox-wss) run_imbox wss ;;
        imbox-quic) run_imbox quic ;;
        mosquitto | rumqttd | ejabberd) run_peer "$system" ;;
        *) die "unknown system $system in BENCH_SYSTEMS" ;;
    esac
done
stop_imboxd
if has "$SCENARIOS" transfer; then
    run_transfer
fi
if has "$SCENARIOS" startup; then
    phase "imbox startup ($STARTUP_MESSAGES messages)" run_startup
fi
MEASURED=$((SECONDS - MEASURE_START))
phase "report" report

say "phases:"
for p in "${PHASES[@]}"; do echo "    $p"; done
say "measurement took $MEASURED s (budget for the standard run: $BUDGET_SECONDS s); whole run $((SECONDS - RUN_START)) s"
if [ "$MODE" = standard ] && [ "$MEASURED" -gt "$BUDGET_SECONDS" ]; then
    say "WARNING: over the 15-minute budget: lower BENCH_STEP_SECONDS or the step lists"
fi
say "report: $OUT/report.md"
say "published: $DOCS_OUT/latency.svg and results/ (messaging), $DOCS_OUT/attachments/ (transfer), as this run had them"
