#!/bin/bash
# The system's own state on the data disk: the journal and the time saved by
# systemd-timesyncd. /var is a tmpfs, so both live in RAM until /data is
# mounted; then they are bind-mounted from /data/system.
#
#   journal.sh attach      after /data is mounted (imbox-journal.service, and
#                          storage.sh after it mounted another disk at /data)
#   journal.sh relinquish  before /data is unmounted (imbox-journal.service's
#                          stop, and storage.sh before it switches disks)
#
# Both are idempotent: storage.sh may call attach on a box already attached
# (only the flush is done again) and relinquish on one already detached.
# The journal and the clock are each tried even if the other failed, so the
# functions return at the first failing step (`|| return`) instead of
# relying on set -e, which bash ignores inside a function called from `||`.
set -euo pipefail
# shellcheck source=overlay/usr/lib/imbox/lib.sh
. /usr/lib/imbox/lib.sh

JOURNAL_DATA=$DATA/system/journal
TIMESYNC_DATA=$DATA/system/timesync
TIMESYNC_DIR=/var/lib/systemd/timesync
TIMESYNC_UNIT=systemd-timesyncd.service

# The machine id is made in /run at every boot (/etc is read-only and
# /etc/machine-id empty), and journald writes to /var/log/journal/<machine
# id>. Binding the data disk's directory there (rather than at
# /var/log/journal) keeps every boot's files in one directory: journald
# limits (SystemMaxUse) and vacuums only its own machine's directory, so a
# directory per boot would never be cleaned up, and `journalctl -b -1` reads
# only the current machine id's directory.
journal_dir() { echo "/var/log/journal/$(tr -d '\n' < /etc/machine-id)"; }

attach_journal() {
    local dir
    dir=$(journal_dir)
    # root:systemd-journal 2755, as systemd's tmpfiles.d sets /var/log/journal:
    # the setgid bit gives new files the group, whose members may read them.
    mkdir -p "$JOURNAL_DATA" || return
    chown root:systemd-journal "$JOURNAL_DATA" || return
    chmod 2755 "$JOURNAL_DATA" || return
    if ! mountpoint -q "$dir"; then
        install -d -m 2755 -o root -g systemd-journal /var/log/journal "$dir" || return
        mount --bind "$JOURNAL_DATA" "$dir" || return
        # Once systemd-journal-flush has run, journald opens
        # /var/log/journal/<id>/system.journal by itself as soon as that
        # directory exists, before any flush request: between the mkdir and
        # the mount above it may have opened a file on the tmpfs, which the
        # mount now hides and which it would go on writing (the boot tests
        # lost minutes of log that way). Relinquishing closes whatever it
        # has open; the flush below opens the file on the data disk.
        journalctl --relinquish-var || return
        log "journal: $JOURNAL_DATA bound at $dir"
    fi
    # What journald kept in /run since boot (or since relinquish) moves to
    # the data disk, and journald writes there from now on. This is what
    # systemd-journal-flush.service does early in boot, when /var/log/journal
    # does not exist yet here: it cannot be ordered after the data disk
    # (it runs before sysinit.target, imbox-storage after it).
    journalctl --flush
}

relinquish_journal() {
    local dir
    dir=$(journal_dir)
    # journald closes its files on the data disk (marked offline, synced)
    # and writes to /run until the next attach.
    journalctl --relinquish-var || return
    if mountpoint -q "$dir"; then
        umount "$dir" || return
        log "journal: unbound from $dir, in RAM until attached again"
    fi
    # With Storage=auto an existing /var/log/journal would make a later
    # flush write the journal to /var, a tmpfs: remove what attach made.
    rmdir "$dir" /var/log/journal 2>/dev/null || true
}

# timesyncd sets the clock forward to its clock file's time when it starts,
# saves the time in that file every SaveIntervalSec (timesyncd.conf.d) with
# or without NTP, and at its stop. It first starts before /data is mounted,
# on the tmpfs, so it is stopped (saving the time in the tmpfs), the data
# disk's directory bound in its place and it is started again: the clock
# moves forward to the time saved on the data disk before imboxd starts.
# It must be stopped before binding: its stop writes the current time, still
# the boot's wrong one, to whatever file is in place.
attach_timesync() {
    mkdir -p "$TIMESYNC_DATA" || return
    if ! mountpoint -q "$TIMESYNC_DIR"; then
        systemctl stop "$TIMESYNC_UNIT" || return
        mkdir -p "$TIMESYNC_DIR" || return
        mount --bind "$TIMESYNC_DATA" "$TIMESYNC_DIR" || return
        log "clock: $TIMESYNC_DATA bound at $TIMESYNC_DIR"
    fi
    # Type=notify: this returns once the clock file has been read and the
    # clock set forward (StateDirectory= gives the directory to its user).
    systemctl start "$TIMESYNC_UNIT"
}

relinquish_timesync() {
    mountpoint -q "$TIMESYNC_DIR" || return 0
    # Its stop saves the time on the data disk; and it must stop anyway: its
    # mount namespace holds the bind mount, which would keep the data
    # disk's file system in use after /data is unmounted.
    systemctl stop "$TIMESYNC_UNIT" || return
    umount "$TIMESYNC_DIR" || return
    log "clock: unbound from $TIMESYNC_DIR"
    # NTP goes on during a storage move (the time is saved in the tmpfs
    # until attach). Not while the box shuts down: timesyncd conflicts with
    # shutdown.target, so starting it then would be refused.
    [ "$(systemctl is-system-running || true)" = stopping ] || systemctl start "$TIMESYNC_UNIT"
}

case ${1:-} in
    attach)
        mountpoint -q "$DATA" || die "journal.sh attach: $DATA is not mounted"
        # Both are tried; the unit fails if either failed.
        rc=0
        attach_journal || rc=$?
        attach_timesync || rc=$?
        exit "$rc"
        ;;
    relinquish)
        rc=0
        relinquish_journal || rc=$?
        relinquish_timesync || rc=$?
        exit "$rc"
        ;;
    *) die "usage: journal.sh attach|relinquish" ;;
esac
