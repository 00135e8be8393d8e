#!/bin/bash
# The Pi 4 has no real-time clock. `clock.sh save` records the time as the
# modification time of /data/system/clock; `clock.sh restore` at boot moves
# the clock forward to it if it is behind (it never moves it back: NTP,
# through systemd-timesyncd, has the last word once the network is up).
set -euo pipefail
# shellcheck source=overlay/usr/lib/imbox/lib.sh
. /usr/lib/imbox/lib.sh

file=$DATA/system/clock
case ${1:-} in
    save)
        mountpoint -q "$DATA" || exit 0
        touch "$file"
        ;;
    restore)
        [ -f "$file" ] || { touch "$file"; exit 0; }
        saved=$(stat -c %Y "$file")
        now=$(date +%s)
        if [ "$saved" -gt "$now" ]; then
            date -s "@$saved" >/dev/null
            log "clock set forward to $(date -u +%Y-%m-%dT%H:%M:%SZ) (saved on the data disk)"
        fi
        ;;
    *) die "usage: clock.sh save|restore" ;;
esac
