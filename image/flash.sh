#!/usr/bin/env bash
# Writes the imbox image onto an SD card and prepares the box's claim, so
# that nobody has to take the card out again to read the claim code:
# `make flash DEVICE=/dev/sdX`, or this script by itself next to a downloaded
# imbox-rpi4-<version>.img.xz. docs/IMAGE.md, "Flashing a card".
#
# After writing the image it makes a claim code (16 characters of Crockford
# base32, 80 random bits: the form imboxd uses), puts it in the preseed
# imbox.toml on the card's FAT boot partition as [setup] claim_code (merged
# into the preseed given with --preseed), and prints it with a QR code of the
# setup page. On the box, provision.sh hands the code to imboxd, which uses
# it instead of making one. mtools writes the file into the partition inside
# the device, so nothing is mounted.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: flash.sh IMAGE DEVICE [--preseed FILE] [--yes]

Writes IMAGE (imbox-rpi4.img, or the downloaded imbox-rpi4-<version>.img.xz,
decompressed on the fly) onto DEVICE, the SD card's whole disk (e.g. /dev/sdb
or /dev/mmcblk0, never a partition such as /dev/sdb1), then puts a new claim
code in the preseed imbox.toml on the card's boot partition and prints it
with a QR code of the setup page.

DEVICE may also be a regular file that already exists (a sparse copy acting
as a card, e.g. made with `truncate -s 4G card.img`): that is how the tests
use it, and how to prepare an image for QEMU.

  --preseed FILE  merge the claim code into this preseed (hostname, timezone,
                  Wi-Fi, SSH keys: docs/IMAGE.md, "The preseed") and write it
                  to the card; a claim_code already in it is replaced
  --yes           do not ask before erasing DEVICE

It refuses a DEVICE that is mounted, is not a whole disk, or holds the
running system. Writing to a card needs root: sudo make flash DEVICE=/dev/sdX.
Needs xz-utils (for .xz), fdisk (sfdisk), mtools and, for the QR code, qrencode.
EOF
}

die() {
    echo "flash.sh: $*" >&2
    exit 1
}
say() { echo "flash.sh: $*" >&2; }

image='' device='' preseed='' yes=0
while [ $# -gt 0 ]; do
    case $1 in
        --preseed)
            [ $# -ge 2 ] || die "--preseed needs a file: --preseed imbox.toml"
            preseed=$2
            shift 2
            ;;
        --preseed=*) preseed=${1#--preseed=}; shift ;;
        --yes | -y) yes=1; shift ;;
        -h | --help) usage; exit 0 ;;
        -*) usage >&2; die "unknown option $1" ;;
        *)
            if [ -z "$image" ]; then image=$1
            elif [ -z "$device" ]; then device=$1
            else usage >&2; die "too many arguments: $1"
            fi
            shift
            ;;
    esac
done
if [ -z "$image" ] || [ -z "$device" ]; then
    usage >&2
    exit 2
fi

# The partition layout (image/layout.env) when this script runs from a
# checkout; the same values built in for a script copied on its own.
here=$(cd "$(dirname "$0")" && pwd)
if [ -r "$here/layout.env" ]; then
    # shellcheck source=image/layout.env
    . "$here/layout.env"
fi
boot_part=${IMBOX_BOOT_PART:-1}
boot_label=${IMBOX_BOOT_LABEL:-IMBOX-BOOT}

# --- What is needed, before anything is erased -------------------------------
need() { command -v "$1" >/dev/null || die "$1 is missing: install the Debian package $2"; }
need dd coreutils
need sfdisk fdisk
need mcopy mtools
need mtype mtools
need mlabel mtools
case $image in *.xz) need xz xz-utils ;; esac
qr=1
command -v qrencode >/dev/null || { qr=0; say "qrencode is missing (Debian package qrencode): the code is printed without a QR code"; }

[ -f "$image" ] || die "no image at $image: build it with \`make image\` or download imbox-rpi4-<version>.img.xz"
[ -r "$image" ] || die "cannot read $image"

if [ -n "$preseed" ]; then
    if [ ! -f "$preseed" ] || [ ! -r "$preseed" ]; then die "cannot read the preseed $preseed"; fi
    [ "$(wc -c < "$preseed")" -le 65536 ] || die "the preseed $preseed is larger than 64 KiB: is it the right file?"
    if grep -q $'\r' "$preseed"; then
        die "the preseed $preseed has Windows line endings (CR LF): save it with Unix line endings (LF)"
    fi
