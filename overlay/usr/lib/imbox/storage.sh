#!/bin/bash
# Finds the data disk and mounts it at /data (imbox-storage.service), and
# carries out the setup page's storage requests (imbox-storage-request).
#
#   storage.sh boot            at every boot
#   storage.sh wait            while the data disk is missing or unusable
#                              (imbox-storage-wait.service): looks again
#                              every few seconds and brings the box up on
#                              its disk as soon as it can
#   storage.sh request FILE    adopt a USB disk: format it, copy /data to it
#                              while imboxd (paused) keeps serving, then
#                              switch /data to it; FILE holds one line:
#                              "adopt DEVICE ID SIZE [format]" (ID the disk's
#                              /dev/disk/by-id name, SIZE its size in bytes,
#                              both as the setup page showed them; format:
#                              the owner consented to erase a disk that
#                              holds data). Progress in
#                              /run/imbox/storage-progress (see request()).
#
# The data fails closed. Once it lives on a USB disk, the boot partition
# holds a record of that disk ($DISK_RECORD: its by-id name, serial, model,
# size) and the box serves from that disk or from nothing: at boot, in this
# order,
#   1. two USB disks marked for this box: neither is mounted; the standby
#      page lists both and asks the owner to unplug one;
#   2. one USB disk marked for this box: checked (a file system e2fsck will
#      not repair without a person is never mounted; the standby page says
#      so), mounted at /data;
#   3. the record names a USB disk that is not there: nothing is mounted,
#      imboxd does not start; the standby page names the missing disk and
#      imbox-storage-wait brings the box up when it is plugged in;
#   4. on the first boot of a card only, a blank USB disk (no partition
#      table, no signature, and nothing but zeros where a file system or a
#      volume header would be), if the preseed says
#      [storage] format_blank_usb = true: formatted, marked, mounted;
#   5. else the SD card's data partition, grown to the end of the card the
#      first time.
# A USB disk that belongs to another box, or holds anything else, is never
# mounted for writing nor formatted here: it is listed in
# /run/imbox/storage.json for the setup page, which asks the owner.
set -euo pipefail
# shellcheck source=overlay/usr/lib/imbox/lib.sh
. /usr/lib/imbox/lib.sh

STATUS=$STATE/storage.json
PROGRESS=$STATE/storage-progress

# The boot partition's record of the USB disk that holds the data (absent
# while the data is on the SD card). On the boot partition because it must
# be read before any data disk is mounted, and it changes only when the data
# moves.
DISK_RECORD=$BOOTFS/imbox-data-disk

# The USB disks (whole devices), one per line.
usb_disks() {
    lsblk -dnpo NAME,TRAN,TYPE | awk '$2 == "usb" && $3 == "disk" { print $1 }'
}

# disk_id DISK: the disk's name under /dev/disk/by-id (made by udev from its
# vendor, model and serial, or its WWN), which names the same disk after a
# replug where /dev/sdX may name another one. Empty if udev gave it none.
disk_id() {
    local link best=""
    for link in /dev/disk/by-id/usb-* /dev/disk/by-id/wwn-* /dev/disk/by-id/ata-*; do
        [ -e "$link" ] || continue
        case $link in *-part[0-9]*) continue ;; esac
        if [ "$(readlink -f "$link")" = "$1" ]; then best=$(basename "$link"); break; fi
    done
    echo "$best"
}

