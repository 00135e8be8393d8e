#!/usr/bin/env bash
# Boot tests of the SD-card image under QEMU (`make test-image`, part of
# `make test`).
#
#   image/test-boot.sh IMAGE [IMBOX_CLI]
#
# IMBOX_CLI is the x86_64 `imbox` client (default target/debug/imbox). Each
# boot runs image/qemu.sh on a copy of the image (a 2 GB "card") with
# imbox.test on the kernel command line, which makes the box print facts as
# "IMBOX-TEST key=value" lines on its serial console
# (overlay/usr/lib/imbox/test-report.sh). The tests:
#
#   boot 1  first boot with a preseed (hostname, SSH key,
#           format_blank_usb = true), a blank USB disk and a USB disk of
#           another box. imboxd answers /health on the forwarded port; the
#           root is a read-only squashfs; /data is the blank disk, now
#           formatted and marked for this box; the other box's disk is not
#           mounted and stays byte-for-byte untouched; /var, /tmp and the
#           journal are in RAM; the preseed is gone from the boot partition.
#           Then the claim: the claim code read from the boot partition
#           (mtools), the box claimed through its HTTPS API (key pinned),
#           named, a user added through the API and a second one paired
#           with an invite link; the two exchange messages with the imbox
#           CLI over wss:// and quic://. The claim file leaves the boot
#           partition. Orderly power-off.
#   boot 2  steady state: root logs in over SSH with the preseed's key (and
#           sshd offers nothing else); boot 1's shutdown time is saved on the
#           data disk; imboxd frozen with SIGSTOP is restarted by systemd's
#           watchdog; the earlier messages are there; more messages both
#           ways over both transports; then a burst of sends from both users
#           during which QEMU is killed (a power cut).
#   boot 3  with the machine's clock starting at 2000-01-01 (a Pi has no
#           RTC): the clock is set forward to the time saved on the data
#           disk; every send the CLI reported as acknowledged is in the history and
#           arrives exactly once by sync; messaging works; then another power
#           cut. The whole SD image is byte-identical to what it was after
#           boot 1 (nothing wrote to the card in steady state, during
#           messaging, or at the power cuts).
#   boot 4  a new card, no preseed, and a new blank USB disk: the SD card's
#           data partition is grown to the end of the card and mounted at
#           /data; the blank disk is listed as blank and not written to. The
#           box is claimed (as in boot 1), two users exchange messages, then
#           the setup page's storage step through the API: the disk is
#           adopted, the data moves to it while imboxd serves, imboxd
#           restarts on it; the owner logs in again, the data is on the USB
#           disk, the messages are there and messaging works. After a power
#           cut the disk holds one ext4 partition labelled for imbox, whose
#           marker names this box.
#
# KEEP=1 keeps the work directory (serial logs, disks); BOOT_TIMEOUT (s,
# default 420) bounds each boot.

# Functions here are often run through check(), which shellcheck cannot follow.
# shellcheck disable=SC2317
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
image=$(realpath "${1:?usage: test-boot.sh IMAGE [IMBOX_CLI]}")
imbox=$(realpath "${2:-$here/../target/debug/imbox}")
# shellcheck source=image/layout.env
. "$here/layout.env"
for tool in qemu-system-aarch64 mtype mcopy sfdisk debugfs mkfs.ext4 blkid curl jq python3 ssh-keygen; do
    command -v "$tool" > /dev/null || { echo "test-boot.sh: $tool is missing (see .ci/run)" >&2; exit 1; }
done
[ -x "$imbox" ] || { echo "test-boot.sh: no imbox client at $imbox (cargo build --bin imbox)" >&2; exit 1; }

