//! Frame envelopes and their encoding.
//!
//! Every frame is one MessagePack map with string keys (so that any
//! MessagePack library can read it without a schema compiler). On WebSocket a
//! frame is one binary message; on QUIC it is length-prefixed on a stream.

use serde::{Deserialize, Serialize};

use crate::error::{ErrorBody, ErrorCode};
use crate::event::Event;
use crate::request::Request;
use crate::response::Response;

/// A request from a client with the id its response will carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientFrame {
    /// Chosen by the client; the response repeats it. Id 0 is reserved for
    /// errors about frames whose id could not be read.
    pub id: u32,
    /// The request.
    pub req: Request,
}

/// A frame from the server: the answer to one request, or an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "frame", rename_all = "snake_case")]
pub enum ServerFrame {
    /// The request with this id succeeded.
    Ok { id: u32, body: Response },
    /// The request with this id failed.
    Err { id: u32, error: ErrorBody },
    /// Something happened.
    Event { event: Event },
}

/// Why a frame could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// Not MessagePack, or not a frame of the shape docs/PROTOCOL.md gives
    /// (a map with string keys, nothing after it, no `bin` or `ext` values,
    /// `req` a map whose `type` is a string): the connection must close. `id`
    /// is the frame's id when the frame is a map whose `id` could be read,
    /// else 0, so that a client can tell which of its requests was refused.
    #[error("malformed frame: {reason}")]
    Malformed { id: u32, reason: String },
    /// A frame whose request type is unknown; the connection stays open and
    /// the request with this id gets `unknown_request`.
    #[error("unknown request type {kind:?}")]
    UnknownRequest { id: u32, kind: String },
    /// A known request with bad fields; the request with this id gets
    /// `invalid_argument`.
    #[error("invalid {kind} request: {reason}")]
    InvalidRequest { id: u32, kind: String, reason: String },
}

impl DecodeError {
    /// The error frame to answer with, and whether the connection must close
    /// after sending it.
    pub fn to_frame(&self) -> (ServerFrame, bool) {
        match self {
            DecodeError::Malformed { id, reason } => (
                ServerFrame::Err {
                    id: *id,
                    error: ErrorBody::new(
                        ErrorCode::BadFrame,
                        format!("the frame is not valid imbox MessagePack ({reason}); closing"),
                    ),
                },
                true,
            ),
            DecodeError::UnknownRequest { id, kind } => (
                ServerFrame::Err {
                    id: *id,
                    error: ErrorBody::new(
                        ErrorCode::UnknownRequest,
                        format!("this server does not know the request type {kind:?}"),
                    ),
                },
                false,
            ),
            DecodeError::InvalidRequest { id, kind, reason } => (
                ServerFrame::Err {
                    id: *id,
                    error: ErrorBody::new(
                        ErrorCode::InvalidArgument,
                        format!("the {kind} request is malformed: {reason}"),
                    ),
                },
                false,
            ),
        }
    }
}

/// Only the envelope, to classify frames that do not decode as a whole.
#[derive(Deserialize)]
struct FrameHead {
    id: u32,
    req: RequestHead,
}

#[derive(Deserialize)]
struct RequestHead {
    #[serde(rename = "type")]
    kind: String,
}

impl ClientFrame {
    /// Encodes the frame.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decodes a frame, telling a malformed frame from an unknown or invalid
    /// request inside a well-formed one.
    ///
    /// The shape is checked first ([`crate::shape::check_client_frame`]):
    /// rmp-serde on its own is more lenient than the protocol (it reads a
    /// struct from a positional array, a string from `bin`, an enum tag from
    /// an integer, and ignores bytes after the value), and a second server or
    /// client written from docs/PROTOCOL.md must not come to rely on that.
    pub fn decode(bytes: &[u8]) -> Result<ClientFrame, DecodeError> {
        let shape = crate::shape::check_client_frame(bytes);
        let id = shape.id.unwrap_or(0);
        if let Err(reason) = shape.verdict {
            return Err(DecodeError::Malformed { id, reason });
        }
        match rmp_serde::from_slice::<ClientFrame>(bytes) {
            Ok(frame) => Ok(frame),
            Err(err) => match rmp_serde::from_slice::<FrameHead>(bytes) {
                Ok(head) if Request::KINDS.contains(&head.req.kind.as_str()) => {
                    Err(DecodeError::InvalidRequest {
                        id: head.id,
                        kind: head.req.kind,
                        reason: err.to_string(),
                    })
                }
                Ok(head) => Err(DecodeError::UnknownRequest { id: head.id, kind: head.req.kind }),
                Err(_) => Err(DecodeError::Malformed { id, reason: err.to_string() }),
            },
        }
    }
}

