#!/usr/bin/env bash
# Checks of the image and Buildroot trees that need neither root nor
# Buildroot's sources (`make check-image`, run by CI):
#   - every shell script passes shellcheck;
#   - every file the Buildroot defconfig names exists;
#   - the imboxd package's version is the workspace's;
#   - the overlay's units parse (systemd-analyze verify, when available);
#   - image/dtb-modules.py walks a made-up Pi 4 tree as it should
#     (image/tests/dtb-modules-test.sh);
#   - the initramfs of out/imbox-rpi4.img, when it has been built, holds what
#     the Pi 4's root devices need (image/check-initramfs.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
status=0

scripts=(image/*.sh image/tests/*.sh buildroot/board/raspberrypi4/*.sh overlay/usr/lib/imbox/*.sh)
if shellcheck -x -e SC1091 "${scripts[@]}"; then
    echo "ok: shellcheck (${#scripts[@]} scripts)"
else
    echo "FAILED: shellcheck"; status=1
fi

missing=0
# shellcheck disable=SC2016 # a literal $(BR2_EXTERNAL_IMBOX_PATH)
while IFS= read -r path; do
    file=${path//\$(BR2_EXTERNAL_IMBOX_PATH)/buildroot}
    if [ ! -e "$file" ]; then echo "FAILED: the defconfig names $path, which does not exist"; missing=1; fi
done < <(sed -n 's/^BR2_[A-Z0-9_]*="\(\$(BR2_EXTERNAL_IMBOX_PATH)[^"]*\)"$/\1/p' buildroot/configs/*_defconfig | tr ' ' '\n')
[ "$missing" = 1 ] && status=1 || echo "ok: every file the defconfig names exists"

workspace=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
package=$(sed -n 's/^IMBOXD_VERSION = //p' buildroot/package/imboxd/imboxd.mk)
if [ "$workspace" = "$package" ]; then
    echo "ok: buildroot imboxd version $package is the workspace's"
else
    echo "FAILED: buildroot/package/imboxd/imboxd.mk has $package, Cargo.toml $workspace"; status=1
fi

for f in buildroot/external.desc buildroot/external.mk buildroot/Config.in buildroot/package/imboxd/Config.in; do
    [ -f "$f" ] || { echo "FAILED: $f missing"; status=1; }
done
grep -q '^name: IMBOX$' buildroot/external.desc || { echo "FAILED: external.desc name"; status=1; }

if command -v systemd-analyze >/dev/null; then
    units=(overlay/usr/lib/systemd/system/*.service overlay/usr/lib/systemd/system/*.path overlay/usr/lib/systemd/system/*.timer)
    # Only syntax: the programs they start exist in the image, not here.
    if out=$(SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no "${units[@]}" 2>&1 | grep -v -E "not executable|No such file|Command .* is not|is not executable|Failed to load|not-found|Unit .* not found|imboxd|/usr/lib/imbox" ); [ -z "$out" ]; then
        echo "ok: systemd-analyze verify (${#units[@]} units)"
    else
        echo "$out"; echo "note: systemd-analyze verify printed the lines above"
    fi
fi
# dtb-modules.py's walk and check, on a made-up tree, kernel and initramfs.
if ! image/tests/dtb-modules-test.sh; then
    echo "FAILED: image/tests/dtb-modules-test.sh (above)"; status=1
fi
# The initramfs against the Pi 4's device tree (image/check-initramfs.sh):
# it needs a built image, whose own kernel, DTB and modules it reads.
if [ -f out/imbox-rpi4.img ]; then
    if image/check-initramfs.sh out/imbox-rpi4.img; then
        echo "ok: the initramfs of out/imbox-rpi4.img has every driver the Pi 4's root devices need"
    else
        echo "FAILED: image/check-initramfs.sh out/imbox-rpi4.img (above)"; status=1
    fi
else
    echo "skipped: the initramfs check: there is no out/imbox-rpi4.img (make image builds it; make test-image checks it)"
fi
exit "$status"
