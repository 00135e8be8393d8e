//! Moving whole frames to and from a server, whatever carries them.
//!
//! A transport is a pair of halves: a [`FrameSink`] that writes one encoded
//! frame at a time and a [`FrameSource`] that reads one. The connection's
//! driver task owns both halves and polls the source in a `select!` together
//! with its queue of outgoing requests, so **`FrameSource::recv_frame` must be
//! cancel-safe**: dropping the future before it finishes must lose no bytes.
//!
//! Three transports:
//! - `ws://`: WebSocket over TCP, one frame per binary message.
//! - `wss://`: the same over TLS, the box authenticated by its pinned key
//!   ([`crate::tls`]).
//! - `quic://`: QUIC with ALPN `imbox/1`: one bidirectional stream opened by
//!   the client, every frame length-prefixed on it. A connection resumed
//!   from a session ticket starts at once with 0-RTT early data
//!   ([`Opened::early`]). If the box refuses the early data, quinn discards
//!   the stream: writes to it are then reported as done and reads never end,
//!   because the driver learns of the refusal from [`Opened::early`], opens a
//!   new stream ([`reopen`]) and sends every early frame again.

use std::future::pending;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use imbox_protocol::stream::{length_prefixed, FrameBuffer};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

use crate::connection::ConnectOptions;
use crate::error::ClientError;
use crate::tls::{pinned_tls, wrong_key_in, PinnedTls};
use crate::url::{Scheme, ServerUrl};

/// The largest frame the client accepts from a server. A sync page of full
/// messages stays far below it; anything larger is a broken or hostile server
/// and must not make the client allocate without bound.
pub const MAX_INCOMING_FRAME: usize = 16 * 1024 * 1024;

/// How long a QUIC connection may stay silent. The box allows 60 s; the
/// keep-alives ([`ConnectOptions::quic_keep_alive`]) keep a live connection
/// well inside it.
const QUIC_IDLE_TIMEOUT_MS: u32 = 60_000;

/// Flow-control windows for QUIC: a few sync pages in flight, not the
/// megabytes per connection that quinn allows by default, because the load
/// generator holds thousands of connections in one process.
const QUIC_STREAM_WINDOW: u32 = 1024 * 1024;
const QUIC_CONNECTION_WINDOW: u32 = 2 * 1024 * 1024;
const QUIC_SEND_WINDOW: u64 = 1024 * 1024;

/// The most bytes taken from a QUIC stream at once.
const QUIC_READ_CHUNK: usize = 64 * 1024;

type WsStream = WebSocketStream<TcpOrTls>;

/// A TCP connection under a WebSocket, encrypted (`wss`) or not (`ws`).
#[derive(Debug)]
pub enum TcpOrTls {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP; boxed because the TLS state is large.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// The writing half of a transport.
#[derive(Debug)]
pub enum FrameSink {
    /// A WebSocket connection's writing half.
    WebSocket(SplitSink<WsStream, Message>),
    /// The sending side of the QUIC stream.
    Quic(QuicSink),
}

/// The sending side of the QUIC stream, with what closing it politely needs.
#[derive(Debug)]
pub struct QuicSink {
    send: quinn::SendStream,
    connection: quinn::Connection,
    endpoint: quinn::Endpoint,
}

/// The reading half of a transport.
#[derive(Debug)]
pub enum FrameSource {
    /// A WebSocket connection's reading half.
    WebSocket(SplitStream<WsStream>),
    /// The receiving side of the QUIC stream.
    Quic(QuicSource),
}

/// The receiving side of the QUIC stream and the partial frame read so far.
#[derive(Debug)]
pub struct QuicSource {
    recv: quinn::RecvStream,
    frames: FrameBuffer,
    /// Bytes in `frames` not yet returned as a frame, to tell a clean end of
    /// the stream from one in the middle of a frame.
    partial: usize,
}

impl QuicSource {
    fn new(recv: quinn::RecvStream) -> QuicSource {
        QuicSource { recv, frames: FrameBuffer::new(MAX_INCOMING_FRAME), partial: 0 }
    }
}

/// A transport just opened.
pub struct Opened {
    pub sink: FrameSink,
    pub source: FrameSource,
    /// The QUIC endpoint (its UDP socket is what `rebind` replaces); `None`
    /// over TCP.
    pub endpoint: Option<quinn::Endpoint>,
    /// The QUIC connection, on which attachments travel in streams of their
    /// own beside the session stream; `None` over TCP.
    pub quic: Option<quinn::Connection>,
    /// The local address of a TCP connection; QUIC asks its endpoint, as
    /// the address changes with `rebind`.
    pub tcp_local_addr: Option<SocketAddr>,
    /// For a QUIC connection sending 0-RTT early data: resolves to whether
    /// the box accepted it, once the handshake is over. `None` when there
    /// is no early data.
    pub early: Option<EarlyOutcome>,
}

/// Whether the box accepted the early data (quinn's `ZeroRttAccepted`; a
/// plain future so that the driver's handling of it is tested without
/// racing a real handshake).
pub type EarlyOutcome = Pin<Box<dyn std::future::Future<Output = bool> + Send>>;

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("sink", &self.sink)
            .field("source", &self.source)
            .field("endpoint", &self.endpoint)
            .field("quic", &self.quic.is_some())
            .field("tcp_local_addr", &self.tcp_local_addr)
            .field("early", &self.early.is_some())
            .finish()
    }
}

