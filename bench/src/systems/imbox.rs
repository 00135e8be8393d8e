//! imboxd over WebSocket with TLS (`wss://`) or QUIC (`quic://`), speaking the
//! protocol crate's frames directly.
//!
//! Sessions resume with device tokens made by `provision` (a token may back
//! several sessions at once), sync their stream until the server
//! switches them to live pushes, and acknowledge what they read every few
//! seconds so that the next run does not sync this run's messages again.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use imbox_client::{Scheme, ServerUrl};
use imbox_protocol::{
    ClientFrame, ErrorBody, Event, Fingerprint, Item, Request, Response, ServerFrame, Target,
    SUPPORTED_VERSIONS,
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;

use super::{burst, Dest, Ended, Observer, Outgoing, Session as AnySession, Slot, MAX_IN_FLIGHT};
use crate::clock;
use crate::net::{self, QuicEndpoints, Sources, CONNECT_TIMEOUT};
use crate::payload::Stamp;

/// The largest frame accepted from the server (a full sync page is far
/// smaller).
const MAX_FRAME: usize = 16 * 1024 * 1024;

/// The WebSocket read buffer and write batch, per connection.
const WS_BUFFER: usize = 8 * 1024;

/// Entries per sync page asked for; the server caps it (500 by default).
const SYNC_PAGE: u32 = 500;

/// How often a running session records its read position on the server.
const ACK_EVERY: Duration = Duration::from_secs(5);

/// What `provision` writes and the scenarios read: one device token per user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokensFile {
    pub url: String,
    pub pin: String,
    pub users: Vec<UserToken>,
}

/// One user's device token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserToken {
    pub name: String,
    pub token: String,
}

impl TokensFile {
    pub fn read(path: &Path) -> anyhow::Result<TokensFile> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let file: TokensFile = serde_json::from_str(&text).with_context(|| {
            format!("{} is not a tokens file (made by `imbox-bench provision`)", path.display())
        })?;
        anyhow::ensure!(!file.users.is_empty(), "{} lists no users", path.display());
        Ok(file)
    }
}

/// The name of group `index` in this run: new names each run, so that a
/// data directory reused across runs never holds a group of that name.
pub fn group_name(run: u32, index: usize) -> String {
    format!("bench-{run:08x}-{index}")
}

/// How sessions reach imboxd.
#[derive(Debug)]
enum Transport {
    WebSocket { tls: Option<Arc<rustls::ClientConfig>> },
    Quic { config: quinn::ClientConfig, endpoints: QuicEndpoints },
}

/// imboxd at one URL, with the tokens sessions resume with.
#[derive(Debug)]
pub struct Imbox {
    url: ServerUrl,
    server: SocketAddr,
    sources: Sources,
    transport: Transport,
    users: Arc<Vec<UserToken>>,
    run: u32,
}

impl Imbox {
    /// Prepares to drive `url`, pinned to `pin`, with `tokens`, for about
    /// `connections` connections from `sources` source addresses (or as many
    /// as they need).
    pub async fn new(
        url: &str,
        pin: Option<&str>,
        tokens: TokensFile,
        sources: Option<u32>,
        connections: usize,
    ) -> anyhow::Result<Imbox> {
        let url = ServerUrl::parse(url)?;
        let server = net::resolve(url.host(), url.port()).await?;
        let sources = Sources::for_connections(sources, connections, server);
        let pin = || -> anyhow::Result<Fingerprint> {
            let text = pin.context("--pin is required for wss:// and quic:// (imboxd identity prints it)")?;
            text.parse().map_err(|e| anyhow::anyhow!("--pin: {e}"))
        };
        let transport = match url.scheme() {
            Scheme::Ws => Transport::WebSocket { tls: None },
            Scheme::Wss => {
                Transport::WebSocket { tls: Some(Arc::new(net::pinned_tls(pin()?, b"http/1.1", false)?)) }
            }
            Scheme::Quic => {
                let tls = net::pinned_tls(pin()?, imbox_protocol::QUIC_ALPN, true)?;
                let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
                    .context("the TLS configuration does not suit QUIC")?;
                let mut config = quinn::ClientConfig::new(Arc::new(crypto));
                config.transport_config(Arc::new(quic_transport()));
                Transport::Quic { config, endpoints: QuicEndpoints::open(&sources)? }
            }
        };
        Ok(Imbox { url, server, sources, transport, users: Arc::new(tokens.users), run: clock::run_id() })
    }

