#!/usr/bin/env bash
# `make image`: builds out/imbox-rpi4.img and out/imbox-rpi4.img.xz.
#
#   image/build-image.sh IMBOXD_BINARY OUTDIR
#
# 1. the arm64 root from Debian's packages (build-rootfs.sh), with imboxd
#    and overlay/;
# 2. the root as a squashfs (zstd, 128 KiB blocks) for root slot A;
# 3. the boot partition: Raspberry Pi firmware, Debian's kernel and
#    initramfs, device trees, config.txt and cmdline.txt;
# 4. the partitioned image from layout.env (genimage.sh), then xz.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
imboxd=${1:?usage: build-image.sh IMBOXD_BINARY OUTDIR}
out=${2:?usage: build-image.sh IMBOXD_BINARY OUTDIR}
# shellcheck source=image/layout.env
. "$here/layout.env"
work=$out/work
name=imbox-rpi4.img
disk_id=$(printf '%08x' "$((IMBOX_DISK_ID))")

# What the root is made from, imboxd aside: the scripts that build it, the
# initramfs settings, the layout, every file of overlay/ (contents, modes,
# link targets), the suite and the mirror.
rootfs_key() {
    (
        cd "$here/.."
        echo "${IMBOX_SUITE:-trixie} ${IMBOX_MIRROR:-}"
        sha256sum image/build-rootfs.sh image/customize-rootfs.sh image/write-etc.sh \
            image/initramfs.conf image/dtb-modules.py image/layout.env
        find overlay -printf '%p %y %m %l\n' | LC_ALL=C sort
        find overlay -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
    ) | sha256sum | cut -c1-16
}

mkdir -p "$out" "$work"
start=$(date +%s)
# IMBOX_ROOTFS_CACHE=DIR (make test-image sets it): a root built from the
# same inputs less than IMBOX_ROOTFS_CACHE_DAYS (7) days ago is taken from
# DIR, with this imboxd; otherwise the root is built and kept there.
cache=${IMBOX_ROOTFS_CACHE:-}
cached=""
if [ -n "$cache" ]; then
    key=$(rootfs_key)
    if [ -f "$cache/$key/done" ] &&
        [ -n "$(find "$cache/$key/done" -mtime "-${IMBOX_ROOTFS_CACHE_DAYS:-7}")" ]; then
        cached=$cache/$key
    fi
fi
if [ -n "${IMBOX_REUSE_ROOTFS:-}" ] && [ -d "$work/rootfs/usr/lib/imbox" ]; then
    # For work on imboxd or overlay/ alone: the last root, with the new
    # binary and overlay (packages and units stay as they were).
    install -m 0755 "$imboxd" "$work/rootfs/usr/bin/imboxd"
    cp -a --no-preserve=ownership "$here/../overlay/." "$work/rootfs/"
    "$here/write-etc.sh" "$work/rootfs"
    echo "image: reusing $work/rootfs (IMBOX_REUSE_ROOTFS)"
elif [ -n "$cached" ]; then
    rm -rf "$work/rootfs" "$work/bootfs"
    cp -a "$cached/rootfs" "$cached/bootfs" "$work/"
    install -m 0755 "$imboxd" "$work/rootfs/usr/bin/imboxd"
    echo "image: the root from $cached (built $(date -u -r "$cached/done" +%Y-%m-%dT%H:%MZ)), with this imboxd"
else
    "$here/build-rootfs.sh" "$imboxd" "$work"
    echo "image: root file system built in $(($(date +%s) - start)) s"
    if [ -n "$cache" ]; then
        # One root at a time: the others are from older inputs.
        rm -rf "${cache:?}"/*
        mkdir -p "$cache/$key"
        cp -a "$work/rootfs" "$work/bootfs" "$cache/$key/"
        touch "$cache/$key/done"
        echo "image: root kept in $cache/$key"
    fi
fi

rm -f "$work/rootfs.squashfs"
mksquashfs "$work/rootfs" "$work/rootfs.squashfs" -comp zstd -b 128K -noappend -quiet -no-progress
root_bytes=$(stat -c %s "$work/rootfs.squashfs")
if [ "$root_bytes" -gt $((IMBOX_ROOT_SIZE_MIB * 1024 * 1024)) ]; then
    echo "image: the root ($root_bytes bytes) does not fit a $IMBOX_ROOT_SIZE_MIB MiB slot" >&2
    exit 1
fi

boot=$work/bootfs
cat > "$boot/config.txt" <<CFG
# Raspberry Pi 4B firmware settings for imbox (Debian's upstream kernel).
arm_64bit=1
upstream_kernel=1
kernel=vmlinuz
initramfs initrd.img followkernel
enable_uart=1
disable_overscan=1
# The box runs headless; a console needs little.
gpu_mem=64
CFG
echo "console=ttyS1,115200 console=tty1 root=PARTUUID=$disk_id-0$IMBOX_ROOT_A_PART rootfstype=$IMBOX_ROOT_FSTYPE ro rootwait net.ifnames=0 panic=10" \
    > "$boot/cmdline.txt"

rm -rf "$work/genimage-tmp" "$work/images" "$work/genimage-root"
mkdir -p "$work/images" "$work/genimage-root/data"
"$here/genimage.sh" "$boot" "$work/rootfs.squashfs" "$name" > "$work/genimage.cfg"
genimage --config "$work/genimage.cfg" --rootpath "$work/genimage-root" \
    --tmppath "$work/genimage-tmp" --inputpath "$boot" --outputpath "$work/images"
mv "$work/images/$name" "$out/$name"
rm -f "$out/$name.xz"
xz_size="no .xz (IMBOX_XZ=0)"
if [ "${IMBOX_XZ:-1}" != 0 ]; then
    xz -T2 -3 -k "$out/$name"
    xz_size="$(du -h --apparent-size "$out/$name.xz" | cut -f1) as .xz"
fi
echo "image: $out/$name ($(du -h --apparent-size "$out/$name" | cut -f1), $(du -h "$out/$name" | cut -f1) allocated; root $((root_bytes / 1024 / 1024)) MiB squashfs; $xz_size) in $(($(date +%s) - start)) s"
