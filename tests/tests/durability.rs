//! What survives a crash: the real imboxd binary killed with SIGKILL in the
//! middle of a burst of sends from many clients. Every send that was
//! acknowledged must be there after a restart, every time.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use imbox_client::Connection;
use imbox_protocol::{Request, Response, Target};
use imbox_tests::{Daemon, PASSWORD};

const SENDERS: usize = 16;

async fn group_ids(url: &str, user: &str) -> Vec<String> {
    let conn = Connection::connect(url).await.unwrap();
    conn.login(user, PASSWORD, "checker").await.unwrap();
    let mut ids = Vec::new();
    let mut before = None;
    loop {
        let req = Request::History { conversation: Target::parse("#burst"), before, limit: 200 };
        let Response::History { messages, more } = conn.request(req).await.unwrap() else { panic!() };
        before = messages.first().map(|m| m.seq);
        ids.extend(messages.into_iter().rev().map(|m| m.id));
        if !more {
            return ids;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_sends_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..SENDERS).map(|i| format!("s{i}")).collect();
    let daemon = Daemon::start(dir.path());
    for name in &names {
        daemon.add_user(name);
    }
    let admin = Connection::connect(&daemon.url).await.unwrap();
    admin.login("s0", PASSWORD, "setup").await.unwrap();
    admin.request(Request::CreateGroup { name: "burst".into(), members: names[1..].to_vec() }).await.unwrap();
    drop(admin);
    let mut daemon = daemon;

    let acknowledged = Arc::new(Mutex::new(HashSet::new()));
    for round in 0..3 {
        let mut senders = Vec::new();
        for name in &names {
            let conn = Connection::connect(&daemon.url).await.unwrap();
            conn.login(name, PASSWORD, "burst").await.unwrap();
            let acknowledged = acknowledged.clone();
            let name = name.clone();
            senders.push(tokio::spawn(async move {
                // Several sends in flight per connection, as a busy client has.
                for batch in 0.. {
                    let sends = (0..8).map(|k| {
                        let id = format!("{name}-r{round}-{batch}-{k}");
                        let req = Request::Send {
                            to: Target::parse("#burst"),
                            id: id.clone(),
                            text: id.clone(),
                            attachments: Vec::new(),
                        };
                        let conn = &conn;
                        async move { (id, conn.request(req).await) }
                    });
                    for (id, result) in futures_util::future::join_all(sends).await {
                        match result {
                            Ok(Response::Sent { .. }) => {
                                acknowledged.lock().unwrap().insert(id);
                            }
                            _ => return,
                        }
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(400 + 150 * round)).await;
        daemon.child.kill().unwrap();
        daemon.child.wait().unwrap();
        for sender in senders {
            let _ = tokio::time::timeout(Duration::from_secs(10), sender).await;
        }
        daemon = Daemon::start(dir.path());
        let stored = group_ids(&daemon.url, "s1").await;
        let unique: HashSet<_> = stored.iter().cloned().collect();
        assert_eq!(unique.len(), stored.len(), "round {round}: a message was stored twice");
        let acknowledged = acknowledged.lock().unwrap();
        assert!(!acknowledged.is_empty(), "round {round}: nothing was acknowledged before the kill");
        eprintln!("round {round}: {} acknowledged, {} stored", acknowledged.len(), unique.len());
        let lost: Vec<_> = acknowledged.iter().filter(|id| !unique.contains(*id)).collect();
        assert!(
            lost.is_empty(),
            "round {round}: {} acknowledged messages lost, e.g. {:?}",
            lost.len(),
            lost.first()
        );
    }
}

#[tokio::test]
async fn sigterm_tells_sessions_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start(dir.path());
    daemon.add_user("alice");
    let conn = Connection::connect(&daemon.url).await.unwrap();
    conn.login("alice", PASSWORD, "t").await.unwrap();
    daemon.terminate();
    let event = tokio::time::timeout(Duration::from_secs(10), conn.next_event()).await.unwrap();
    assert!(
        matches!(event, Some(imbox_protocol::Event::GoingAway { .. })),
        "expected going_away, got {event:?}"
    );
    let status = daemon.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "imboxd exited with {status}");
}