    pub fn transport(&self) -> &'static str {
        self.url.scheme().as_str()
    }

    pub fn url(&self) -> String {
        self.url.to_string()
    }

    pub fn users(&self) -> usize {
        self.users.len()
    }

    /// The user session `index` acts as: tokens are used round robin.
    fn user(&self, index: usize) -> &UserToken {
        &self.users[index % self.users.len()]
    }

    /// Opens the transport for connection `index`.
    async fn connect(&self, index: usize) -> anyhow::Result<(Sink, Source)> {
        let source = self.sources.pick(index);
        match &self.transport {
            Transport::WebSocket { tls } => {
                let tcp = net::tcp_connect(source, self.server)
                    .await
                    .with_context(|| format!("cannot connect from {source} to {}", self.server))?;
                let stream: Box<dyn net::Stream> = match tls {
                    Some(tls) => Box::new(net::tls_connect(tls, self.url.host(), tcp).await?),
                    None => Box::new(tcp),
                };
                // Small buffers: tungstenite's defaults (128 KiB each way per
                // connection) would cost this process gigabytes at 100,000
                // sessions, and chat frames are under 1 KiB.
                let config = WebSocketConfig::default()
                    .max_message_size(Some(MAX_FRAME))
                    .max_frame_size(Some(MAX_FRAME))
                    .read_buffer_size(WS_BUFFER)
                    .write_buffer_size(WS_BUFFER);
                let (ws, _) =
                    tokio_tungstenite::client_async_with_config(self.url.to_string(), stream, Some(config))
                        .await
                        .context("the WebSocket upgrade failed")?;
                let (sink, source) = ws.split();
                Ok((Sink::WebSocket(sink), Source::WebSocket(source)))
            }
            Transport::Quic { config, endpoints } => {
                let endpoint = endpoints.pick(index);
                let connection = endpoint
                    .connect_with(config.clone(), self.server, self.url.host())?
                    .await
                    .context("the QUIC handshake failed")?;
                let (send, recv) = connection.open_bi().await.context("cannot open the QUIC stream")?;
                let codec = || LengthDelimitedCodec::builder().max_frame_length(MAX_FRAME).new_codec();
                Ok((
                    Sink::Quic { frames: FramedWrite::new(send, codec()), connection },
                    Source::Quic(FramedRead::new(recv, codec())),
                ))
            }
        }
    }

    /// Transport, hello and resume: a logged-in session, not yet live.
    async fn resume(&self, slot: Slot) -> anyhow::Result<(Session, u64)> {
        let user = self.user(slot.index);
        let (sink, source) = self.connect(slot.index).await?;
        let mut session = Session {
            sink,
            source,
            user: user.name.clone(),
            next_id: 1,
            position: 0,
            acked_position: 0,
            users: Arc::clone(&self.users),
            run: self.run,
        };
        let hello = Request::Hello {
            versions: SUPPORTED_VERSIONS.to_vec(),
            client: concat!("imbox-bench/", env!("CARGO_PKG_VERSION")).to_owned(),
        };
        match session.call(hello).await? {
            Response::Welcome { .. } => {}
            other => bail!("hello was answered with {}", kind(&other)),
        }
        match session.call(Request::Resume { token: user.token.clone() }).await? {
            Response::Authenticated { cursor, .. } => Ok((session, cursor)),
            other => bail!("resume was answered with {}", kind(&other)),
        }
    }

    /// A live session: resumed, then synced page by page until the server
    /// pushes new entries itself.
    pub async fn open(&self, slot: Slot) -> anyhow::Result<Session> {
        let (mut session, cursor) = self.resume(slot).await?;
        session.position = cursor;
        session.acked_position = cursor;
        loop {
            let page = Request::Sync { since: session.position, limit: SYNC_PAGE };
            match session.call(page).await? {
                Response::Entries { next, more, .. } => {
                    session.position = session.position.max(next);
                    if !more {
                        break;
                    }
                }
                other => bail!("sync was answered with {}", kind(&other)),
            }
        }
        if session.position > session.acked_position {
            session.call(Request::Ack { position: session.position }).await?;
            session.acked_position = session.position;
        }
        Ok(session)
    }

    /// Hello and resume only.
    pub async fn log_in(&self, slot: Slot) -> anyhow::Result<Session> {
        Ok(self.resume(slot).await?.0)
    }

    /// Creates group `group`: the session of `members[0]` makes it with the
    /// users of the others.
    pub async fn create_group(
        &self,
        group: usize,
        members: &[usize],
        sessions: &mut [Option<AnySession>],
    ) -> anyhow::Result<()> {
        let Some((&creator, others)) = members.split_first() else { return Ok(()) };
        let names: Vec<String> = others.iter().map(|&member| self.user(member).name.clone()).collect();
        let Some(Some(AnySession::Imbox(session))) = sessions.get_mut(creator) else {
            bail!("the session that should create group {group} is not open");
        };
        let request = Request::CreateGroup { name: group_name(self.run, group), members: names };
        match session.call(request).await? {
            Response::Group { .. } => Ok(()),
            other => bail!("create_group was answered with {}", kind(&other)),
        }
    }

    /// Waits until the QUIC close of every connection has gone out.
    pub async fn finish(&self) {
        if let Transport::Quic { endpoints, .. } = &self.transport {
            endpoints.wait_idle().await;
        }
    }
}

