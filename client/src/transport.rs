//! Moving whole frames to and from a server, whatever carries them.
//!
//! A transport is a pair of halves: a [`FrameSink`] that writes one encoded
//! frame at a time and a [`FrameSource`] that reads one. The connection's
//! driver task owns both halves and polls the source in a `select!` together
//! with its queue of outgoing requests, so **`FrameSource::recv_frame` must be
//! cancel-safe**: dropping the future before it finishes must lose no bytes.
//!
//! Today the only transport is WebSocket over TCP (one frame per binary
//! message). TLS WebSocket and QUIC (ALPN `imbox/1`, frames length-prefixed
//! on a bidirectional stream, whose quinn halves split naturally) are meant to
//! be added as further variants of these two enums and of [`connect`].

use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::error::ClientError;
use crate::url::{Scheme, ServerUrl};

/// The largest frame the client accepts from a server. A sync page of full
/// messages stays far below it; anything larger is a broken or hostile server
/// and must not make the client allocate without bound.
pub const MAX_INCOMING_FRAME: usize = 16 * 1024 * 1024;

type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The writing half of a transport.
#[derive(Debug)]
pub enum FrameSink {
    /// A WebSocket connection's writing half.
    WebSocket(SplitSink<WsStream, Message>),
}

/// The reading half of a transport.
#[derive(Debug)]
pub enum FrameSource {
    /// A WebSocket connection's reading half.
    WebSocket(SplitStream<WsStream>),
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
        }
    }

    /// Ends the connection politely; errors are irrelevant at this point.
    pub async fn close(&mut self) {
        match self {
            FrameSink::WebSocket(sink) => {
                let _ = sink.close().await;
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
        }
    }
}

/// Opens a transport to `url` within `timeout`.
pub async fn connect(url: &ServerUrl, timeout: Duration) -> Result<(FrameSink, FrameSource), ClientError> {
    match url.scheme() {
        Scheme::Ws => {}
        Scheme::Wss | Scheme::Quic => {
            return Err(ClientError::UnsupportedTransport {
                url: url.to_string(),
                scheme: url.scheme().as_str().to_owned(),
            })
        }
    }
    let text = url.to_string();
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_INCOMING_FRAME))
        .max_frame_size(Some(MAX_INCOMING_FRAME));
    // Nagle off: frames are small and latency matters more than packet count.
    let attempt = tokio_tungstenite::connect_async_with_config(text.as_str(), Some(config), true);
    let stream = match tokio::time::timeout(timeout, attempt).await {
        Err(_) => {
            return Err(ClientError::Connect {
                url: text,
                reason: format!("no answer within {}s", timeout.as_secs_f32()),
            })
        }
        Ok(Err(err)) => return Err(connect_error(text, err)),
        Ok(Ok((stream, _response))) => stream,
    };
    let (sink, source) = stream.split();
    Ok((FrameSink::WebSocket(sink), FrameSource::WebSocket(source)))
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
fn describe_io_error(err: &std::io::Error) -> String {
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
    async fn future_transports_are_refused_with_a_typed_error() {
        for text in ["wss://box.lan:443", "quic://box.lan:4433"] {
            let url = ServerUrl::parse(text).expect("valid URL");
            match connect(&url, Duration::from_secs(1)).await {
                Err(err @ ClientError::UnsupportedTransport { .. }) => {
                    assert!(err.to_string().contains("not supported yet"), "{err}");
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
        let err = connect(&url, Duration::from_secs(5)).await.expect_err("nobody listens");
        assert_eq!(
            err.to_string(),
            format!("cannot reach ws://127.0.0.1:{port}/ws: connection refused; is imboxd running?")
        );
    }
}
