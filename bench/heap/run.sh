#!/usr/bin/env bash
# Heap profile of imboxd with N idle sessions (docs/BENCHMARKS.md, "QUIC for
# phones (issue 16)"): heaptrack around a profiling build of imboxd with the C
# library's malloc, `imbox-bench idle` against it, then the breakdown.
#
#   bench/heap/run.sh quic|wss SESSIONS RUN_DIR
#
# RUN_DIR is the output directory of an earlier bench/run.sh (its imbox/ data
# directory, imbox-empty.toml and tokens.json are used; imboxd must not be
# running on it). Needs heaptrack (Debian: apt-get install heaptrack) and
#   cargo build --profile profiling -p imboxd --features imboxd/system-allocator
#   cargo build --release -p imbox-bench
set -euo pipefail
TRANSPORT="$1" SESSIONS="$2" RUN_DIR="$3"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
PORT="${HEAP_PORT:-29443}"
OUT="$RUN_DIR/heap-$TRANSPORT-$SESSIONS"
ulimit -n "$(ulimit -Hn)"
PIN="$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['pin'])" "$RUN_DIR/tokens.json")"
case "$TRANSPORT" in
    quic) URL="quic://127.0.0.1:$PORT" ;;
    wss) URL="wss://127.0.0.1:$PORT/ws" ;;
    *) echo "usage: $0 quic|wss SESSIONS RUN_DIR" >&2; exit 2 ;;
esac
env IMBOX_HTTP__LISTEN="127.0.0.1:$((PORT + 1))" IMBOX_HTTPS__LISTEN="127.0.0.1:$PORT" \
    IMBOX_QUIC__LISTEN="127.0.0.1:$PORT" IMBOX_LIMITS__LOGIN_ATTEMPTS_PER_MINUTE=10000 \
    IMBOX_LIMITS__MAX_CONNECTIONS=100000 IMBOX_LOG__LEVEL=warn \
    heaptrack -o "$OUT" "$TARGET_DIR/profiling/imboxd" --config "$RUN_DIR/imbox-empty.toml" \
    --data-dir "$RUN_DIR/imbox" run >"$OUT.log" 2>&1 &
HEAPTRACK=$!
for _ in $(seq 1 100); do [ -S "$RUN_DIR/imbox/control.sock" ] && break; sleep 0.3; done
sleep 1
IMBOXD="$(pgrep -f "^$TARGET_DIR/profiling/imboxd --config $RUN_DIR/imbox-empty.toml" | head -1)"
"$TARGET_DIR/release/imbox-bench" idle --system imbox --url "$URL" --pin "$PIN" --tokens "$RUN_DIR/tokens.json" \
    --sessions "$SESSIONS" --server-pid "$IMBOXD" --label "imbox ($TRANSPORT, heaptrack)" --out "$OUT.json"
kill -TERM "$IMBOXD"
wait "$HEAPTRACK" || true
heaptrack_print -f "$OUT.zst" --flamegraph-cost-type peak -F "$OUT.peak.txt" >/dev/null
"$ROOT/bench/heap/breakdown.py" "$OUT.peak.txt" "$SESSIONS"
