#!/usr/bin/env bash
# mmdebstrap's customize hook: turns the freshly installed Debian root into
# the appliance's read-only root.
#
#   customize-rootfs.sh ROOT IMBOXD_BINARY BOOTFS_OUT
#
# Adds imboxd and overlay/, creates the imbox user, enables the units, removes
# what must differ per box (SSH host keys, machine id), moves the kernel,
# initramfs, device trees and firmware out to BOOTFS_OUT, and drops what a
# read-only appliance never uses.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
root=${1:?}
imboxd=${2:?}
bootfs=${3:?}

# --- imboxd and the overlay -------------------------------------------------
install -D -m 0755 "$imboxd" "$root/usr/bin/imboxd"
cp -a --no-preserve=ownership "$repo/overlay/." "$root/"
chmod 0755 "$root"/usr/lib/imbox/*.sh "$root"/usr/sbin/imbox-* 2>/dev/null || true

# Users come from sysusers.d now: /etc is read-only on the box.
chroot "$root" systemd-sysusers

# --- /etc: layout, mounts, what must differ per box ---------------------------
"$here/write-etc.sh" "$root"

# --- units -------------------------------------------------------------------
systemctl --root="$root" set-default multi-user.target
systemctl --root="$root" enable \
    systemd-networkd.service systemd-resolved.service systemd-timesyncd.service \
    avahi-daemon.service ssh.service \
    imbox-storage.service imbox-provision.service imbox-journal.service imbox-health.timer \
    imbox-bootfs-sync.path imbox-storage-request.path imboxd.service imbox-test-report.service imbox-debug-shell.service
# Units that want a writable root, a package database or an SD card that is
# written to; none of them has work to do on the appliance.
systemctl --root="$root" mask \
    apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer \
    e2scrub_reap.service fstrim.timer systemd-networkd-wait-online.service \
    ssh.socket wpa_supplicant.service

# --- size --------------------------------------------------------------------
kver=$(find "$root/lib/modules" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n1)
# Kernel modules for hardware a Pi 4 cannot have (PCIe graphics and
# InfiniBand cards, sound and video capture) are most of the modules' size.
mods="$root/lib/modules/$kver/kernel"
rm -rf "$mods/drivers/gpu/drm/amd" "$mods/drivers/gpu/drm/nouveau" "$mods/drivers/gpu/drm/radeon" \
    "$mods/drivers/infiniband" "$mods/drivers/media" "$mods/sound" "$mods/drivers/staging" \
    "$mods/drivers/net/ethernet/mellanox" "$mods/drivers/net/ethernet/qlogic" \
    "$mods/drivers/net/ethernet/chelsio" "$mods/drivers/net/ethernet/intel" \
    "$mods/drivers/scsi/qla2xxx" "$mods/drivers/scsi/lpfc" "$mods/drivers/scsi/mpt3sas"
chroot "$root" depmod "$kver"
# /var is a tmpfs on the box: what the packages left there is never seen.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old \
    "$root"/var/log/* "$root"/var/cache/ldconfig/*
rm -rf "$root"/usr/share/doc/*/changelog* "$root"/usr/share/man "$root"/usr/share/info

# --- the initramfs -------------------------------------------------------------
# Its modules are what the Pi 4's root devices need, read from the device
# tree and this kernel's modules.alias by dtb-modules.py (docs/IMAGE.md, "The
# initramfs and the Pi 4's device tree"): the SD controller's regulators, the
# firmware's reset controller in front of the VL805 USB controller... A
# module left out there makes the SD controller's probe wait for ever. It
# runs after the pruning and depmod above, so it fails here if a needed
# module was pruned. The first initramfs, built when the kernel package was
# installed, had none of them; this one replaces it (MODULES=list,
# COMPRESS=gzip: image/initramfs.conf).
dtb_modules=(/usr/bin/python3 "$here/dtb-modules.py"
    --dtb "$root/usr/lib/linux-image-$kver/broadcom/bcm2711-rpi-4-b.dtb"
    --modules "$root/lib/modules/$kver" --kernel "$root/boot/vmlinuz-$kver")
"${dtb_modules[@]}" --list > "$root/etc/initramfs-tools/modules"
# The hooks that would copy kernels and initramfs to /boot/firmware on an
# installed Debian: the boot partition is filled below, from this root.
rm -f "$root"/etc/kernel/postinst.d/z50-raspi-firmware "$root"/etc/initramfs/post-update.d/z50-raspi-firmware
chroot "$root" update-initramfs -u -k "$kver"
# The check prints every dependency path it followed: the build log shows
# what this initramfs was checked against.
if ! "${dtb_modules[@]}" --check "$root/boot/initrd.img-$kver"; then
    echo "customize-rootfs.sh: the initramfs lacks drivers the Pi 4's root devices need (above)" >&2
    exit 1
fi
echo "initramfs: $(grep -cv '^#' "$root/etc/initramfs-tools/modules") modules listed, $(stat -c %s "$root/boot/initrd.img-$kver") bytes"

# --- boot files out to the FAT partition -------------------------------------
mkdir -p "$bootfs"
cp "$root/boot/vmlinuz-$kver" "$bootfs/vmlinuz"
cp "$root/boot/initrd.img-$kver" "$bootfs/initrd.img"
for dtb in bcm2711-rpi-4-b bcm2711-rpi-400 bcm2711-rpi-cm4-io; do
    cp "$root/usr/lib/linux-image-$kver/broadcom/$dtb.dtb" "$bootfs/"
done
cp "$root"/usr/lib/raspi-firmware/start4*.elf "$root"/usr/lib/raspi-firmware/fixup4*.dat "$bootfs/"
cp "$root"/usr/share/doc/raspi-firmware/copyright "$bootfs/LICENCE.raspi-firmware"
echo "$kver" > "$bootfs/kernel-version"
rm -rf "${root:?}"/boot/* "$root/usr/lib/raspi-firmware" "$root/usr/lib/linux-image-$kver"
mkdir -p "$root/boot/firmware"