/// QUIC settings like those of imbox clients: keep-alives inside the box's
/// 60 s idle timeout, small windows (this process holds many connections),
/// no streams opened by the box.
fn quic_transport() -> quinn::TransportConfig {
    let mut config = quinn::TransportConfig::default();
    config
        .keep_alive_interval(Some(Duration::from_secs(25)))
        .max_idle_timeout(Some(quinn::VarInt::from_u32(60_000).into()))
        .stream_receive_window(quinn::VarInt::from_u32(1024 * 1024))
        .receive_window(quinn::VarInt::from_u32(2 * 1024 * 1024))
        .send_window(1024 * 1024)
        .max_concurrent_bidi_streams(quinn::VarInt::from_u32(0))
        .max_concurrent_uni_streams(quinn::VarInt::from_u32(0));
    config
}

/// The name of a response type, for errors.
fn kind(response: &Response) -> String {
    match serde_json::to_value(response) {
        Ok(serde_json::Value::Object(fields)) => {
            fields.get("type").and_then(|t| t.as_str()).unwrap_or("an unknown response").to_owned()
        }
        _ => "an unknown response".to_owned(),
    }
}

/// An error code as the protocol writes it (`rate_limited`).
fn code(error: &ErrorBody) -> String {
    match serde_json::to_value(error.code) {
        Ok(serde_json::Value::String(code)) => code,
        _ => format!("{:?}", error.code),
    }
}

/// The writing half of a connection.
enum Sink {
    WebSocket(SplitSink<WebSocketStream<Box<dyn net::Stream>>, Message>),
    Quic { frames: FramedWrite<quinn::SendStream, LengthDelimitedCodec>, connection: quinn::Connection },
}

/// The reading half of a connection.
enum Source {
    WebSocket(SplitStream<WebSocketStream<Box<dyn net::Stream>>>),
    Quic(FramedRead<quinn::RecvStream, LengthDelimitedCodec>),
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Sink::WebSocket(_) => "Sink::WebSocket",
            Sink::Quic { .. } => "Sink::Quic",
        })
    }
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Source::WebSocket(_) => "Source::WebSocket",
            Source::Quic(_) => "Source::Quic",
        })
    }
}

impl Sink {
    /// Queues a frame without flushing, so that a burst goes out in few writes.
    async fn feed(&mut self, frame: Vec<u8>) -> Result<(), String> {
        match self {
            Sink::WebSocket(sink) => {
                sink.feed(Message::Binary(frame.into())).await.map_err(|e| e.to_string())
            }
            Sink::Quic { frames, .. } => frames.feed(Bytes::from(frame)).await.map_err(|e| e.to_string()),
        }
    }