/// Why a transport stopped working, in words for [`ClientError::ConnectionClosed`].
pub type TransportError = String;

impl FrameSink {
    /// Writes one encoded frame and flushes it.
    pub async fn send_frame(&mut self, frame: Vec<u8>) -> Result<(), TransportError> {
        match self {
            FrameSink::WebSocket(sink) => {
                sink.send(Message::Binary(frame.into())).await.map_err(|e| describe_ws_error(&e))
            }
            FrameSink::Quic(quic) => match quic.send.write_all(&length_prefixed(&frame)).await {
                Ok(()) => Ok(()),
                // Not lost: the driver sends every early frame again on a
                // new stream (see the module documentation).
                Err(quinn::WriteError::ZeroRttRejected) => Ok(()),
                Err(quinn::WriteError::ConnectionLost(err)) => Err(describe_connection_error(&err)),
                Err(quinn::WriteError::Stopped(code)) => {
                    Err(format!("the server stopped reading the stream (error {code})"))
                }
                Err(err @ quinn::WriteError::ClosedStream) => Err(err.to_string()),
            },
        }
    }

    /// Ends the connection politely; errors are irrelevant at this point.
    pub async fn close(&mut self) {
        match self {
            FrameSink::WebSocket(sink) => {
                let _ = sink.close().await;
            }
            FrameSink::Quic(quic) => {
                let _ = quic.send.finish();
                quic.connection.close(0u32.into(), b"bye");
                // The endpoint's task sends the close; dropping the endpoint
                // before it has would leave the box waiting for its idle
                // timeout.
                quic.endpoint.wait_idle().await;
            }
        }
    }
}

impl FrameSource {
    /// Reads the next frame; `Ok(None)` when the server closed the connection
    /// cleanly. Cancel-safe (see the module documentation).
    pub async fn recv_frame(&mut self) -> Result<Option<Vec<u8>>, TransportError> {
        match self {
            FrameSource::WebSocket(stream) => loop {
                // `StreamExt::next` on a split WebSocket stream is cancel-safe:
                // partial frames stay buffered inside tungstenite.
                match stream.next().await {
                    None | Some(Ok(Message::Close(_))) => return Ok(None),
                    Some(Ok(Message::Binary(bytes))) => return Ok(Some(bytes.into())),
                    Some(Ok(Message::Text(_))) => {
                        return Err("the server sent a text message; imbox frames are binary".into())
                    }
                    // tungstenite answers pings itself; nothing else to do.
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                    Some(Err(e)) => return Err(describe_ws_error(&e)),
                }
            },
            FrameSource::Quic(quic) => loop {
                match quic.frames.next_frame() {
                    Ok(Some(frame)) => {
                        quic.partial = quic.partial.saturating_sub(4 + frame.len());
                        return Ok(Some(frame));
                    }
                    Ok(None) => {}
                    Err(err) => return Err(format!("the server sent an oversized frame ({err})")),
                }
                // `read_chunk` is cancel-safe: bytes leave the stream only
                // when it returns them, and partial frames wait in `frames`.
                match quic.recv.read_chunk(QUIC_READ_CHUNK, true).await {
                    Ok(Some(chunk)) => {
                        quic.partial += chunk.bytes.len();
                        quic.frames.extend(&chunk.bytes);
                    }
                    Ok(None) if quic.partial == 0 => return Ok(None),
                    Ok(None) => return Err("the server ended the stream in the middle of a frame".into()),
                    // The driver replaces this stream (see the module
                    // documentation); until then there is nothing to read.
                    Err(quinn::ReadError::ZeroRttRejected) => pending::<()>().await,
                    Err(quinn::ReadError::ConnectionLost(quinn::ConnectionError::ApplicationClosed(
                        close,
                    ))) if close.error_code == quinn::VarInt::from_u32(0) => return Ok(None),
                    Err(quinn::ReadError::ConnectionLost(quinn::ConnectionError::LocallyClosed)) => {
                        return Ok(None)
                    }
                    Err(quinn::ReadError::ConnectionLost(err)) => {
                        return Err(describe_connection_error(&err))
                    }
                    Err(quinn::ReadError::Reset(code)) => {
                        return Err(format!("the server reset the stream (error {code})"))
                    }
                    Err(err) => return Err(err.to_string()),
                }
            },
        }
    }
}