work=$(mktemp -d /tmp/imbox-boot-test.XXXXXX)
qemu_pid=""
senders=()
cleanup() {
    [ -z "$qemu_pid" ] || kill -9 "$qemu_pid" 2>/dev/null || true
    for p in "${senders[@]}"; do kill "$p" 2>/dev/null || true; done
    if [ -n "${KEEP:-}" ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
test_started=$(date +%s)

passed=0
failed=0
ok() { echo "ok: $*"; passed=$((passed + 1)); }
fail() { echo "FAILED: $*"; failed=$((failed + 1)); }
check() { # check DESCRIPTION COMMAND...
    local what=$1; shift
    if "$@"; then ok "$what"; else fail "$what"; fi
}
refused() { ! "$@" > /dev/null 2>&1; } # the command fails
finish() {
    local total=$(($(date +%s) - test_started))
    echo "boot tests: $passed passed, $failed failed, in $((total / 60)) min $((total % 60)) s"
    [ "$failed" -eq 0 ] && exit 0
    exit 1
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
http_port=$(free_port)
# The box's HTTPS (TCP 443) and QUIC (UDP 443) share one local port number.
https_port=$(free_port)
wss=wss://127.0.0.1:$https_port
ssh_port=$(free_port)
quic=quic://127.0.0.1:$https_port

# --- the SD card ------------------------------------------------------------------
part_field() { # part_field IMAGE N start|size: in sectors
    sfdisk -d "$1" | sed -n "s/^[^ ]*[^0-9]$2 : start= *\([0-9]*\), size= *\([0-9]*\),.*/\1 \2/p" |
        awk -v f="$3" '{ print (f == "start") ? $1 : $2 }'
}
boot_offset() { echo $(($(part_field "$1" "$IMBOX_BOOT_PART" start) * 512)); }
boot_file() { # boot_file IMAGE NAME: prints a file of the boot partition
    mtype -i "$1@@$(boot_offset "$1")" "::$2" 2>/dev/null
}
claim_code() { boot_file "$1" imbox-claim.txt | sed -n 's/^Claim code: //p' | tr -d '\r'; }
part_sum() { # part_sum IMAGE N: the SHA-256 of partition N
    dd if="$1" bs=512 skip="$(part_field "$1" "$2" start)" count="$(part_field "$1" "$2" size)" \
        status=none | sha256sum | cut -d' ' -f1
}

new_card() { # new_card FILE: the image, "flashed" onto a 2 GB card
    cp --sparse=always "$image" "$1"
    truncate -s 2G "$1"
}

# --- QEMU ---------------------------------------------------------------------------
# start_box SD SERIAL [USB]...: boots in the background.
box_rtc="" # qemu.sh --rtc for the next boot: where the machine's clock starts
start_box() {
    local sd=$1 serial=$2; shift 2
    local usb_args=()
    for d in "$@"; do usb_args+=(--usb "$d"); done
    : > "$serial"
    local rtc_args=()
    [ -z "$box_rtc" ] || rtc_args=(--rtc "$box_rtc")
    "$here/qemu.sh" --sd "$sd" "${usb_args[@]}" --ports "$http_port,$https_port,$https_port" \
        --ssh "$ssh_port" "${rtc_args[@]}" \
        --append "imbox.test" --serial "$serial" --monitor "$work/qmp.sock" \
        --pidfile "$work/qemu.pid" --daemonize > /dev/null
    qemu_pid=$(cat "$work/qemu.pid")
    boot_started=$(date +%s%N)
}

# wait_ready SERIAL: until /health answers and the box has reported.
wait_ready() {
    local serial=$1 deadline=$(($(date +%s) + ${BOOT_TIMEOUT:-420}))
    # The forwarded port accepts connections before the guest listens: wait
    # for an answer.
    until curl -sf -m 5 "http://127.0.0.1:$http_port/health" > /dev/null; do
        if [ "$(date +%s)" -gt "$deadline" ] || ! kill -0 "$qemu_pid" 2>/dev/null; then
            echo "--- serial console ---"; tail -n 80 "$serial"; return 1
        fi
        sleep 1
    done
    ready_ms=$((($(date +%s%N) - boot_started) / 1000000))
    echo "imboxd answered /health $((ready_ms / 1000)).$((ready_ms % 1000 / 100)) s after QEMU started"
    until grep -q "IMBOX-TEST end" "$serial"; do
        if [ "$(date +%s)" -gt "$deadline" ]; then echo "--- serial console ---"; tail -n 80 "$serial"; return 1; fi
        sleep 1
    done
}

# wait_report SERIAL: until the box has reported, for boots where imboxd is
# not meant to start (the standby page answers /health with 503).
wait_report() {
    local deadline=$(($(date +%s) + ${BOOT_TIMEOUT:-420}))
    until grep -q "IMBOX-TEST end" "$1"; do
        if [ "$(date +%s)" -gt "$deadline" ] || ! kill -0 "$qemu_pid" 2>/dev/null; then
            echo "--- serial console ---"; tail -n 80 "$1"; return 1
        fi
        sleep 1
    done
}
# page: the box's plain-HTTP page (the standby page answers 503).
page() { curl -s -m 10 "http://127.0.0.1:$http_port/"; }
health_status() { curl -s -m 10 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$http_port/health"; }

# not_mounted DEV MOUNTS: DEV is known, and neither it nor a partition of it
# is in MOUNTS (a space-separated list of devices).
not_mounted() {
    [ -n "$1" ] || return 1
    ! tr ' ' '\n' <<<"$2" | grep -q "^$1"
}

# other_disk SERIAL: the device name (sda and sdb come in either order) of the
# other box's disk in that boot, if the box found it to be another box's.
other_disk() { facts "$1" usb-disk | awk -F: '$2 == "IMBOXUSB1" && $3 == "other-box" { print $1 }'; }

fact() { sed -n "s/^IMBOX-TEST $2=//p" "$1" | tr -d '\r' | head -n1; }
facts() { sed -n "s/^IMBOX-TEST $2=//p" "$1" | tr -d '\r'; }

# qmp COMMAND_JSON...: runs commands on QEMU's monitor (QMP); fails if one
# answers with an error.
qmp() {
    python3 - "$work/qmp.sock" "$@" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rw")
f.readline()
def run(cmd):
    f.write(json.dumps(cmd) + "\n"); f.flush()
    while True:
        answer = json.loads(f.readline())
        if "event" in answer:
            continue
        if "error" in answer:
            sys.exit(f"qmp {cmd['execute']}: {answer['error']}")
        return
run({"execute": "qmp_capabilities"})
for arg in sys.argv[2:]:
    run(json.loads(arg))
PY
}

# hotplug_usb FILE SERIAL: plugs FILE in as a USB disk with that serial.
hotplug_usb() {
    qmp "$(jq -nc --arg f "$1" '{execute: "blockdev-add", arguments: {driver: "raw", "node-name": "hot0",
            file: {driver: "file", filename: $f}}}')" \
        "$(jq -nc --arg s "$2" '{execute: "device_add", arguments: {driver: "usb-storage", bus: "xhci.0",
            drive: "hot0", serial: $s, id: "hotusb0"}}')"
}

# power_off: an orderly shutdown through the power button (QMP).
power_off() {
    qmp '{"execute": "system_powerdown"}'
    for _ in $(seq 1 120); do
        kill -0 "$qemu_pid" 2>/dev/null || { qemu_pid=""; return 0; }
        sleep 1
    done
    echo "the box did not power off in 120 s; killing QEMU"
    kill -9 "$qemu_pid"; qemu_pid=""
    return 1
}

power_cut() {
    kill -9 "$qemu_pid"
    while kill -0 "$qemu_pid" 2>/dev/null; do sleep 0.1; done
    qemu_pid=""
}

# --- the box's HTTPS API (docs/API.md) ----------------------------------------
cookies=$work/cookies
csrf=""
pin=""      # the box's key fingerprint, sha256:<base64url>
curl_pin="" # the same for curl: sha256//<base64>
# api METHOD PATH [JSON]: prints the answer's body; fails unless it is 2xx.
# Once the fingerprint is known, curl refuses any other key. The HTTP status
# is left in $work/api.status (000: no answer).
api() {
    local method=$1 path=$2 body=${3:-} status
    local args=(-sS -m 120 -k -X "$method" -b "$cookies" -c "$cookies" -o "$work/api.out" -w '%{http_code}')
    [ -z "$curl_pin" ] || args+=(--pinnedpubkey "$curl_pin")
    [ -z "$csrf" ] || args+=(-H "X-CSRF-Token: $csrf")
    # As the box's own pages do in a browser: a cookie-authenticated change
    # must say it comes from the box (docs/API.md).
    args+=(-H "Origin: https://127.0.0.1:$https_port")
    [ -z "$body" ] || args+=(-H 'Content-Type: application/json' --data "$body")
    echo 000 > "$work/api.status"
    status=$(curl "${args[@]}" "https://127.0.0.1:$https_port$path") || {
        echo "api: $method $path: curl failed" >&2; return 1; }
    echo "$status" > "$work/api.status"
    cat "$work/api.out"
    case $status in
        2??) ;;
        *) echo "api: $method $path: HTTP $status $(cat "$work/api.out")" >&2; return 1 ;;
    esac
}
b64url_to_b64() {
    python3 -c 'import base64, sys; s = sys.argv[1]; print(base64.b64encode(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))).decode())' "$1"
}
api_ok() { api "$@" > /dev/null; }
password() { head -c 18 /dev/urandom | base64 | tr '+/' '-_'; }

