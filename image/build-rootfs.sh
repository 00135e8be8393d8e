#!/usr/bin/env bash
# Builds the arm64 root file system of the development image from Debian's
# packages with mmdebstrap (running arm64 maintainer scripts through
# qemu-user-static), then adds imboxd and overlay/.
#
#   image/build-rootfs.sh IMBOXD_BINARY WORKDIR
#
# Leaves WORKDIR/rootfs (the root tree) and WORKDIR/bootfs (what goes on the
# FAT boot partition except config.txt and cmdline.txt). Downloaded packages
# are kept in $IMBOX_APT_CACHE (outside the clone) for the next build.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
imboxd=${1:?usage: build-rootfs.sh IMBOXD_BINARY WORKDIR}
work=$(realpath -m "${2:?usage: build-rootfs.sh IMBOXD_BINARY WORKDIR}")
suite=${IMBOX_SUITE:-trixie}
mirror=${IMBOX_MIRROR:-http://deb.debian.org/debian}
# Debian's security updates for the suite: a box that is built is built
# with every fix released so far.
security=${IMBOX_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
cache=${IMBOX_APT_CACHE:-/var/cache/imbox-image/apt}

# shellcheck source=image/layout.env
. "$here/layout.env"

"$here/binfmt.sh"

# What the box runs. Recommends are not installed, so everything is named.
packages=(
    systemd systemd-sysv systemd-resolved systemd-timesyncd udev dbus kmod
    iproute2 netbase tzdata procps
    linux-image-arm64 initramfs-tools raspi-firmware firmware-brcm80211
    wpasupplicant wireless-regdb
    avahi-daemon openssh-server
    e2fsprogs fdisk dosfstools util-linux jq
)

rm -rf "$work/rootfs" "$work/bootfs"
mkdir -p "$work" "$cache"

# MODULES=list (initramfs.conf) is set before the kernel is installed, so
# that the initramfs its postinst builds takes seconds; that one has no
# modules of ours and is never used: customize-rootfs.sh writes the list
# from the device tree (dtb-modules.py) and builds it again.
# The hooks' $1 is expanded by mmdebstrap, not here.
# shellcheck disable=SC2016
mmdebstrap \
    --architectures=arm64 \
    --variant=minbase \
    --aptopt='APT::Install-Recommends "false"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --include="$(IFS=,; echo "${packages[*]}")" \
    --skip=download/empty \
    --setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
    --setup-hook="sync-in '$cache' /var/cache/apt/archives/" \
    --setup-hook='mkdir -p "$1"/etc/initramfs-tools/conf.d "$1"/boot/firmware' \
    --setup-hook="cp '$here/initramfs.conf' \"\$1\"/etc/initramfs-tools/conf.d/imbox.conf" \
    --customize-hook="sync-out /var/cache/apt/archives '$cache'" \
    --customize-hook="'$here/customize-rootfs.sh' \"\$1\" '$imboxd' '$work/bootfs'" \
    "$suite" "$work/rootfs" \
    "deb $mirror $suite main non-free-firmware" \
    "deb $mirror $suite-updates main non-free-firmware" \
    "deb $security $suite-security main non-free-firmware"
