#!/bin/bash
# Finds the data disk and mounts it at /data (imbox-storage.service), and
# carries out the setup page's storage requests (imbox-storage-request).
#
#   storage.sh boot            at every boot
#   storage.sh request FILE    adopt a USB disk: format it, copy /data to it
#                              while imboxd (paused) keeps serving, then
#                              switch /data to it; FILE holds one line:
#                              "adopt /dev/sdX" or "adopt /dev/sdX format"
#                              (format: the owner consented to erase a disk
#                              that holds data). Progress in
#                              /run/imbox/storage-progress (see request()).
#
# At boot, in this order:
#   1. a USB disk with an ext4 file system labelled $IMBOX_USB_LABEL whose
#      marker names this box: checked, mounted at /data;
#   2. else a blank USB disk (no partition table, no signature), if the
#      preseed says [storage] format_blank_usb = true: formatted, marked,
#      mounted;
#   3. else the SD card's data partition, grown to the end of the card the
#      first time.
# A USB disk that belongs to another box, or holds anything else, is never
# mounted for writing nor formatted here: it is listed in
# /run/imbox/storage.json for the setup page, which asks the owner.
set -euo pipefail
# shellcheck source=overlay/usr/lib/imbox/lib.sh
. /usr/lib/imbox/lib.sh

STATUS=$STATE/storage.json
PROGRESS=$STATE/storage-progress

json_string() {
    local s=${1//\\/\\\\}
    s=${s//\"/\\\"}
    printf '"%s"' "$s"
}

# The USB disks (whole devices), one per line.
usb_disks() {
    lsblk -dnpo NAME,TRAN,TYPE | awk '$2 == "usb" && $3 == "disk" { print $1 }'
}

# The imbox partition of DISK (or the disk itself, if it has no table).
imbox_partition() {
    lsblk -nrpo NAME,FSTYPE,LABEL "$1" | awk -v l="$IMBOX_USB_LABEL" '$2 == "ext4" && $3 == l { print $1; exit }'
}

is_blank() {
    [ "$(lsblk -nrpo NAME "$1" | wc -l)" -eq 1 ] || return 1
    [ -z "$(wipefs -n -p "$1" 2>/dev/null | grep -v '^#' || true)" ] || return 1
    [ -z "$(blkid -p -o value -s TYPE "$1" 2>/dev/null || true)" ] || return 1
    [ -z "$(blkid -p -o value -s PTTYPE "$1" 2>/dev/null || true)" ]
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

mount_data() {
    check_fs "$1"
    mkdir -p "$DATA"
    mount -o noatime,errors=remount-ro "$1" "$DATA"
    install -d -m 0700 -o root -g root "$DATA/system"
    install -d -m 0700 -o imbox -g imbox "$DATA/imbox"
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

disk_json() {
    local disk=$1 state=$2 model size serial
    model=$(lsblk -dno MODEL "$disk" | sed 's/[[:space:]]*$//')
    serial=$(lsblk -dno SERIAL "$disk" | sed 's/[[:space:]]*$//')
    size=$(lsblk -dbno SIZE "$disk")
    printf '{"device": %s, "model": %s, "serial": %s, "size_bytes": %s, "state": %s}' \
        "$(json_string "$disk")" "$(json_string "$model")" "$(json_string "$serial")" "${size:-0}" "$(json_string "$state")"
}

write_status() {
    local kind=$1 device=$2 tmp=$STATUS.tmp first=1 d
    {
        printf '{\n  "box": %s,\n  "data": {"kind": %s, "device": %s, "sd_wear_warning": %s},\n  "disks": [' \
            "$(json_string "$BOX")" "$(json_string "$kind")" "$(json_string "$device")" \
            "$([ "$kind" = sd ] && echo true || echo false)"
        for d in "${!STATES[@]}"; do
            [ "$first" = 1 ] || printf ','
            first=0
            printf '\n    %s' "$(disk_json "$d" "${STATES[$d]}")"
        done
        printf '\n  ]\n}\n'
    } > "$tmp"
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
# holds /data is in-use.
scan_usb() {
    declare -gA STATES=()
    local disk in_use
    in_use=$(data_disk)
    for disk in $(usb_disks); do
        if [ "$disk" = "$in_use" ]; then STATES[$disk]=in-use; else STATES[$disk]=$(classify "$disk"); fi
        log "USB disk $disk: ${STATES[$disk]}"
    done
}

boot() {
    mkdir -p "$STATE"
    BOX=$(box_id)
    wait_for_usb
    scan_usb
    local disk ours="" blank=""
    for disk in $(usb_disks); do
        case ${STATES[$disk]:-} in
            ours) [ -n "$ours" ] || ours=$disk ;;
            blank) [ -n "$blank" ] || blank=$disk ;;
        esac
    done

    local part
    if [ -n "$ours" ]; then
        part=$(imbox_partition "$ours")
        if mount_data "$part"; then
            STATES[$ours]=in-use
            write_status usb "$part"
            log "data disk: $part (USB) at $DATA"
            return 0
        fi
    fi
    if [ -n "$blank" ]; then
        local preseed policy
        preseed=$(preseed_file)
        policy=$(toml_get "$preseed" storage format_blank_usb)
        if [ "$policy" = true ]; then
            part=$(format_usb "$blank")
            mark_partition "$part"
            mount_data "$part"
            STATES[$blank]=in-use
            write_status usb "$part"
            log "data disk: $part (USB, formatted: the preseed allows it) at $DATA"
            return 0
        fi
        log "blank USB disk $blank: not formatted without the owner's consent (setup page, or [storage] format_blank_usb = true in the preseed)"
    fi
    part=$(readlink -f "$(sd_partition "$IMBOX_DATA_PART")")
    local grew
    grew=$(grow_sd_data)
    mount_data "$part"
    [ -z "$grew" ] || resize2fs "$part" >/dev/null 2>&1 || log "resize2fs $part failed"
    write_status sd "$part"
    log "data disk: $part (the SD card's data partition; the status page warns about SD wear)"
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

kib_used() { du -sk --exclude=lost+found --exclude='.imbox-previous-*' "$1" | cut -f1; }

too_small() {
    refuse "The disk $R_DISK is too small for the box's data ($(($1 / 1024)) MiB). Choose a larger disk."
}

request() {
    local file=$1 action="" disk="" consent="" extra=""
    [ -f "$file" ] || return 0
    # First thing: imboxd gives up if no progress line comes within 30 s.
    progress preparing 0
    trap undo_request EXIT
    trap 'exit 143' TERM INT HUP
    # imboxd writes FILE; a link could point at a file it may not read.
    [ ! -L "$file" ] || { rm -f "$file"; refuse "The box did not understand the request. Update the box and try again."; }
    read -r action disk consent extra < "$file" || true
    rm -f "$file"
    log "storage request: $action $disk $consent"
    BOX=$(box_id)

    # Validate.
    if [ "$action" != adopt ] || [ -n "$extra" ] || { [ -n "$consent" ] && [ "$consent" != format ]; }; then
        refuse "The box did not understand the request. Update the box and try again."
    fi
    R_OLD=$(findmnt -no SOURCE "$DATA" 2>/dev/null) ||
        refuse "The box has no data disk mounted. Restart the box and try again."
    usb_disks | grep -qx -- "$disk" ||
        refuse "$disk is not a USB disk connected to the box. Plug the disk in, reload the page and try again."
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
    request) request "${2:?request FILE}" ;;
    *) die "usage: storage.sh boot | request FILE" ;;
esac