/// Replaces the QUIC stream after the box refused 0-RTT: quinn discards the
/// streams of refused early data, and the box never saw them.
pub async fn reopen(sink: &mut FrameSink, source: &mut FrameSource) -> Result<(), TransportError> {
    let (FrameSink::Quic(sink), FrameSource::Quic(source)) = (sink, source) else {
        return Err("only QUIC connections send early data".into());
    };
    let (send, recv) = sink.connection.open_bi().await.map_err(|e| describe_connection_error(&e))?;
    sink.send = send;
    *source = QuicSource::new(recv);
    Ok(())
}

/// Opens a transport to `url` within `options.connect_timeout`. `wss` and
/// `quic` need `options.pin`.
pub async fn connect(url: &ServerUrl, options: &ConnectOptions) -> Result<Opened, ClientError> {
    match url.scheme() {
        Scheme::Ws => connect_websocket(url, None, options.connect_timeout).await,
        Scheme::Wss => {
            let tls = tls_for(url, options)?;
            connect_websocket(url, Some(&tls), options.connect_timeout).await
        }
        Scheme::Quic => {
            let tls = tls_for(url, options)?;
            connect_quic(url, &tls, options).await
        }
    }
}

pub(crate) fn tls_for(url: &ServerUrl, options: &ConnectOptions) -> Result<Arc<PinnedTls>, ClientError> {
    let pin = options.pin.ok_or_else(|| ClientError::NoPin { url: url.to_string() })?;
    pinned_tls(pin)
}

/// The name TLS is told. Only the session cache cares (it is keyed by it):
/// the pinned key is checked whatever the name.
fn server_name(url: &ServerUrl) -> Result<ServerName<'static>, ClientError> {
    ServerName::try_from(url.host().to_owned()).map_err(|_| ClientError::InvalidUrl {
        url: url.to_string(),
        reason: "the host is neither a DNS name nor an IP address".to_owned(),
    })
}

fn no_answer(url: &ServerUrl, timeout: Duration) -> ClientError {
    ClientError::Connect {
        url: url.to_string(),
        reason: format!("no answer within {}s", timeout.as_secs_f32()),
    }
}

async fn connect_websocket(
    url: &ServerUrl,
    tls: Option<&PinnedTls>,
    timeout: Duration,
) -> Result<Opened, ClientError> {
    let text = url.to_string();
    let attempt = async {
        let stream = open_tcp(url, tls).await?;
        let tcp_local_addr = stream.local_addr();
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_INCOMING_FRAME))
            .max_frame_size(Some(MAX_INCOMING_FRAME));
        let (stream, _response) =
            tokio_tungstenite::client_async_with_config(text.as_str(), stream, Some(config))
                .await
                .map_err(|e| connect_error(text.clone(), e))?;
        Ok::<_, ClientError>((stream, tcp_local_addr))
    };
    let (stream, tcp_local_addr) = match tokio::time::timeout(timeout, attempt).await {
        Err(_) => return Err(no_answer(url, timeout)),
        Ok(result) => result?,
    };
    let (sink, source) = stream.split();
    Ok(Opened {
        sink: FrameSink::WebSocket(sink),
        source: FrameSource::WebSocket(source),
        endpoint: None,
        quic: None,
        tcp_local_addr,
        early: None,
    })
}

