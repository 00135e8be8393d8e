#!/usr/bin/env bash
# The Kotlin bindings' test (make test-kotlin): compiles the Kotlin bindings
# that `make bindings` generated from libimbox_ffi.so with the samples
# (ffi/samples/*.kt) and the test program (ffi/tests/kotlin/*.kt), and runs
# the program on the JVM, JNA loading libimbox_ffi.so, against a real imboxd
# on 127.0.0.1 that the program starts itself (Box.kt).
#
# The toolchain comes from ffi/tests/kotlin/toolchain.sh (cached in
# /var/cache/imbox-kotlin/). The compiled program is kept in
# $CARGO_TARGET_DIR/kotlin/ and recompiled only when a source changed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
cd "$root"

target=${CARGO_TARGET_DIR:-$root/target}
eval "$("$here/toolchain.sh")"

# Built by `make build bindings` (make test-kotlin does): the daemon, the
# CLI (the test's second client), the SDK's shared library and its Kotlin.
library=$target/debug/libimbox_ffi.so
bindings=$target/bindings/kotlin
for needed in "$target/debug/imboxd" "$target/debug/imbox" "$library" "$bindings/org/imbox/sdk/imbox.kt"; do
    [ -e "$needed" ] || { echo "run.sh: $needed is missing: run make build bindings" >&2; exit 1; }
done
out=$target/kotlin
mkdir -p "$out"

# Two jars, each compiled only when its sources changed (kotlinc takes
# most of a minute here even for a small program): the generated bindings
# (their warnings are UniFFI's business), then the samples and the test
# program, which must compile without a warning.
classpath=$KOTLINX_COROUTINES:$JNA_JAR
# compile JAR ALSO KOTLINC_OPTIONS... -- SOURCES...: ALSO is text that,
# when it changes, also calls for a new compile.
compile() {
    local jar=$1 also=$2
    shift 2
    local options=()
    while [ "$1" != -- ]; do
        options+=("$1")
        shift
    done
    shift
    local stamp
    stamp=$(cat "$@" <(echo "$KOTLIN_HOME $classpath ${options[*]} $also") | sha256sum | cut -c1-64)
    if [ "$(cat "$jar.sha256" 2>/dev/null)" != "$stamp" ]; then
        rm -f "$jar" "$jar.sha256"
        echo "kotlinc: $(basename "$jar") from $# files" >&2
        "$KOTLINC" -jvm-target 17 "${options[@]}" -d "$jar" "$@"
        echo "$stamp" > "$jar.sha256"
    fi
}
mapfile -t generated < <(find "$bindings" -name '*.kt' | sort)
mapfile -t ours < <(find "$root/ffi/samples" "$here" -name '*.kt' | sort)
compile "$out/imbox-bindings.jar" "" -nowarn -cp "$classpath" -- "${generated[@]}"
compile "$out/imbox-kotlin-test.jar" "$(cat "$out/imbox-bindings.jar.sha256")" \
    -Werror -cp "$out/imbox-bindings.jar:$classpath" -- "${ours[@]}"

# A hang guard for the whole program (it takes well under a minute); the
# JVM's shutdown hook stops imboxd.
exec timeout --kill-after=10 600 java \
    -Djna.library.path="$target/debug" \
    -cp "$out/imbox-kotlin-test.jar:$out/imbox-bindings.jar:$KOTLIN_STDLIB:$classpath" \
    imbox.kotlintest.MainKt "$target"