# claim_box SD PREFIX: claims the box booted from the card SD through its
# HTTPS API, as the setup page does: the claim code from the boot partition,
# the owner "owner" with a new password ($owner_pw). Pins the box's key
# ($pin, $curl_pin) and keeps the owner's session ($cookies, $csrf); sets
# claimed=1. PREFIX starts each check's name.
claim_box() {
    local sd=$1 p=$2 setup claim body code=""
    claimed=0 pin="" curl_pin="" csrf=""
    rm -f "$cookies"
    for _ in $(seq 1 60); do code=$(claim_code "$sd"); [ -z "$code" ] || break; sleep 1; done
    check "${p}the claim code is in imbox-claim.txt on the boot partition" test -n "$code"
    if ! setup=$(api GET /api/setup) || [ "$(jq -r .claimed <<<"$setup")" != false ]; then
        fail "${p}the setup API answers over HTTPS, unclaimed"
        return 0
    fi
    pin=$(jq -r .fingerprint <<<"$setup")
    curl_pin="sha256//$(b64url_to_b64 "${pin#sha256:}")"
    ok "${p}the setup API answers over HTTPS: unclaimed, key $pin"
    if api POST /api/setup/verify '{"code": "0000-0000-0000-0000"}' > /dev/null 2>&1; then
        fail "${p}a wrong claim code is refused"
    else
        check "${p}a wrong claim code is refused" grep -q wrong_claim_code "$work/api.out"
    fi
    owner_pw=$(password)
    body=$(jq -nc --arg c "$code" --arg p "$owner_pw" \
        '{code: $c, username: "owner", password: $p, password_confirm: $p}')
    if claim=$(api POST /api/setup/claim "$body"); then
        csrf=$(jq -r .csrf_token <<<"$claim")
        check "${p}claimed with the code from the boot partition: owner is the owner" \
            test "$(jq -r '.owner and .admin' <<<"$claim")" = true
        claimed=1
    else
        fail "${p}claim the box with the code from the boot partition"
    fi
}

# add_user NAME PASSWORD SERVER: adds NAME through the admin API, then NAME
# logs in with the imbox CLI over SERVER, the box's key pinned.
add_user() {
    api_ok POST /api/admin/users "$(jq -nc --arg u "$1" --arg p "$2" '{username: $u, password: $p}')" &&
        IMBOX_PASSWORD=$2 "$imbox" --profile "$work/$1" --server "$3" --pin "$pin" login "$1"
}

# --- the imbox CLI -------------------------------------------------------------
cli() { # cli USER ARGS...: the imbox client with USER's profile
    local who=$1; shift
    "$imbox" --profile "$work/$who" "$@"
}
# texts FILE [FROM]: the texts of the message lines in FILE (from FROM).
json_true() { jq -e "$@" > /dev/null; } # json_true [ARGS] FILTER: FILTER is true of stdin
texts() { jq -r --arg from "${2:-}" 'select(.type == "message" and ($from == "" or .from == $from)) | .text' "$1"; }
# exchange TAG: alice and bob send each other a message over each transport
# and each finds the other's by sync, exactly once.
exchange() {
    local tag=$1 t
    for t in wss quic; do
        local server=${!t}
        if ! cli alice --server "$server" send bob "$tag: alice to bob over $t" ||
            ! cli bob --server "$server" send alice "$tag: bob to alice over $t"; then
            echo "exchange: a send over $t failed"; return 1
        fi
    done
    if ! cli bob --server "$quic" sync > "$work/$tag-bob.sync" ||
        ! cli alice --server "$wss" sync > "$work/$tag-alice.sync"; then
        echo "exchange: sync failed"; return 1
    fi
    for t in wss quic; do
        if [ "$(texts "$work/$tag-bob.sync" alice | grep -cx "$tag: alice to bob over $t")" != 1 ] ||
            [ "$(texts "$work/$tag-alice.sync" bob | grep -cx "$tag: bob to alice over $t")" != 1 ]; then
            echo "exchange: a message over $t did not arrive exactly once"; return 1
        fi
    done
}
# sender USER TO TAG SERVER: sends TAG-1, TAG-2, ... until $work/stop
# exists; each send the CLI reports as stored goes to $work/acked-TAG as
# "TEXT<tab>SEQ".
sender() {
    local who=$1 to=$2 tag=$3 server=$4 i=0 out
    # At most 90 each: the history check reads one page of 200 messages.
    while [ ! -e "$work/stop" ] && [ "$i" -lt 90 ]; do
        i=$((i + 1))
        if out=$(cli "$who" --server "$server" -v send "$to" "$tag-$i" 2>> "$work/senders.err"); then
            printf '%s\t%s\n' "$tag-$i" "$(jq -r .seq <<<"$out")" >> "$work/acked-$tag"
        fi
    done
}

# --- SSH into the box (the preseed of boot 1 gave it the key) ------------------
ssh_opts=(-p "$ssh_port" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR
    -o ConnectTimeout=30)
box_ssh() { ssh "${ssh_opts[@]}" -i "$work/id_test" -o BatchMode=yes root@127.0.0.1 "$@"; }
# The methods sshd offers before any is tried: only public keys.
ssh_methods() {
    ssh "${ssh_opts[@]}" -v -o PreferredAuthentications=none -o PubkeyAuthentication=no -o BatchMode=yes \
        root@127.0.0.1 true 2>&1 | sed -n 's/.*Authentications that can continue: //p' | head -n1 | tr -d '\r'
}
health_ok() { curl -sf -m 5 "http://127.0.0.1:$http_port/health" > /dev/null; }
# watchdog_restarts: imboxd, frozen with SIGSTOP, stops pinging systemd's
# watchdog (WatchdogSec=30s); systemd must kill and restart it, and say so.
watchdog_restarts() {
    local pid new
    pid=$(box_ssh systemctl show -p MainPID --value imboxd.service) || return 1
    [ -n "$pid" ] && [ "$pid" != 0 ] || return 1
    box_ssh kill -STOP "$pid" || return 1
    for _ in $(seq 1 150); do
        new=$(box_ssh systemctl show -p MainPID --value imboxd.service 2>/dev/null || true)
        if [ -n "$new" ] && [ "$new" != 0 ] && [ "$new" != "$pid" ] && health_ok; then
            box_ssh journalctl -b -u imboxd.service --no-pager | grep -q 'Watchdog timeout'
            return
        fi
        sleep 1
    done
    return 1
}

# clock_restored: systemd-timesyncd moved the clock (started at 2000-01-01 by
# --rtc) forward to at least the time saved on the data disk at boot 1's
# shutdown. Nothing else could have: there is no NTP server within reach, and
# systemd's own floor (the build time of systemd) is older.
clock_restored() {
    test "$(box_ssh date +%s)" -ge "$clock_floor"
}

# journal_of_boot_2: boot 2's journal, cut off by the power cut, survived on
# the data disk: its imboxd started and its journal went to the data disk.
# (Its last minutes, the watchdog restart among them, did not survive in
# the runs so far: docs/IMAGE.md, "The journal and the clock".)
journal_of_boot_2() {
    box_ssh journalctl -b -1 --no-pager -o cat > "$work/journal-boot2.txt" &&
        grep -q '^listening on quic://' "$work/journal-boot2.txt" &&
        grep -q 'journal: /data/system/journal bound at' "$work/journal-boot2.txt"
}

# steady_state N: what every boot of the claimed box on its USB disk must show.
steady_state() {
    local n=$1
    check "boot $n: imboxd is active" test "$(fact "$serial" imboxd)" = active
    check "boot $n: /data is the same USB disk" test "$(fact "$serial" data-serial)" = IMBOXUSB0
    check "boot $n: no unit failed" test -z "$(fact "$serial" failed-units | tr -d ' ')"
    check "boot $n: the other box's disk is listed as another box's and not mounted" \
        not_mounted "$(other_disk "$serial")" "$(fact "$serial" block-mounts)"
    check "boot $n: SSH lets root in with the preseed's key" box_ssh true
    check "boot $n: SSH offers public keys only (no passwords)" test "$(ssh_methods)" = publickey
}

# ==================================================================================
echo "== boot 1: first boot with a preseed, a blank USB disk and another box's USB disk"
sd=$work/sd.img
new_card "$sd"
ssh-keygen -q -t ed25519 -N '' -C test -f "$work/id_test"
cat > "$work/imbox.toml" <<EOF
hostname = "testbox"
timezone = "Europe/Berlin"
ssh_authorized_keys = ["$(cat "$work/id_test.pub")"]
[storage]
format_blank_usb = true
EOF
mcopy -i "$sd@@$(boot_offset "$sd")" "$work/imbox.toml" ::imbox.toml
# qemu.sh gives the USB disks the serial numbers IMBOXUSB0, IMBOXUSB1, ...
# in the order of the arguments.
truncate -s 2G "$work/usb-blank.img"
mkdir -p "$work/other/imbox"
printf '# This disk holds the data of an imbox. Do not format it.\nbox=another-box\n' > "$work/other/$IMBOX_MARKER"
echo "not yours" > "$work/other/imbox/keep.txt"
mkfs.ext4 -q -L "$IMBOX_USB_LABEL" -d "$work/other" "$work/usb-other.img" 256M
other_sum=$(sha256sum < "$work/usb-other.img")

serial=$work/boot1.log
start_box "$sd" "$serial" "$work/usb-blank.img" "$work/usb-other.img"
if ! wait_ready "$serial"; then
    fail "boot 1: imboxd answers /health"
    finish
fi
ready1=$ready_ms
ok "boot 1: imboxd answers /health on the forwarded port"
check "root is mounted read-only" grep -Eq '^ro(,|$)' <<<"$(fact "$serial" root-options)"
check "root is squashfs" test "$(fact "$serial" root-fstype)" = squashfs
check "/data is a USB disk" test "$(fact "$serial" data-transport)" = usb
check "/data is the blank disk (IMBOXUSB0), formatted" test "$(fact "$serial" data-serial)" = IMBOXUSB0
check "/var is tmpfs" test "$(fact "$serial" var-fstype)" = tmpfs
check "/tmp is tmpfs" test "$(fact "$serial" tmp-fstype)" = tmpfs
check "the journal is on the data disk (/var/log/journal, bound from /data/system/journal)" \
    grep -q '^/var/log/journal/' <<<"$(fact "$serial" journal)"
check "the boot partition is mounted read-only" grep -Eq '^ro(,|$)' <<<"$(fact "$serial" boot-options)"
check "imboxd is active" test "$(fact "$serial" imboxd)" = active
check "imboxd runs as imbox" test "$(fact "$serial" imboxd-user)" = imbox
check "no unit failed" test -z "$(fact "$serial" failed-units | tr -d ' ')"
check "hostname from the preseed" test "$(fact "$serial" hostname)" = testbox
check "avahi-daemon (mDNS, DNS-SD) is active" test "$(fact "$serial" avahi)" = active
check "SSH is on (the preseed gave a key)" test "$(fact "$serial" ssh)" = active
check "fs.file-max raised" test "$(fact "$serial" nofile-max)" -ge 1048576
check "net.core.rmem_max raised for QUIC" test "$(fact "$serial" rmem-max)" -ge 7500000
check "systemd runs the hardware watchdog (15 s)" test "$(fact "$serial" runtime-watchdog)" = 15s
check "the hardware watchdog (watchdog0) is active" test "$(fact "$serial" watchdog0-state)" = active
other_dev=$(other_disk "$serial")
check "the other box's disk (IMBOXUSB1) is listed as another box's" \
    grep -qx "$other_dev:IMBOXUSB1:other-box" <<<"$(facts "$serial" usb-disk)"
check "the other box's disk is not mounted for writing" not_mounted "$other_dev" "$(fact "$serial" data-writable-mounts)"
check "the other box's disk is not mounted at all" not_mounted "$other_dev" "$(fact "$serial" block-mounts)"
check "the preseed is gone from the boot partition" refused boot_file "$sd" imbox.toml

echo "== boot 1: claim the box, add two users, exchange messages"
claim_box "$sd" ""
if [ "$claimed" = 1 ]; then
    check "the box is named" api_ok PUT /api/admin/settings '{"box_name": "Boot test box"}' > /dev/null
    alice_pw=$(password)
    bob_pw=$(password)
    check "alice is added through the admin API and logs in with the imbox CLI over wss:// (key pinned)" \
        add_user alice "$alice_pw" "$wss"
    if invite=$(api POST /api/admin/invites '{"uses": 1}'); then
        uri=$(jq -r .uri <<<"$invite")
        echo "pairing link: $uri"
        # The link names the box's own addresses and ports (10.0.2.15, 443
        # under QEMU's user networking); the test reaches them through the
        # forwarded ports.
        local_uri=$(python3 - "$uri" "$https_port" <<'PY'
import sys, urllib.parse
uri, port = sys.argv[1], sys.argv[2]
head, query = uri.split("?", 1)
q = [(k, v) for k, v in urllib.parse.parse_qsl(query) if k not in ("host", "quic", "wss")]
q += [("host", "127.0.0.1"), ("quic", port), ("wss", port)]
print(head + "?" + urllib.parse.urlencode(q))
PY
)
        check "the pairing link pins the box's key" grep -q "fp=sha256%3A${pin#sha256:}&" <<<"$uri&"
        check "the pairing link names the box's address and port 443" \
            grep -Eq 'host=10\.0\.2\.15&.*quic=443&wss=443' <<<"$uri"
        check "the pairing link carries the box's name" grep -q 'name=Boot+test+box' <<<"$uri"
        if paired=$(IMBOX_PASSWORD=$bob_pw cli bob -v pair "$local_uri" bob); then
            check "bob pairs with the invite link over quic:// (QUIC first)" \
                test "$(jq -r .server <<<"$paired")" = "$quic" -a "$(jq -r .pin <<<"$paired")" = "$pin"
        else
            fail "bob pairs with the invite link"
        fi
        check "the invite is used up" refused env IMBOX_PASSWORD="$bob_pw" "$imbox" --profile "$work/carol" pair "$local_uri" carol
    else
        fail "an invite is made through the admin API"
    fi
    check "a client pinning another key is refused" \
        refused cli alice --pin sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA sync
    check "alice and bob exchange messages over wss:// and quic://" exchange boot1
    check "two users and the owner" test "$(api GET /api/admin/users | jq '.users | length')" = 3
    gone=0
    for _ in $(seq 1 60); do boot_file "$sd" imbox-claim.txt > /dev/null || { gone=1; break; }; sleep 1; done
    check "the claim file is gone from the boot partition once claimed" test "$gone" = 1
    check "setup is over: /api/setup answers 410" test "$(curl -sk --pinnedpubkey "$curl_pin" -o /dev/null \
        -w '%{http_code}' "https://127.0.0.1:$https_port/api/setup")" = 410
fi
# The clock saved on the data disk at shutdown is at least this.
clock_floor=$(date +%s)
check "orderly power-off (power button)" power_off
check "the other box's disk is byte-for-byte untouched" test "$(sha256sum < "$work/usb-other.img")" = "$other_sum"
marker=$(debugfs -R "cat /$IMBOX_MARKER" "$work/usb-blank.img?offset=$((2048 * 512))" 2>/dev/null || true)
box=$(boot_file "$sd" imbox-box-id | tr -d '\r\n ')
check "the formatted disk's marker names this box" grep -qx "box=$box" <<<"$marker"
record_names() { # record_names SD SERIAL SIZE: the boot partition's data-disk record
    test "$(boot_file "$1" imbox-data-disk | tr -d '\r' |
        grep -cx -e "serial=$2" -e "id=usb-.*$2.*" -e "size_bytes=$3")" = 3
}
check "the boot partition records the USB disk as the data disk (by id, serial and size)" \
    record_names "$sd" IMBOXUSB0 2147483648

