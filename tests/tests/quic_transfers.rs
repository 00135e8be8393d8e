//! Attachments on QUIC transfer streams, with a bare quinn client: an
//! upload beside a live session, cut off and resumed on a new connection,
//! a download from an offset, and the refusals.

#![allow(clippy::unwrap_used)]

use imbox_protocol::stream::length_prefixed;
use imbox_protocol::transfer::{TransferRequest, TransferResponse};
use imbox_protocol::{ErrorCode, Request, Response, ServerFrame};
use imbox_tests::quic::{endpoint, Stream};
use imbox_tests::{Server, PASSWORD};
use quinn::{Connection, RecvStream, SendStream};
use sha2::{Digest, Sha256};

async fn session(client: &quinn::Endpoint, server: &Server, user: &str) -> (Connection, Stream, String) {
    let conn = client.connect(server.quic.unwrap(), "imbox.local").unwrap().await.unwrap();
    let (send, recv) = conn.open_bi().await.unwrap();
    let mut stream = Stream::new(send, recv);
    stream.call(Request::Hello { versions: vec![1], client: "bare".into() }).await;
    let login =
        Request::Login { username: user.into(), password: PASSWORD.into(), device_name: "bare".into() };
    let ServerFrame::Ok { body: Response::Authenticated { token: Some(token), .. }, .. } =
        stream.call(login).await
    else {
        panic!("login failed")
    };
    (conn, stream, token)
}

async fn read_response(recv: &mut RecvStream) -> TransferResponse {
    let mut length = [0u8; 4];
    recv.read_exact(&mut length).await.unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(length) as usize];
    recv.read_exact(&mut body).await.unwrap();
    TransferResponse::decode(&body).unwrap()
}

async fn start(conn: &Connection, request: &TransferRequest) -> (SendStream, RecvStream, TransferResponse) {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(&length_prefixed(&request.encode())).await.unwrap();
    let response = read_response(&mut recv).await;
    (send, recv, response)
}

fn upload_request(token: &str, upload: Option<String>, length: usize) -> TransferRequest {
    TransferRequest::Upload {
        token: token.into(),
        upload,
        length: length as u64,
        name: "film.mp4".into(),
        media_type: "video/mp4".into(),
    }
}

fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn an_upload_is_cut_resumed_on_a_new_connection_and_read_back() {
    let server = Server::start().await;
    server.add_users(&["alice", "bob"]).await;
    let client = endpoint(&server.dir, None);
    let bytes: Vec<u8> = (0..(24u32 << 20)).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();

    let (conn, mut stream, token) = session(&client, &server, "alice").await;
    let (mut send, _recv, ready) = start(&conn, &upload_request(&token, None, bytes.len())).await;
    let TransferResponse::Ready { upload, offset: 0 } = ready else { panic!("{ready:?}") };
    // The session goes on beside the transfer.
    send.write_all(&bytes[..12 << 20]).await.unwrap();
    assert!(matches!(stream.call(Request::Ping).await, ServerFrame::Ok { body: Response::Pong, .. }));
    // Cut: the whole connection goes away mid-upload.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    conn.close(0u32.into(), b"the phone lost its network");

    let (conn, _stream, _) = session(&client, &server, "alice").await;
    let mut resumed = None;
    for _ in 0..50 {
        let (send, recv, ready) =
            start(&conn, &upload_request(&token, Some(upload.clone()), bytes.len())).await;
        match ready {
            TransferResponse::Ready { offset, .. } => {
                resumed = Some((send, recv, offset));
                break;
            }
            TransferResponse::Error { error } if error.code == ErrorCode::Unavailable => {
                // The old stream still holds the upload for a moment.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            other => panic!("{other:?}"),
        }
    }
    let (mut send, mut recv, offset) = resumed.expect("the upload is free again");
    let offset = offset as usize;
    assert!(offset > 0 && offset <= 12 << 20, "resumes from what the box holds: {offset}");
    send.write_all(&bytes[offset..]).await.unwrap();
    send.finish().unwrap();
    let stored = read_response(&mut recv).await;
    let TransferResponse::Stored { attachment, size, .. } = stored else { panic!("{stored:?}") };
    assert_eq!((attachment.as_str(), size), (hex(&bytes).as_str(), bytes.len() as u64));

    // Resuming a finished upload says it is stored, at once.
    let (_s, _r, again) = start(&conn, &upload_request(&token, Some(upload), bytes.len())).await;
    assert!(matches!(again, TransferResponse::Stored { .. }), "{again:?}");

    // Read back from an offset.
    let download =
        TransferRequest::Download { token: token.clone(), attachment: attachment.clone(), offset: 1000 };
    let (_send, mut recv, blob) = start(&conn, &download).await;
    assert_eq!(
        blob,
        TransferResponse::Blob { size: bytes.len() as u64, media_type: "video/mp4".into(), offset: 1000 }
    );
    let rest = recv.read_to_end(64 << 20).await.unwrap();
    assert_eq!(rest, bytes[1000..]);

    // Bob is no member of anything that carries it: not found, like an id
    // that does not exist; a bad token is refused.
    let (bob_conn, _bob_stream, bob_token) = session(&client, &server, "bob").await;
    for (token, id, code) in [
        (bob_token.as_str(), attachment.as_str(), ErrorCode::NotFound),
        (bob_token.as_str(), &"0".repeat(64)[..], ErrorCode::NotFound),
        ("not-a-token", attachment.as_str(), ErrorCode::BadCredentials),
    ] {
        let request = TransferRequest::Download { token: token.into(), attachment: id.into(), offset: 0 };
        let (_s, _r, answer) = start(&bob_conn, &request).await;
        match answer {
            TransferResponse::Error { error } => assert_eq!(error.code, code),
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn a_broken_header_is_refused_without_harm() {
    let server = Server::start().await;
    server.add_users(&["alice"]).await;
    let client = endpoint(&server.dir, None);
    let (conn, mut stream, _) = session(&client, &server, "alice").await;
    for header in
        [vec![0xff, 0xff, 0xff, 0xff], length_prefixed(b"\x92\x01\x02"), length_prefixed(b"\xc4\x00")]
    {
        let (mut send, mut recv) = conn.open_bi().await.unwrap();
        send.write_all(&header).await.unwrap();
        let answer = read_response(&mut recv).await;
        assert!(
            matches!(&answer, TransferResponse::Error { error } if error.code == ErrorCode::InvalidArgument),
            "{answer:?}"
        );
    }
    assert!(matches!(stream.call(Request::Ping).await, ServerFrame::Ok { body: Response::Pong, .. }));
}