    async fn flush(&mut self) -> Result<(), String> {
        match self {
            Sink::WebSocket(sink) => sink.flush().await.map_err(|e| e.to_string()),
            Sink::Quic { frames, .. } => SinkExt::<Bytes>::flush(frames).await.map_err(|e| e.to_string()),
        }
    }

    async fn send(&mut self, frame: Vec<u8>) -> Result<(), String> {
        self.feed(frame).await?;
        self.flush().await
    }

    /// Ends the connection politely; errors no longer matter.
    async fn close(&mut self) {
        match self {
            Sink::WebSocket(sink) => {
                let _ = tokio::time::timeout(Duration::from_secs(2), sink.close()).await;
            }
            Sink::Quic { frames, connection } => {
                let _ = tokio::time::timeout(Duration::from_secs(2), SinkExt::<Bytes>::flush(frames)).await;
                let _ = frames.get_mut().finish();
                connection.close(0u32.into(), b"bye");
            }
        }
    }
}

impl Source {
    /// The next frame; `None` when the server closed the connection.
    async fn next(&mut self) -> Option<Result<Bytes, String>> {
        match self {
            Source::WebSocket(stream) => loop {
                match stream.next().await? {
                    Ok(Message::Binary(bytes)) => return Some(Ok(bytes)),
                    Ok(Message::Close(_)) => return None,
                    Ok(Message::Text(_)) => return Some(Err("the server sent a text message".to_owned())),
                    // tungstenite answers pings itself.
                    Ok(_) => continue,
                    Err(e) => return Some(Err(e.to_string())),
                }
            },
            Source::Quic(frames) => match frames.next().await? {
                Ok(bytes) => Some(Ok(bytes.freeze())),
                Err(e) => Some(Err(e.to_string())),
            },
        }
    }
}

/// One logged-in imbox session.
#[derive(Debug)]
pub struct Session {
    sink: Sink,
    source: Source,
    /// This session's user: its own messages come back to it and are no
    /// delivery.
    user: String,
    next_id: u32,
    /// The newest delivery-log position seen.
    position: u64,
    /// The position last acknowledged to the server.
    acked_position: u64,
    /// Every user's name, to address messages.
    users: Arc<Vec<UserToken>>,
    run: u32,
}

impl Session {
    fn allocate_id(&mut self) -> u32 {
        // Id 0 is reserved for errors about unreadable frames.
        let id = self.next_id;
        self.next_id = self.next_id.checked_add(1).unwrap_or(1);
        id
    }

    /// One request and its answer, before the session runs: events that
    /// arrive meanwhile only move the read position.
    async fn call(&mut self, req: Request) -> anyhow::Result<Response> {
        let kind = req.kind();
        let id = self.allocate_id();
        let exchange = async {
            self.sink.send(ClientFrame { id, req }.encode()).await.map_err(anyhow::Error::msg)?;
            loop {
                let bytes = match self.source.next().await {
                    None => bail!("the server closed the connection"),
                    Some(Err(e)) => bail!("{e}"),
                    Some(Ok(bytes)) => bytes,
                };
                match ServerFrame::decode(&bytes).map_err(|e| anyhow::anyhow!("undecodable frame: {e}"))? {
                    ServerFrame::Ok { id: answered, body } if answered == id => return Ok(body),
                    ServerFrame::Err { id: answered, error } if answered == id || answered == 0 => {
                        bail!("{kind} failed: {error}")
                    }
                    ServerFrame::Event { event: Event::Entry { entry } } => {
                        self.position = self.position.max(entry.position);
                    }
                    _ => {}
                }
            }
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, exchange).await {
            Ok(result) => result,
            Err(_) => bail!("no answer to {kind} within {}s", CONNECT_TIMEOUT.as_secs()),
        }
    }

    /// Where a message goes.
    fn target(&self, dest: Dest) -> Target {
        match dest {
            Dest::User(index) => Target::User(self.users[index % self.users.len()].name.clone()),
            Dest::Group(index) => Target::Group(group_name(self.run, index)),
        }
    }

