#!/bin/bash
# Mirrors imboxd's claim file (data_dir/imbox-claim.txt) onto the boot
# partition as imbox-claim.txt, readable from any PC, and onto the HDMI
# console; deletes it there once the box is claimed. The boot partition is
# written only when the claim file changed, so a claimed box never writes it.
set -euo pipefail
# shellcheck source=overlay/usr/lib/imbox/lib.sh
. /usr/lib/imbox/lib.sh

src=$DATA/imbox/imbox-claim.txt
dst=$BOOTFS/imbox-claim.txt
issue=/run/issue.d/50-imbox.issue

if [ -s "$src" ]; then
    if ! cmp -s "$src" "$dst"; then
        bootfs_write sh -c "cp '$src' '$dst.tmp' && mv '$dst.tmp' '$dst'"
        log "claim code copied to the boot partition"
    fi
    mkdir -p /run/issue.d
    {
        echo
        sed -n 's/^Claim code: /imbox claim code: /p' "$src"
        # \4 is agetty's escape for the address of the box.
        printf 'Open http://\\4/ (or http://%s.local/) to set up this box.\n' "$(hostname)"
        echo
    } > "$issue"
    sed -n 's/^Claim code: /imbox claim code: /p' "$src" > /dev/tty1 2>/dev/null || true
else
    if [ -e "$dst" ]; then
        bootfs_write rm -f "$dst"
        log "box claimed: claim file removed from the boot partition"
    fi
    rm -f "$issue"
fi
