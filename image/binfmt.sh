#!/usr/bin/env bash
# Makes sure arm64 programs run through qemu-user-static (mmdebstrap runs the
# root's maintainer scripts that way): binfmt_misc mounted, qemu-aarch64 on.
set -euo pipefail
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    update-binfmts --enable qemu-aarch64
fi
