#!/usr/bin/env bash
# The emulated Pi 4 boot (`make test-image`): the image's own kernel,
# initramfs and command line, with a test-only copy of its
# bcm2711-rpi-4-b.dtb (image/raspi4b-dtb.sh), on QEMU's raspi4b machine
# (QEMU 9 or newer). The card is on QEMU's SD bus, which the machine wires to
# the Arasan controller (fe300000.mmc), so the root mounts from mmcblk0 as on
# a Pi whose card sits there. What a real Pi 4 needs, and -M virt cannot
# show, is that the Pi's own SD controller (emmc2, fe340000.mmc) probes from
# the initramfs: with the regulators it depends on missing, it stays
# deferred and a real Pi never finds its root. The box's test report
# (imbox.test) says which SD controllers probed and which devices are still
# deferred.
#
#   image/test-raspi4b.sh IMAGE
#
# There is no emulated Ethernet or USB on raspi4b: the boot goes as far as
# systemd and imboxd on the SD card's data partition. KEEP=1 keeps the work
# directory; BOOT_TIMEOUT (s, default 420) bounds the boot.
# shellcheck disable=SC2317 # functions run through check()
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
image=$(realpath "${1:?usage: test-raspi4b.sh IMAGE}")
# shellcheck source=image/layout.env
. "$here/layout.env"
qemu=${QEMU_SYSTEM_AARCH64:-qemu-system-aarch64}
if ! "$qemu" -machine help | grep -q '^raspi4b '; then
    echo "test-raspi4b.sh: $("$qemu" --version | head -n1) has no raspi4b machine (QEMU 9 or newer has; .ci/run installs it from bookworm-backports)" >&2
    exit 1
fi

work=$(mktemp -d /tmp/imbox-raspi4b.XXXXXX)
qemu_pid=""
cleanup() {
    [ -z "$qemu_pid" ] || kill -9 "$qemu_pid" 2>/dev/null || true
    if [ -n "${KEEP:-}" ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
passed=0
failed=0
check() { # check DESCRIPTION COMMAND...
    local what=$1; shift
    if "$@"; then echo "ok: raspi4b: $what"; passed=$((passed + 1)); else echo "FAILED: raspi4b: $what"; failed=$((failed + 1)); fi
}
fact() { sed -n "s/^IMBOX-TEST $1=//p" "$serial" | tr -d '\r' | head -n1; }
has_word() { tr ' ' '\n' <<<"$1" | grep -qx -- "$2"; }

# The card: QEMU's SD cards must be a power of two in size.
sd=$work/sd.img
cp --sparse=always "$image" "$sd"
truncate -s 2G "$sd"
boot_start=$(sfdisk -J "$sd" | jq -r --argjson n "$IMBOX_BOOT_PART" '.partitiontable.partitions[$n - 1].start')
for f in vmlinuz initrd.img bcm2711-rpi-4-b.dtb cmdline.txt; do
    mcopy -n -i "$sd@@$((boot_start * 512))" "::$f" "$work/$f"
done
"$here/raspi4b-dtb.sh" "$work/bcm2711-rpi-4-b.dtb" "$work/test.dtb"
# The image's command line, its consoles moved to the PL011 UART QEMU's
# first serial port is (ttyAMA0).
cmdline=$(tr -s ' \n' ' ' < "$work/cmdline.txt" | sed -e 's/console=[^ ]*//g' -e 's/  */ /g')
# QEMU's model of the Pi's watchdog (bcm2835_powermgt) resets the machine as
# soon as the driver arms it, instead of when it runs out: systemd's hardware
# watchdog (RuntimeWatchdogSec) would reboot it about 100 s in. The -M virt
# boots test the watchdog.
cmdline="console=ttyAMA0,115200 $cmdline imbox.test modprobe.blacklist=bcm2835_wdt"

serial=$work/serial.log
start=$(date +%s)
"$qemu" -M raspi4b -kernel "$work/vmlinuz" -initrd "$work/initrd.img" -dtb "$work/test.dtb" \
    -append "$cmdline" -drive "if=sd,file=$sd,format=raw" \
    -display none -serial "file:$serial" -monitor none -pidfile "$work/qemu.pid" -daemonize
qemu_pid=$(cat "$work/qemu.pid")
deadline=$((start + ${BOOT_TIMEOUT:-420}))
until grep -q "IMBOX-TEST end" "$serial" 2>/dev/null; do
    if [ "$(date +%s)" -gt "$deadline" ] || ! kill -0 "$qemu_pid" 2>/dev/null; then
        echo "--- raspi4b serial console ---"; tail -n 60 "$serial"
        check "the box boots and reports (imbox.test)" false
        echo "raspi4b: $passed passed, $failed failed"
        exit 1
    fi
    sleep 2
done
echo "raspi4b: the box reported $(($(date +%s) - start)) s after QEMU started"
check "the kernel booted the image's initramfs and mounted the squashfs root" test "$(fact root-fstype)" = squashfs
# mmcblk0 or mmcblk1: the card's number depends on which controller probes
# first.
check "the root came from the SD card" grep -Eq "^/dev/mmcblk[0-9]p$IMBOX_ROOT_A_PART$" <<<"$(fact root-source)"
check "the Pi's own SD controller (emmc2, fe340000.mmc) probed" has_word "$(fact sd-controllers)" fe340000.mmc
check "the Arasan SD controller (fe300000.mmc) probed" has_word "$(fact sd-controllers)" fe300000.mmc
check "no SD controller is left deferred" test -z "$(fact devices-deferred | tr ' ' '\n' | grep '\.mmc' || true)"
check "the SD card's data partition is /data" grep -Eq "^/dev/mmcblk[0-9]p$IMBOX_DATA_PART$" <<<"$(fact data-source)"
check "systemd started imboxd" test "$(fact imboxd)" = active
echo "raspi4b: still deferred: $(fact devices-deferred)"
echo "raspi4b: $passed passed, $failed failed"
[ "$failed" = 0 ]
