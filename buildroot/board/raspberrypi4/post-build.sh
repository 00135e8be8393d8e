#!/usr/bin/env bash
# Buildroot post-build script: $1 is the target directory. The overlay
# (BR2_ROOTFS_OVERLAY, the repository's overlay/) is already in place.
set -euo pipefail
target=${1:?}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)

"$repo/image/write-etc.sh" "$target"
chmod 0755 "$target"/usr/lib/imbox/*.sh

# Buildroot's OpenSSH names its unit sshd.service, and its sshd_config does
# not read sshd_config.d/ by itself.
mkdir -p "$target/etc/systemd/system/sshd.service.d"
cp "$target/etc/systemd/system/ssh.service.d/imbox.conf" "$target/etc/systemd/system/sshd.service.d/imbox.conf"
if [ -f "$target/etc/ssh/sshd_config" ] && ! grep -q '^Include /etc/ssh/sshd_config.d/' "$target/etc/ssh/sshd_config"; then
    sed -i '1i Include /etc/ssh/sshd_config.d/*.conf' "$target/etc/ssh/sshd_config"
fi
