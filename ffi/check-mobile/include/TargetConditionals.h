/* A stand-in for the Apple SDK's TargetConditionals.h, used only by
 * ffi/check-mobile/check.sh: ring's C sources include it on Apple targets to
 * learn which Apple OS they are built for, and there is no Apple SDK on
 * Linux. `cargo check` compiles those sources but never links them; a real
 * iOS build uses Xcode's SDK and not this file. */
#ifndef IMBOX_CHECK_TARGET_CONDITIONALS_H
#define IMBOX_CHECK_TARGET_CONDITIONALS_H
#define TARGET_OS_MAC 1
#define TARGET_OS_OSX 0
#define TARGET_OS_IPHONE 1
#define TARGET_OS_IOS 1
#define TARGET_OS_TV 0
#define TARGET_OS_WATCH 0
#define TARGET_OS_SIMULATOR 0
#define TARGET_OS_EMBEDDED 1
#define TARGET_CPU_ARM64 1
#endif
