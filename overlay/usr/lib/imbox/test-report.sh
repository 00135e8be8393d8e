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
report data-transport "$(lsblk -dno TRAN "/dev/$(lsblk -no PKNAME "$src" | head -n1)" 2>/dev/null)"
report boot-options "$(findmnt -no OPTIONS "$BOOTFS")"
report var-fstype "$(findmnt -no FSTYPE /var)"
report tmp-fstype "$(findmnt -no FSTYPE /tmp)"
report imboxd "$(systemctl is-active imboxd.service)"
report imboxd-user "$(ps -o user= -C imboxd | head -n1)"
report failed-units "$(systemctl list-units --state=failed --no-legend --plain | awk '{print $1}' | tr '\n' ' ')"
report watchdog "$(systemctl show -p WatchdogDevice --value 2>/dev/null; ls /dev/watchdog0 2>/dev/null)"
report nofile-max "$(cat /proc/sys/fs/file-max)"
report rmem-max "$(cat /proc/sys/net/core/rmem_max)"
report hostname "$(hostname)"
report avahi "$(systemctl is-active avahi-daemon.service)"
report ssh "$(systemctl is-active ssh.service)"
report journal "$(journalctl --header 2>/dev/null | sed -n 's/^File path: //p' | head -n1)"
while read -r dev state; do
    report "usb-disk" "$dev:$state"
done < <(sed -n 's/.*"device": "\([^"]*\)".*"state": "\([^"]*\)".*/\1 \2/p' "$STATE/storage.json" 2>/dev/null | grep -v '^$')
report data-writable-mounts "$(findmnt -rno SOURCE,OPTIONS | awk '$2 ~ /(^|,)rw(,|$)/ && $1 ~ /^\/dev\// {print $1}' | tr '\n' ' ')"
echo "IMBOX-TEST end"
