#!/bin/bash
# Finds the data disk and mounts it at /data (imbox-storage.service), and
# carries out the setup page's storage requests (imbox-storage-request).
#
#   storage.sh boot            at every boot
#   storage.sh request FILE    adopt a USB disk (format it if blank), move
#                              the data there; FILE holds one line:
#                              "adopt /dev/sdX" or "adopt /dev/sdX format"
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
# read-only mount.
marker_box() {
    local probe=$STATE/probe box=""
    mkdir -p "$probe"
    if mount -o ro,noload "$1" "$probe" 2>/dev/null; then
        box=$(sed -n 's/^box=//p' "$probe/$IMBOX_MARKER" 2>/dev/null | head -n1 || true)
        umount "$probe"
    fi
    echo "$box"
}

# classify DISK: ours | other-box | blank | has-data
classify() {
    local part
    part=$(imbox_partition "$1")
    if [ -n "$part" ]; then
        if [ "$(marker_box "$part")" = "$BOX" ]; then echo ours; else echo other-box; fi
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

# Formats DISK as one GPT partition with an ext4 file system, marked for
# this box. Prints the partition.
format_usb() {
    local disk=$1 part
    log "formatting $disk for imbox" >&2
    wipefs -q -a "$disk"
    printf 'label: gpt\n,,L\n' | sfdisk -q "$disk" >&2
    udevadm settle -t 10 || true
    part=$(lsblk -nrpo NAME,TYPE "$disk" | awk '$2 == "part" { print $1; exit }')
    [ -n "$part" ] || die "no partition on $disk after partitioning"
    mkfs.ext4 -q -F -L "$IMBOX_USB_LABEL" -m 1 -E lazy_itable_init=1,lazy_journal_init=1 "$part" >&2
    local probe=$STATE/probe
    mkdir -p "$probe"
    mount "$part" "$probe"
    write_marker "$probe"
    umount "$probe"
    echo "$part"
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

boot() {
    mkdir -p "$STATE"
    BOX=$(box_id)
    declare -gA STATES=()
    wait_for_usb
    local disk state ours="" blank=""
    for disk in $(usb_disks); do
        state=$(classify "$disk")
        STATES[$disk]=$state
        log "USB disk $disk: $state"
        case $state in
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

# storage.sh request FILE: adopt a USB disk the owner consented to.
request() {
    local file=$1 action disk consent
    [ -f "$file" ] || return 0
    read -r action disk consent < "$file" || true
    rm -f "$file"
    BOX=$(box_id)
    [ "$action" = adopt ] || die "unknown storage request: $action"
    usb_disks | grep -qx -- "$disk" || die "$disk is not a USB disk"
    local state part
    state=$(classify "$disk")
    case $state in
        blank) part=$(format_usb "$disk") ;;
        other-box | has-data)
            [ "$consent" = format ] || die "$disk is $state: adopting it needs 'adopt $disk format' (the owner consented to erase it)"
            part=$(format_usb "$disk") ;;
        ours) part=$(imbox_partition "$disk") ;;
    esac
    echo 0 > "$PROGRESS"
    systemctl stop imboxd.service
    local new=$STATE/new total
    mkdir -p "$new"
    check_fs "$part"
    mount -o noatime "$part" "$new"
    total=$(du -sk "$DATA" | cut -f1)
    cp -a "$DATA/." "$new/" &
    local cp_pid=$!
    while kill -0 "$cp_pid" 2>/dev/null; do
        echo $(( $(du -sk "$new" | cut -f1) * 100 / (total + 1) )) > "$PROGRESS"
        sleep 1
    done
    wait "$cp_pid"
    write_marker "$new"
    sync
    umount "$new"
    umount "$DATA"
    declare -gA STATES=(["$disk"]=in-use)
    mount_data "$part"
    write_status usb "$part"
    echo 100 > "$PROGRESS"
    systemctl start imboxd.service
    log "data moved to $part (USB) and mounted at $DATA"
}

case ${1:-} in
    boot) boot ;;
    request) request "${2:?request FILE}" ;;
    *) die "usage: storage.sh boot | request FILE" ;;
esac