/// Opens a TCP connection to `url`'s host and port, with TLS checked
/// against the pinned key when `tls` is given. The WebSocket and the HTTPS
/// requests of attachments ([`crate::attachments`]) both start here.
pub(crate) async fn open_tcp(url: &ServerUrl, tls: Option<&PinnedTls>) -> Result<TcpOrTls, ClientError> {
    let tcp = TcpStream::connect((url.host(), url.port()))
        .await
        .map_err(|e| ClientError::Connect { url: url.to_string(), reason: describe_io_error(&e) })?;
    // Nagle off: frames are small and latency matters more than packet
    // count. Failing to set it costs latency only.
    let _ = tcp.set_nodelay(true);
    match tls {
        None => Ok(TcpOrTls::Plain(tcp)),
        Some(tls) => {
            let name = server_name(url)?;
            let name_text = name.to_str().into_owned();
            let connector = tokio_rustls::TlsConnector::from(Arc::clone(&tls.wss));
            match connector.connect(name, tcp).await {
                Ok(stream) => {
                    tls.verifier.take_refused(&name_text);
                    Ok(TcpOrTls::Tls(Box::new(stream)))
                }
                Err(err) => Err(tls_error(url, tls, &name_text, &err)),
            }
        }
    }
}

impl TcpOrTls {
    fn local_addr(&self) -> Option<SocketAddr> {
        match self {
            TcpOrTls::Plain(tcp) => tcp.local_addr().ok(),
            TcpOrTls::Tls(tls) => tls.get_ref().0.local_addr().ok(),
        }
    }
}

/// The error for a failed TLS handshake over TCP.
fn tls_error(url: &ServerUrl, tls: &PinnedTls, name: &str, err: &io::Error) -> ClientError {
    let refused = tls.verifier.take_refused(name);
    if let Some(wrong) = wrong_key_in(err) {
        return ClientError::KeyMismatch { url: url.to_string(), expected: wrong.expected, seen: wrong.seen };
    }
    if let Some(seen) = refused {
        return ClientError::KeyMismatch { url: url.to_string(), expected: tls.verifier.pin(), seen };
    }
    match err.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        Some(tls_err) => ClientError::Tls { url: url.to_string(), reason: tls_err.to_string() },
        None if err.kind() == io::ErrorKind::UnexpectedEof => ClientError::Tls {
            url: url.to_string(),
            reason: "the server closed the connection during the handshake".to_owned(),
        },
        None => ClientError::Connect { url: url.to_string(), reason: describe_io_error(err) },
    }
}

async fn connect_quic(
    url: &ServerUrl,
    tls: &PinnedTls,
    options: &ConnectOptions,
) -> Result<Opened, ClientError> {
    let timeout = options.connect_timeout;
    let deadline = Instant::now() + timeout;
    let name = server_name(url)?.to_str().into_owned();
    let lookup = tokio::net::lookup_host((url.host(), url.port()));
    let addrs: Vec<SocketAddr> = match tokio::time::timeout_at(deadline, lookup).await {
        Err(_) => return Err(no_answer(url, timeout)),
        Ok(Err(err)) => {
            return Err(ClientError::Connect { url: url.to_string(), reason: describe_io_error(&err) })
        }
        Ok(Ok(addrs)) => addrs.collect(),
    };
    let mut last = None;
    for (tried, addr) in addrs.iter().enumerate() {
        // UDP gives no "connection refused": an address that does not
        // answer takes only its share of the time, so that the others (a
        // name often has an IPv6 and an IPv4 address) still get a chance.
        let left = deadline.saturating_duration_since(Instant::now());
        let share = left / u32::try_from(addrs.len() - tried).unwrap_or(u32::MAX);
        match tokio::time::timeout(share, connect_quic_to(url, tls, &name, *addr, options)).await {
            Ok(Ok(opened)) => return Ok(opened),
            Ok(Err(err @ ClientError::Connect { .. })) => last = Some(err),
            Ok(Err(err)) => return Err(err),
            Err(_) => last = Some(no_answer(url, timeout)),
        }
    }
    Err(last.unwrap_or_else(|| ClientError::Connect {
        url: url.to_string(),
        reason: "the host name has no address".to_owned(),
    }))
}

