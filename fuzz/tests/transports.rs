//! Fuzz targets over real sockets: arbitrary bytes after a WebSocket
//! upgrade, and on a QUIC session stream, against imboxd running in this
//! process. The server must answer or close, never panic, never hang on to
//! a connection whose peer has gone, and keep serving everyone else.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Once};
use std::time::Duration;

use imbox_fuzz::run;
use imbox_protocol::{Request, Response};
use imbox_tests::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Panics anywhere in the process (the server's tasks included), counted
/// by a hook: a task that panics does not take the server down, so the
/// target would not see it otherwise.
static PANICS: AtomicU64 = AtomicU64::new(0);

fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Relaxed);
            previous(info);
        }));
    });
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// A full session still works: the server kept serving.
async fn still_serving(server: &Server) {
    let connection = server.connection("alice").await;
    let pong = connection.request(Request::Ping).await.unwrap();
    assert!(matches!(pong, Response::Pong), "{pong:?}");
}

#[test]
fn websocket_framing() {
    count_panics();
    let rt = runtime();
    let server = rt.block_on(async {
        let server = Server::start().await;
        server.add_users(&["alice", "bob"]).await;
        server
    });
    let url = format!("{}/ws", server.url);
    let addr = server.url.trim_start_matches("ws://").to_owned();
    let mut runs = 0u64;
    run("websocket", 16 * 1024, 30, |bytes| {
        rt.block_on(async {
            let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
            let (mut ws, _) = tokio_tungstenite::client_async(&url, tcp).await.unwrap();
            // Below tungstenite, so that any bytes at all go out.
            let raw = ws.get_mut();
            let _ = raw.write_all(bytes).await;
            // End of input: the server must finish what it has and close.
            let _ = raw.shutdown().await;
            let mut sink = vec![0u8; 64 * 1024];
            let closed = tokio::time::timeout(Duration::from_secs(5), async {
                loop {
                    match raw.read(&mut sink).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
            })
            .await;
            assert!(closed.is_ok(), "the server kept a connection open 5 s after its peer finished");
            assert_eq!(PANICS.load(Relaxed), 0, "the server panicked");
            runs += 1;
            if runs % 100 == 0 {
                still_serving(&server).await;
            }
        });
    });
    rt.block_on(still_serving(&server));
}

#[test]
fn quic_framing() {
    count_panics();
    let rt = runtime();
    let (server, endpoint) = rt.block_on(async {
        let server = Server::start().await;
        server.add_users(&["alice", "bob"]).await;
        let endpoint = imbox_tests::quic::endpoint(&server.dir, None);
        (server, endpoint)
    });
    let addr = server.quic.unwrap();
    let endpoint = Arc::new(endpoint);
    let mut runs = 0u64;
    run("quic", 16 * 1024, 30, |bytes| {
        rt.block_on(async {
            let conn = endpoint.connect(addr, "imbox.local").unwrap().await.unwrap();
            let (mut send, mut recv) = conn.open_bi().await.unwrap();
            // The session starts with hello, so that the input reaches the
            // states after it too.
            let hello = imbox_protocol::ClientFrame {
                id: 1,
                req: Request::Hello { versions: vec![1], client: "fuzz".into() },
            };
            let _ = send.write_all(&imbox_protocol::stream::length_prefixed(&hello.encode())).await;
            let _ = send.write_all(bytes).await;
            let _ = send.finish();
            let ended = tokio::time::timeout(Duration::from_secs(5), async {
                while let Ok(Some(_)) = recv.read_chunk(64 * 1024, true).await {}
            })
            .await;
            assert!(ended.is_ok(), "the server kept a session open 5 s after its stream finished");
            conn.close(0u32.into(), b"done");
            assert_eq!(PANICS.load(Relaxed), 0, "the server panicked");
            runs += 1;
            if runs % 100 == 0 {
                still_serving(&server).await;
            }
        });
    });
    rt.block_on(still_serving(&server));
}