impl ServerFrame {
    /// Encodes the frame.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decodes a frame from the server.
    pub fn decode(bytes: &[u8]) -> Result<ServerFrame, DecodeError> {
        rmp_serde::from_slice(bytes).map_err(|e| DecodeError::Malformed { id: 0, reason: e.to_string() })
    }
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing our own plain data types into a Vec cannot fail: every map
    // key is a string and no type has a custom serializer.
    rmp_serde::to_vec_named(value).unwrap_or_else(|e| unreachable!("encoding a frame failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Entry, Item, Message};
    use crate::request::Target;

    #[test]
    fn requests_round_trip() {
        let frames = [
            ClientFrame { id: 1, req: Request::Hello { versions: vec![1], client: "t".into() } },
            ClientFrame {
                id: 2,
                req: Request::Send {
                    to: Target::Group("ops".into()),
                    id: "m1".into(),
                    text: "hi".into(),
                    attachments: Vec::new(),
                },
            },
            ClientFrame {
                id: 3,
                req: Request::History { conversation: Target::Id(4), before: None, limit: 10 },
            },
            ClientFrame { id: 4, req: Request::Logout },
        ];
        for frame in frames {
            assert_eq!(ClientFrame::decode(&frame.encode()), Ok(frame));
        }
    }

    #[test]
    fn server_frames_round_trip() {
        let frames = [
            ServerFrame::Ok { id: 9, body: Response::Pong },
            ServerFrame::Err { id: 9, error: ErrorBody::new(ErrorCode::NotMember, "no") },
            ServerFrame::Event {
                event: Event::Entry {
                    entry: Entry {
                        position: 3,
                        item: Item::Message(Message {
                            conversation: 1,
                            chat: "bob".into(),
                            seq: 2,
                            from: "bob".into(),
                            from_device: 7,
                            id: "x".into(),
                            sent_at: 5,
                            text: "hello".into(),
                            attachments: vec![crate::Attachment {
                                id: "ab".repeat(32),
                                media_type: "image/jpeg".into(),
                                size: 1234,
                                name: "cat.jpg".into(),
                                width: Some(64),
                                height: Some(48),
                                duration_ms: None,
                                blurhash: None,
                                thumbnail: None,
                                expired: true,
                            }],
                        }),
                    },
                },
            },
        ];
        for frame in frames {
            assert_eq!(ServerFrame::decode(&frame.encode()), Ok(frame));
        }
    }

    #[test]
    fn garbage_is_malformed() {
        assert!(matches!(ClientFrame::decode(b"\xc1\xff"), Err(DecodeError::Malformed { id: 0, .. })));
        assert!(matches!(ClientFrame::decode(b""), Err(DecodeError::Malformed { id: 0, .. })));
    }

    /// A ping frame as raw MessagePack, written by hand so that each test
    /// below changes exactly one thing.
    const PING_7: &[u8] = b"\x82\xa2id\x07\xa3req\x81\xa4type\xa4ping";

    #[test]
    fn a_hand_written_frame_decodes() {
        assert_eq!(ClientFrame::decode(PING_7), Ok(ClientFrame { id: 7, req: Request::Ping }));
    }

    fn malformed(bytes: &[u8]) -> Option<u32> {
        match ClientFrame::decode(bytes) {
            Err(DecodeError::Malformed { id, .. }) => Some(id),
            other => panic!("{bytes:x?} decoded as {other:?}"),
        }
    }

    #[test]
    fn what_the_doc_calls_a_bad_frame_is_refused() {
        // A top-level array: [7, {"type": "ping"}].
        assert_eq!(malformed(b"\x92\x07\x81\xa4type\xa4ping"), Some(0));
        // Trailing bytes after the map.
        let mut trailing = PING_7.to_vec();
        trailing.push(0xc0);
        assert_eq!(malformed(&trailing), Some(7));
        // A binary key ("id" as bin 8).
        assert_eq!(malformed(b"\x82\xc4\x02id\x07\xa3req\x81\xa4type\xa4ping"), Some(0));
        // `bin` where a string is expected (the type "ping" as bin 8).
        assert_eq!(malformed(b"\x82\xa2id\x07\xa3req\x81\xa4type\xc4\x04ping"), Some(7));
        // An integer `type` (serde would take it as the variant index).
        assert_eq!(malformed(b"\x82\xa2id\x07\xa3req\x81\xa4type\x13"), Some(7));
        // `req` as a positional array, and as a bare string.
        assert_eq!(malformed(b"\x82\xa2id\x07\xa3req\x91\xa4ping"), Some(7));
        assert_eq!(malformed(b"\x82\xa2id\x07\xa3req\xa4ping"), Some(7));
        // An integer map key inside the request.
        assert_eq!(malformed(b"\x82\xa2id\x07\xa3req\x82\xa4type\xa4ping\x01\x02"), Some(7));
        // An ext value anywhere.
        assert_eq!(malformed(b"\x83\xa2id\x07\xa1x\xd4\x01\x00\xa3req\x81\xa4type\xa4ping"), Some(7));
        // A map that claims more entries than there are bytes.
        assert_eq!(malformed(b"\xdf\xff\xff\xff\xff\xa2id\x07"), Some(0));
        // Nesting deeper than any frame needs.
        let mut deep = b"\x82\xa2id\x07\xa3req\x82\xa4type\xa4ping\xa1x".to_vec();
        deep.extend(std::iter::repeat_n(0x91, 100_000));
        deep.push(0xc0);
        assert_eq!(malformed(&deep), Some(7));
    }

    #[test]
    fn an_id_in_a_signed_encoding_is_read() {
        // {"id": int8 3, "req": {}}: found by the fuzzer (the decoder read
        // 3, the shape check did not, and the error said id 0).
        assert_eq!(malformed(b"\x82\xa2id\xd0\x03\xa3req\x80"), Some(3));
        assert_eq!(
            ClientFrame::decode(b"\x82\xa2id\xd1\x00\x03\xa3req\x81\xa4type\xa4ping"),
            Ok(ClientFrame { id: 3, req: Request::Ping })
        );
        assert_eq!(malformed(b"\x82\xa2id\xd0\xfd\xa3req\x80"), Some(0));
    }

    #[test]
    fn an_unreadable_request_keeps_a_readable_id() {
        // {"id": 9, "req": {"type": "fly"}}: unknown, the connection stays.
        assert_eq!(
            ClientFrame::decode(b"\x82\xa2id\x09\xa3req\x81\xa4type\xa3fly"),
            Err(DecodeError::UnknownRequest { id: 9, kind: "fly".into() })
        );
        // {"id": 9, "req": {}}: no type at all.
        assert_eq!(malformed(b"\x82\xa2id\x09\xa3req\x80"), Some(9));
        // {"id": 9}: no request at all.
        assert_eq!(malformed(b"\x81\xa2id\x09"), Some(9));
        // An id that does not fit in a u32 is not readable.
        assert_eq!(malformed(b"\x82\xa2id\xcf\x00\x00\x00\x01\x00\x00\x00\x00\xa3req\x80"), Some(0));
    }

    #[derive(Serialize)]
    struct Odd {
        id: u32,
        req: OddReq,
    }
    #[derive(Serialize)]
    struct OddReq {
        #[serde(rename = "type")]
        kind: &'static str,
        to: u8,
    }

    #[test]
    fn unknown_and_invalid_requests_keep_their_id() {
        let unknown = rmp_serde::to_vec_named(&Odd { id: 5, req: OddReq { kind: "fly", to: 1 } }).unwrap();
        assert_eq!(
            ClientFrame::decode(&unknown),
            Err(DecodeError::UnknownRequest { id: 5, kind: "fly".into() })
        );
        let invalid = rmp_serde::to_vec_named(&Odd { id: 6, req: OddReq { kind: "send", to: 1 } }).unwrap();
        assert!(matches!(ClientFrame::decode(&invalid), Err(DecodeError::InvalidRequest { id: 6, .. })));
    }
}
