//! `imboxd compact` and `imboxd conversation retention`, as an operator
//! types them, against the real binary with and without the daemon running.
//! (That compaction shrinks a file, and that the daemon compacts by itself
//! under load, is shown on real files in the store's own tests.)

#![allow(clippy::unwrap_used)]

use std::process::Stdio;
use std::time::Duration;

use imbox_tests::{imboxd, Daemon};

fn run(args: &[&str], dir: &std::path::Path) -> (bool, String, String) {
    let out = imboxd(dir).args(args).stdin(Stdio::null()).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn compact_refuses_while_imboxd_runs_and_works_once_it_is_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start(dir.path());
    daemon.add_user("alice");

    let (ok, _, err) = run(&["compact"], dir.path());
    assert!(!ok);
    assert!(err.contains("imboxd is running") && err.contains("stop it first"), "{err}");

    // Retention goes through the control socket; a wrong name or number is
    // explained.
    let (ok, _, err) = run(&["conversation", "retention", "#nope", "30"], dir.path());
    assert!(!ok && err.contains("no such conversation"), "{err}");
    let (ok, _, err) = run(&["conversation", "retention", "#nope", "soon"], dir.path());
    assert!(!ok && err.contains("not a number of days"), "{err}");
    let (ok, _, err) = run(&["conversation", "retention", "alice", "30"], dir.path());
    assert!(!ok && err.contains("names no conversation"), "{err}");

    daemon.terminate();
    assert!(daemon.wait_exit(Duration::from_secs(20)).success());
    let (ok, out, err) = run(&["compact"], dir.path());
    assert!(ok, "{err}");
    assert!(out.starts_with("compacted ") && out.contains(" -> "), "{out}");
    // The database still opens and holds the account.
    let (ok, out, err) = run(&["user", "list", "--json"], dir.path());
    assert!(ok, "{err}");
    assert!(out.contains("\"alice\""), "{out}");
}
