#!/usr/bin/env bash
# Makes (once) the Debian trixie root that holds the Swift toolchain
# (Debian's swiftlang 6.0), and prints its path.
#
#   ffi/tests/swift/root.sh
#
# Bookworm has no Swift; trixie's swiftlang runs in a chroot of its own.
# The root is kept in $IMBOX_SWIFT_CACHE (default /var/cache/imbox-swift)
# under a name made from the suite, the mirror and the package list, so a
# change to either builds a new one and the old ones are removed. The
# downloaded packages are not kept: they would add 515 MB to save a
# download that takes seconds here. Needs root and mmdebstrap.
set -euo pipefail

suite=${IMBOX_SWIFT_SUITE:-trixie}
mirror=${IMBOX_MIRROR:-http://deb.debian.org/debian}
cache=${IMBOX_SWIFT_CACHE:-/var/cache/imbox-swift}

# swiftc and what it calls: Debian's swiftlang brings its own clang for
# the C module (imboxFFI.h) and links through it; libc6-dev holds the
# crt files and libc's headers. Recommends are not installed.
packages=(swiftlang libc6-dev)

# swiftlang is one 2 GB package: the debugger, the language server, the
# package manager, docc, the embedded and static standard libraries. The
# test only runs swiftc (the driver, the frontend, clang, lld and the
# shared standard library), so dpkg leaves the rest out (about 1.3 GB).
tc=/usr/libexec/swift
unused=(
    "$tc/bin/lldb*" "$tc/bin/clangd" "$tc/bin/sourcekit-lsp" "$tc/bin/docc"
    "$tc/bin/swift-format" "$tc/bin/swift-package" "$tc/bin/swift-build-tool"
    "$tc/bin/llvm-cov" "$tc/bin/llvm-profdata" "$tc/bin/swift-help" "$tc/bin/repl_swift"
    "$tc/lib/liblldb*" "$tc/lib/libsourcekitdInProc.so" "$tc/lib/libLTO.so*"
    "$tc/lib/swift_static/*" "$tc/lib/swift/embedded/*" "$tc/lib/swift/pm/*"
    "$tc/lib/swift/FrameworkABIBaseline/*" "$tc/share/docc/*"
)
excludes=()
for path in "${unused[@]}"; do
    excludes+=("--dpkgopt=path-exclude=$path")
done

# One build at a time: a second run waits for the first one's root.
mkdir -p "$cache"
exec 9>"$cache/lock"
flock 9

key=$(printf '%s\n' "$suite" "$mirror" "${packages[@]}" "${unused[@]}" | sha256sum | cut -c1-16)
root="$cache/root-$key"
if [ -x "$root/usr/bin/swiftc" ] && [ -f "$root/.complete" ]; then
    echo "$root"
    exit 0
fi

[ "$(id -u)" = 0 ] || { echo "building the Swift root ($root) needs root (mmdebstrap, chroot)" >&2; exit 1; }
command -v mmdebstrap >/dev/null || { echo "mmdebstrap is missing: apt-get install mmdebstrap" >&2; exit 1; }

# Roots made from another package list are of no further use.
for old in "$cache"/root-*; do
    [ -e "$old" ] && [ "$old" != "$root" ] && rm -rf "$old"
done
rm -rf "$root" "$root.tmp"

started=$(date +%s)
mmdebstrap \
    --variant=minbase \
    --aptopt='APT::Install-Recommends "false"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    "${excludes[@]}" \
    --include="$(IFS=,; echo "${packages[*]}")" \
    "$suite" "$root.tmp" "deb $mirror $suite main"
mv "$root.tmp" "$root"
touch "$root/.complete"
echo "built the Swift root in $(( $(date +%s) - started )) s: $(du -sh "$root" | cut -f1) ($root)" >&2
echo "$root"
