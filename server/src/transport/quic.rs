//! The QUIC transport (quinn, ALPN `imbox/1`).
//!
//! A client opens one bidirectional stream right after connecting; every
//! frame in both directions travels on it, preceded by its length
//! ([`imbox_protocol::stream`]). Typing and presence ride on the same stream,
//! in order with everything else; datagrams are not used.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use imbox_protocol::stream::FrameBuffer;
use imbox_protocol::transfer::MAX_TRANSFER_STREAMS;
use quinn::{Connection, Endpoint, RecvStream, SendStream, VarInt, ZeroRttAccepted};

use super::connection;
use super::{FrameIo, ListenerContext, TransportError};

/// How QUIC connections are tuned for a small box with many phones.
#[derive(Debug, Clone)]
pub struct QuicTuning {
    /// Close a connection after this long without packets.
    pub idle_timeout: Duration,
    /// Unacknowledged bytes the server may have in flight per connection.
    pub send_window: u64,
    /// The largest frame; the receive windows are sized to one frame.
    pub max_frame: u32,
}

/// quinn's transport settings for [`QuicTuning`].
///
/// quinn's defaults allow megabytes of receive window per connection, sized
/// for bulk transfer. A session needs one stream and at most one frame in
/// flight from the client, so the windows are one frame (plus its length
/// prefix): the most a client can make the box buffer is one frame per
/// connection.
pub fn transport_config(tuning: &QuicTuning) -> Result<quinn::TransportConfig, String> {
    let window = VarInt::from_u32(session_window(tuning));
    let mut transport = quinn::TransportConfig::default();
    transport
        // The session stream, and the transfer streams of attachments.
        .max_concurrent_bidi_streams(VarInt::from_u32(1 + MAX_TRANSFER_STREAMS))
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        // Per stream, room for an upload at LAN speed; the connection's
        // window, which bounds them all together, stays one frame until an
        // upload starts (`media::quic`).
        .stream_receive_window(VarInt::from_u32(crate::media::quic::UPLOAD_RECEIVE_WINDOW))
        .receive_window(window)
        .send_window(tuning.send_window)
        .max_idle_timeout(Some(
            quinn::IdleTimeout::try_from(tuning.idle_timeout).map_err(|e| format!("idle timeout: {e}"))?,
        ))
        // Phones keep the connection alive while they want it; the box
        // never wakes a phone's radio just to keep a mapping open.
        .keep_alive_interval(None)
        .datagram_receive_buffer_size(None);
    Ok(transport)
}

/// The connection's receive window while only the session stream is open:
/// one frame and its length prefix.
pub fn session_window(tuning: &QuicTuning) -> u32 {
    tuning.max_frame.saturating_add(4)
}

/// Frames fed are gathered into one stream write up to this size: quinn
/// takes a write's bytes as one chunk, and fewer, larger writes cost fewer
/// wake-ups of the connection's driver.
const WRITE_GATHER_BYTES: usize = 16 * 1024;

/// The session stream of one QUIC connection.
pub struct QuicFrames {
    conn: Connection,
    send: SendStream,
    recv: RecvStream,
    buffer: FrameBuffer,
    /// Length-prefixed frames fed and not yet written.
    pending: Vec<u8>,
    /// Until the handshake completes, frames may be 0-RTT early data.
    handshake: Option<ZeroRttAccepted>,
}

impl std::fmt::Debug for QuicFrames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicFrames")
            .field("remote", &self.conn.remote_address())
            .field("handshaking", &self.handshake.is_some())
            .finish_non_exhaustive()
    }
}

impl QuicFrames {
    async fn write_pending(&mut self) -> Result<(), TransportError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.send.write_all(&self.pending).await.map_err(|e| TransportError::Io(e.to_string()))?;
        self.pending.clear();
        // A burst (a catch-up page) must not leave an idle connection
        // holding its buffer.
        if self.pending.capacity() > WRITE_GATHER_BYTES {
            self.pending = Vec::new();
        }
        Ok(())
    }
}

impl FrameIo for QuicFrames {
    async fn recv(&mut self) -> Result<Option<Vec<u8>>, TransportError> {
        loop {
            match self.buffer.next_frame() {
                Ok(Some(frame)) => return Ok(Some(frame)),
                Ok(None) => {}
                Err(e) => return Err(TransportError::TooLarge { size: e.size, limit: e.limit }),
            }
            // `read_chunk` is cancel-safe, and what it read is kept in
            // `buffer`; it borrows quinn's buffer instead of keeping a read
            // buffer per idle connection.
            match self.recv.read_chunk(usize::MAX, true).await {
                Ok(Some(chunk)) => self.buffer.extend(&chunk.bytes),
                Ok(None) => return Ok(None),
                Err(quinn::ReadError::ConnectionLost(_)) => return Ok(None),
                Err(e) => return Err(TransportError::Io(e.to_string())),
            }
        }
    }

