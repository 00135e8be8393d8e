#!/usr/bin/env bash
# Runs a command inside the Swift root (root.sh) with the given directories
# bound at the same paths, so that file names mean the same inside and out.
#
#   ffi/tests/swift/in-root.sh ROOT DIR[,DIR...] COMMAND [ARG...]
#
# The root is shared and cached: the binds, /proc, /dev and a fresh /tmp
# live in a mount namespace of their own (unshare -m), so they vanish with
# the command and never land in the cache. The network is the host's, so
# a box on 127.0.0.1 is reachable from inside.
set -euo pipefail

root=${1:?usage: in-root.sh ROOT DIR[,DIR...] COMMAND [ARG...]}
dirs=${2:?usage: in-root.sh ROOT DIR[,DIR...] COMMAND [ARG...]}
shift 2
[ "$#" -gt 0 ] || { echo "usage: in-root.sh ROOT DIR[,DIR...] COMMAND [ARG...]" >&2; exit 2; }

binds=()
IFS=, read -r -a binds <<<"$dirs"
for dir in "${binds[@]}"; do
    [ -d "$dir" ] || { echo "in-root.sh: $dir is not a directory" >&2; exit 2; }
    case "$dir" in /*) ;; *) echo "in-root.sh: $dir is not an absolute path" >&2; exit 2 ;; esac
done

# The inner shell gets the root and the directories as arguments, not
# spliced into its text, so paths with spaces survive.
# shellcheck disable=SC2016
exec unshare --mount --propagation private -- sh -ec '
    root=$1; shift
    count=$1; shift
    mount -t proc proc "$root/proc"
    mount --rbind /dev "$root/dev"
    mount -t tmpfs -o size=2g tmpfs "$root/tmp"
    while [ "$count" -gt 0 ]; do
        mkdir -p "$root$1"
        mount --bind "$1" "$root$1"
        shift; count=$((count - 1))
    done
    exec chroot "$root" env -i PATH=/usr/bin:/bin HOME=/tmp TMPDIR=/tmp LANG=C.UTF-8 "$@"
' in-root "$root" "${#binds[@]}" "${binds[@]}" "$@"
