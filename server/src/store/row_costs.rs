//! What a write costs in stored rows: the point of storing each message and
//! each receipt marker once is that neither grows with the group's size.

use std::sync::Arc;

use imbox_protocol::{ReceiptKind, Target};
use redb::{ReadableDatabase, ReadableTableMetadata};

use super::records::*;
use super::*;

/// Rows in every table that grows with messages and receipts.
fn rows(store: &Store) -> u64 {
    let txn = store.db().begin_read().unwrap();
    let mut total = 0;
    for table in [MESSAGES, EVENTS, MEMBERS, SPANS, LOG] {
        total += txn.open_table(table).unwrap().len().unwrap();
    }
    total += txn.open_table(CONVERSATIONS).unwrap().len().unwrap();
    total += txn.open_table(MESSAGE_IDS).unwrap().len().unwrap();
    total
}

/// What one group message and one round of read receipts by every member
/// add, in rows, in a group of `size`.
async fn costs(size: usize) -> (u64, u64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let store =
        Store::open(&dir.path().join("s.redb"), StoreOptions::default(), Arc::new(NoListener)).unwrap();
    let names: Vec<String> = (0..size).map(|i| format!("u{i}")).collect();
    // Queued together, so that a thousand accounts take a few commits.
    let pending: Vec<_> = names
        .iter()
        .map(|name| {
            let op = WriteOp::CreateUser {
                name: name.clone(),
                password_hash: "h".into(),
                admin: false,
                invite: None,
            };
            store.submit(op).unwrap()
        })
        .collect();
    for p in pending {
        p.wait().await.unwrap();
    }
    store.create_group(1, "g", names[1..].to_vec(), size as u32).await.unwrap();
    let group = Target::parse("#g");
    let send = |i: u32| store.send(1, 0, group.clone(), format!("m{i}"), "hello".into());
    send(1).await.unwrap();

    let before = rows(&store);
    send(2).await.unwrap();
    let message = rows(&store) - before;

    let read_all = |seq: u64| {
        let pending: Vec<_> = (1..=size as u64)
            .map(|user| {
                let op = WriteOp::Receipt { user, conversation: group.clone(), kind: ReceiptKind::Read, seq };
                store.submit(op).unwrap()
            })
            .collect();
        async move {
            for p in pending {
                p.wait().await.unwrap();
            }
        }
    };
    let before = rows(&store);
    read_all(1).await;
    let first_reads = rows(&store) - before;
    let before = rows(&store);
    read_all(2).await;
    let later_reads = rows(&store) - before;
    store.shutdown().await;
    (message, first_reads, later_reads)
}

#[tokio::test]
async fn a_group_message_and_a_read_receipt_cost_the_same_rows_in_a_group_of_ten_or_a_thousand() {
    let (message_10, first_10, later_10) = costs(10).await;
    let (message_1000, first_1000, later_1000) = costs(1000).await;
    // A message: its text, its id, its event; the conversation row is
    // updated in place.
    assert_eq!(message_10, 3);
    assert_eq!(message_1000, 3, "a message to a group of 1,000 must not write a row per member");
    // The first read receipt of each member creates that member's marker
    // row: one row per member who reads, not one per member per reader.
    assert_eq!(first_10, 10);
    assert_eq!(first_1000, 1000);
    // Later receipts move the marker's row: no new rows at all.
    assert_eq!(later_10, 0);
    assert_eq!(later_1000, 0, "a read receipt in a group of 1,000 must cost O(1) rows");
}
