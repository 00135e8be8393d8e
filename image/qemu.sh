#!/usr/bin/env bash
# Boots an imbox SD-card image under QEMU (`make qemu`, and the boot tests).
#
#   image/qemu.sh --sd FILE [--usb FILE]... [--ports HTTP,HTTPS,QUIC]
#                 [--append "ARGS"] [--serial FILE] [--monitor SOCKET]
#                 [--pidfile FILE] [--daemonize] [--ssh PORT] [--rtc DATE]
#
# The machine is `-M virt -cpu cortex-a72` (the Pi 4's core): QEMU cannot
# boot a Pi 4 from its SD controller, so the SD image is a virtio disk
# (vda; the root is found by PARTUUID, as on the Pi). The kernel, the
# initramfs and the command line come from the image's own boot partition
# (read with mtools), the command line with its console moved to the
# virt machine's serial port. Each --usb FILE is a USB mass-storage disk on
# an xHCI controller, as a USB SSD on the Pi. The box's TCP 80 and 443 and
# UDP 443 are forwarded to 127.0.0.1:HTTP, :HTTPS and :QUIC, and with
# --ssh its TCP 22 to 127.0.0.1:PORT. --rtc DATE (e.g. 2000-01-01) starts the
# machine's real-time clock there instead of at the host's time: the Pi has no
# RTC, so its clock starts wrong at every boot.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=image/layout.env
. "$here/layout.env"

sd=""
usb=()
ports=8080,8443,8443
append=""
serial=""
monitor=""
pidfile=""
daemonize=0
ssh_port=""
rtc=""
while [ $# -gt 0 ]; do
    case $1 in
        --sd) sd=$2; shift 2 ;;
        --usb) usb+=("$2"); shift 2 ;;
        --ports) ports=$2; shift 2 ;;
        --append) append=$2; shift 2 ;;
        --serial) serial=$2; shift 2 ;;
        --monitor) monitor=$2; shift 2 ;;
        --pidfile) pidfile=$2; shift 2 ;;
        --daemonize) daemonize=1; shift ;;
        --ssh) ssh_port=$2; shift 2 ;;
        --rtc) rtc=$2; shift 2 ;;
        *) echo "qemu.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ -n "$sd" ] || { echo "usage: qemu.sh --sd IMAGE [--usb DISK]..." >&2; exit 2; }
IFS=, read -r http_port https_port quic_port <<<"$ports"
forwards="hostfwd=tcp:127.0.0.1:$http_port-:80,hostfwd=tcp:127.0.0.1:$https_port-:443,hostfwd=udp:127.0.0.1:$quic_port-:443"
[ -z "$ssh_port" ] || forwards+=",hostfwd=tcp:127.0.0.1:$ssh_port-:22"

# The boot partition's offset, for mtools.
boot_start=$(sfdisk -d "$sd" | awk -v n="$IMBOX_BOOT_PART" '
    $1 ~ ("[^0-9]" n "$") { for (i = 1; i <= NF; i++) if ($i == "start=") { gsub(",", "", $(i+1)); print $(i+1) } }')
boot_start=${boot_start:-$(sfdisk -d "$sd" | sed -n "s/.*${IMBOX_BOOT_PART} : start= *\([0-9]*\),.*/\1/p")}
[ -n "$boot_start" ] || { echo "qemu.sh: no boot partition in $sd" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
boot="$sd@@$((boot_start * 512))"
for f in vmlinuz initrd.img cmdline.txt; do
    mcopy -n -i "$boot" "::$f" "$tmp/$f"
done
cmdline=$(tr -s ' \n' ' ' < "$tmp/cmdline.txt" | sed -e 's/console=[^ ]*//g' -e 's/  */ /g')
cmdline="console=ttyAMA0,115200 $cmdline $append"

# shellcheck disable=SC2054 # commas inside QEMU's option values
args=(
    -M virt -cpu cortex-a72 -smp 2 -m 1024
    -kernel "$tmp/vmlinuz" -initrd "$tmp/initrd.img" -append "$cmdline"
    -drive "if=none,id=sd,file=$sd,format=raw,cache=writeback"
    -device virtio-blk-pci,drive=sd
    -device qemu-xhci,id=xhci
    -netdev "user,id=net0,$forwards"
    -device virtio-net-pci,netdev=net0,romfile=
    -device virtio-rng-pci
    # A hardware watchdog, as the Pi's: systemd arms it (RuntimeWatchdogSec).
    -device i6300esb -action watchdog=reset
)
n=0
for disk in "${usb[@]}"; do
    args+=(-drive "if=none,id=usb$n,file=$disk,format=raw,cache=writeback"
        -device "usb-storage,bus=xhci.0,drive=usb$n,serial=IMBOXUSB$n")
    n=$((n + 1))
done
if [ -n "$serial" ]; then
    args+=(-display none -serial "file:$serial" -monitor none)
else
    args+=(-nographic)
fi
[ -z "$monitor" ] || args+=(-qmp "unix:$monitor,server=on,wait=off")
[ -z "$pidfile" ] || args+=(-pidfile "$pidfile")
[ -z "$rtc" ] || args+=(-rtc "base=$rtc")

echo "imbox under QEMU: http://127.0.0.1:$http_port/  https://127.0.0.1:$https_port/  quic://127.0.0.1:$quic_port (UDP)"
echo "  SD card: $sd   USB disks: ${usb[*]:-none}${ssh_port:+   ssh: 127.0.0.1:$ssh_port}"
[ -n "$serial" ] || echo "  serial console below; quit with Ctrl-A X"
if [ "$daemonize" = 1 ]; then
    # The kernel and initramfs must outlive this script: next to the pid
    # file when there is one (the caller cleans up), else in a new
    # temporary directory.
    if [ -n "$pidfile" ]; then
        keep=$(dirname "$pidfile")/qemu-boot-files
        mkdir -p "$keep"
    else
        keep=$(mktemp -d)
    fi
    cp "$tmp/vmlinuz" "$tmp/initrd.img" "$keep/"
    for i in "${!args[@]}"; do args[i]=${args[i]//$tmp/$keep}; done
    qemu-system-aarch64 "${args[@]}" -daemonize
else
    qemu-system-aarch64 "${args[@]}"
fi
