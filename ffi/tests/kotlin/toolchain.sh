#!/usr/bin/env bash
# The Kotlin/JVM toolchain of the Kotlin bindings' test, installed once into
# /var/cache/imbox-kotlin/ and reused from there.
#
#   ffi/tests/kotlin/toolchain.sh          installs what is missing, prints the
#                                          toolchain's paths as shell assignments
#
# - The Kotlin compiler: the npm package `kotlin-compiler` (JetBrains' full
#   compiler distribution: bin/kotlinc-jvm, lib/kotlin-compiler.jar,
#   lib/kotlin-stdlib.jar). Debian's `kotlin` is 1.3.31, too old for UniFFI's
#   generated Kotlin. The version and the tarball's integrity are pinned here;
#   a tarball whose SHA-512 differs is refused.
# - kotlinx.coroutines (runBlocking, and the suspend functions UniFFI
#   generates): the kotlinx-coroutines-core-jvm 1.8.0 jar inside that same
#   distribution (the unshaded JetBrains library the compiler itself uses).
#   Debian's libkotlinx-coroutines-java is 1.0.1 (2018): UniFFI 0.33's Kotlin
#   does not compile against it (it lacks kotlinx.coroutines.DelicateCoroutinesApi,
#   added in 1.5), and at run time it also needs libkotlinx-atomicfu-java,
#   which the package does not depend on. So it is not used.
# - JNA (the generated code loads libimbox_ffi.so through it): Debian's
#   libjna-java 5.13 (/usr/share/java/jna.jar) with its native part libjna-jni,
#   which .ci/run installs. Java 17 (openjdk-17-jdk-headless) runs all of it.
#
# Needs npm, openssl, tar and a JDK. Cold: one 90 MB download and unpack
# (about 6 s here); warm: nothing but a check of a stamp file.
set -euo pipefail

KOTLIN_VERSION=2.4.20
KOTLIN_INTEGRITY='sha512-IF5IVM7LpPhA/ntHQQpaVt1yxpaaQovtEVYLyqWMuaLr0XelLPPm7/sM6HLhtcRjjjoSsK7I7lP2kzYJkMy73w=='
CACHE=${IMBOX_KOTLIN_CACHE:-/var/cache/imbox-kotlin}
HOME_DIR=$CACHE/kotlin-compiler-$KOTLIN_VERSION
JNA_JAR=/usr/share/java/jna.jar

fail() {
    echo "toolchain.sh: $*" >&2
    exit 1
}

install_compiler() {
    command -v npm >/dev/null || fail "npm is missing: apt-get install npm"
    command -v openssl >/dev/null || fail "openssl is missing: apt-get install openssl"
    mkdir -p "$CACHE"
    local work
    work=$(mktemp -d "$CACHE/.download.XXXXXX")
    # npm pack fetches the tarball exactly as the registry serves it; the
    # integrity check below is ours, against the pinned value.
    (cd "$work" && npm pack --silent --cache "$work/npm-cache" "kotlin-compiler@$KOTLIN_VERSION" >/dev/null) ||
        fail "npm could not fetch kotlin-compiler@$KOTLIN_VERSION (is the npm registry reachable?)"
    local tarball=$work/kotlin-compiler-$KOTLIN_VERSION.tgz
    local got
    got="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
    if [ "$got" != "$KOTLIN_INTEGRITY" ]; then
        rm -rf "$work"
        fail "kotlin-compiler@$KOTLIN_VERSION has integrity $got, expected $KOTLIN_INTEGRITY: refusing it"
    fi
    tar -xzf "$tarball" -C "$work"
    chmod +x "$work/package/bin/"*
    rm -rf "$HOME_DIR"
    mv "$work/package" "$HOME_DIR"
    rm -rf "$work"
    # The stamp is written last: a half-done install is redone next time.
    echo "$KOTLIN_INTEGRITY" > "$HOME_DIR/.imbox-installed"
}

if [ "$(cat "$HOME_DIR/.imbox-installed" 2>/dev/null)" != "$KOTLIN_INTEGRITY" ]; then
    echo "toolchain.sh: installing kotlin-compiler $KOTLIN_VERSION into $HOME_DIR" >&2
    install_compiler
fi

command -v java >/dev/null || fail "java is missing: apt-get install openjdk-17-jdk-headless"
[ -r "$JNA_JAR" ] || fail "$JNA_JAR is missing: apt-get install libjna-java libjna-jni"
for jar in kotlin-stdlib.jar kotlinx-coroutines-core-jvm.jar; do
    [ -r "$HOME_DIR/lib/$jar" ] || fail "$HOME_DIR/lib/$jar is missing: remove $HOME_DIR and run again"
done

cat <<EOF
KOTLIN_CACHE=$CACHE
KOTLIN_HOME=$HOME_DIR
KOTLINC=$HOME_DIR/bin/kotlinc-jvm
KOTLIN_STDLIB=$HOME_DIR/lib/kotlin-stdlib.jar
KOTLINX_COROUTINES=$HOME_DIR/lib/kotlinx-coroutines-core-jvm.jar
JNA_JAR=$JNA_JAR
EOF
