//! WebSocket framing: one protocol frame per binary message.

use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::error::CapacityError;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use super::{CloseReason, FrameIo, TransportError};

/// How long a closing connection keeps reading (and discarding) what the
/// peer still sends, and how much: see [`WebSocketFrames::close`].
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(1);
const DRAIN_BYTES: usize = 1 << 20;

/// A server-side WebSocket carrying protocol frames.
#[derive(Debug)]
pub struct WebSocketFrames {
    ws: WebSocketStream<TokioIo<Upgraded>>,
    max_frame: usize,
    /// The close code [`FrameIo::close`] sends.
    close_reason: CloseReason,
}

impl WebSocketFrames {
    /// Wraps an upgraded HTTP connection. Buffers are kept small: most
    /// frames are a few hundred bytes, and a box holds many connections
    /// (tungstenite allocates the read buffer up front, for every idle
    /// connection; larger frames grow it as they arrive).
    pub async fn accept(upgraded: Upgraded, max_frame: usize) -> WebSocketFrames {
        let config = WebSocketConfig::default()
            .read_buffer_size(1024)
            .write_buffer_size(0)
            .max_write_buffer_size(max_frame.saturating_mul(4).max(1 << 16))
            .max_message_size(Some(max_frame))
            .max_frame_size(Some(max_frame));
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
        WebSocketFrames { ws, max_frame, close_reason: CloseReason::Normal }
    }
}

impl FrameIo for WebSocketFrames {
    async fn recv(&mut self) -> Result<Option<Vec<u8>>, TransportError> {
        loop {
            // `StreamExt::next` is cancel-safe: tungstenite keeps partial
            // reads in its own buffer.
            match self.ws.next().await {
                None | Some(Ok(Message::Close(_))) => return Ok(None),
                Some(Ok(Message::Binary(bytes))) => return Ok(Some(bytes.to_vec())),
                Some(Ok(Message::Text(_))) => {
                    return Err(TransportError::NotAFrame(
                        "text messages are not frames: send binary MessagePack",
                    ))
                }
                // Pings are answered by tungstenite itself.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Err(WsError::Capacity(CapacityError::MessageTooLong { size, max_size }))) => {
                    return Err(TransportError::TooLarge { size, limit: max_size.min(self.max_frame) })
                }
                Some(Err(e)) => return Err(TransportError::Io(e.to_string())),
            }
        }
    }

    async fn send(&mut self, frame: Vec<u8>) -> Result<(), TransportError> {
        self.ws.send(Message::Binary(frame.into())).await.map_err(|e| TransportError::Io(e.to_string()))
    }

    fn closing(&mut self, why: CloseReason) {
        self.close_reason = why;
    }

    /// Sends the close frame with its code, then half-closes and reads
    /// until the peer closes too (at most [`DRAIN_TIME`] and
    /// [`DRAIN_BYTES`]). Closing a TCP socket with unread input makes the
    /// kernel send a reset instead of a FIN, and a reset makes the peer's
    /// kernel throw away what it had received and not yet handed over: the
    /// `frame_too_large` error (whose frame is still arriving, unread) or
    /// the `bad_frame` error sent just before. Draining lets them arrive.
    async fn close(&mut self) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
        use tokio_tungstenite::tungstenite::protocol::CloseFrame;
        let code = self.close_reason.websocket_code();
        let reason = match self.close_reason {
            CloseReason::Normal => "session ended",
            CloseReason::GoingAway => "server shutting down",
            CloseReason::ProtocolError => "bad frame",
            CloseReason::PolicyViolation => "not authenticated",
            CloseReason::TooBig => "frame too large",
            CloseReason::InternalError => "server error",
        };
        let frame = CloseFrame { code: CloseCode::from(code), reason: reason.into() };
        let _ = self.ws.close(Some(frame)).await;
        let raw = self.ws.get_mut();
        let _ = raw.shutdown().await;
        let mut scratch = [0u8; 4096];
        let drain = async {
            let mut total = 0;
            while total < DRAIN_BYTES {
                match raw.read(&mut scratch).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => total += n,
                }
            }
        };
        let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
    }
}
