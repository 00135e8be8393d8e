//! Moving attachment bytes over QUIC, on streams of their own beside the
//! session stream, and the names the HTTPS (tus) side shares with it.
//!
//! After its session stream, a client may open up to
//! [`MAX_TRANSFER_STREAMS`] more bidirectional streams at a time on the same
//! connection. Each carries one transfer:
//!
//! 1. the client writes one length-prefixed ([`crate::stream`]) MessagePack
//!    map, a [`TransferRequest`], which carries the device token (a stream
//!    does not inherit the session's authentication, so that a transfer
//!    needs nothing of the session's state);
//! 2. the server answers with one length-prefixed [`TransferResponse`];
//! 3. for an upload (`ready`), the client writes the bytes from the offset
//!    the server gave to the end and finishes its side; the server answers
//!    `stored` once the content is durable, or `error`. For a download
//!    (`blob`), the server writes the bytes from the asked offset to the end
//!    and finishes.
//!
//! An upload cut off anywhere resumes with the same `upload` id: the server
//! answers `ready` with the offset it holds durably (which may be less than
//! what the client sent), and the client goes on from there.

use serde::{Deserialize, Serialize};

use crate::error::ErrorBody;

/// Streams a client may have open for transfers at once, besides its
/// session stream.
pub const MAX_TRANSFER_STREAMS: u32 = 2;

/// The largest transfer header either side writes, in bytes.
pub const MAX_TRANSFER_HEADER: usize = 4096;

/// The tus protocol version the HTTPS upload endpoint speaks.
pub const TUS_VERSION: &str = "1.0.0";

/// The HTTPS path of the tus upload endpoint (uploads are created by a
/// `POST` to it, and live at `UPLOADS_PATH/ID`).
pub const UPLOADS_PATH: &str = "/api/uploads";

/// The HTTPS path under which attachments are downloaded:
/// `ATTACHMENTS_PATH/ID`.
pub const ATTACHMENTS_PATH: &str = "/api/attachments";

/// The response header that carries the attachment id of a finished tus
/// upload (on the last `PATCH` and on `HEAD`).
pub const ATTACHMENT_HEADER: &str = "imbox-attachment";

/// The first thing on a transfer stream, from the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TransferRequest {
    /// Starts an upload (`upload` absent) or resumes one (`upload` as the
    /// server's `ready` gave it).
    Upload {
        token: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        upload: Option<String>,
        /// The whole content's size in bytes.
        length: u64,
        /// The file name and media type, kept with the upload (the message
        /// that sends it says them again).
        name: String,
        media_type: String,
    },
    /// Reads an attachment from `offset` to its end.
    Download {
        token: String,
        attachment: String,
        #[serde(default)]
        offset: u64,
    },
}

/// The server's answers on a transfer stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TransferResponse {
    /// Send the bytes from `offset` to the end, then finish the stream.
    Ready { upload: String, offset: u64 },
    /// The content is durable; `attachment` is its id.
    Stored { upload: String, attachment: String, size: u64 },
    /// The attachment's bytes from `offset` follow, then the stream ends.
    Blob { size: u64, media_type: String, offset: u64 },
    /// The transfer failed; the stream ends.
    Error { error: ErrorBody },
}

impl TransferRequest {
    /// The MessagePack encoding (a map with string keys, as every frame).
    pub fn encode(&self) -> Vec<u8> {
        rmp_serde::to_vec_named(self).unwrap_or_else(|e| unreachable!("a transfer request encodes: {e}"))
    }

    /// Decodes a header; `Err` says what was wrong, for people.
    pub fn decode(bytes: &[u8]) -> Result<TransferRequest, String> {
        let shape = crate::shape::check_map(bytes);
        shape.and_then(|()| rmp_serde::from_slice(bytes).map_err(|e| e.to_string()))
    }
}

impl TransferResponse {
    /// The MessagePack encoding.
    pub fn encode(&self) -> Vec<u8> {
        rmp_serde::to_vec_named(self).unwrap_or_else(|e| unreachable!("a transfer response encodes: {e}"))
    }

    /// Decodes a header.
    pub fn decode(bytes: &[u8]) -> Result<TransferResponse, String> {
        rmp_serde::from_slice(bytes).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn headers_round_trip() {
        let requests = [
            TransferRequest::Upload {
                token: "t".into(),
                upload: Some("u1".into()),
                length: 200 << 20,
                name: "film.mp4".into(),
                media_type: "video/mp4".into(),
            },
            TransferRequest::Download { token: "t".into(), attachment: "ab".repeat(32), offset: 7 },
        ];
        for request in requests {
            assert_eq!(TransferRequest::decode(&request.encode()), Ok(request));
        }
        let responses = [
            TransferResponse::Ready { upload: "u1".into(), offset: 5 },
            TransferResponse::Stored { upload: "u1".into(), attachment: "ab".repeat(32), size: 9 },
            TransferResponse::Blob { size: 9, media_type: "image/png".into(), offset: 0 },
            TransferResponse::Error { error: ErrorBody::new(ErrorCode::NotFound, "no such attachment") },
        ];
        for response in responses {
            assert_eq!(TransferResponse::decode(&response.encode()), Ok(response));
        }
    }

    #[test]
    fn positional_headers_are_refused() {
        let positional = rmp_serde::to_vec(&TransferRequest::Download {
            token: "t".into(),
            attachment: "x".into(),
            offset: 0,
        })
        .unwrap_or_default();
        assert!(TransferRequest::decode(&positional).is_err());
    }
}