    async fn feed(&mut self, frame: Bytes) -> Result<(), TransportError> {
        let length = u32::try_from(frame.len())
            .map_err(|_| TransportError::Io(format!("a frame of {} bytes cannot be sent", frame.len())))?;
        self.pending.extend_from_slice(&length.to_be_bytes());
        self.pending.extend_from_slice(&frame);
        if self.pending.len() >= WRITE_GATHER_BYTES {
            self.write_pending().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), TransportError> {
        self.write_pending().await
    }

    async fn close(&mut self) {
        // The connection loop flushes before it closes; this is for a
        // caller that did not.
        let _ = self.write_pending().await;
        let _ = self.send.finish();
        // Let the last frames (an error, going_away) reach the client before
        // the connection is torn down.
        let _ = tokio::time::timeout(Duration::from_secs(1), self.send.stopped()).await;
        self.conn.close(VarInt::from_u32(0), b"session ended");
    }

    fn in_early_data(&mut self) -> bool {
        let Some(handshake) = &mut self.handshake else { return false };
        if handshake.now_or_never().is_some() {
            self.handshake = None;
            false
        } else {
            true
        }
    }
}

/// Accepts QUIC connections until shutdown.
pub async fn accept_loop(endpoint: Endpoint, ctx: Arc<ListenerContext>) {
    loop {
        tokio::select! {
            () = ctx.shutdown.cancelled() => break,
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                let Ok(permit) = ctx.connections.clone().try_acquire_owned() else {
                    tracing::warn!(peer = %incoming.remote_address(), "connection limit reached; refusing QUIC");
                    incoming.refuse();
                    continue;
                };
                let ctx2 = ctx.clone();
                let open = ctx.open.hold(super::Kind::Quic);
                ctx.tasks.spawn(async move {
                    serve(incoming, ctx2).await;
                    drop((open, permit));
                });
            }
        }
    }
    // Sessions say goodbye themselves; what is left is closed with the endpoint.
    let tasks = ctx.tasks.clone();
    tasks.spawn(async move {
        let _ = tokio::time::timeout(Duration::from_secs(5), endpoint.wait_idle()).await;
        endpoint.close(VarInt::from_u32(0), b"server shutting down");
    });
}

async fn serve(incoming: quinn::Incoming, ctx: Arc<ListenerContext>) {
    let peer: SocketAddr = incoming.remote_address();
    // One handshake budget for the QUIC handshake, the session stream and
    // authentication together, as on WebSocket.
    let started = tokio::time::Instant::now();
    let connecting = match incoming.accept() {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(%peer, error = %e, "QUIC connection failed");
            return;
        }
    };
    // Accept before the handshake completes, so that a returning phone's
    // 0-RTT requests are answered at once; the session refuses those that
    // are not safe to replay until `handshake` resolves.
    let (conn, handshake) = match connecting.into_0rtt() {
        Ok((conn, accepted)) => (conn, Some(accepted)),
        Err(connecting) => match connecting.await {
            Ok(conn) => (conn, None),
            Err(e) => {
                tracing::debug!(%peer, error = %e, "QUIC handshake failed");
                return;
            }
        },
    };
    let stream = tokio::time::timeout(ctx.limits.handshake_timeout, conn.accept_bi()).await;
    let (send, recv) = match stream {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "QUIC connection closed before its session stream");
            return;
        }
        Err(_) => {
            conn.close(VarInt::from_u32(1), b"no session stream in time");
            return;
        }
    };
    // Further streams carry attachments, each on its own.
    ctx.tasks.spawn(crate::media::quic::accept(
        conn.clone(),
        ctx.hub.media.clone(),
        ctx.limits.handshake_timeout.max(Duration::from_secs(30)),
        u32::try_from(ctx.max_frame.saturating_add(4)).unwrap_or(u32::MAX),
        ctx.shutdown.clone(),
    ));
    let io = QuicFrames {
        conn,
        send,
        recv,
        buffer: FrameBuffer::new(ctx.max_frame),
        pending: Vec::new(),
        handshake,
    };
    let mut limits = ctx.limits.clone();
    limits.handshake_timeout = limits.handshake_timeout.saturating_sub(started.elapsed());
    connection::serve(ctx.hub.clone(), io, peer.ip(), limits, ctx.shutdown.clone()).await;
}
