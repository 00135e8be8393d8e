#!/usr/bin/env bash
# The Kotlin bindings' test (make test-kotlin): compiles the Kotlin bindings
# that `make bindings` generated from libimbox_ffi.so with the samples
# (ffi/samples/*.kt) and the test program (ffi/tests/kotlin/*.kt), and runs
# the program on the JVM, JNA loading libimbox_ffi.so, against a real imboxd
# on 127.0.0.1 that the program starts itself (Box.kt).
#
# The toolchain comes from ffi/tests/kotlin/toolchain.sh (cached in
# /var/cache/imbox-kotlin/). The compiled jars are cached there too, named
# by a hash of their sources, so a fresh clone (CI) compiles only when the
# bindings, the sample or the test changed.
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
jars=$KOTLIN_CACHE/jars
mkdir -p "$jars"

# Two jars, each compiled only when its sources changed (kotlinc takes
# most of a minute here even for a small program): the generated bindings
# (their warnings are UniFFI's business), then the samples and the test
# program, which must compile without a warning.
classpath=$KOTLINX_COROUTINES:$JNA_JAR
# compile NAME ALSO KOTLINC_OPTIONS... -- SOURCES...: sets $compiled to the
# jar $jars/NAME-HASH.jar, HASH covering the sources' contents, the options
# and ALSO. The three newest jars of a NAME are kept.
compile() {
    local name=$1 also=$2
    shift 2
    local options=()
    while [ "$1" != -- ]; do
        options+=("$1")
        shift
    done
    shift
    local hash
    hash=$(cat "$@" <(echo "$KOTLIN_HOME $classpath ${options[*]} $also") | sha256sum | cut -c1-32)
    compiled=$jars/$name-$hash.jar
    if [ ! -e "$compiled" ]; then
        echo "kotlinc: $name.jar from $# files" >&2
        "$KOTLINC" -jvm-target 17 "${options[@]}" -d "$compiled.partial.jar" "$@"
        mv "$compiled.partial.jar" "$compiled"
        # shellcheck disable=SC2012 # names are ours: NAME-HEX.jar
        ls -t "$jars/$name"-*.jar | tail -n +4 | xargs -r rm -f
    fi
    touch "$compiled"
}
mapfile -t generated < <(find "$bindings" -name '*.kt' | sort)
mapfile -t ours < <(find "$root/ffi/samples" "$here" -name '*.kt' | sort)
compile imbox-bindings "" -nowarn -cp "$classpath" -- "${generated[@]}"
bindings_jar=$compiled
compile imbox-kotlin-test "$(basename "$bindings_jar")" \
    -Werror -cp "$bindings_jar:$classpath" -- "${ours[@]}"
test_jar=$compiled

# A hang guard for the whole program (it takes well under a minute); the
# JVM's shutdown hook stops imboxd.
exec timeout --kill-after=10 600 java \
    -Djna.library.path="$target/debug" \
    -cp "$test_jar:$bindings_jar:$KOTLIN_STDLIB:$classpath" \
    imbox.kotlintest.MainKt "$target"