    pub async fn run(
        mut self,
        mut outbox: mpsc::Receiver<Outgoing>,
        observer: Arc<dyn Observer>,
        stop: CancellationToken,
    ) -> Ended {
        let mut pending: HashMap<u32, Outgoing> = HashMap::with_capacity(MAX_IN_FLIGHT);
        let mut ack_timer = tokio::time::interval_at(tokio::time::Instant::now() + ACK_EVERY, ACK_EVERY);
        let ended = loop {
            tokio::select! {
                // Reading first: acknowledgements free the window.
                biased;
                () = stop.cancelled() => break Ended::Stopped,
                frame = self.source.next() => match frame {
                    None => break Ended::Lost("the server closed the connection".to_owned()),
                    Some(Err(e)) => break Ended::Lost(e),
                    Some(Ok(bytes)) => {
                        if let Err(reason) = self.on_frame(&bytes, &mut pending, observer.as_ref()) {
                            break Ended::Lost(reason);
                        }
                    }
                },
                next = outbox.recv() => {
                    let Some(message) = next else { break Ended::Stopped };
                    if let Err(reason) = self.write_burst(message, &mut outbox, &mut pending, observer.as_ref()).await {
                        break Ended::Lost(reason);
                    }
                }
                _ = ack_timer.tick() => {
                    if let Err(reason) = self.ack_position().await {
                        break Ended::Lost(reason);
                    }
                }
            }
        };
        if matches!(ended, Ended::Stopped) {
            let _ = tokio::time::timeout(Duration::from_secs(2), self.ack_position()).await;
            self.sink.close().await;
        }
        ended
    }

    /// Writes `first` and whatever else is already queued, then flushes once.
    async fn write_burst(
        &mut self,
        first: Outgoing,
        outbox: &mut mpsc::Receiver<Outgoing>,
        pending: &mut HashMap<u32, Outgoing>,
        observer: &dyn Observer,
    ) -> Result<(), String> {
        for message in burst(first, outbox) {
            if pending.len() >= MAX_IN_FLIGHT {
                observer.missed(&message);
                continue;
            }
            let id = self.allocate_id();
            let req = Request::Send {
                to: self.target(message.dest),
                id: message.stamp.message_id(),
                text: message.stamp.encode(),
                attachments: Vec::new(),
            };
            self.sink.feed(ClientFrame { id, req }.encode()).await?;
            pending.insert(id, message);
        }
        self.sink.flush().await
    }

    /// Records the read position on the server; the answer is not awaited
    /// (it matches no pending send and is ignored).
    async fn ack_position(&mut self) -> Result<(), String> {
        if self.position <= self.acked_position {
            return Ok(());
        }
        let id = self.allocate_id();
        self.sink.send(ClientFrame { id, req: Request::Ack { position: self.position } }.encode()).await?;
        self.acked_position = self.position;
        Ok(())
    }

    fn on_frame(
        &mut self,
        bytes: &[u8],
        pending: &mut HashMap<u32, Outgoing>,
        observer: &dyn Observer,
    ) -> Result<(), String> {
        let frame = ServerFrame::decode(bytes).map_err(|e| format!("undecodable frame: {e}"))?;
        match frame {
            ServerFrame::Ok { id, body } => {
                if let (Some(message), Response::Sent { .. }) = (pending.remove(&id), &body) {
                    observer.acked(&message, clock::now_us());
                }
            }
            ServerFrame::Err { id: 0, error } => return Err(format!("the server refused a frame: {error}")),
            ServerFrame::Err { id, error } => {
                if let Some(message) = pending.remove(&id) {
                    observer.failed(&message, &code(&error));
                }
            }
            ServerFrame::Event { event } => match event {
                Event::Entry { entry } => {
                    self.position = self.position.max(entry.position);
                    if let Item::Message(message) = entry.item {
                        if message.from != self.user {
                            if let Some(stamp) = Stamp::decode(&message.text).filter(|s| s.run == self.run) {
                                observer.delivered(&stamp, clock::now_us());
                            }
                        }
                    }
                }
                Event::GoingAway { reason } => return Err(format!("the server is going away: {reason}")),
                Event::Revoked => return Err("the device token was revoked".to_owned()),
                // Typing and presence (and whatever later versions add).
                _ => {}
            },
        }
        Ok(())
    }

    pub async fn close(mut self) {
        self.sink.close().await;
    }
}
