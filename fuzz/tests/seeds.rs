//! Writes the seed corpora (`cargo test -p imbox-fuzz --test seeds --
//! --ignored`): frames of every request type, and the raw inputs of the
//! other targets. Run again after adding a request type; inputs that once
//! failed are added to the corpora by hand and kept.

#![allow(clippy::unwrap_used)]

use imbox_protocol::stream::length_prefixed;
use imbox_protocol::{ClientFrame, Request, Target};

fn requests() -> Vec<Request> {
    let t = |s: &str| Target::parse(s);
    vec![
        Request::Hello { versions: vec![1], client: "seed".into() },
        Request::Register {
            username: "dave".into(),
            password: "password".into(),
            invite: "nope".into(),
            device_name: "phone".into(),
        },
        Request::Login { username: "alice".into(), password: "password".into(), device_name: "phone".into() },
        Request::Resume { token: "token".into() },
        Request::Logout,
        Request::Devices,
        Request::RevokeDevice { device: 2 },
        Request::Send { to: t("bob"), id: "m1".into(), text: "hello".into(), attachments: Vec::new() },
        Request::Send { to: t("#ops"), id: "m2".into(), text: String::new(), attachments: Vec::new() },
        Request::Sync { since: 0, limit: 10 },
        Request::Ack { position: 3 },
        Request::History { conversation: t("=1"), before: Some(5), limit: 10 },
        Request::History { conversation: t("bob"), before: None, limit: 0 },
        Request::Conversations,
        Request::CreateGroup { name: "ops".into(), members: vec!["bob".into(), "carol".into()] },
        Request::AddMember { group: t("#ops"), user: "carol".into() },
        Request::RemoveMember { group: t("#ops"), user: "carol".into() },
        Request::Leave { group: t("#ops") },
        Request::MarkRead { conversation: t("bob"), seq: 1 },
        Request::MarkDelivered { conversation: t("=1"), seq: 9 },
        Request::Typing { conversation: t("#ops") },
        Request::Ping,
        Request::RegisterPush {
            kind: imbox_protocol::PushKind::Unifiedpush,
            endpoint: "https://ntfy.example/upABC".into(),
            p256dh: "BLn9b-VR0ca83knDNZ32dCHGyjJp-1riX9ZTN40MqV8K_LpQmLqxC_DoHvqvFXO_nGdAB4W9dogZb_sM-uV4JbY"
                .into(),
            auth: "_ordMnz7uTCmrpBTeUV4Bw".into(),
        },
        Request::UnregisterPush,
        Request::PushKey,
    ]
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = imbox_fuzz::corpus_dir(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.bin")), bytes).unwrap();
}

/// A client-to-server WebSocket binary frame, masked as RFC 6455 requires.
fn ws_frame(payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut out = vec![0x82];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xffff => {
            out.push(0x80 | 126);
            out.extend((n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend((n as u64).to_be_bytes());
        }
    }
    out.extend(mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

#[test]
#[ignore = "writes the seed corpora into the source tree"]
fn write_seed_corpora() {
    let frames: Vec<(String, Vec<u8>)> = requests()
        .into_iter()
        .enumerate()
        .map(|(i, req)| (format!("{:02}-{}", i, req.kind()), ClientFrame { id: i as u32 + 1, req }.encode()))
        .collect();
    for (name, frame) in &frames {
        write("frame", name, frame);
    }
    write("frame", "bad-array", b"\x92\x07\x81\xa4type\xa4ping");
    write("frame", "bad-bin-type", b"\x82\xa2id\x07\xa3req\x81\xa4type\xc4\x04ping");
    write("frame", "bad-int-type", b"\x82\xa2id\x07\xa3req\x81\xa4type\x13");

    // Streams: the first byte picks the limit (see the target).
    let hello = &frames[0].1;
    let send = &frames[7].1;
    let mut two = vec![3];
    two.extend(length_prefixed(hello));
    two.extend(length_prefixed(send));
    write("stream", "two-frames", &two);
    let mut big = vec![0];
    big.extend(length_prefixed(&[0x90; 100]));
    write("stream", "oversize", &big);
    write("stream", "empty-frames", &[4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);

    // QUIC: bytes written on the session stream after hello.
    let mut quic = Vec::new();
    for (_, frame) in &frames[4..] {
        quic.extend(length_prefixed(frame));
    }
    write("quic", "requests", &quic);
    write("quic", "oversize-announced", &[0, 1, 0, 1, 0x90]);
    write("quic", "truncated", &length_prefixed(send)[..10]);

    // WebSocket: bytes written after the upgrade.
    let mut ws = Vec::new();
    for (_, frame) in &frames {
        ws.extend(ws_frame(frame));
    }
    write("websocket", "requests", &ws);
    write("websocket", "ping-and-close", &[0x89, 0x80, 0, 0, 0, 0, 0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8]);
    write("websocket", "text", &[0x81, 0x85, 1, 2, 3, 4, b'h' ^ 1, b'e' ^ 2, b'l' ^ 3, b'l' ^ 4, b'o' ^ 1]);
    write("websocket", "fragmented", &{
        let mut f = ws_frame(send);
        f[0] = 0x02; // not FIN: a continuation must follow
        f.extend(ws_frame(b"\xc0"));
        f
    });
    write("websocket", "unmasked-64bit-length", &[0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0]);

    // Session: the target reads its choices out of any bytes (see
    // `Choices`), so its seeds are random bytes of a fixed generator, long
    // enough for 64 steps.
    let mut rng = imbox_fuzz::Rng::new(12);
    for i in 0..8 {
        let seed: Vec<u8> = (0..400).map(|_| rng.next_u64() as u8).collect();
        write("session", &format!("random-{i}"), &seed);
    }
}