fi

# The hostname the preseed gives the box (what provision.sh accepts), for
# the setup page's address; a top-level `hostname = "..."`.
hostname_of() {
    [ -n "$1" ] || return 0
    awk '
        /^[ \t]*\[/ { exit }
        /^[ \t]*hostname[ \t]*=/ {
            v = $0; sub(/^[^=]*=[ \t]*/, "", v); sub(/[ \t]*(#.*)?$/, "", v)
            if (v ~ /^".*"$/ || v ~ /^\x27.*\x27$/) v = substr(v, 2, length(v) - 2)
            print v; exit
        }
    ' "$1"
}
host=$(hostname_of "$preseed")
if [ -n "$host" ] && ! [[ $host =~ ^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$ ]]; then
    say "the preseed's hostname '$host' is not a valid host name, so the box keeps the name imbox"
    host=''
fi
host=${host:-imbox}

# --- Is DEVICE a card we may erase? -------------------------------------------
image_bytes() {
    case $image in
        *.xz) xz --robot --list -- "$image" | awk '$1 == "totals" { print $5 }' ;;
        *) stat -c %s -- "$image" ;;
    esac
}
need_bytes=$(image_bytes)
[[ $need_bytes =~ ^[0-9]+$ ]] || die "cannot tell the size of $image: is it an image (or an .img.xz)?"

if [ -b "$device" ]; then
    need lsblk util-linux
    need findmnt util-linux
    real=$(readlink -f -- "$device")
    type=$(lsblk -dno TYPE -- "$real")
    [ "$type" = disk ] || die "$device is a $type, not a whole disk: give the card's disk (e.g. /dev/sdb, not /dev/sdb1; lsblk lists them)"
    # The root file system's device and everything it sits on (partition,
    # disk, LVM or RAID beneath it).
    root=$(findmnt -nvo SOURCE / || true)
    if [ -b "$root" ] && lsblk -nspro NAME -- "$root" | grep -qxF -- "$real"; then
        die "$device holds this computer's running system (/ is on $root): choose the SD card's disk (lsblk lists the disks)"
    fi
    mounted=$(lsblk -nrpo NAME,MOUNTPOINT -- "$real" | awk '$2 != "" { print $1 " on " $2 }')
    if [ -n "$mounted" ]; then
        die "$device is mounted ($(echo "$mounted" | paste -sd, | sed 's/,/, /g')): unmount it first, e.g. udisksctl unmount -b ${real}1 or umount ${real}1"
    fi
    [ "$(lsblk -dno RO -- "$real" | tr -d ' ')" = 0 ] || die "$device is read-only: is the card's write-protect switch on?"
    [ -w "$real" ] || die "cannot write $device as $(id -un): run as root (sudo make flash DEVICE=$device)"
    have_bytes=$(lsblk -bdno SIZE -- "$real" | tr -d ' ')
    [ "$have_bytes" -ge "$need_bytes" ] || die "$device holds $have_bytes bytes, the image needs $need_bytes: use a larger card"
    what="$(lsblk -dno VENDOR,MODEL,SIZE -- "$real" | tr -s ' ' | sed 's/^ //; s/ $//')"
    card=$real
elif [ -f "$device" ]; then
    [ ! "$device" -ef "$image" ] || die "DEVICE is the image itself: give a card (or a copy of a card) to write to"
    case $(readlink -f -- "$device") in
        /dev/*) die "$device is a regular file under /dev, not a device: is the card's name mistyped? (lsblk lists the disks)" ;;
    esac
    [ -w "$device" ] || die "cannot write $device"
    what="a file acting as a card, $(stat -c %s -- "$device") bytes"
    card=$device
elif [ -e "$device" ]; then
    die "$device is neither a disk nor a regular file"
else
    case $device in
        /dev/*) die "there is no $device: plug the card in and find its disk with lsblk" ;;
        *) die "there is no $device: for a file acting as a card, create it first (truncate -s 4G $device)" ;;
    esac
fi

if [ "$yes" != 1 ]; then
    [ -t 0 ] || die "nothing to ask for confirmation on (standard input is not a terminal): add --yes to erase $device"
    echo "This erases everything on $device ($what) and writes $image to it." >&2
    read -r -p "Type yes to go on: " answer
    [ "$answer" = yes ] || die "nothing was written"
fi

# --- The image -----------------------------------------------------------------
say "writing $image to $device"
# notrunc: a file acting as a card keeps its size, as a card does.
if [[ $image == *.xz ]]; then
    xz -dc -- "$image"
else
    cat -- "$image"
fi | dd of="$card" bs=4M iflag=fullblock conv=notrunc,fsync status=progress
sync

# --- The claim code ------------------------------------------------------------
# 80 random bits as 16 characters of Crockford's base32 (no I, L, O or U),
# taken as two 40-bit halves since the shell's integers have 64 bits.
claim_code() {
    local alphabet=0123456789ABCDEFGHJKMNPQRSTVWXYZ code='' half value i
    local -a bytes
    mapfile -t bytes < <(od -An -tu1 -v -N10 /dev/urandom | tr -s ' ' '\n' | grep .)
    [ "${#bytes[@]}" = 10 ] || die "cannot read 10 random bytes from /dev/urandom"
    for half in 0 5; do
        value=0
        for i in 0 1 2 3 4; do value=$(((value << 8) | bytes[half + i])); done
        for i in 7 6 5 4 3 2 1 0; do code+=${alphabet:$(((value >> (5 * i)) & 31)):1}; done
    done
    echo "${code:0:4}-${code:4:4}-${code:8:4}-${code:12:4}"
}
code=$(claim_code)

# The preseed with `claim_code` in its [setup] table: put right under an
# existing [setup] header (replacing any claim_code there), or a new table
# at the end. TOML allows a table only once, so appending is not enough.
merge_preseed() {
    local from=${1:-/dev/null}
    awk -v code="$2" '
        function emit() { print "claim_code = \"" code "\""; done = 1 }
        /^[ \t]*\[/ {
            s = $0; sub(/^[ \t]*\[[ \t]*/, "", s); sub(/[ \t]*\].*$/, "", s)
            in_setup = (s == "setup")
            print
            if (in_setup && !done) emit()
            next
        }
        in_setup && /^[ \t]*claim_code[ \t]*=/ { next }
        { print }
        END {
            if (!done) {
                if (NR > 0) print ""
                print "# The claim code image/flash.sh printed when it wrote this card."
                print "[setup]"
                emit()
            }
        }
    ' "$from"
}

