#!/bin/bash
# Prints the facts the QEMU boot tests check, as "IMBOX-TEST key=value"
# lines on the console. Runs only with imbox.test on the kernel command
# line (imbox-test-report.service).
set -uo pipefail
# shellcheck source=overlay/usr/lib/imbox/lib.sh
. /usr/lib/imbox/lib.sh

report() { echo "IMBOX-TEST $1=$2"; }
# Wait for imboxd to be up (or to have failed) before reporting.
for _ in $(seq 1 120); do
    st=$(systemctl is-active imboxd.service)
    [ "$st" = activating ] || break
    sleep 1
done
report root-options "$(findmnt -no OPTIONS /)"
report root-fstype "$(findmnt -no FSTYPE /)"
report root-source "$(findmnt -no SOURCE /)"
report data-source "$(findmnt -no SOURCE "$DATA")"
report data-options "$(findmnt -no OPTIONS "$DATA")"
src=$(findmnt -no SOURCE "$DATA")
parent=/dev/$(lsblk -no PKNAME "$src" 2>/dev/null | head -n1)
report data-transport "$(lsblk -dno TRAN "$parent" 2>/dev/null)"
# The disk's serial number tells the tests which of their disks it is.
report data-serial "$(lsblk -dno SERIAL "$parent" 2>/dev/null)"
report boot-options "$(findmnt -no OPTIONS "$BOOTFS")"
report var-fstype "$(findmnt -no FSTYPE /var)"
report tmp-fstype "$(findmnt -no FSTYPE /tmp)"
report imboxd "$(systemctl is-active imboxd.service)"
report imboxd-user "$(ps -o user= -C imboxd | head -n1)"
report failed-units "$(systemctl list-units --state=failed --no-legend --plain | awk '{print $1}' | tr '\n' ' ')"
# The hardware watchdog: systemd's interval, and whether the device runs.
report runtime-watchdog "$(systemctl show -p RuntimeWatchdogUSec --value 2>/dev/null)"
report watchdog0-state "$(cat /sys/class/watchdog/watchdog0/state 2>/dev/null)"
report nofile-max "$(cat /proc/sys/fs/file-max)"
report rmem-max "$(cat /proc/sys/net/core/rmem_max)"
report hostname "$(hostname)"
report avahi "$(systemctl is-active avahi-daemon.service)"
report ssh "$(systemctl is-active ssh.service)"
report journal "$(journalctl --header 2>/dev/null | sed -n 's/^File path: //p' | head -n1)"
# What imbox-storage found (the setup page's list): device:serial:state.
jq -r '.disks[] | "IMBOX-TEST usb-disk=\(.device):\(.serial):\(.state)"' "$STATE/storage.json" 2>/dev/null
# Every block device mounted, and those mounted read-write.
report block-mounts "$(findmnt -rno SOURCE | awk '$1 ~ /^\/dev\// {print $1}' | sort -u | tr '\n' ' ')"
report data-writable-mounts "$(findmnt -rno SOURCE,OPTIONS | awk '$2 ~ /(^|,)rw(,|$)/ && $1 ~ /^\/dev\// {print $1}' | sort -u | tr '\n' ' ')"
# The SD controllers bound to their driver, and what is still waiting for a
# supplier (the emulated Pi 4 boot checks that emmc2 is not).
report sd-controllers "$(find /sys/bus/platform/drivers/sdhci-iproc/ -maxdepth 1 -name '*.mmc' -printf '%f ' 2>/dev/null)"
report devices-deferred "$(cut -f1 /sys/kernel/debug/devices_deferred 2>/dev/null | tr '\n' ' ')"
# What the storage service found wrong, if anything (the standby page's).
report storage-problem "$(jq -r '.problem.kind // ""' "$STATE/storage.json" 2>/dev/null)"
report standby "$(systemctl is-active imboxd-standby.service)"
echo "IMBOX-TEST end"
