#!/usr/bin/env bash
# Buildroot post-image script: lays out the SD-card image with the same
# partitions as `make image` (image/layout.env, image/genimage.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
images=${BINARIES_DIR:?}
# Not followed when Buildroot's check-package runs shellcheck on this file
# alone; image/check.sh checks layout.env with the image scripts.
# shellcheck source=image/layout.env disable=SC1091
. "$repo/image/layout.env"
disk_id=$(printf '%08x' "$((IMBOX_DISK_ID))")

boot=$images/imbox-boot
rm -rf "$boot" "$images/genimage-root" "$images/genimage.tmp"
mkdir -p "$boot" "$images/genimage-root/data"
cp "$images"/rpi-firmware/start4.elf "$images"/rpi-firmware/fixup4.dat "$boot/"
[ ! -d "$images/rpi-firmware/overlays" ] || cp -r "$images/rpi-firmware/overlays" "$boot/"
cp "$images/Image" "$boot/Image"
cp "$images/bcm2711-rpi-4-b.dtb" "$boot/"
cat > "$boot/config.txt" <<CFG
# Raspberry Pi 4B firmware settings for imbox (Raspberry Pi kernel).
arm_64bit=1
kernel=Image
enable_uart=1
disable_overscan=1
gpu_mem=64
dtparam=watchdog=on
CFG
echo "console=serial0,115200 console=tty1 root=PARTUUID=$disk_id-0$IMBOX_ROOT_A_PART rootfstype=$IMBOX_ROOT_FSTYPE ro rootwait net.ifnames=0 panic=10" \
    > "$boot/cmdline.txt"

"$repo/image/genimage.sh" "$boot" "$images/rootfs.squashfs" imbox-rpi4.img > "$images/genimage.cfg"
genimage --config "$images/genimage.cfg" --rootpath "$images/genimage-root" \
    --tmppath "$images/genimage.tmp" --inputpath "$boot" --outputpath "$images"
xz -T0 -k -f "$images/imbox-rpi4.img"
