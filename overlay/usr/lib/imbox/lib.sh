# Shared by the appliance's scripts (sourced, not run).
# shellcheck shell=bash
# shellcheck disable=SC2034 # the variables are for the scripts that source this

# shellcheck source=image/layout.env
. /usr/lib/imbox/layout.env

BOOTFS=/boot/firmware
DATA=/data
STATE=/run/imbox
# Where the preseed lives once its secrets are off the boot partition.
SAVED_PRESEED=$DATA/system/preseed.toml

log() { echo "imbox: $*"; }
die() { echo "imbox: $*" >&2; exit 1; }

disk_id_hex() { printf '%08x' "$((IMBOX_DISK_ID))"; }
sd_partition() { echo "/dev/disk/by-partuuid/$(disk_id_hex)-0$1"; }

# Runs a command with the boot partition writable, then makes it read-only
# again. Mounting FAT read-write marks it dirty on the card, so this is done
# only when something on it must change (first boot, the claim).
bootfs_mounted() {
    mountpoint -q "$BOOTFS" || mount "$BOOTFS" || die "cannot mount the boot partition at $BOOTFS"
}

bootfs_write() {
    bootfs_mounted
    mount -o remount,rw "$BOOTFS"
    local rc=0
    "$@" || rc=$?
    sync -f "$BOOTFS" || true
    mount -o remount,ro "$BOOTFS"
    return "$rc"
}

# toml_get FILE SECTION KEY: prints the value of KEY in [SECTION] (SECTION ""
# is the top level) of a preseed. Understands the subset the preseed uses:
# `key = "string"`, `key = 'string'`, `key = true|false|number`, and
# `key = ["string", ...]` on one line (one value printed per line).
toml_get() {
    [ -r "$1" ] || return 0
    awk -v want_section="$2" -v want_key="$3" '
        function unquote(v) {
            if (v ~ /^".*"$/) { v = substr(v, 2, length(v) - 2); gsub(/\\"/, "\"", v); gsub(/\\\\/, "\\", v) }
            else if (v ~ /^\x27.*\x27$/) { v = substr(v, 2, length(v) - 2) }
            return v
        }
        /^[ \t]*#/ || /^[ \t]*$/ { next }
        /^[ \t]*\[/ {
            s = $0; sub(/^[ \t]*\[[ \t]*/, "", s); sub(/[ \t]*\].*$/, "", s); section = s; next
        }
        section == want_section {
            line = $0
            eq = index(line, "=")
            if (eq == 0) next
            k = substr(line, 1, eq - 1); gsub(/^[ \t]+|[ \t]+$/, "", k)
            if (k != want_key) next
            v = substr(line, eq + 1); gsub(/^[ \t]+|[ \t]+$/, "", v)
            if (v ~ /^\[/) {
                sub(/^\[/, "", v); sub(/\][ \t]*(#.*)?$/, "", v)
                n = split(v, items, /"[ \t]*,[ \t]*"/)
                for (i = 1; i <= n; i++) { it = items[i]; gsub(/^[ \t]*"|"[ \t]*,?[ \t]*$/, "", it); if (it != "") print it }
            } else {
                # A quoted value ends at its closing quote: what follows
                # (a comment) is not part of it.
                if (v ~ /^"/) { if (match(v, /^"([^"\\]|\\.)*"/)) v = substr(v, 1, RLENGTH) }
                else if (v ~ /^\x27/) { if (match(v, /^\x27[^\x27]*\x27/)) v = substr(v, 1, RLENGTH) }
                else sub(/[ \t]*#.*$/, "", v)
                print unquote(v)
            }
            exit
        }
    ' "$1"
}

# The preseed in force: a new one on the boot partition wins over the copy
# kept on the data disk.
preseed_file() {
    if [ -f "$BOOTFS/imbox.toml" ]; then
        echo "$BOOTFS/imbox.toml"
    elif [ -f "$SAVED_PRESEED" ]; then
        echo "$SAVED_PRESEED"
    fi
}

# This box's id: made on the first boot and kept on the boot partition, so
# the box is its SD card. A USB disk's marker names the box it belongs to.
box_id() {
    bootfs_mounted
    if [ ! -s "$BOOTFS/imbox-box-id" ]; then
        local id
        id=$(cat /proc/sys/kernel/random/uuid)
        bootfs_write sh -c "echo '$id' > '$BOOTFS/imbox-box-id.tmp' && mv '$BOOTFS/imbox-box-id.tmp' '$BOOTFS/imbox-box-id'"
        # On stderr: callers take the id from stdout.
        log "this box's id is $id (written to the boot partition)" >&2
    fi
    tr -d ' \r\n' < "$BOOTFS/imbox-box-id"
}