# ==================================================================================
echo "== boot 2: steady state, messaging, and a power cut during a burst of sends"
sd_sum=$(sha256sum < "$sd" | cut -d' ' -f1)
boot_sum=$(part_sum "$sd" "$IMBOX_BOOT_PART")
root_sum=$(part_sum "$sd" "$IMBOX_ROOT_A_PART")
serial=$work/boot2.log
start_box "$sd" "$serial" "$work/usb-blank.img" "$work/usb-other.img"
ready2=""
if wait_ready "$serial"; then
    ready2=$ready_ms
    ok "boot 2: imboxd answers /health"
    steady_state 2
    check "boot 2: the time of boot 1's shutdown is saved on the data disk" \
        test "$(box_ssh stat -c %Y /data/system/timesync/clock)" -ge "$clock_floor"
    check "boot 2: systemd's watchdog restarts a hung imboxd" watchdog_restarts
    # For docs/IMAGE.md ("imboxd's sandbox"): systemd 257's own assessment.
    box_ssh systemd-analyze security imboxd.service --no-pager > "$work/security.txt" 2>&1 || true
    echo "systemd-analyze security imboxd.service on the box: $(tail -n 1 "$work/security.txt")"
    if [ "$claimed" = 1 ]; then
        check "boot 2: boot 1's messages are in the history" \
            test "$(cli bob history alice | jq -r .text | grep -c '^boot1: ')" = 4
        check "boot 2: alice and bob exchange messages over wss:// and quic://" exchange boot2
        rm -f "$work/stop" "$work/acked-a" "$work/acked-b"
        touch "$work/acked-a" "$work/acked-b"
        sender alice bob a "$wss" &
        senders+=("$!")
        sender bob alice b "$quic" &
        senders+=("$!")
        # Cut the power once both have had some sends acknowledged.
        for _ in $(seq 1 240); do
            [ "$(wc -l < "$work/acked-a")" -ge 8 ] && [ "$(wc -l < "$work/acked-b")" -ge 8 ] && break
            sleep 0.5
        done
        sleep "0.$((RANDOM % 10))"
        power_cut
        touch "$work/stop"
        ok "power cut (QEMU killed) during a burst of sends"
        # A send in flight gives up (the client retries for 15 s).
        wait "${senders[@]}" || true
        senders=()
        echo "acknowledged before the power cut: $(wc -l < "$work/acked-a") sends over wss://, $(wc -l < "$work/acked-b") over quic://"
        check "sends were acknowledged before the power cut" test -s "$work/acked-a" -a -s "$work/acked-b"
    else
        power_cut
    fi
