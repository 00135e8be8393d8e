#!/usr/bin/env bash
# Boot tests of the SD-card image under QEMU (`make test-image`).
#
#   image/test-boot.sh out/imbox-rpi4.img
#
# Each boot runs image/qemu.sh on a copy of the image (a 2 GB "card") with
# imbox.test on the kernel command line, which makes the box print facts as
# "IMBOX-TEST key=value" lines on its serial console
# (overlay/usr/lib/imbox/test-report.sh). The tests:
#
#   first-boot   preseed on the boot partition (hostname, SSH key,
#                format_blank_usb = true); a blank USB disk and a USB disk of
#                another box attached. imboxd answers /health on the
#                forwarded port; the root is a read-only squashfs; /data is
#                the blank disk, now formatted and marked for this box; the
#                other box's disk is byte-for-byte untouched; /var, /tmp and
#                the journal are in RAM; the claim code is on the boot
#                partition; the preseed is gone from it; SSH is on.
#   steady-state the second boot and a power cut (QEMU killed) leave the
#                whole SD image byte-identical; the claim code is the same
#                after both.
#   sd-fallback  no USB disk: the SD card's data partition is grown to the
#                end of the card and mounted at /data.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
image=$(realpath "${1:?usage: test-boot.sh IMAGE}")
# shellcheck source=image/layout.env
. "$here/layout.env"

