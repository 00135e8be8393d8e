#!/bin/sh
# `cargo check -p imbox-ffi` for the phones' targets (make check-mobile):
# aarch64-linux-android and aarch64-apple-ios, without the Android NDK or an
# Apple SDK (neither installs on Debian). The Rust code of the SDK, the
# client library and every dependency is checked for real. The one C
# dependency, ring, compiles its C in its build script even under `cargo
# check`; here Debian's clang compiles it for each target in ring's own
# mode without libc headers (RING_CORE_NOSTDLIBINC, as for bare-metal
# targets: clang's freestanding headers only), plus a stub of the Apple
# SDK's TargetConditionals.h for iOS. Those objects are never linked: a
# real app build uses the NDK or Xcode, and their libc headers.
#
# Needs: rustup, clang, llvm (llvm-ar).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cargo=${CARGO:-cargo}
command -v clang >/dev/null || { echo "check-mobile: clang is missing (apt-get install clang llvm)" >&2; exit 1; }
ar=$(command -v llvm-ar || ls /usr/bin/llvm-ar-* 2>/dev/null | head -n1)
[ -n "$ar" ] || { echo "check-mobile: llvm-ar is missing (apt-get install llvm)" >&2; exit 1; }
installed=$(rustup target list --installed)
for target in aarch64-linux-android aarch64-apple-ios; do
	echo "$installed" | grep -qx "$target" || rustup target add "$target"
done
headers="-ffreestanding -nostdlibinc -DRING_CORE_NOSTDLIBINC=1 -isystem $(clang -print-resource-dir)/include"

echo "check-mobile: aarch64-linux-android"
CC_aarch64_linux_android=clang AR_aarch64_linux_android="$ar" \
CFLAGS_aarch64_linux_android="--target=aarch64-linux-android21 $headers" \
	$cargo check --locked -p imbox-ffi --target aarch64-linux-android

echo "check-mobile: aarch64-apple-ios"
# cc-rs asks xcrun for the SDK unless SDKROOT names one: an empty directory
# will do, as no header comes from it.
sdk=$(mktemp -d)
trap 'rmdir "$sdk"' EXIT
SDKROOT="$sdk" IPHONEOS_DEPLOYMENT_TARGET=13.0 CC_aarch64_apple_ios=clang AR_aarch64_apple_ios="$ar" \
CFLAGS_aarch64_apple_ios="$headers -isystem $here/include" \
	$cargo check --locked -p imbox-ffi --target aarch64-apple-ios