else
    fail "boot 2: imboxd answers /health"
fi

# ==================================================================================
echo "== boot 3: after the power cut, with the machine's clock at 2000-01-01 (the Pi has no RTC)"
serial=$work/boot3.log
box_rtc=2000-01-01
start_box "$sd" "$serial" "$work/usb-blank.img" "$work/usb-other.img"
box_rtc=""
ready3=""
if wait_ready "$serial"; then
    ready3=$ready_ms
    ok "boot 3: imboxd answers /health"
    check "boot 3: the clock was set forward to the time saved on the data disk" clock_restored
    check "boot 3: the journal of boot 2, cut off by the power cut, is on the data disk and readable" \
        journal_of_boot_2
    steady_state 3
    if [ "$claimed" = 1 ] && [ -s "$work/acked-a" ]; then
        cli alice --server "$quic" history bob --limit 200 > "$work/history" || fail "boot 3: history"
        cli bob --server "$wss" sync > "$work/boot3-bob.sync" || fail "boot 3: bob's sync"
        cli alice --server "$quic" sync > "$work/boot3-alice.sync" || fail "boot 3: alice's sync"
        # TEXT<tab>SEQ, as the acknowledgements were recorded.
        jq -r 'select(.type == "message") | "\(.text)\t\(.seq)"' "$work/history" | sort > "$work/history.tsv"
        sort "$work/acked-a" "$work/acked-b" > "$work/acked.tsv"
        comm -23 "$work/acked.tsv" "$work/history.tsv" > "$work/lost.tsv"
        [ ! -s "$work/lost.tsv" ] || { echo "acknowledged, but not in the history:"; cat "$work/lost.tsv"; }
        check "every acknowledged send is in the history, with its sequence number" test ! -s "$work/lost.tsv"
        dup=0
        while IFS=$'\t' read -r text _; do
            [ "$(texts "$work/boot3-bob.sync" alice | grep -cx "$text")" = 1 ] || { echo "bob's sync has $text not exactly once"; dup=1; }
        done < "$work/acked-a"
        while IFS=$'\t' read -r text _; do
            [ "$(texts "$work/boot3-alice.sync" bob | grep -cx "$text")" = 1 ] || { echo "alice's sync has $text not exactly once"; dup=1; }
        done < "$work/acked-b"
        check "every acknowledged send arrives by sync exactly once" test "$dup" = 0
        check "no message text appears twice in the history" \
            test -z "$(jq -r 'select(.type == "message") | .text' "$work/history" | sort | uniq -d)"
        check "boot 3: alice and bob exchange messages over wss:// and quic://" exchange boot3
    fi
    check "boot 3: the claim file stays off the boot partition" refused boot_file "$sd" imbox-claim.txt
    power_cut
    ok "another power cut"
