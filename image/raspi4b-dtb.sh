#!/usr/bin/env bash
# Makes the test-only copy of the Pi 4's device tree that QEMU's raspi4b
# machine can boot (`image/test-raspi4b.sh`). Only what the emulation lacks
# is changed, each for the reason given; docs/IMAGE.md lists them. The
# image's own bcm2711-rpi-4-b.dtb, the one a real Pi boots, is never changed.
#
#   image/raspi4b-dtb.sh IN.dtb OUT.dtb
set -euo pipefail
in=${1:?usage: raspi4b-dtb.sh IN.dtb OUT.dtb}
out=${2:?usage: raspi4b-dtb.sh IN.dtb OUT.dtb}
cp "$in" "$out"

# 1. QEMU emulates no HDMI block (the /soc nodes at 7ec00000-7effffff: HDMI,
#    its interrupt controllers, I2C and CEC): with them enabled the kernel
#    dies in brcmstb_l2_intc_of_init and brcmstb_i2c_probe.
while read -r node; do
    fdtput -t s "$out" "/soc/$node" status disabled
done < <(fdtget -l "$in" /soc | grep -E '@7e[c-f][0-9a-f]{5}$')

# 2. The SD card's supplies sit on the firmware's GPIO expander, which QEMU
#    does not emulate (its mailbox property calls fail): the 1.8/3.3 V I/O
#    regulator (regulator-gpio) becomes a fixed 3.3 V one, and the card's
#    power regulator loses its GPIO enable. Their drivers are still needed
#    and still probe: regulator-fixed drives both.
reg=$(fdtget "$in" /__symbols__ sd_io_1v8_reg)
fdtput -t s "$out" "$reg" compatible regulator-fixed
fdtput -t i "$out" "$reg" regulator-min-microvolt 3300000
fdtput -t i "$out" "$reg" regulator-max-microvolt 3300000
for p in gpios states regulator-settling-time-us; do fdtput -d "$out" "$reg" "$p" 2>/dev/null || true; done
vcc=$(fdtget "$in" /__symbols__ sd_vcc_reg)
for p in gpio enable-active-high; do fdtput -d "$out" "$vcc" "$p" 2>/dev/null || true; done

# 3. QEMU wires -drive if=sd to the Arasan controller (mmc@7e300000, which
#    on a real Pi 4 serves the Wi-Fi chip): without the Wi-Fi power sequence
#    (a GPIO on the expander again) and "non-removable" it probes the card.
sdio=$(fdtget -l "$in" /soc | grep -m1 '^mmc@7e300000$')
for p in mmc-pwrseq non-removable; do fdtput -d "$out" "/soc/$sdio" "$p" 2>/dev/null || true; done
