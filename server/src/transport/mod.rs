//! Transports: how frames reach a [`crate::session::Session`].
//!
//! [`connection::serve`] is the one connection loop, written against
//! [`FrameIo`]; each transport only moves whole frames in and out.

pub mod connection;
pub mod http;
pub mod quic;
pub mod websocket;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::session::Hub;
use connection::ConnectionLimits;

/// What every listener and its connections share.
#[derive(Debug)]
pub struct ListenerContext {
    pub hub: Arc<Hub>,
    pub limits: ConnectionLimits,
    pub max_frame: usize,
    pub shutdown: CancellationToken,
    pub tasks: TaskTracker,
    /// One permit per open session, WebSocket and QUIC together.
    pub connections: Arc<Semaphore>,
    /// Open sessions per transport, for the status page and metrics.
    pub open: Arc<OpenConnections>,
    /// The setup page, admin pages and their API, served over HTTP(S).
    pub web: Arc<crate::web::Web>,
    /// Time bounds of HTTP(S) connections and their WebSockets.
    pub http: HttpLimits,
}

/// Time bounds of HTTP(S) connections (`http.*` in the configuration).
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// Each of the TLS handshake, the request head and the request body
    /// must arrive within this.
    pub request_timeout: std::time::Duration,
    /// When to ping a silent WebSocket peer, and how long it has to answer.
    pub heartbeat: websocket::Heartbeat,
}

/// Which transport a connection came by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// WebSocket over plain HTTP.
    Ws,
    /// WebSocket over HTTPS.
    Wss,
    /// QUIC.
    Quic,
}

/// Open connections per transport: gauges, not limits (the semaphore in
/// [`ListenerContext`] is the limit).
#[derive(Debug, Default)]
pub struct OpenConnections {
    counts: [AtomicU64; 3],
}

impl OpenConnections {
    /// Counts a connection until the returned guard is dropped.
    pub fn hold(self: &Arc<Self>, kind: Kind) -> OpenConnection {
        self.counts[kind as usize].fetch_add(1, Ordering::Relaxed);
        OpenConnection { gauges: self.clone(), kind }
    }

    /// Connections open now by `kind`.
    pub fn get(&self, kind: Kind) -> u64 {
        self.counts[kind as usize].load(Ordering::Relaxed)
    }
}

/// One counted connection; see [`OpenConnections::hold`].
#[derive(Debug)]
pub struct OpenConnection {
    gauges: Arc<OpenConnections>,
    kind: Kind,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.gauges.counts[self.kind as usize].fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why a transport could not move a frame.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The peer sent a frame over the size limit.
    #[error("frame of {size} bytes exceeds the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    /// The peer sent something that is not a frame of this transport (for
    /// example a WebSocket text message).
    #[error("not a protocol frame: {0}")]
    NotAFrame(&'static str),
    /// The peer did not answer a ping in time: it vanished (a phone that
    /// left the network) or stopped reading.
    #[error("no answer to a ping within {0:?}")]
    NoPong(std::time::Duration),
    /// The connection failed.
    #[error("connection failed: {0}")]
    Io(String),
}

/// Why the server closes a session, as a WebSocket close code tells it
/// (docs/PROTOCOL.md, "WebSocket close codes"). The error frame sent just
/// before says the same for people; the code lets a client decide without
/// parsing it (for example, not to retry after 1008).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// 1000: the session ended as asked (`logout`, the session's own device
    /// revoked) or the peer closed.
    Normal,
    /// 1001: the server is shutting down (after `going_away`).
    GoingAway,
    /// 1002: `bad_frame` or `unsupported_version`.
    ProtocolError,
    /// 1008: not authenticated in time, or this device was revoked.
    PolicyViolation,
    /// 1009: `frame_too_large`.
    TooBig,
    /// 1011: the server failed.
    InternalError,
}

impl CloseReason {
    /// The reason a session closes after sending `last` as its last frame.
    pub fn after(last: &imbox_protocol::ServerFrame) -> CloseReason {
        use imbox_protocol::{ErrorCode, Event, ServerFrame};
        match last {
            ServerFrame::Ok { .. } => CloseReason::Normal,
            ServerFrame::Event { event: Event::GoingAway { .. } } => CloseReason::GoingAway,
            ServerFrame::Event { event: Event::Revoked } => CloseReason::PolicyViolation,
            ServerFrame::Event { .. } => CloseReason::Normal,
            ServerFrame::Err { error, .. } => match error.code {
                ErrorCode::FrameTooLarge => CloseReason::TooBig,
                ErrorCode::BadFrame | ErrorCode::UnsupportedVersion => CloseReason::ProtocolError,
                ErrorCode::NotAuthenticated | ErrorCode::BadCredentials => CloseReason::PolicyViolation,
                ErrorCode::Unavailable => CloseReason::GoingAway,
                ErrorCode::Internal => CloseReason::InternalError,
                _ => CloseReason::Normal,
            },
        }
    }

    /// The WebSocket close code (RFC 6455, section 7.4.1).
    pub fn websocket_code(self) -> u16 {
        match self {
            CloseReason::Normal => 1000,
            CloseReason::GoingAway => 1001,
            CloseReason::ProtocolError => 1002,
            CloseReason::PolicyViolation => 1008,
            CloseReason::TooBig => 1009,
            CloseReason::InternalError => 1011,
        }
    }
}

/// Moves whole frames. `recv` must be cancel-safe: the connection loop drops
/// it whenever something else is ready, and no data may be lost when it does.
pub trait FrameIo: Send {
    /// The next frame, or `None` when the peer closed the connection.
    fn recv(&mut self) -> impl Future<Output = Result<Option<Vec<u8>>, TransportError>> + Send;
    /// Queues one frame to send. It leaves by the next [`FrameIo::flush`] at
    /// the latest; a transport may write earlier when its buffer fills.
    /// Frames fed between two flushes go out in as few writes (TLS records,
    /// system calls, packets) as the transport can make of them.
    fn feed(&mut self, frame: Bytes) -> impl Future<Output = Result<(), TransportError>> + Send;
    /// Writes every frame fed so far.
    fn flush(&mut self) -> impl Future<Output = Result<(), TransportError>> + Send;
    /// Closes the connection politely.
    fn close(&mut self) -> impl Future<Output = ()> + Send;
    /// Says why the coming [`FrameIo::close`] closes, for transports that
    /// tell the peer (a WebSocket close code). Called once the last frame is
    /// known; without it a close is [`CloseReason::Normal`].
    fn closing(&mut self, why: CloseReason) {
        let _ = why;
    }
    /// Whether a frame read now may have come in 0-RTT early data, before
    /// the handshake completed (and so may be a replay).
    fn in_early_data(&mut self) -> bool {
        false
    }
}