async fn connect_quic_to(
    url: &ServerUrl,
    tls: &PinnedTls,
    name: &str,
    addr: SocketAddr,
    options: &ConnectOptions,
) -> Result<Opened, ClientError> {
    let text = url.to_string();
    // An endpoint (a UDP socket) per connection, so that `rebind` moves
    // this connection only. Session tickets live in the shared TLS
    // configuration, not in the endpoint.
    let local: SocketAddr =
        if addr.is_ipv4() { (Ipv4Addr::UNSPECIFIED, 0).into() } else { (Ipv6Addr::UNSPECIFIED, 0).into() };
    let endpoint = quinn::Endpoint::client(local).map_err(|e| ClientError::Connect {
        url: text.clone(),
        reason: format!("cannot open a UDP socket: {e}"),
    })?;
    let mut config = quinn::ClientConfig::new(Arc::clone(&tls.quic) as Arc<dyn quinn::crypto::ClientConfig>);
    config.transport_config(Arc::new(quic_transport(options)));
    let connecting = endpoint.connect_with(config, addr, name).map_err(|err| match err {
        quinn::ConnectError::InvalidServerName(_) => ClientError::InvalidUrl {
            url: text.clone(),
            reason: "the host is neither a DNS name nor an IP address".to_owned(),
        },
        other => ClientError::Connect { url: text.clone(), reason: other.to_string() },
    })?;
    let (connection, early) = match connecting.into_0rtt() {
        // A session ticket from an earlier connection: requests can go now.
        Ok((connection, accepted)) => (connection, Some(Box::pin(accepted) as EarlyOutcome)),
        Err(connecting) => match connecting.await {
            Ok(connection) => {
                tls.verifier.take_refused(name);
                (connection, None)
            }
            Err(err) => return Err(quic_handshake_error(url, tls, name, err)),
        },
    };
    let (send, recv) = connection.open_bi().await.map_err(|err| quic_handshake_error(url, tls, name, err))?;
    let quic = connection.clone();
    Ok(Opened {
        sink: FrameSink::Quic(QuicSink { send, connection, endpoint: endpoint.clone() }),
        source: FrameSource::Quic(QuicSource::new(recv)),
        endpoint: Some(endpoint),
        quic: Some(quic),
        tcp_local_addr: None,
        early,
    })
}

fn quic_transport(options: &ConnectOptions) -> quinn::TransportConfig {
    let mut config = quinn::TransportConfig::default();
    config
        .keep_alive_interval(options.quic_keep_alive)
        .max_idle_timeout(Some(quinn::VarInt::from_u32(QUIC_IDLE_TIMEOUT_MS).into()))
        // The box opens no streams and sends no datagrams.
        .max_concurrent_bidi_streams(0u8.into())
        .max_concurrent_uni_streams(0u8.into())
        .datagram_receive_buffer_size(None)
        .stream_receive_window(quinn::VarInt::from_u32(QUIC_STREAM_WINDOW))
        .receive_window(quinn::VarInt::from_u32(QUIC_CONNECTION_WINDOW))
        .send_window(QUIC_SEND_WINDOW);
    config
}

/// The error for a QUIC connection that failed before it carried a frame.
fn quic_handshake_error(
    url: &ServerUrl,
    tls: &PinnedTls,
    name: &str,
    err: quinn::ConnectionError,
) -> ClientError {
    use quinn::ConnectionError;
    let url_text = url.to_string();
    // quinn turns the verifier's error into text; the verifier kept the key.
    if let (Some(seen), ConnectionError::TransportError(_)) = (tls.verifier.take_refused(name), &err) {
        return ClientError::KeyMismatch { url: url_text, expected: tls.verifier.pin(), seen };
    }
    match err {
        ConnectionError::TimedOut => ClientError::Connect { url: url_text, reason: "no answer".to_owned() },
        ConnectionError::Reset => {
            ClientError::Connect { url: url_text, reason: "connection reset".to_owned() }
        }
        ConnectionError::TransportError(err) => ClientError::Tls { url: url_text, reason: err.to_string() },
        ConnectionError::ConnectionClosed(close) => {
            ClientError::Tls { url: url_text, reason: format!("the server refused the connection ({close})") }
        }
        ConnectionError::ApplicationClosed(close) => {
            ClientError::Tls { url: url_text, reason: format!("the server closed the connection ({close})") }
        }
        ConnectionError::VersionMismatch => ClientError::Tls {
            url: url_text,
            reason: "the server speaks no QUIC version this client knows".to_owned(),
        },
        other => ClientError::Connect { url: url_text, reason: other.to_string() },
    }
}