else
    fail "boot 3: imboxd answers /health"
fi
check "the boot partition is byte-identical after boot 1 (messaging, two power cuts)" \
    test "$(part_sum "$sd" "$IMBOX_BOOT_PART")" = "$boot_sum"
check "root slot A is byte-identical after boot 1" test "$(part_sum "$sd" "$IMBOX_ROOT_A_PART")" = "$root_sum"
check "the whole SD image is byte-identical after boot 1" test "$(sha256sum < "$sd" | cut -d' ' -f1)" = "$sd_sum"
check "the other box's disk is still untouched" test "$(sha256sum < "$work/usb-other.img")" = "$other_sum"
# What the re-flashed card must find again: boot 1's box id and key.
box1=$(boot_file "$sd" imbox-box-id | tr -d '\r\n ')
curl_pin1=$curl_pin

# ==================================================================================
echo "== the data disk missing at boot: the standby page, then the disk plugged in"
# Boot 1's card records IMBOXUSB0 as its data disk; its SD data partition
# holds the empty file system of the image. The box must not serve it.
serial=$work/boot-missing.log
start_box "$sd" "$serial"
if wait_report "$serial"; then
    check "missing disk: imboxd is not started on other data" test "$(fact "$serial" imboxd)" != active
    check "missing disk: nothing is mounted at /data" test -z "$(fact "$serial" data-source)"
    check "missing disk: the storage service reports the disk missing" test "$(fact "$serial" storage-problem)" = missing
    check "missing disk: the standby page is served" test "$(fact "$serial" standby)" = active
    check "missing disk: /health answers 503" test "$(health_status)" = 503
    check "missing disk: the page names the missing disk by its serial" grep -q IMBOXUSB0 <<<"$(page)"
    check "missing disk: no unit failed" test -z "$(fact "$serial" failed-units | tr -d ' ')"
    hotplug_usb "$work/usb-blank.img" IMBOXUSB0 || fail "missing disk: hot-plug through QMP"
    came=0
    for _ in $(seq 1 150); do health_ok && { came=1; break; }; sleep 1; done
    check "missing disk: plugged in, the box comes up on it without a reboot (/health answers)" test "$came" = 1
    if [ "$came" = 1 ] && [ "$claimed" = 1 ]; then
        check "missing disk: after the hot-plug, boot 1's messages are there" \
            test "$(cli bob --server "$wss" history alice --limit 200 | jq -r .text | grep -c '^boot1: ')" = 4
        check "missing disk: after the hot-plug, alice and bob exchange messages" exchange hotplug
    fi
    check "missing disk: orderly power-off" power_off
else
    fail "missing disk: the box reports"
fi

echo "== two disks marked for this box: neither is mounted"
cp --sparse=always "$work/usb-blank.img" "$work/usb-twin.img"
serial=$work/boot-twins.log
start_box "$sd" "$serial" "$work/usb-blank.img" "$work/usb-twin.img"
if wait_report "$serial"; then
    check "two disks: the storage service reports two disks" test "$(fact "$serial" storage-problem)" = two-disks
    check "two disks: neither is mounted" test -z "$(fact "$serial" data-source)"
    check "two disks: imboxd is not started" test "$(fact "$serial" imboxd)" != active
    check "two disks: the page lists both" grep -q 'IMBOXUSB0' <<<"$(page)"
    check "two disks: the page lists the second one" grep -q 'IMBOXUSB1' <<<"$(page)"
    power_cut
else
    fail "two disks: the box reports"
fi
rm -f "$work/usb-twin.img"