# disk_by_id ID: the device the by-id name points at, if it is a USB disk.
disk_by_id() {
    local dev
    case $1 in "" | */* | .*) return 0 ;; esac
    [ -e "/dev/disk/by-id/$1" ] || return 0
    dev=$(readlink -f "/dev/disk/by-id/$1")
    usb_disks | grep -qx -- "$dev" && echo "$dev"
    return 0
}

# The imbox partition of DISK (or the disk itself, if it has no table).
imbox_partition() {
    lsblk -nrpo NAME,FSTYPE,LABEL "$1" | awk -v l="$IMBOX_USB_LABEL" '$2 == "ext4" && $3 == l { print $1; exit }'
}

# has_bytes DISK OFFSET_MIB: the MiB at OFFSET_MIB holds something but zeros.
has_bytes() {
    [ "$(dd if="$1" bs=1M skip="$2" count=1 iflag=direct status=none 2>/dev/null | tr -d '\0' | head -c 1 | wc -c)" -gt 0 ]
}

# blank DISK: nothing on it that anyone could want. Not only what wipefs
# and blkid can name: an encrypted volume, or a file system blkid does not
# know, has no signature they recognise, but its first and last megabytes
# are not zeros (a new or fully trimmed disk reads as zeros there).
is_blank() {
    local mib
    [ "$(lsblk -nrpo NAME "$1" | wc -l)" -eq 1 ] || return 1
    [ -z "$(wipefs -n -p "$1" 2>/dev/null | grep -v '^#' || true)" ] || return 1
    [ -z "$(blkid -p -o value -s TYPE "$1" 2>/dev/null || true)" ] || return 1
    [ -z "$(blkid -p -o value -s PTTYPE "$1" 2>/dev/null || true)" ] || return 1
    mib=$(( $(lsblk -dbno SIZE "$1") / 1048576 ))
    [ "$mib" -ge 2 ] || return 1
    ! has_bytes "$1" 0 && ! has_bytes "$1" $((mib / 2)) && ! has_bytes "$1" $((mib - 1))
}

# The box id in the marker of the imbox partition PART, read from a
# read-only mount; "left:BOX" for a disk whose data moved to another disk
# (its marker renamed $IMBOX_MARKER.left).
marker_box() {
    local probe=$STATE/probe box=""
    mkdir -p "$probe"
    if mount -o ro,noload "$1" "$probe" 2>/dev/null; then
        if [ -f "$probe/$IMBOX_MARKER" ]; then
            box=$(sed -n 's/^box=//p' "$probe/$IMBOX_MARKER" 2>/dev/null | head -n1 || true)
        elif [ -f "$probe/$IMBOX_MARKER.left" ]; then
            box=left:$(sed -n 's/^box=//p' "$probe/$IMBOX_MARKER.left" 2>/dev/null | head -n1 || true)
        fi
        umount "$probe"
    fi
    echo "$box"
}

# classify DISK: ours | other-box | blank | has-data. A disk this box's data
# moved away from holds an old copy of it: has-data.
classify() {
    local part
    part=$(imbox_partition "$1")
    if [ -n "$part" ]; then
        case $(marker_box "$part") in
            "$BOX") echo ours ;;
            "left:$BOX") echo has-data ;;
            "")
                # No marker could be read: the file system may be damaged.
                # The disk the boot partition records is still ours (its
                # check then decides); any other is left alone.
                if [ -f "$DISK_RECORD" ] && [ "$(disk_id "$1")" = "$(sed -n 's/^id=//p' "$DISK_RECORD")" ]; then
                    echo ours
                else
                    echo other-box
                fi ;;
            *) echo other-box ;;
        esac
    elif is_blank "$1"; then
        echo blank
    else
        echo has-data
    fi
}

write_marker() {
    local tmp="$1/$IMBOX_MARKER.tmp"
    {
        echo "# This disk holds the data of an imbox. Do not format it."
        echo "box=$BOX"
        echo "created=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    } > "$tmp"
    sync "$tmp"
    mv "$tmp" "$1/$IMBOX_MARKER"
    sync "$1"
}

# Formats DISK as one GPT partition with an ext4 file system labelled
# $IMBOX_USB_LABEL, not yet marked for this box (mark_partition). Prints the
# partition.
format_usb() {
    local disk=$1 part
    log "formatting $disk for imbox" >&2
    # stdout is the partition's name: wipefs says it re-read the table there.
    wipefs -q -a "$disk" >&2
    printf 'label: gpt\n,,L\n' | sfdisk -q "$disk" >&2
    udevadm settle -t 10 || true
    part=$(lsblk -nrpo NAME,TYPE "$disk" | awk '$2 == "part" { print $1; exit }')
    [ -n "$part" ] || die "no partition on $disk after partitioning"
    mkfs.ext4 -q -F -L "$IMBOX_USB_LABEL" -m 1 -E lazy_itable_init=1,lazy_journal_init=1 "$part" >&2
    echo "$part"
}

# Writes this box's marker on the (unmounted) partition PART.
mark_partition() {
    local probe=$STATE/probe
    mkdir -p "$probe"
    mount "$1" "$probe"
    write_marker "$probe"
    umount "$probe"
}

check_fs() {
    # e2fsck -p: 0 clean, 1 fixed; anything else needs a person.
    local rc=0
    e2fsck -p "$1" >&2 || rc=$?
    [ "$rc" -le 1 ] || { log "e2fsck $1 exit $rc: not mounting it" >&2; return 1; }
}

# mount_data PART: checks PART and mounts it at /data; fails, and mounts
# nothing, if the check fails. Every step is tested explicitly: callers use
# it in conditions, where bash ignores set -e inside the function.
mount_data() {
    check_fs "$1" || return 1
    mkdir -p "$DATA" || return 1
    mount -o noatime,errors=remount-ro "$1" "$DATA" || return 1
    install -d -m 0700 -o root -g root "$DATA/system" || return 1
    install -d -m 0700 -o imbox -g imbox "$DATA/imbox" || return 1
}

# Grows the SD card's data partition to the end of the card, once.
grow_sd_data() {
    local part disk name start size disk_size
    part=$(readlink -f "$(sd_partition "$IMBOX_DATA_PART")")
    name=$(basename "$part")
    disk=/dev/$(lsblk -no PKNAME "$part" | head -n1)
    start=$(cat "/sys/class/block/$name/start")
    size=$(cat "/sys/class/block/$name/size")
    disk_size=$(cat "/sys/class/block/$(basename "$disk")/size")
    if [ $((start + size + 8192)) -lt "$disk_size" ]; then
        log "growing the SD card's data partition $part to the end of the card" >&2
        echo ', +' | sfdisk -q --no-reread -N "$IMBOX_DATA_PART" "$disk" >&2 || true
        partx -u -n "$IMBOX_DATA_PART" "$disk" >&2 || true
        udevadm settle -t 10 || true
        echo grow
    fi
}

# disk_json DISK [STATE]: what the setup page and the standby page show of a
# disk. jq builds the JSON: model and serial strings come from the disk.
disk_json() {
    local disk=$1 state=${2:-}
    lsblk -J -d -b -o PATH,MODEL,SERIAL,WWN,SIZE "$disk" 2>/dev/null |
        jq -c --arg id "$(disk_id "$disk")" --arg state "$state" '.blockdevices[0] // {} | {
            device: (.path // ""), id: $id, model: ((.model // "") | rtrimstr(" ")),
            serial: ((.serial // "") | rtrimstr(" ")), wwn: (.wwn // ""), size_bytes: (.size // 0)
        } + (if $state == "" then {} else {state: $state} end)'
}

# record_disk DISK: the boot partition's record that the data lives on DISK.
record_disk() {
    local tmp=$STATE/imbox-data-disk
    disk_json "$1" | jq -r '"# The data of this imbox lives on this USB disk: the box serves from it or from nothing.",
        "id=\(.id)", "serial=\(.serial)", "wwn=\(.wwn)", "model=\(.model)", "size_bytes=\(.size_bytes)"' > "$tmp"
    # shellcheck disable=SC2016 # expanded by the inner shell
    bootfs_write sh -c 'cp "$1" "$2.tmp" && mv "$2.tmp" "$2"' - "$tmp" "$DISK_RECORD"
    log "recorded on the boot partition: the data lives on $1 ($(sed -n 's/^id=//p' "$tmp"))"
}

# record_json: the recorded disk, as the standby page shows it.
record_json() {
    jq -Rn '[inputs | select(test("^[a-z_]+=")) | capture("^(?<key>[a-z_]+)=(?<value>.*)$")] | from_entries
        | {id: (.id // ""), model: (.model // ""), serial: (.serial // ""), wwn: (.wwn // ""),
           size_bytes: ((.size_bytes // "0") | tonumber? // 0)}' < "$DISK_RECORD"
}

# write_status KIND DEVICE [PROBLEM_JSON]: /run/imbox/storage.json for the
# setup page (imboxd) and the standby page (imboxd standby).
write_status() {
    local kind=$1 device=$2 problem=${3:-null} tmp=$STATUS.tmp d
    {
        for d in "${!STATES[@]}"; do disk_json "$d" "${STATES[$d]}"; done
    } | jq -s --arg box "$BOX" --arg kind "$kind" --arg device "$device" --argjson problem "$problem" '{
            box: $box,
            data: {kind: $kind, device: $device, sd_wear_warning: ($kind == "sd")},
            disks: sort_by(.device),
            problem: $problem
        }' > "$tmp"
    chmod 0644 "$tmp"
    mv "$tmp" "$STATUS"
}

# USB mass-storage interfaces that have no block device yet.
usb_storage_pending() {
    local intf n=0
    for intf in /sys/bus/usb/devices/*; do
        [ "$(cat "$intf/bInterfaceClass" 2>/dev/null)" = 08 ] || continue
        compgen -G "$intf/host*/target*/*/block/*" > /dev/null || n=$((n + 1))
    done
    echo "$n"
}

wait_for_usb() {
    # USB disks enumerate a few seconds after the kernel starts, and their
    # block devices appear a moment after the USB device (usb-storage's
    # delay_use, the SCSI scan).
    local up wait=${IMBOX_USB_WAIT:-8}
    up=$(cut -d. -f1 /proc/uptime)
    if [ "$up" -lt "$wait" ]; then sleep $((wait - up)); fi
    udevadm settle -t 20 || true
    for _ in $(seq 1 60); do
        [ "$(usb_storage_pending)" -gt 0 ] || break
        sleep 0.5
    done
    udevadm settle -t 20 || true
}

# The disk (whole device) that holds the partition mounted at /data, if any.
data_disk() {
    local src
    src=$(findmnt -no SOURCE "$DATA" 2>/dev/null) || return 0
    [ -z "$src" ] || echo "/dev/$(lsblk -no PKNAME "$src" 2>/dev/null | head -n1)"
}

# Classifies every USB disk into STATES (device -> state); the disk that
# holds /data is in-use. OURS lists the disks marked for this box.
scan_usb() {
    declare -gA STATES=()
    OURS=()
    local disk in_use
    in_use=$(data_disk)
    for disk in $(usb_disks); do
        if [ "$disk" = "$in_use" ]; then STATES[$disk]=in-use; else STATES[$disk]=$(classify "$disk"); fi
        [ "${STATES[$disk]}" != ours ] || OURS+=("$disk")
        log "USB disk $disk: ${STATES[$disk]}"
    done
}

# use_ours: the data disk, when exactly one USB disk is marked for this box
# and the file system on it passes its check. Otherwise writes the problem
# for the standby page and fails.
use_ours() {
    local part problem
    if [ "${#OURS[@]}" -gt 1 ]; then
        problem=$(for d in "${OURS[@]}"; do disk_json "$d"; done | jq -sc '{kind: "two-disks", disks: .}')
        write_status none "" "$problem"
        log "${#OURS[@]} USB disks are marked as this box's (${OURS[*]}): mounting none of them; unplug the one that should not be used"
        return 1
    fi
    part=$(imbox_partition "${OURS[0]}")
    if ! mount_data "$part"; then
        problem=$(disk_json "${OURS[0]}" | jq -c --arg p "$part" '{kind: "check-failed", disk: ., device: $p}')
        write_status none "" "$problem"
        log "the file system on $part failed its check: not mounted; the standby page says so"
        return 1
    fi
    STATES[${OURS[0]}]=in-use
    # A disk of this box without a record (adopted before records were
    # kept, or the record lost): from now on the box serves from it only.
    [ -f "$DISK_RECORD" ] || record_disk "${OURS[0]}"
    write_status usb "$part"
    log "data disk: $part (USB) at $DATA"
}

# standby: the data cannot be mounted (use_ours wrote why): the standby page
# instead of imboxd, and imbox-storage-wait looks for the disk again.
standby() {
    systemctl --no-block start imboxd-standby.service imbox-storage-wait.service || true
}

# preseed_says KEY: the first boot's preseed sets [storage] KEY = true.
# Only a preseed on the boot partition counts (the copy provision.sh keeps
# on the data disk never does), and only on a card's first boot.
preseed_says() {
    [ "$first_boot" = 1 ] && [ -f "$BOOTFS/imbox.toml" ] &&
        [ "$(toml_get "$BOOTFS/imbox.toml" storage "$1")" = true ]
}

# restore_box: a re-flashed card whose preseed says
# [storage] restore_from_usb = true (`make flash ... RESTORE=1`) becomes the
# box whose data is on the one USB disk of an imbox plugged in: it takes
# that box's id from the disk's marker, and with the data its identity key,
# so paired clients keep their pins. The preseed is the owner's consent: a
# disk of another box is otherwise never mounted.
restore_box() {
    preseed_says restore_from_usb || return 0
    local others=() d part old
    for d in "${!STATES[@]}"; do [ "${STATES[$d]}" != other-box ] || others+=("$d"); done
    if [ "${#others[@]}" -ne 1 ]; then
        log "restore_from_usb: ${#others[@]} USB disks hold an imbox's data; restoring none (plug in only the disk to restore)"
        return 0
    fi
    part=$(imbox_partition "${others[0]}")
    old=$(marker_box "$part")
    [[ $old =~ ^[A-Za-z0-9-]{1,64}$ ]] || { log "restore_from_usb: the marker on $part names no box"; return 0; }
    bootfs_write sh -c "echo '$old' > '$BOOTFS/imbox-box-id.tmp' && mv '$BOOTFS/imbox-box-id.tmp' '$BOOTFS/imbox-box-id'"
    log "restore_from_usb: this card is now box $old, whose data is on ${others[0]}"
    BOX=$old
    scan_usb
}

boot() {
    mkdir -p "$STATE"
    local first_boot=0
    bootfs_mounted
    # The first boot of a card: it has no box id yet. Only then may a
    # preseed format a disk, so that a preseed left on the card (or its copy
    # on the data disk) can never format a disk plugged in later.
    [ -s "$BOOTFS/imbox-box-id" ] || first_boot=1
    BOX=$(box_id)
    wait_for_usb
    scan_usb
    [ "$first_boot" = 0 ] || restore_box
    local disk blank="" part
    for disk in $(usb_disks); do
        [ "${STATES[$disk]}" != blank ] || [ -n "$blank" ] || blank=$disk
    done

    if [ "${#OURS[@]}" -gt 0 ]; then
        use_ours || standby
        return 0
    fi
    if [ -f "$DISK_RECORD" ]; then
        write_status none "" "$(record_json | jq -c '{kind: "missing", disk: .}')"
        log "the data disk $(sed -n 's/^id=//p' "$DISK_RECORD") is missing: imboxd does not start on other data; waiting for it"
        standby
        return 0
    fi
    if [ -n "$blank" ]; then
        if preseed_says format_blank_usb; then
            part=$(format_usb "$blank")
            mark_partition "$part"
            record_disk "$blank"
            mount_data "$part" || die "the file system just made on $part does not pass its check"
            STATES[$blank]=in-use
            write_status usb "$part"
            log "data disk: $part (USB, formatted on the first boot: the preseed allows it) at $DATA"
            return 0
        fi
        log "blank USB disk $blank: not formatted without the owner's consent (setup page; a preseed's format_blank_usb = true applies to a card's first boot only)"
    fi
    part=$(readlink -f "$(sd_partition "$IMBOX_DATA_PART")")
    local grew
    grew=$(grow_sd_data)
    if ! mount_data "$part"; then
        write_status none "" "$(jq -nc --arg p "$part" '{kind: "check-failed", disk: {model: "SD card", serial: "", size_bytes: 0}, device: $p}')"
        log "the file system on the SD card's data partition $part failed its check: not mounted"
        standby
        return 0
    fi
    [ -z "$grew" ] || resize2fs "$part" >/dev/null 2>&1 || log "resize2fs $part failed"
    write_status sd "$part"
    log "data disk: $part (the SD card's data partition; the status page warns about SD wear)"
}

# storage.sh wait: while the data disk is missing, doubled or unusable, look
# again every few seconds; once use_ours mounts it, the box comes up as at
# boot: the standby page gives way to imboxd.
wait_for_data() {
    mkdir -p "$STATE"
    BOX=$(box_id)
    local last=""
    while ! mountpoint -q "$DATA"; do
        sleep "${IMBOX_STORAGE_POLL:-3}"
        udevadm settle -t 10 || true
        # Only rescan when the set of USB disks changed: probing mounts
        # each disk read-only.
        local now
        now=$(usb_disks | tr '\n' ' ')
        [ "$now" != "$last" ] || continue
        last=$now
        scan_usb
        if [ "${#OURS[@]}" -gt 0 ]; then
            use_ours || continue
        elif [ -f "$DISK_RECORD" ]; then
            write_status none "" "$(record_json | jq -c '{kind: "missing", disk: .}')"
            continue
        else
            continue
        fi
    done
    log "the data disk is back: starting imboxd"
    systemctl stop imboxd-standby.service || true
    systemctl start imbox-provision.service || true
    systemctl --no-block start imbox-journal.service imboxd.service ssh.service || true
    # The path units watch directories on /data: their watches were set on
    # the empty directory underneath.
    systemctl --no-block restart imbox-storage-request.path imbox-bootfs-sync.path || true
}

# --- storage.sh request FILE: move the data to a USB disk the owner chose ---
#
# imboxd has paused its database (a checkpoint, an empty write-ahead log,
# every write refused) and keeps serving while the data is copied; it
# follows /run/imbox/storage-progress, one line "STATE PERCENT [MESSAGE]":
#   preparing 0      validating, formatting, checking
#   copying N        N% of the data copied (imboxd still running)
#   switching 100    imboxd stopped, the new disk being mounted at /data
#   done 100         the data is on the new disk; imboxd starts again
#   failed 0 MSG     nothing moved: MSG tells the owner what to do. If
#                    imboxd had not been stopped it resumes writes by
#                    itself; if it had, the old data is back at /data and
#                    imboxd is started again.
# The new disk is marked for this box only once the copy is complete and
# imboxd has stopped, so a power cut during a move leaves the box on its
# old data disk.

progress() {
    local tmp=$PROGRESS.tmp
    mkdir -p "$STATE"
    printf '%s\n' "$(tr '\n' ' ' <<<"$*" | sed 's/ *$//')" > "$tmp"
    chmod 0644 "$tmp"
    mv -f "$tmp" "$PROGRESS"
}

# What the request has done so far, for undo_request.
R_PHASE=""        # "" | prepared | stopped | switched | "done"
R_DISK=""         # the disk being adopted
R_PART=""         # its imbox partition
R_FORMAT=0        # 1: formatted by this request; 0: a disk of this box
R_ASIDE=""        # for a disk of this box: where what it held is kept
R_OLD=""          # the device mounted at /data before
R_RETIRED=0       # 1: the old data disk (USB) no longer marked as this box's
R_NEW=$STATE/new  # where the new partition is mounted while copying
R_CP=""           # the copy's pid, while it runs
R_FAIL="The storage service stopped unexpectedly. The box keeps its data where it was; try again, and if it fails again, restart the box."

# refuse MESSAGE: ends the request; MESSAGE is for the owner.
refuse() {
    R_FAIL=$1
    log "storage request refused: $1" >&2
    exit 1
}

# step MESSAGE: what to tell the owner if what follows fails.
step() { R_FAIL=$1; }

# Undoes what the request did to the new disk, so that it is not taken for
# this box's disk at the next boot. A disk it formatted is erased again (it
# was blank, or the owner consented to erase it, and it holds no more than a
# copy); a disk of this box gets back what it held, and its marker.
undo_new() {
    [ -n "$R_PART" ] || return 0
    if [ "$(findmnt -no SOURCE "$DATA" 2>/dev/null)" = "$R_PART" ]; then
        umount "$DATA" || true
    fi
    if [ "$R_FORMAT" = 1 ]; then
        umount "$R_NEW" 2>/dev/null || true
        wipefs -q -a "$R_PART" 2>/dev/null || true
        wipefs -q -a "$R_DISK" 2>/dev/null || true
        udevadm settle -t 10 || true
        return 0
    fi
    [ -n "$R_ASIDE" ] || { umount "$R_NEW" 2>/dev/null || true; return 0; }
    mountpoint -q "$R_NEW" || mount -o noatime "$R_PART" "$R_NEW" || {
        log "cannot mount $R_PART to put back what it held (in $R_ASIDE)" >&2; return 0; }
    find "$R_NEW" -mindepth 1 -maxdepth 1 ! -name lost+found ! -name '.imbox-previous-*' -exec rm -rf -- {} +
    find "$R_ASIDE" -mindepth 1 -maxdepth 1 -exec mv -t "$R_NEW/" -- {} +
    rmdir "$R_ASIDE" || true
    sync -f "$R_NEW" || true
    umount "$R_NEW" || true
}

# The EXIT trap: on any failure, undo and report; no path leaves imboxd
# stopped, the data disk unmounted or the progress file at a state that is
# not final.
undo_request() {
    local rc=$?
    trap - EXIT
    trap '' TERM INT HUP
    [ -z "$R_CP" ] || { kill "$R_CP" 2>/dev/null; wait "$R_CP" 2>/dev/null; } || true
    [ "$R_PHASE" != "done" ] || return 0
    [ "$rc" -ne 0 ] || rc=1
    log "storage request failed (phase ${R_PHASE:-validating}): $R_FAIL" >&2
    case $R_PHASE in
        prepared)
            undo_new
            progress failed 0 "$R_FAIL"
            ;;
        stopped)
            undo_new
            if ! mountpoint -q "$DATA"; then
                mount_data "$R_OLD" || log "cannot mount $R_OLD at $DATA again" >&2
            fi
            /usr/lib/imbox/journal.sh attach || true
            if [ "$R_RETIRED" = 1 ] && [ -f "$DATA/$IMBOX_MARKER.left" ]; then
                mv "$DATA/$IMBOX_MARKER.left" "$DATA/$IMBOX_MARKER"
                sync -f "$DATA" || true
            fi
            progress failed 0 "$R_FAIL"
            restart_after_switch
            ;;
        switched)
            # The data is on the new disk, mounted at /data: only what came
            # after failed (storage.json, most likely). Start imboxd anyway.
            progress failed 0 "$R_FAIL"
            restart_after_switch
            ;;
        *)
            progress failed 0 "$R_FAIL"
            ;;
    esac
    exit "$rc"
}

# imboxd again, and the path units that watch /data (their inotify watches
# were on the file system that was unmounted).
restart_after_switch() {
    systemctl start imboxd.service || log "imboxd did not start" >&2
    systemctl restart --no-block imbox-storage-request.path imbox-bootfs-sync.path || true
}

# listing DIR: every file under DIR but lost+found, the disk markers and what
# a disk of this box held before, with its type, size and modification time
# (for a directory only its type: its size and time depend on what it held
# once), sorted by path.
listing() {
    find "$1" -mindepth 1 \( -path "$1/lost+found" -o -path "$1/$IMBOX_MARKER*" -o -path "$1/.imbox-previous-*" \) -prune \
        -o -type d -printf '%P\td\n' -o -printf '%P\t%y\t%s\t%T@\n' | LC_ALL=C sort
}

# copy_changed BEFORE AFTER: copies again, from /data to the new disk, what
# changed between two listings of /data (and removes what went away).
copy_changed() {
    local p t
    LC_ALL=C comm -23 <(cut -f1 "$1") <(cut -f1 "$2") | while IFS= read -r p; do
        log "changed since the copy: $p (removed)"
        rm -rf -- "${R_NEW:?}/$p"
    done
    LC_ALL=C comm -13 "$1" "$2" | while IFS=$'\t' read -r p t _; do
        log "changed since the copy: $p"
        rm -rf -- "${R_NEW:?}/$p"
        if [ "$t" = d ]; then
            mkdir -- "$R_NEW/$p"
            chmod --reference="$DATA/$p" -- "$R_NEW/$p"
            chown --reference="$DATA/$p" -- "$R_NEW/$p"
        else
            cp -a -- "$DATA/$p" "$R_NEW/$p"
        fi
    done
}

# same_disk DEVICE ID SIZE: DEVICE is the USB disk with that by-id name and
# that size in bytes.
same_disk() {
    [ -n "$2" ] && [ "$(disk_by_id "$2")" = "$1" ] && [ "$(lsblk -dbno SIZE "$1" 2>/dev/null)" = "$3" ]
}

# retire_old PART: after a move, the data left at PART is not this box's
# any more. The SD card's data partition is emptied (the USB disk is the
# only copy the box may serve; the record on the boot partition already
# keeps the box from mounting it); an old USB disk keeps its copy under a
# retired marker ($IMBOX_MARKER.left, classified has-data).
retire_old() {
    local sd old=$STATE/old
    sd=$(readlink -f "$(sd_partition "$IMBOX_DATA_PART")")
    [ "$(readlink -f "$1")" = "$sd" ] || return 0
    mkdir -p "$old"
    mount -o noatime "$sd" "$old" || { log "cannot mount $sd to wipe the old copy" >&2; return 0; }
    find "$old" -mindepth 1 -maxdepth 1 ! -name lost+found -exec rm -rf -- {} +
    printf 'The data of this imbox moved to a USB disk on %s. Nothing here is used.\n' \
        "$(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$old/MOVED-TO-USB.txt"
    sync -f "$old" || true
    umount "$old" || true
    log "the old copy on the SD card's data partition $sd is wiped"
}

kib_used() { du -sk --exclude=lost+found --exclude='.imbox-previous-*' "$1" | cut -f1; }

too_small() {
    refuse "The disk $R_DISK is too small for the box's data ($(($1 / 1024)) MiB). Choose a larger disk."
}

request() {
    local file=$1 action="" disk="" id="" size="" consent="" extra=""
    [ -f "$file" ] || return 0
    # First thing: imboxd gives up if no progress line comes within 30 s.
    progress preparing 0
    trap undo_request EXIT
    trap 'exit 143' TERM INT HUP
    # imboxd writes FILE; a link could point at a file it may not read.
    [ ! -L "$file" ] || { rm -f "$file"; refuse "The box did not understand the request. Update the box and try again."; }
    read -r action disk id size consent extra < "$file" || true
    rm -f "$file"
    log "storage request: $action $disk $id $size $consent"
    BOX=$(box_id)

    # Validate.
    if [ "$action" != adopt ] || [ -n "$extra" ] || { [ -n "$consent" ] && [ "$consent" != format ]; }; then
        refuse "The box did not understand the request. Update the box and try again."
    fi
    R_OLD=$(findmnt -no SOURCE "$DATA" 2>/dev/null) ||
        refuse "The box has no data disk mounted. Restart the box and try again."
    usb_disks | grep -qx -- "$disk" ||
        refuse "$disk is not a USB disk connected to the box. Plug the disk in, reload the page and try again."
    # The owner's consent names the disk by its by-id name and size, as the
    # page showed it: /dev/sdX may name another disk after a replug.
    same_disk "$disk" "$id" "$size" ||
        refuse "The disks changed since the page was loaded ($disk is not the disk you chose). Reload the page and choose again."
    if [ "$disk" = "$(data_disk)" ] || [ -n "$(lsblk -nro MOUNTPOINT "$disk" | tr -d '[:space:]')" ]; then
        refuse "$disk is already in use. Choose another disk."
    fi
    R_DISK=$disk
    local state
    state=$(classify "$disk")
    log "$disk: $state"
    case $state in
        blank) R_FORMAT=1 ;;
        other-box | has-data)
            [ "$consent" = format ] ||
                refuse "The disk $disk holds data. Tick the box to erase it, or choose another disk."
            R_FORMAT=1 ;;
        ours)
            # A disk of this box that is not in use: erased if the owner
            # said so, else what it holds is kept aside on it.
            if [ "$consent" = format ]; then R_FORMAT=1; fi ;;
    esac
    local need avail
    need=$(kib_used "$DATA")
    # Room for the data, the file system's own overhead (about 2%) and 64 MiB.
    avail=$(( $(lsblk -dbno SIZE "$disk") / 1024 ))
    [ "$avail" -gt $(( need + avail / 50 + 65536 )) ] || too_small "$need"

    # Format, or (a disk of this box) put what it holds aside.
    step "Preparing the disk $disk failed. Try another USB port or another disk."
    R_PHASE=prepared
    if [ "$R_FORMAT" = 1 ]; then
        # Again right before erasing: the disk must still be the one the
        # owner chose.
        same_disk "$disk" "$id" "$size" ||
            refuse "The disk $disk changed while it was being prepared. Nothing was erased. Reload the page and choose again."
        R_PART=$(format_usb "$disk")
    else
        R_PART=$(imbox_partition "$disk")
    fi
    step "The file system on $disk could not be checked or mounted. Try another disk."
    check_fs "$R_PART"
    mkdir -p "$R_NEW"
    mount -o noatime "$R_PART" "$R_NEW"
    if [ "$R_FORMAT" = 0 ]; then
        step "Preparing the disk $disk failed. Try another disk."
        R_ASIDE=$R_NEW/.imbox-previous-$(date -u +%Y%m%dT%H%M%SZ)
        mkdir -m 0700 "$R_ASIDE"
        # The marker first: a disk without it is not taken at the next boot.
        mv "$R_NEW/$IMBOX_MARKER" "$R_ASIDE/"
        sync -f "$R_NEW"
        find "$R_NEW" -mindepth 1 -maxdepth 1 ! -name lost+found ! -name '.imbox-previous-*' -exec mv -t "$R_ASIDE/" -- {} +
        log "what $R_PART held is kept in $(basename "$R_ASIDE") on it"
    fi
    avail=$(df -k --output=avail "$R_NEW" | tail -n1 | tr -d ' ')
    [ "$avail" -gt "$need" ] || too_small "$need"

    # Copy, while imboxd keeps serving (its database is paused).
    step "Copying the data to $disk failed. The box keeps its data where it was. Check the disk (or try another one) and try again."
    progress copying 0
    local before=$STATE/storage-before after=$STATE/storage-after copied pct
    listing "$DATA" > "$before"
    find "$DATA" -mindepth 1 -maxdepth 1 ! -name lost+found ! -name "$IMBOX_MARKER*" ! -name '.imbox-previous-*' \
        -exec cp -a -t "$R_NEW/" -- {} + &
    R_CP=$!
    while kill -0 "$R_CP" 2>/dev/null; do
        copied=$(kib_used "$R_NEW" 2>/dev/null || echo 0)
        pct=$(( copied * 100 / (need + 1) ))
        [ "$pct" -le 99 ] || pct=99
        progress copying "$pct"
        sleep 0.5
    done
    wait "$R_CP"
    R_CP=""
    progress copying 100
    listing "$DATA" > "$after"
    if ! cmp -s "$before" "$after"; then
        log "the data changed while it was copied (imboxd should have paused its writes); the changes are copied again once imboxd has stopped" >&2
    fi

    # Switch: imboxd stops, the last changes (none, if imboxd paused as
    # it should) are copied, the new disk is marked and mounted at /data.
    progress switching 100
    step "Switching to $disk failed. The box keeps its data where it was; try again, or try another disk."
    R_PHASE=stopped
    systemctl stop imboxd.service
    # The journal and timesyncd's clock file leave the data disk too (they
    # change it, and hold it mounted); they come back at the new /data.
    /usr/lib/imbox/journal.sh relinquish || true
    listing "$DATA" > "$after"
    copy_changed "$before" "$after"
    listing "$R_NEW" > "$before"
    cmp -s "$before" "$after" ||
        refuse "The copy on $disk does not match the data. The box keeps its data where it was; try again, or try another disk."
    write_marker "$R_NEW"
    # A USB disk the data leaves is no longer this box's disk: else the next
    # boot could take either. Retired after the new one is marked: in
    # between both hold the same data (imboxd is stopped).
    if [ -f "$DATA/$IMBOX_MARKER" ]; then
        mv "$DATA/$IMBOX_MARKER" "$DATA/$IMBOX_MARKER.left"
        R_RETIRED=1
    fi
    sync
    umount "$R_NEW"
    umount "$DATA"
    mount_data "$R_PART"
    R_PHASE=switched
    /usr/lib/imbox/journal.sh attach || true
    # From now on the box serves from this disk or from nothing; the copy
    # left on the SD card is wiped so it can never be served again.
    record_disk "$R_DISK"
    retire_old "$R_OLD"
    step "The data is on $disk now, but the box could not update its list of disks. Restart the box."
    scan_usb
    write_status usb "$R_PART"
    rm -f "$before" "$after"
    progress "done" 100
    R_PHASE="done"
    log "data moved from $R_OLD to $R_PART (USB) and mounted at $DATA"
    restart_after_switch
}

case ${1:-} in
    boot) boot ;;
    wait) wait_for_data ;;
    request) request "${2:?request FILE}" ;;
    *) die "usage: storage.sh boot | wait | request FILE" ;;
esac
