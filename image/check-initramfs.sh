#!/usr/bin/env bash
# Checks a built image's initramfs against its own kernel and Raspberry Pi 4B
# device tree (image/dtb-modules.py; docs/IMAGE.md, "The initramfs and the
# Pi 4's device tree"):
#
#   image/check-initramfs.sh IMAGE        (make check-initramfs IMAGE=...)
#
# 1. From the image itself: vmlinuz, initrd.img, bcm2711-rpi-4-b.dtb and
#    kernel-version from the boot partition (mtools), modules.* of that
#    kernel from root slot A (unsquashfs). Nothing from the build tree, so
#    what is checked is what a Pi boots.
# 2. The initramfs must hold every module the SD controller and the USB boot
#    path need (dtb-modules.py --check).
# 3. Self-test: the same check on the module list the initramfs was built
#    from before (image/tests/initramfs-modules.bookworm) must fail, and name
#    the modules that list lacked. A check that let it pass could not tell a
#    bootable initramfs from the one that stopped real Pis at "Gave up
#    waiting for root".
# Needs: fdisk (sfdisk), mtools, squashfs-tools, python3-libfdt (/usr/bin/python3).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
img=${1:?usage: check-initramfs.sh IMAGE}
# shellcheck source=image/layout.env
. "$here/layout.env"

[ -f "$img" ] || { echo "check-initramfs: no image $img: build it with make image" >&2; exit 2; }
for tool in sfdisk:fdisk mcopy:mtools unsquashfs:squashfs-tools; do
    command -v "${tool%%:*}" >/dev/null ||
        { echo "check-initramfs: ${tool%%:*} is missing: apt-get install ${tool#*:}" >&2; exit 2; }
done
/usr/bin/python3 -c 'import libfdt' 2>/dev/null ||
    { echo "check-initramfs: /usr/bin/python3 cannot import libfdt: apt-get install python3-libfdt" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Byte offset of partition N, from the image's own partition table.
part_offset() {
    sfdisk -J "$img" | /usr/bin/python3 -c '
import json, sys
table = json.load(sys.stdin)["partitiontable"]
n = int(sys.argv[1])
parts = table["partitions"]
if len(parts) < n:
    sys.exit(f"check-initramfs: the image has {len(parts)} partitions, no partition {n}")
print(parts[n - 1]["start"] * table.get("sectorsize", 512))' "$1"
}
boot=$(part_offset "$IMBOX_BOOT_PART")
root=$(part_offset "$IMBOX_ROOT_A_PART")

for f in vmlinuz initrd.img bcm2711-rpi-4-b.dtb kernel-version; do
    MTOOLS_SKIP_CHECK=1 mcopy -n -i "$img@@$boot" "::$f" "$work/$f" ||
        { echo "check-initramfs: the boot partition of $img has no $f" >&2; exit 1; }
done
kver=$(cat "$work/kernel-version")
# Only modules.* (a few MB), not the modules themselves. Merged /usr keeps
# them under usr/lib on bookworm and trixie alike; lib/ is the older place.
for dir in usr/lib/modules lib/modules; do
    unsquashfs -q -n -o "$root" -d "$work/root" "$img" "$dir/$kver/modules.*" >/dev/null 2>&1 || true
    if [ -f "$work/root/$dir/$kver/modules.dep" ]; then
        moddir=$work/root/$dir/$kver
        break
    fi
done
[ -n "${moddir:-}" ] ||
    { echo "check-initramfs: root slot A of $img has no modules.dep for $kver (the boot partition's kernel-version)" >&2; exit 1; }

check=(/usr/bin/python3 "$here/dtb-modules.py" --dtb "$work/bcm2711-rpi-4-b.dtb" --modules "$moddir" --kernel "$work/vmlinuz")
status=0

echo "== the image's initramfs ($kver)"
if "${check[@]}" --check "$work/initrd.img"; then
    echo "ok: the initramfs of $img has every driver the Pi 4's SD and USB root devices need"
else
    echo "FAILED: the initramfs of $img lacks drivers the Pi 4's root devices need (above)"
    status=1
fi

echo "== self-test: the old hand list (image/tests/initramfs-modules.bookworm) must fail"
rc=0
"${check[@]}" --check-modules "$here/tests/initramfs-modules.bookworm" > "$work/old.txt" || rc=$?
summary=$(grep '^FAILED: .* lacks ' "$work/old.txt" || true)
if [ "$rc" != 1 ] || [ -z "$summary" ]; then
    cat "$work/old.txt"
    echo "FAILED: self-test: the check exited $rc on the old list, which lacks the SD regulators; it must fail (1) naming them"
    status=1
else
    selftest=0
    # Each module the old list lacked must be named; pcie-brcmstb is a
    # module on some kernels (bookworm's) and built in on others (trixie's),
    # so the check must either name it missing or say it is built in.
    for mod in reg-fixed-voltage gpio-regulator reset-raspberrypi xhci-pci usb-storage uas sd_mod; do
        if ! grep -qE "(^|[ ,(])$mod([ ,)]|$)" <<< "$summary"; then
            cat "$work/old.txt"
            echo "FAILED: self-test: the check failed on the old list but did not name $mod"
            selftest=1
        fi
    done
    if ! grep -qE 'pcie@7d500000 \(brcm,bcm2711-pcie\)(: built in| → pcie-brcmstb: MISSING)' "$work/old.txt"; then
        cat "$work/old.txt"
        echo "FAILED: self-test: the check neither found pcie-brcmstb built in nor named it missing"
        selftest=1
    fi
    if [ "$selftest" = 0 ]; then
        echo "ok: self-test: the old list fails: ${summary#FAILED: }"
    else
        status=1
    fi
fi
exit "$status"