echo "== the data disk fails its file-system check: never mounted read-write"
# A copy of the data disk whose root directory inode is cleared: e2fsck -p
# will not repair that without a person.
cp --sparse=always "$work/usb-blank.img" "$work/usb-broken.img"
debugfs -w -R "clri <2>" "$work/usb-broken.img?offset=$((2048 * 512))" 2> /dev/null
serial=$work/boot-broken.log
start_box "$sd" "$serial" "$work/usb-broken.img"
if wait_report "$serial"; then
    check "check failed: the storage service reports it" test "$(fact "$serial" storage-problem)" = check-failed
    check "check failed: the disk is not mounted read-write" test -z "$(fact "$serial" data-writable-mounts | tr ' ' '\n' | grep '^/dev/sd' || true)"
    check "check failed: imboxd is not started" test "$(fact "$serial" imboxd)" != active
    check "check failed: the page says the check failed" grep -q 'failed its check' <<<"$(page)"
    power_cut
else
    fail "check failed: the box reports"
fi
rm -f "$work/usb-broken.img"

echo "== a re-flashed card, told to restore, with the same USB disk and an unrecognised one"
# The card is new (a new box id); its preseed says restore_from_usb (the
# owner's consent) and format_blank_usb. The second disk holds random bytes
# and no signature blkid knows (as an encrypted volume): not blank.
sd_reflash=$work/sd-reflash.img
new_card "$sd_reflash"
printf '[storage]\nformat_blank_usb = true\nrestore_from_usb = true\n' > "$work/restore.toml"
mcopy -i "$sd_reflash@@$(boot_offset "$sd_reflash")" "$work/restore.toml" ::imbox.toml
truncate -s 1G "$work/usb-random.img"
head -c 4M /dev/urandom | dd of="$work/usb-random.img" conv=notrunc status=none
random_sum=$(sha256sum < "$work/usb-random.img")
serial=$work/boot-reflash.log
start_box "$sd_reflash" "$serial" "$work/usb-blank.img" "$work/usb-random.img"
if wait_ready "$serial"; then
    check "re-flashed: /data is the box's own USB disk" test "$(fact "$serial" data-serial)" = IMBOXUSB0
    check "re-flashed: the card took the box id from the disk" \
        test "$(boot_file "$sd_reflash" imbox-box-id | tr -d '\r\n ')" = "$box1"
    check "re-flashed: the same identity key (the pin of boot 1 holds)" \
        curl -sf -k -m 10 --pinnedpubkey "$curl_pin1" -o /dev/null "https://127.0.0.1:$https_port/health"
    check "re-flashed: the unrecognised disk is listed as holding data" \
        grep -q ':IMBOXUSB1:has-data$' <<<"$(facts "$serial" usb-disk)"
    if [ "$claimed" = 1 ]; then
        check "re-flashed: the messages are there for the paired clients" \
            test "$(cli bob --server "$wss" history alice --limit 200 | jq -r .text | grep -c '^boot1: ')" = 4
    fi
    power_cut
else
    fail "re-flashed: imboxd answers /health"
fi
check "re-flashed: the unrecognised disk was not formatted (byte-identical)" \
    test "$(sha256sum < "$work/usb-random.img")" = "$random_sum"
rm -f "$work/usb-random.img" "$sd_reflash"

# ==================================================================================
echo "== boot 4: a new card and a blank USB disk, no preseed: the SD card, then the setup page's storage step"
sd=$work/sd-only.img
rm -f "$work/sd.img" "$work/usb-blank.img"
# This card is written as a person does it, with image/flash.sh (make flash):
# the claim code it prints must be the one the box uses.
truncate -s 2G "$sd"
flash_code=""
if "$here/flash.sh" "$image" "$sd" --yes > "$work/flash.out" 2> "$work/flash.err"; then
    flash_code=$(sed -n 's/^    \([0-9A-Z]\{4\}-[0-9A-Z]\{4\}-[0-9A-Z]\{4\}-[0-9A-Z]\{4\}\)$/\1/p' "$work/flash.out")
fi
check "flash.sh writes the card and prints a claim code" test -n "$flash_code"
# A new, sparse disk: while no block of it is allocated, nothing wrote to it.
usb4=$work/usb-new.img
truncate -s 1G "$usb4"
serial=$work/boot4.log
start_box "$sd" "$serial" "$usb4"
ready4=""
move_s=""
if wait_ready "$serial"; then
    ready4=$ready_ms
    ok "SD only: imboxd answers /health"
    check "SD only: /data is the SD card's data partition" test "$(fact "$serial" data-source)" = "/dev/vda$IMBOX_DATA_PART"
    check "SD only: no unit failed" test -z "$(fact "$serial" failed-units | tr -d ' ')"
    usb4_dev=$(facts "$serial" usb-disk | awk -F: '$2 == "IMBOXUSB0" { print $1 }')
    check "SD only: the blank USB disk is listed as blank" \
        grep -qx "$usb4_dev:IMBOXUSB0:blank" <<<"$(facts "$serial" usb-disk)"
    check "SD only: the blank USB disk is not formatted without consent (not one block written)" \
        test "$(stat -c %b "$usb4")" = 0
    check "SD only: the box uses the claim code flash.sh printed" \
        test "$(claim_code "$sd" | tr -d ' -')" = "$(tr -d ' -' <<<"$flash_code")"
    claim_box "$sd" "SD only: "
