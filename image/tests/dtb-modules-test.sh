#!/usr/bin/env bash
# Tests of image/dtb-modules.py that need no built image (make check-image
# runs them): a small device tree shaped like the Pi 4's root-device paths,
# a made-up kernel (modules.alias, modules.dep, built-in lists and a gzip'd
# "Image" holding the compatibles of its built-in drivers) and initramfs
# archives made with cpio. They check that the walk follows supplies, GPIOs,
# resets, inherited interrupt parents, interrupt-map and parent buses; skips
# a disabled clock; expands modules.dep; and fails naming what is missing.
# The real thing is checked on the built image by image/check-initramfs.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tool=$here/../dtb-modules.py
for t in dtc cpio gzip; do
    command -v "$t" >/dev/null || { echo "dtb-modules-test: $t is missing (device-tree-compiler, cpio, gzip)" >&2; exit 2; }
done
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
failures=0
fail() { echo "FAILED: dtb-modules-test: $*"; failures=$((failures + 1)); }

dtc -@ -q -I dts -O dtb -o "$t/pi.dtb" - <<'DTS'
/dts-v1/;
/ {
    #address-cells = <1>;
    #size-cells = <1>;
    interrupt-parent = <&gic>;
    gic: interrupt-controller { compatible = "test,gic"; interrupt-controller; #interrupt-cells = <1>; };
    soc {
        compatible = "simple-bus";
        #address-cells = <1>;
        #size-cells = <1>;
        ranges;
        expgpio: gpio { compatible = "raspberrypi,firmware-gpio"; gpio-controller; #gpio-cells = <2>; };
        dsi0: clock-off { compatible = "test,dsi"; #clock-cells = <0>; status = "disabled"; };
        reset: reset { compatible = "raspberrypi,firmware-reset"; #reset-cells = <1>; };
    };
    sd_vcc_reg: regulator-sd-vcc { compatible = "regulator-fixed"; gpio = <&expgpio 6 0>; };
    emmc2bus {
        compatible = "simple-bus";
        #address-cells = <1>;
        #size-cells = <1>;
        ranges;
        emmc2: mmc@7e340000 {
            compatible = "brcm,bcm2711-emmc2";
            reg = <0x7e340000 0x100>;
            interrupts = <126>;
            vmmc-supply = <&sd_vcc_reg>;
            clocks = <&dsi0>;
        };
    };
    scb {
        compatible = "simple-bus";
        #address-cells = <1>;
        #size-cells = <1>;
        ranges;
        pcie0: pcie@7d500000 {
            compatible = "brcm,bcm2711-pcie";
            device_type = "pci";
            reg = <0x7d500000 0x9310>;
            #address-cells = <3>;
            #size-cells = <2>;
            #interrupt-cells = <1>;
            interrupt-map-mask = <0 0 0 7>;
            interrupt-map = <0 0 0 1 &gic 143>;
            pci@0,0 {
                device_type = "pci";
                #address-cells = <3>;
                #size-cells = <2>;
                reg = <0 0 0 0 0>;
                usb@0,0 { reg = <0 0 0 0 0>; resets = <&reset 0>; };
            };
        };
    };
};
DTS

kver=6.12.0-test
m=$t/modules/$kver
mkdir -p "$m"
cat > "$m/modules.alias" <<'EOF'
alias of:N*T*Cbrcm,bcm2711-emmc2C* sdhci_iproc
alias of:N*T*Cbrcm,bcm2711-emmc2 sdhci_iproc
alias platform:reg-fixed-voltage fixed
alias of:N*T*Cregulator-fixed fixed
alias of:N*T*Craspberrypi,firmware-reset reset_raspberrypi
alias pci:v*d*sv*sd*bc0Csc03i30* xhci_pci
alias usb:v*p*d*dc*dsc*dp*ic08isc06ip50in* usb_storage
alias usb:v*p*d*dc*dsc*dp*ic08isc06ip50in* uas
alias usb:v*p*d*dc*dsc*dp*ic08isc06ip62in* uas
alias scsi:t-0x00* sd_mod
EOF
cat > "$m/modules.dep" <<'EOF'
kernel/drivers/mmc/host/sdhci-iproc.ko.xz: kernel/drivers/mmc/host/sdhci.ko.xz
kernel/drivers/mmc/host/sdhci.ko.xz:
kernel/drivers/regulator/fixed.ko.xz:
kernel/drivers/reset/reset-raspberrypi.ko.xz:
kernel/drivers/usb/host/xhci-pci.ko.xz: kernel/drivers/usb/host/xhci-hcd.ko.xz
kernel/drivers/usb/host/xhci-hcd.ko.xz:
kernel/drivers/usb/storage/uas.ko.xz: kernel/drivers/usb/storage/usb-storage.ko.xz
kernel/drivers/usb/storage/usb-storage.ko.xz:
kernel/drivers/scsi/sd_mod.ko.xz:
kernel/fs/squashfs/squashfs.ko.xz:
kernel/fs/erofs/erofs.ko.xz:
kernel/fs/fat/vfat.ko.xz:
kernel/fs/nls/nls_cp437.ko.xz:
kernel/fs/nls/nls_ascii.ko.xz:
kernel/drivers/virtio/virtio_pci.ko.xz:
kernel/drivers/block/virtio_blk.ko.xz:
kernel/drivers/virtio/virtio_mmio.ko.xz:
EOF
echo "kernel/drivers/mmc/core/mmc_block.ko" > "$m/modules.builtin"
printf 'mmc_block.alias=mmc:block\0mmc_block.license=GPL\0' > "$m/modules.builtin.modinfo"
# An arm64 Image header (magic "ARM\x64" at byte 56), then the compatibles of
# the built-in drivers as of_device_id tables hold them: NUL on both sides.
{
    head -c 56 /dev/zero; printf 'ARM\x64'; head -c 4 /dev/zero
    for c in test,gic simple-bus raspberrypi,firmware-gpio brcm,bcm2711-pcie; do printf '\0%s\0' "$c"; done
} | gzip > "$t/vmlinuz"
run() { /usr/bin/python3 "$tool" --dtb "$t/pi.dtb" --modules "$m" --kernel "$t/vmlinuz" "$@"; }

# An initramfs as initramfs-tools lays it out, holding the given modules.
initrd() {
    local out=$1 dir; shift
    dir=$(mktemp -d -p "$t")
    mkdir -p "$dir/usr/lib/modules/$kver"
    cp "$m/modules.dep" "$dir/usr/lib/modules/$kver/"
    for path in "$@"; do mkdir -p "$dir/usr/lib/modules/$kver/$(dirname "$path")"; : > "$dir/usr/lib/modules/$kver/$path"; done
    (cd "$dir" && find . | cpio -o -H newc --quiet | gzip) > "$out"
}

# --list: exactly the modules the walk needs, then the fixed lists.
if list=$(run --list); then
    got=$(grep -v '^#' <<< "$list" | head -n 7 | sort | tr '\n' ' ')
    want="fixed reset_raspberrypi sd_mod sdhci_iproc uas usb_storage xhci_pci "
    [ "$got" = "$want" ] || fail "--list gave the modules '$got', expected '$want'"
else
    fail "--list failed"
fi

all=(kernel/drivers/mmc/host/sdhci-iproc.ko.xz kernel/drivers/mmc/host/sdhci.ko.xz
    kernel/drivers/regulator/fixed.ko.xz kernel/drivers/reset/reset-raspberrypi.ko.xz
    kernel/drivers/usb/host/xhci-pci.ko.xz kernel/drivers/usb/host/xhci-hcd.ko.xz
    kernel/drivers/usb/storage/uas.ko.xz kernel/drivers/usb/storage/usb-storage.ko.xz
    kernel/drivers/scsi/sd_mod.ko.xz kernel/fs/squashfs/squashfs.ko.xz
    kernel/drivers/virtio/virtio_pci.ko.xz kernel/drivers/block/virtio_blk.ko.xz
    kernel/drivers/virtio/virtio_mmio.ko.xz)
initrd "$t/good.img" "${all[@]}"
if out=$(run --check "$t/good.img"); then
    for want in \
        'vmmc-supply → sd_vcc_reg: regulator-sd-vcc (regulator-fixed) → fixed (reg-fixed-voltage): in the initramfs' \
        'regulator-sd-vcc (regulator-fixed) → gpio → expgpio: gpio (raspberrypi,firmware-gpio): built in' \
        'interrupt-parent (inherited from /) → gic: interrupt-controller (test,gic): built in' \
        'pcie0: pcie@7d500000 (brcm,bcm2711-pcie) → interrupt-map → gic' \
        'usb@0,0 → resets → reset (raspberrypi,firmware-reset) → reset-raspberrypi: in the initramfs' \
        'skipped: emmc2: mmc@7e340000 (brcm,bcm2711-emmc2) → clocks → dsi0: clock-off (test,dsi): disabled' \
        '[mmc:block]: built in (mmc_block)'; do
        grep -qF -- "$want" <<< "$out" || fail "--check on a complete initramfs did not print '$want'"
    done
else
    echo "$out"; fail "--check failed on an initramfs with every module"
fi

# Without the fixed regulator, and without xhci-hcd, which only modules.dep names.
mapfile -t some < <(printf '%s\n' "${all[@]}" | grep -v -e /fixed.ko -e /xhci-hcd.ko)
initrd "$t/bad.img" "${some[@]}"
rc=0; out=$(run --check "$t/bad.img") || rc=$?
[ "$rc" = 1 ] || fail "--check exited $rc on an initramfs without the SD regulator; expected 1"
grep -qF 'vmmc-supply → sd_vcc_reg: regulator-sd-vcc (regulator-fixed) → fixed (reg-fixed-voltage): MISSING' <<< "$out" ||
    fail "--check did not name the missing regulator with its path"
grep -qF 'xhci-pci needs xhci-hcd (modules.dep): MISSING' <<< "$out" || fail "--check did not expand modules.dep"
grep -q '^FAILED: .* lacks 2 module(s) .*: fixed (reg-fixed-voltage), xhci-hcd$' <<< "$out" ||
    fail "--check's summary did not name exactly fixed and xhci-hcd: $(grep '^FAILED' <<< "$out")"

# A module list (--check-modules) is expanded through modules.dep as
# initramfs-tools copies it: xhci_pci brings xhci-hcd.
printf '%s\n' sdhci_iproc fixed reset_raspberrypi xhci_pci uas sd_mod squashfs virtio_pci virtio_blk virtio_mmio > "$t/list"
out=$(run --check-modules "$t/list") || { echo "$out"; fail "--check-modules failed on a complete list"; }
printf '# comment\nsdhci_iproc\nsquashfs\n' > "$t/old-list"
rc=0; out=$(run --check-modules "$t/old-list") || rc=$?
if [ "$rc" != 1 ] || ! grep -q 'lacks .* fixed (reg-fixed-voltage)' <<< "$out"; then
    fail "--check-modules on a list without the regulator exited $rc and did not name it"
fi

if [ "$failures" = 0 ]; then
    echo "ok: dtb-modules.py on a made-up Pi 4 tree, kernel and initramfs"
fi
exit $((failures > 0))