/// Words for a lost QUIC connection that read well after "the connection
/// to the server was lost:".
pub(crate) fn describe_connection_error(err: &quinn::ConnectionError) -> String {
    use quinn::ConnectionError;
    match err {
        ConnectionError::TimedOut => "no sign of life from the server for too long".to_owned(),
        ConnectionError::Reset => "the server no longer knows this connection (did it restart?)".to_owned(),
        ConnectionError::ApplicationClosed(close) if close.reason.is_empty() => {
            format!("the server closed the connection (error {})", close.error_code)
        }
        ConnectionError::ApplicationClosed(close) => format!(
            "the server closed the connection (error {}: {})",
            close.error_code,
            String::from_utf8_lossy(&close.reason)
        ),
        ConnectionError::LocallyClosed => "the client closed the connection".to_owned(),
        other => other.to_string(),
    }
}

impl AsyncRead for TcpOrTls {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TcpOrTls::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            TcpOrTls::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for TcpOrTls {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            TcpOrTls::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            TcpOrTls::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            TcpOrTls::Plain(tcp) => Pin::new(tcp).poll_write_vectored(cx, bufs),
            TcpOrTls::Tls(tls) => Pin::new(tls.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            TcpOrTls::Plain(tcp) => tcp.is_write_vectored(),
            TcpOrTls::Tls(tls) => tls.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TcpOrTls::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            TcpOrTls::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TcpOrTls::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            TcpOrTls::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}

fn connect_error(url: String, err: tungstenite::Error) -> ClientError {
    match err {
        tungstenite::Error::Io(io) => ClientError::Connect { url, reason: describe_io_error(&io) },
        tungstenite::Error::Url(reason) => ClientError::InvalidUrl { url, reason: reason.to_string() },
        tungstenite::Error::Http(response) => ClientError::Handshake {
            url,
            reason: format!("the server answered HTTP {} instead of switching protocols", response.status()),
        },
        other => ClientError::Handshake { url, reason: describe_ws_error(&other) },
    }
}

/// Words for an I/O error that read well after "cannot reach URL:".
pub(crate) fn describe_io_error(err: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match err.kind() {
        ErrorKind::ConnectionRefused => "connection refused".into(),
        ErrorKind::ConnectionReset => "connection reset".into(),
        ErrorKind::TimedOut => "connection timed out".into(),
        ErrorKind::AddrNotAvailable => "address not available".into(),
        _ => err.to_string(),
    }
}

fn describe_ws_error(err: &tungstenite::Error) -> String {
    match err {
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
            "connection closed".into()
        }
        tungstenite::Error::Io(io) => describe_io_error(io),
        tungstenite::Error::Capacity(cap) => format!("the server sent an oversized frame ({cap})"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tls_transports_need_a_pin() {
        for text in ["wss://box.lan:443", "quic://box.lan:4433"] {
            let url = ServerUrl::parse(text).expect("valid URL");
            match connect(&url, &ConnectOptions::default()).await {
                Err(err @ ClientError::NoPin { .. }) => {
                    assert!(
                        err.to_string().contains("pair with `imbox pair URI USER` or pass --pin"),
                        "{err}"
                    );
                }
                Err(other) => panic!("{text}: unexpected error {other}"),
                Ok(_) => panic!("{text}: connected"),
            }
        }
    }

    #[tokio::test]
    async fn a_closed_port_reads_as_connection_refused() {
        // Bind and drop a listener to get a port that nobody listens on.
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            listener.local_addr().expect("addr").port()
        };
        let url = ServerUrl::parse(&format!("ws://127.0.0.1:{port}")).expect("valid URL");
        let options = ConnectOptions { connect_timeout: Duration::from_secs(5), ..ConnectOptions::default() };
        let err = connect(&url, &options).await.expect_err("nobody listens");
        assert_eq!(
            err.to_string(),
            format!("cannot reach ws://127.0.0.1:{port}/ws: connection refused; is imboxd running?")
        );
    }
}
