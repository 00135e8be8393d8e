//! WebSocket framing: one protocol frame per binary message.

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::tungstenite::error::CapacityError;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use super::{CloseReason, FrameIo, TransportError};

/// How long a closing connection keeps reading (and discarding) what the
/// peer still sends, and how much: see [`WebSocketFrames::close`].
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(1);
const DRAIN_BYTES: usize = 1 << 20;

/// Frames fed are kept in tungstenite's write buffer until it holds this
/// much or the connection loop flushes: the frames ready after one wake-up
/// (a batch's pushes, several answers) leave as one TLS record and one
/// system call instead of one each. Under a TLS record's 16 KiB, and only
/// sessions that receive bursts grow their buffer this far.
const WRITE_GATHER_BYTES: usize = 8 * 1024;

/// When the server pings a silent peer, and how long the peer has to
/// answer (`http.ping_interval_ms`, `http.ping_timeout_ms`).
///
/// Only silence is pinged: anything the peer sends restarts the wait, so an
/// active client costs nothing extra and an idle phone is woken once per
/// interval. A phone that left the network sends no TCP reset; without this
/// its connection, its place under `max_connections` and its "online"
/// presence would stay until TCP gave up, which it never does on an idle
/// connection.
#[derive(Debug, Clone, Copy)]
pub struct Heartbeat {
    pub interval: Duration,
    pub timeout: Duration,
}

/// A server-side WebSocket carrying protocol frames.
#[derive(Debug)]
pub struct WebSocketFrames {
    ws: WebSocketStream<TokioIo<Upgraded>>,
    max_frame: usize,
    /// The close code [`FrameIo::close`] sends.
    close_reason: CloseReason,
    heartbeat: Heartbeat,
    /// When to ping, or (while `pinged`) when to give up.
    deadline: Pin<Box<Sleep>>,
    pinged: bool,
}

impl WebSocketFrames {
    /// Wraps an upgraded HTTP connection. Buffers are kept small: most
    /// frames are a few hundred bytes, and a box holds many connections
    /// (tungstenite allocates the read buffer up front, for every idle
    /// connection; larger frames grow it as they arrive; the write buffer
    /// starts empty and grows with what is fed before a flush).
    pub async fn accept(upgraded: Upgraded, max_frame: usize, heartbeat: Heartbeat) -> WebSocketFrames {
        let config = WebSocketConfig::default()
            .read_buffer_size(1024)
            .write_buffer_size(WRITE_GATHER_BYTES)
            .max_write_buffer_size(max_frame.saturating_mul(4).max(1 << 16))
            .max_message_size(Some(max_frame))
            .max_frame_size(Some(max_frame));
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
        let deadline = Box::pin(tokio::time::sleep(heartbeat.interval));
        WebSocketFrames {
            ws,
            max_frame,
            close_reason: CloseReason::Normal,
            heartbeat,
            deadline,
            pinged: false,
        }
    }

    /// The peer said something: it is there.
    fn heard(&mut self) {
        self.pinged = false;
        self.deadline.as_mut().reset(Instant::now() + self.heartbeat.interval);
    }

    /// The deadline passed: ping, or give up on a peer already pinged.
    async fn ping(&mut self) -> Result<(), TransportError> {
        let timeout = self.heartbeat.timeout;
        if self.pinged {
            return Err(TransportError::NoPong(timeout));
        }
        self.pinged = true;
        self.deadline.as_mut().reset(Instant::now() + timeout);
        // An empty ping: 2 bytes on the wire. If `recv` is dropped while
        // this waits on a full socket, the ping stays in tungstenite's buffer
        // and leaves with the next frame; a peer that cannot take it within
        // the timeout is treated as gone.
        match tokio::time::timeout(timeout, self.ws.send(Message::Ping(Bytes::new()))).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(TransportError::Io(e.to_string())),
            Err(_) => Err(TransportError::NoPong(timeout)),
        }
    }
}

impl FrameIo for WebSocketFrames {
    async fn recv(&mut self) -> Result<Option<Vec<u8>>, TransportError> {
        loop {
            // `StreamExt::next` is cancel-safe: tungstenite keeps partial
            // reads in its own buffer; the deadline survives in `self`.
            let message = tokio::select! {
                biased;
                message = self.ws.next() => message,
                () = &mut self.deadline => {
                    self.ping().await?;
                    continue;
                }
            };
            self.heard();
            match message {
                None | Some(Ok(Message::Close(_))) => return Ok(None),
                Some(Ok(Message::Binary(bytes))) => return Ok(Some(bytes.to_vec())),
                Some(Ok(Message::Text(_))) => {
                    return Err(TransportError::NotAFrame(
                        "text messages are not frames: send binary MessagePack",
                    ))
                }
                // Pings are answered by tungstenite itself; a pong (to our
                // ping, or unasked) only shows the peer is there.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Err(WsError::Capacity(CapacityError::MessageTooLong { size, max_size }))) => {
                    return Err(TransportError::TooLarge { size, limit: max_size.min(self.max_frame) })
                }
                Some(Err(e)) => return Err(TransportError::Io(e.to_string())),
            }
        }
    }

    async fn feed(&mut self, frame: Bytes) -> Result<(), TransportError> {
        self.ws.feed(Message::Binary(frame)).await.map_err(|e| TransportError::Io(e.to_string()))
    }

    async fn flush(&mut self) -> Result<(), TransportError> {
        self.ws.flush().await.map_err(|e| TransportError::Io(e.to_string()))
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