fi
if [ -n "$ready4" ] && [ "$claimed" = 1 ]; then
    # The profiles of boot 1's box pin another key.
    rm -rf "$work/alice" "$work/bob"
    alice_pw=$(password)
    bob_pw=$(password)
    check "SD only: alice is added and logs in with the imbox CLI over wss://" add_user alice "$alice_pw" "$wss"
    check "SD only: bob is added and logs in with the imbox CLI over quic://" add_user bob "$bob_pw" "$quic"
    check "SD only: alice and bob exchange messages over wss:// and quic://" exchange boot4

    echo "== boot 4, again: a preseed allowing to format, dropped on a card past its first boot"
    check "SD only: orderly power-off" power_off
    printf '[storage]\nformat_blank_usb = true\n' > "$work/late.toml"
    mcopy -i "$sd@@$(boot_offset "$sd")" "$work/late.toml" ::imbox.toml
    serial=$work/boot4-late-preseed.log
    start_box "$sd" "$serial" "$usb4"
    if wait_ready "$serial"; then
        check "late preseed: /data is still the SD card's data partition" \
            test "$(fact "$serial" data-source)" = "/dev/vda$IMBOX_DATA_PART"
        check "late preseed: the blank USB disk is not formatted (not one block written)" test "$(stat -c %b "$usb4")" = 0
        # Web sessions live in imboxd's memory: the owner logs in again.
        csrf=""
        rm -f "$cookies"
        if login=$(api POST /api/login "$(jq -nc --arg p "$owner_pw" '{username: "owner", password: $p}')"); then
            csrf=$(jq -r .csrf_token <<<"$login")
        else
            fail "late preseed: the owner logs in again"
        fi
    else
        fail "late preseed: imboxd answers /health"
    fi

    echo "== boot 4: the storage step: move the data to the USB disk"
    storage=$(api GET /api/admin/storage || true)
    check "storage API: the data is on the SD card" test "$(jq -r .appliance.data.kind <<<"$storage")" = sd
    # shellcheck disable=SC2016 # $d is jq's
    check "storage API: the USB disk is listed with its model and size, blank" \
        json_true --arg d "$usb4_dev" '.appliance.disks | map(select(.device == $d and .state == "blank"
            and .size_bytes == 1073741824 and (.model | length) > 0)) | length == 1' <<<"$storage"
    move_started=$(date +%s)
    if adopt=$(api POST /api/admin/storage/adopt "$(jq -nc --arg d "$usb4_dev" '{device: $d, erase: false}')"); then
        check "storage API: adopting the blank disk answers 202 with the move" \
            test "$(cat "$work/api.status")" = 202 -a "$(jq -r .move.device <<<"$adopt")" = "$usb4_dev"
    else
        fail "storage API: adopting the blank disk is accepted"
    fi
    # The move's states as the storage API reports them, until imboxd has
    # restarted on the new disk (the old session is then unknown: 401). The
    # old imboxd is stopped at "switching", so a poll a second may see the
    # move no further than "copying".
    states=""
    restarted=0
    deadline=$(($(date +%s) + 600))
    while [ "$(date +%s)" -lt "$deadline" ]; do
        if out=$(api GET /api/admin/storage 2> /dev/null); then
            st=$(jq -r '.move.state // "none"' <<<"$out")
            [ "$st" = "${states##* }" ] || states="$states $st"
            [ "$st" != failed ] || { echo "the move failed: $(jq -c .move <<<"$out")"; break; }
        elif [ "$(cat "$work/api.status")" = 401 ]; then
            restarted=1
            break
        fi
        sleep 1
    done
    echo "the move's states:$states"
    check "the storage API followed the move's progress (it reported$states)" grep -Eqw "copying|switching|done" <<<"$states"
    check "imboxd restarted after the move (the old session is gone)" test "$restarted" = 1
    until curl -sf -m 5 "http://127.0.0.1:$http_port/health" > /dev/null || [ "$(date +%s)" -gt "$deadline" ]; do sleep 1; done
    move_s=$(($(date +%s) - move_started))
    echo "the move took $move_s s from the request to imboxd answering again"
    csrf=""
    rm -f "$cookies"
    if login=$(api POST /api/login "$(jq -nc --arg p "$owner_pw" '{username: "owner", password: $p}')"); then
        csrf=$(jq -r .csrf_token <<<"$login")
        ok "the owner logs in again"
    else
        fail "the owner logs in again"
    fi
    storage=$(api GET /api/admin/storage || true)
    check "storage API: the data is on the USB disk now" test "$(jq -r .appliance.data.kind <<<"$storage")" = usb
    # shellcheck disable=SC2016 # $d is jq's
    check "storage API: the USB disk is in use" \
        json_true --arg d "$usb4_dev" '.appliance.disks | map(select(.device == $d and .state == "in-use")) | length == 1' <<<"$storage"
    check "after the move: the earlier messages are in the history (device tokens kept)" \
        test "$(cli bob history alice | jq -r .text | grep -c '^boot4: ')" = 4
    check "after the move: alice and bob exchange messages over wss:// and quic://" exchange moved
    check "after the move: the boot partition records the USB disk" record_names "$sd" IMBOXUSB0 1073741824
fi
if [ -n "$ready4" ]; then
    power_cut
    end=$(($(part_field "$sd" "$IMBOX_DATA_PART" start) + $(part_field "$sd" "$IMBOX_DATA_PART" size)))
    check "SD only: the data partition was grown to the end of the card" test "$end" -ge $((2 * 1024 * 1024 * 2 - 8192))
    if [ "$claimed" = 1 ]; then
        # After the power cut: one partition, ext4 labelled for imbox, whose
        # marker names this box.
        usb4_start=$(sfdisk -d "$usb4" 2> /dev/null | sed -n 's/.*: start= *\([0-9]*\),.*/\1/p' | head -n1 || true)
        usb4_off=$((${usb4_start:-0} * 512))
        blkid -p -O "$usb4_off" -o export "$usb4" > "$work/usb4.blkid" || true
        check "the USB disk carries one partition: ext4, labelled $IMBOX_USB_LABEL" \
            test "$(sfdisk -d "$usb4" 2> /dev/null | grep -c 'start=')" = 1 -a \
            "$(grep -cx -e "TYPE=ext4" -e "LABEL=$IMBOX_USB_LABEL" "$work/usb4.blkid")" = 2
        marker=$(debugfs -R "cat /$IMBOX_MARKER" "$usb4?offset=$usb4_off" 2> /dev/null || true)
        box=$(boot_file "$sd" imbox-box-id | tr -d '\r\n ')
        check "the USB disk's marker names this box" grep -qx "box=$box" <<<"$marker"
        # The copy the move left on the SD card's data partition is wiped.
        sd_data="$sd?offset=$(($(part_field "$sd" "$IMBOX_DATA_PART" start) * 512))"
        check "after the move: the old copy on the SD card is wiped (nothing there but a note)" \
            test "$(debugfs -R 'ls -p /' "$sd_data" 2> /dev/null | cut -d/ -f6 |
                grep -vx -e . -e .. -e lost+found -e '' | tr '\n' ' ')" = "MOVED-TO-USB.txt "
    fi
else
    fail "SD only: imboxd answers /health"
fi

s() { [ -z "$1" ] && echo "-" || echo "$(($1 / 1000)).$(($1 % 1000 / 100)) s"; }
echo "QEMU start to /health: boot 1 (first boot) $(s "$ready1"), boot 2 $(s "$ready2"), boot 3 (after a power cut) $(s "$ready3"), boot 4 (SD only, first boot) $(s "$ready4"); the move to the USB disk ${move_s:--} s"
finish