# The boot partition: where it starts inside the device, from the partition
# table just written.
dump=$(sfdisk -d -- "$card") || die "$device has no partition table after writing: is $image an imbox image?"
sector=$(echo "$dump" | sed -n 's/^sector-size: *\([0-9]*\)$/\1/p')
start=$(echo "$dump" | grep ' : start=' | sed -n "${boot_part}s/.*start= *\([0-9]*\).*/\1/p")
[ -n "$start" ] || die "$device has no partition $boot_part after writing: is $image an imbox image?"
offset=$((start * ${sector:-512}))
fat="$card@@$offset"
export MTOOLS_SKIP_CHECK=1
label=$(mlabel -i "$fat" -s :: 2>/dev/null | sed -n 's/^ *Volume label is \(.*[^ ]\) *$/\1/p')
[ "$label" = "$boot_label" ] || die "partition $boot_part of $device is not imbox's boot partition (label '${label:-none}', expected $boot_label): is $image an imbox image?"

tmp=$(mktemp)
trap 'rm -f "$tmp" "$tmp.back"' EXIT
chmod 0600 "$tmp"
merge_preseed "$preseed" "$code" > "$tmp"
mcopy -o -i "$fat" "$tmp" ::imbox.toml
mtype -i "$fat" ::imbox.toml > "$tmp.back"
cmp -s "$tmp" "$tmp.back" || die "the preseed read back from $device differs from what was written: the card may be failing"
sync
say "wrote the preseed imbox.toml with the claim code to the boot partition ($boot_label)"

# --- What the person needs -----------------------------------------------------
url="http://$host.local/setup"
cat <<EOF

The card is ready. This box's claim code:

    $code

Put the card in the Raspberry Pi, connect it to your network and switch it
on. Then open $url (or scan the QR code below) and type the code.
It works once. Keep it to yourself until the box is claimed: whoever types it
first becomes the box's owner. The box also shows it on a screen connected to
its HDMI port, and writes it to imbox-claim.txt on the card's boot partition.

EOF
if [ "$qr" = 1 ]; then
    qrencode -t ANSIUTF8 -- "$url"
fi
