#!/usr/bin/env bash
# The parts of /etc that depend on the partition layout or must differ per
# box, written into a root tree: used by the Debian image
# (customize-rootfs.sh) and the Buildroot image (post-build.sh).
#
#   image/write-etc.sh ROOT
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=${1:?usage: write-etc.sh ROOT}
# shellcheck source=image/layout.env
. "$here/layout.env"
disk_id=$(printf '%08x' "$((IMBOX_DISK_ID))")

install -D -m 0644 "$here/layout.env" "$root/usr/lib/imbox/layout.env"
mkdir -p "$root/data" "$root/boot/firmware" "$root/etc/wpa_supplicant"
cat > "$root/etc/fstab" <<FSTAB
# The root is a read-only $IMBOX_ROOT_FSTYPE (root=PARTUUID=$disk_id-0$IMBOX_ROOT_A_PART on
# the kernel command line). Everything written at run time goes to RAM or to
# /data, which imbox-storage.service mounts (the USB disk, or the SD card's
# data partition).
tmpfs  /var  tmpfs  mode=0755,nosuid,nodev,size=25%  0 0
tmpfs  /tmp  tmpfs  mode=1777,nosuid,nodev,size=25%  0 0
# The boot partition, read-only but for the moments the claim file or the
# preseed change (imbox-bootfs-sync, imbox-provision).
PARTUUID=$disk_id-0$IMBOX_BOOT_PART  /boot/firmware  vfat  ro,noatime,nofail,umask=0022  0 0
FSTAB

# An empty machine-id makes systemd generate one in /run at every boot.
: > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
# SSH host keys are made on the box, on the data disk (provision.sh).
rm -f "$root"/etc/ssh/ssh_host_*
echo imbox > "$root/etc/hostname"
rm -f "$root/etc/timezone"
ln -sfn /run/imbox/localtime "$root/etc/localtime"
ln -sfn ../run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"
ln -sfn /run/imbox/wpa_supplicant-wlan0.conf "$root/etc/wpa_supplicant/wpa_supplicant-wlan0.conf"