work=$(mktemp -d /tmp/imbox-boot-test.XXXXXX)
qemu_pid=""
cleanup() {
    [ -z "$qemu_pid" ] || kill -9 "$qemu_pid" 2>/dev/null || true
    if [ -n "${KEEP:-}" ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

passed=0
failed=0
ok() { echo "ok: $*"; passed=$((passed + 1)); }
fail() { echo "FAILED: $*"; failed=$((failed + 1)); }
check() { # check DESCRIPTION COMMAND...
    local what=$1; shift
    if "$@"; then ok "$what"; else fail "$what"; fi
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
http_port=$(free_port)
https_port=$(free_port)

boot_offset() {
    sfdisk -d "$1" | sed -n "s/.*${IMBOX_BOOT_PART} : start= *\([0-9]*\),.*/\1/p" | awk '{ print $1 * 512 }'
}
boot_file() { # boot_file IMAGE NAME: prints a file of the boot partition
    mtype -i "$1@@$(boot_offset "$1")" "::$2" 2>/dev/null
}
claim_code() { boot_file "$1" imbox-claim.txt | sed -n 's/^Claim code: //p' | tr -d '\r'; }

# start_box SD SERIAL [USB]...: boots in the background.
start_box() {
    local sd=$1 serial=$2; shift 2
    local usb_args=()
    for d in "$@"; do usb_args+=(--usb "$d"); done
    : > "$serial"
    "$here/qemu.sh" --sd "$sd" "${usb_args[@]}" --ports "$http_port,$https_port,$https_port" \
        --append "imbox.test" --serial "$serial" --monitor "$work/qmp.sock" \
        --pidfile "$work/qemu.pid" --daemonize > /dev/null
    qemu_pid=$(cat "$work/qemu.pid")
    boot_started=$(date +%s%N)
}

# wait_ready SERIAL: until /health answers and the box has reported.
wait_ready() {
    local serial=$1 deadline=$(($(date +%s) + ${BOOT_TIMEOUT:-300}))
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

fact() { sed -n "s/^IMBOX-TEST $2=//p" "$1" | tr -d '\r' | head -n1; }
facts() { sed -n "s/^IMBOX-TEST $2=//p" "$1" | tr -d '\r'; }

# power_off: an orderly shutdown through the power button (QMP).
power_off() {
    python3 - "$work/qmp.sock" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rw")
f.readline()
for cmd in ({"execute": "qmp_capabilities"}, {"execute": "system_powerdown"}):
    f.write(json.dumps(cmd) + "\n"); f.flush(); f.readline()
PY
    for _ in $(seq 1 90); do
        kill -0 "$qemu_pid" 2>/dev/null || { qemu_pid=""; return 0; }
        sleep 1
    done
    echo "the box did not power off in 90 s; killing QEMU"
    kill -9 "$qemu_pid"; qemu_pid=""
    return 1
}

power_cut() {
    kill -9 "$qemu_pid"
    while kill -0 "$qemu_pid" 2>/dev/null; do sleep 0.2; done
    qemu_pid=""
}

new_card() { # new_card FILE: the image, "flashed" onto a 2 GB card
    cp --sparse=always "$image" "$1"
    truncate -s 2G "$1"
}

# --- first boot ----------------------------------------------------------------
echo "== first boot: preseed, a blank USB disk and another box's USB disk"
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
truncate -s 2G "$work/usb-blank.img"
mkdir -p "$work/other/imbox"
printf '# This disk holds the data of an imbox. Do not format it.\nbox=another-box\n' > "$work/other/$IMBOX_MARKER"
echo "not yours" > "$work/other/imbox/keep.txt"
mkfs.ext4 -q -L "$IMBOX_USB_LABEL" -d "$work/other" "$work/usb-other.img" 256M
other_sum=$(sha256sum < "$work/usb-other.img")

serial=$work/boot1.log
start_box "$sd" "$serial" "$work/usb-blank.img" "$work/usb-other.img"
if ! wait_ready "$serial"; then
    fail "first boot: imboxd answers /health"
    echo "$passed passed, $failed failed"
    exit 1
fi
first_ready=$ready_ms
ok "first boot: imboxd answers /health on the forwarded port"
check "root is mounted read-only" grep -Eq '^ro(,|$)' <<<"$(fact "$serial" root-options)"
check "root is squashfs" test "$(fact "$serial" root-fstype)" = squashfs
check "/data is the USB disk" test "$(fact "$serial" data-transport)" = usb
check "/data is the blank disk, formatted (sda1)" test "$(fact "$serial" data-source)" = /dev/sda1
check "/var is tmpfs" test "$(fact "$serial" var-fstype)" = tmpfs
check "/tmp is tmpfs" test "$(fact "$serial" tmp-fstype)" = tmpfs
check "the journal is in RAM" grep -q '^/run/log/journal' <<<"$(fact "$serial" journal)"
check "the boot partition is mounted read-only" grep -Eq '^ro(,|$)' <<<"$(fact "$serial" boot-options)"
check "imboxd is active" test "$(fact "$serial" imboxd)" = active
check "imboxd runs as imbox" test "$(fact "$serial" imboxd-user)" = imbox
check "no unit failed" test -z "$(fact "$serial" failed-units | tr -d ' ')"
check "hostname from the preseed" test "$(fact "$serial" hostname)" = testbox
check "avahi-daemon (mDNS, DNS-SD) is active" test "$(fact "$serial" avahi)" = active
check "SSH is on (the preseed gave a key)" test "$(fact "$serial" ssh)" = active
check "the other box's disk is listed as other-box" grep -q ':other-box$' <<<"$(facts "$serial" usb-disk)"
check "the other box's disk is not mounted" bash -c "! grep -q sdb <<<'$(fact "$serial" data-writable-mounts)'"
check "fs.file-max raised" test "$(fact "$serial" nofile-max)" -ge 1048576
check "net.core.rmem_max raised for QUIC" test "$(fact "$serial" rmem-max)" -ge 7500000
check "the hardware watchdog is armed" grep -q watchdog0 <<<"$(fact "$serial" watchdog)"
for _ in $(seq 1 30); do [ -n "$(claim_code "$sd")" ] && break; sleep 1; done
code1=$(claim_code "$sd")
check "the claim code is in imbox-claim.txt on the boot partition" test -n "$code1"
check "the preseed is gone from the boot partition" bash -c "! mdir -i '$sd@@$(boot_offset "$sd")' ::imbox.toml >/dev/null 2>&1"
check "orderly power-off (power button)" power_off
check "the other box's disk is byte-for-byte untouched" test "$(sha256sum < "$work/usb-other.img")" = "$other_sum"
marker=$(debugfs -R "cat /$IMBOX_MARKER" "$work/usb-blank.img?offset=1048576" 2>/dev/null || true)
box=$(boot_file "$sd" imbox-box-id | tr -d '\r\n ')
check "the formatted disk's marker names this box" grep -qx "box=$box" <<<"$marker"

# --- steady state ----------------------------------------------------------------
echo "== second boot and a power cut: nothing writes to the SD card"
sd_sum=$(sha256sum < "$sd")
serial=$work/boot2.log
start_box "$sd" "$serial" "$work/usb-blank.img" "$work/usb-other.img"
if wait_ready "$serial"; then
    ok "second boot: imboxd answers /health"
    check "second boot: /data is the same USB disk" test "$(fact "$serial" data-source)" = /dev/sda1
    power_cut
    ok "power cut (QEMU killed)"
    serial=$work/boot3.log
    start_box "$sd" "$serial" "$work/usb-blank.img" "$work/usb-other.img"
    if wait_ready "$serial"; then
        ok "boot after the power cut: imboxd answers /health"
        check "after the power cut: imboxd is active" test "$(fact "$serial" imboxd)" = active
        check "after the power cut: the claim code is unchanged" test "$(claim_code "$sd")" = "$code1"
        power_cut
    else
        fail "boot after the power cut: imboxd answers /health"
    fi
    check "the SD image is byte-identical after two boots and a power cut" test "$(sha256sum < "$sd")" = "$sd_sum"
else
    fail "second boot: imboxd answers /health"
fi
check "the other box's disk is still untouched" test "$(sha256sum < "$work/usb-other.img")" = "$other_sum"

# --- SD fallback -------------------------------------------------------------------
echo "== no USB disk: the SD card's data partition"
sd=$work/sd-only.img
new_card "$sd"
serial=$work/boot4.log
start_box "$sd" "$serial"
if wait_ready "$serial"; then
    ok "SD only: imboxd answers /health"
    check "SD only: /data is the SD card's data partition" test "$(fact "$serial" data-source)" = "/dev/vda$IMBOX_DATA_PART"
    check "SD only: no unit failed" test -z "$(fact "$serial" failed-units | tr -d ' ')"
    power_cut
    end=$(sfdisk -d "$sd" | sed -n "s/.*${IMBOX_DATA_PART} : start= *\([0-9]*\), size= *\([0-9]*\),.*/\1 \2/p" | awk '{ print $1 + $2 }')
    check "SD only: the data partition was grown to the end of the card" test "$end" -ge $((2 * 1024 * 1024 * 2 - 8192))
else
    fail "SD only: imboxd answers /health"
fi

echo "first boot to a ready imboxd: $((first_ready / 1000)).$((first_ready % 1000 / 100)) s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
