//! One live connection to a server: the hello exchange, concurrent requests
//! matched to their responses by id, and the stream of pushed events.
//!
//! A single driver task owns the transport. Callers hand it encoded requests
//! through a bounded queue together with a oneshot sender; the driver remembers
//! the sender under the request's id and completes it when the response with
//! that id arrives. Events go to a bounded queue that [`Connection::next_event`]
//! reads. Nothing here reconnects: that is [`crate::Client`]'s job.
//!
//! Over QUIC, a connection to a box this process has talked to before sends
//! its first requests as 0-RTT early data, before the handshake is over. The
//! box may process early data twice (an attacker can replay it), so until the
//! box confirms the handshake the driver sends only requests that are safe
//! to replay ([`Request::is_replay_safe`]) and holds the others; if the box
//! refuses the early data, the driver sends those requests again on a new
//! stream.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use imbox_protocol::{
    ClientFrame, ErrorBody, Event, Fingerprint, Limits, Request, Response, ServerFrame, SUPPORTED_VERSIONS,
};
use tokio::sync::{mpsc, oneshot, watch, Mutex, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::error::ClientError;
use crate::transport::{self, EarlyOutcome, FrameSink, FrameSource, Opened, TransportError};
use crate::url::ServerUrl;

/// How a connection behaves. The defaults suit the command-line client.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Sent in `hello`, so that server logs can tell clients apart.
    pub client_name: String,
    /// How long opening the transport and the hello exchange may take.
    pub connect_timeout: Duration,
    /// How long a request may wait for its response. A send is answered only
    /// once it is durable, so this must allow for a slow disk.
    pub request_timeout: Duration,
    /// The most requests awaiting a response at once; further callers wait.
    pub max_in_flight: usize,
    /// How many pushed events may wait for [`Connection::next_event`]. When
    /// it is full, typing and presence events are dropped and anything else
    /// closes the connection, because a client that falls behind must re-sync
    /// from its cursor rather than hold an unbounded backlog.
    pub event_queue: usize,
    /// The fingerprint of the box's key, which `wss://` and `quic://` need:
    /// the connection is refused with [`ClientError::KeyMismatch`] when the
    /// box presents any other key. Unused by `ws://`.
    pub pin: Option<Fingerprint>,
    /// How often an idle QUIC connection sends a keep-alive. Home routers
    /// forget a UDP mapping after about 30 s of silence, after which the
    /// box's pushes no longer reach the client; `None` sends none (the box
    /// then drops the connection after 60 s of silence).
    pub quic_keep_alive: Option<Duration>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            client_name: concat!("imbox-cli/", env!("CARGO_PKG_VERSION")).to_owned(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_in_flight: 256,
            event_queue: 1024,
            pin: None,
            quic_keep_alive: Some(Duration::from_secs(25)),
        }
    }
}

/// What the server said in answer to `hello`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    /// The protocol version in use.
    pub version: u16,
    /// The server's name and version.
    pub server: String,
    /// The limits this session works within.
    pub limits: Limits,
}

/// What `register`, `login` and `resume` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    /// The user name.
    pub user: String,
    /// This device's id.
    pub device: u64,
    /// The new device token (`register` and `login` only).
    pub token: Option<String>,
    /// The cursor the server has stored for this device.
    pub cursor: u64,
    /// Whether the user administers the box.
    pub admin: bool,
    /// The user's contacts online when the session opened (at most 1,000);
    /// later changes arrive as presence events.
    pub online: Vec<String>,
}

/// Whether a connection's first requests went out as QUIC 0-RTT early data,
/// and what the box made of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZeroRtt {
    /// No early data: a WebSocket connection, or a QUIC connection with no
    /// session ticket from an earlier connection of this process to the box.
    NotAttempted,
    /// Early data went out; the handshake has not finished yet.
    Pending,
    /// The box processed the early data.
    Accepted,
    /// The box refused the early data (it restarted, say); the requests were
    /// sent again once the handshake was over.
    Rejected,
}

/// A request on its way to the driver task.
struct Outgoing {
    id: u32,
    /// Whether the request may go out as early data.
    replay_safe: bool,
    frame: Vec<u8>,
    reply: oneshot::Sender<Result<Response, ErrorBody>>,
    /// Held until the response arrives (or the connection ends), so that the
    /// driver's map of outstanding requests never exceeds `max_in_flight`,
    /// even when callers give up waiting.
    permit: OwnedSemaphorePermit,
}

/// An outstanding request in the driver's map.
struct Waiting {
    reply: oneshot::Sender<Result<Response, ErrorBody>>,
    _permit: OwnedSemaphorePermit,
}

/// One authenticated-or-not session with a server. Requests may be issued
/// from several tasks at once through `&Connection`.
#[derive(Debug)]
pub struct Connection {
    url: ServerUrl,
    welcome: Welcome,
    request_timeout: Duration,
    outgoing: mpsc::Sender<Outgoing>,
    events: Mutex<mpsc::Receiver<Event>>,
    next_id: AtomicU32,
    in_flight: Arc<Semaphore>,
    /// Why the driver stopped, set once just before it exits.
    closed: Arc<OnceLock<String>>,
    driver: JoinHandle<()>,
    zero_rtt: watch::Receiver<ZeroRtt>,
    /// The QUIC endpoint, for [`Connection::rebind`].
    endpoint: Option<quinn::Endpoint>,
    /// The QUIC connection, for attachment transfer streams.
    quic: Option<quinn::Connection>,
    tcp_local_addr: Option<SocketAddr>,
}

impl Connection {
    /// Connects to a `ws://HOST:PORT` URL with default options and says hello.
    pub async fn connect(url: &str) -> Result<Connection, ClientError> {
        Connection::connect_with(&ServerUrl::parse(url)?, &ConnectOptions::default()).await
    }

    /// Connects to a URL of any scheme with default options, checking the
    /// box's key against `pin` (`wss://` and `quic://`), and says hello.
    pub async fn connect_pinned(url: &str, pin: Fingerprint) -> Result<Connection, ClientError> {
        let options = ConnectOptions { pin: Some(pin), ..ConnectOptions::default() };
        Connection::connect_with(&ServerUrl::parse(url)?, &options).await
    }

    /// Connects to `url` and says hello.
    pub async fn connect_with(url: &ServerUrl, options: &ConnectOptions) -> Result<Connection, ClientError> {
        let deadline = tokio::time::Instant::now() + options.connect_timeout;
        let opened = transport::connect(url, options).await?;
        Connection::start(url, opened, options, deadline).await
    }

    /// Starts the driver on an opened transport and says hello.
    async fn start(
        url: &ServerUrl,
        opened: Opened,
        options: &ConnectOptions,
        deadline: tokio::time::Instant,
    ) -> Result<Connection, ClientError> {
        let (outgoing_tx, outgoing_rx) = mpsc::channel(options.max_in_flight.max(1));
        let (event_tx, event_rx) = mpsc::channel(options.event_queue.max(1));
        let closed = Arc::new(OnceLock::new());
        let initial = if opened.early.is_some() { ZeroRtt::Pending } else { ZeroRtt::NotAttempted };
        let (zero_rtt_tx, zero_rtt) = watch::channel(initial);
        let driver = Driver {
            sink: opened.sink,
            source: opened.source,
            waiting: HashMap::new(),
            early: opened.early.map(|accepted| EarlyData {
                accepted,
                sent: Vec::new(),
                held: VecDeque::new(),
            }),
            zero_rtt: zero_rtt_tx,
            write_timeout: options.request_timeout,
        };
        let driver = tokio::spawn(driver.run(outgoing_rx, event_tx, Arc::clone(&closed)));
        let mut connection = Connection {
            url: url.clone(),
            welcome: Welcome {
                version: 0,
                server: String::new(),
                limits: Limits {
                    // Until the server has announced its limits, assume the
                    // hello is small enough (it is) and nothing more.
                    max_frame_bytes: u32::MAX,
                    max_text_bytes: 0,
                    max_sync_page: 0,
                    max_history_page: 0,
                    sends_per_second: 0,
                    max_group_members: 0,
                    max_attachment_bytes: 0,
                },
            },
            request_timeout: options.request_timeout,
            outgoing: outgoing_tx,
            events: Mutex::new(event_rx),
            next_id: AtomicU32::new(1),
            in_flight: Arc::new(Semaphore::new(options.max_in_flight.max(1))),
            closed,
            driver,
            zero_rtt,
            endpoint: opened.endpoint,
            quic: opened.quic,
            tcp_local_addr: opened.tcp_local_addr,
        };
        let hello =
            Request::Hello { versions: SUPPORTED_VERSIONS.to_vec(), client: options.client_name.clone() };
        let answer = match tokio::time::timeout_at(deadline, connection.request(hello)).await {
            Ok(answer) => answer,
            Err(_) => Err(ClientError::Timeout {
                what: format!("connecting to {url}"),
                after: options.connect_timeout,
            }),
        };
        match answer? {
            Response::Welcome { version, server, limits } if SUPPORTED_VERSIONS.contains(&version) => {
                connection.welcome = Welcome { version, server, limits };
                Ok(connection)
            }
            Response::Welcome { version, .. } => Err(ClientError::Protocol {
                reason: format!(
                    "the server chose protocol version {version}, which this client never offered"
                ),
            }),
            other => Err(unexpected("hello", &other)),
        }
    }

    /// The server's answer to `hello`.
    pub fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    /// The URL this connection was made to.
    pub fn url(&self) -> &ServerUrl {
        &self.url
    }

    /// Whether this connection used QUIC 0-RTT early data, as far as is
    /// known now; [`Connection::zero_rtt_settled`] waits for the outcome.
    pub fn zero_rtt(&self) -> ZeroRtt {
        *self.zero_rtt.borrow()
    }

    /// Whether this connection used 0-RTT early data, once the box has
    /// accepted or refused it (at the latest when the handshake finishes).
    /// [`ZeroRtt::Pending`] only if the connection ended first.
    pub async fn zero_rtt_settled(&self) -> ZeroRtt {
        let mut outcome = self.zero_rtt.clone();
        let settled = outcome.wait_for(|state| *state != ZeroRtt::Pending).await.map(|state| *state);
        settled.unwrap_or_else(|_| *self.zero_rtt.borrow())
    }

    /// The QUIC connection under the session, on which attachments move in
    /// streams of their own (`imbox_protocol::transfer`); `None` over
    /// WebSocket. Opening a stream on it before the handshake is confirmed
    /// would send it as 0-RTT early data, which the box may see twice: wait
    /// for [`Connection::zero_rtt_settled`] first.
    pub fn quic_connection(&self) -> Option<&quinn::Connection> {
        self.quic.as_ref()
    }

    /// The local address the connection uses: for QUIC, that of its UDP
    /// socket, which [`Connection::rebind`] changes.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match &self.endpoint {
            Some(endpoint) => endpoint.local_addr().ok(),
            None => self.tcp_local_addr,
        }
    }

    /// Moves a QUIC connection to a new UDP socket (same local IP, a new
    /// port), as happens when a phone changes networks: the box follows the
    /// connection to its new address and nothing is lost. Must be called
    /// within a tokio runtime. Other transports give
    /// [`ClientError::RebindUnsupported`].
    pub fn rebind(&self) -> Result<(), ClientError> {
        let Some(endpoint) = &self.endpoint else {
            return Err(ClientError::RebindUnsupported { url: self.url.to_string() });
        };
        let failed = |reason: String| ClientError::Rebind { reason };
        // quinn registers the new socket with the runtime's reactor, which
        // panics outside a runtime.
        tokio::runtime::Handle::try_current()
            .map_err(|_| failed("rebind was called outside a tokio runtime".to_owned()))?;
        let local = endpoint.local_addr().map_err(|e| failed(e.to_string()))?;
        let socket = std::net::UdpSocket::bind(SocketAddr::new(local.ip(), 0))
            .map_err(|e| failed(format!("cannot open a UDP socket on {}: {e}", local.ip())))?;
        endpoint.rebind(socket).map_err(|e| failed(e.to_string()))
    }

    /// Sends a request and waits for its response. May be called from many
    /// tasks at once; at most `max_in_flight` requests are outstanding and
    /// further callers wait for a slot.
    ///
    /// A [`ClientError::Timeout`] or [`ClientError::ConnectionClosed`] leaves
    /// it unknown whether the server carried the request out.
    pub async fn request(&self, req: Request) -> Result<Response, ClientError> {
        let kind = req.kind();
        match tokio::time::timeout(self.request_timeout, self.exchange(req)).await {
            Ok(result) => result,
            Err(_) => {
                Err(ClientError::Timeout { what: format!("the {kind} request"), after: self.request_timeout })
            }
        }
    }

    async fn exchange(&self, req: Request) -> Result<Response, ClientError> {
        let kind = req.kind();
        let replay_safe = req.is_replay_safe();
        let permit = Arc::clone(&self.in_flight).acquire_owned().await.map_err(|_| self.closed_error())?;
        let id = self.allocate_id();
        let frame = ClientFrame { id, req }.encode();
        let limit = self.welcome.limits.max_frame_bytes;
        if u32::try_from(frame.len()).map_or(true, |len| len > limit) {
            // The server would answer `frame_too_large` and close the
            // connection; refusing here keeps the connection usable.
            return Err(ClientError::FrameTooLarge { request: kind, size: frame.len(), limit });
        }
        let (reply, answer) = oneshot::channel();
        let outgoing = Outgoing { id, replay_safe, frame, reply, permit };
        self.outgoing.send(outgoing).await.map_err(|_| self.closed_error())?;
        match answer.await {
            Ok(Ok(body)) => Ok(body),
            Ok(Err(error)) => Err(ClientError::Server { request: kind, error }),
            Err(_) => Err(self.closed_error()),
        }
    }

    /// The next event the server pushed, in the order it was pushed; `None`
    /// once the connection has ended and every event was read.
    pub async fn next_event(&self) -> Option<Event> {
        self.events.lock().await.recv().await
    }

    /// An event that has already arrived, without waiting; `None` when there
    /// is none (or another task is reading events right now).
    pub fn try_next_event(&self) -> Option<Event> {
        self.events.try_lock().ok()?.try_recv().ok()
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.closed.get().is_some() || self.outgoing.is_closed()
    }

    /// The error that requests get once the connection has ended.
    pub fn closed_error(&self) -> ClientError {
        let reason = self.closed.get().cloned().unwrap_or_else(|| "the connection ended".to_owned());
        ClientError::ConnectionClosed { reason }
    }

    /// Closes the connection politely and waits (briefly) until the driver
    /// has said goodbye to the server.
    pub async fn close(self) {
        let Connection { outgoing, driver, .. } = self;
        // The driver sees its request queue close and ends the transport.
        drop(outgoing);
        let _ = tokio::time::timeout(Duration::from_secs(2), driver).await;
    }

    /// Logs a new device in; the answer carries its token.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        device_name: &str,
    ) -> Result<Authenticated, ClientError> {
        let req = Request::Login {
            username: username.to_owned(),
            password: password.to_owned(),
            device_name: device_name.to_owned(),
        };
        authenticated("login", self.request(req).await?)
    }

    /// Creates an account with an invite and logs its first device in.
    pub async fn register(
        &self,
        username: &str,
        password: &str,
        invite: &str,
        device_name: &str,
    ) -> Result<Authenticated, ClientError> {
        let req = Request::Register {
            username: username.to_owned(),
            password: password.to_owned(),
            invite: invite.to_owned(),
            device_name: device_name.to_owned(),
        };
        authenticated("register", self.request(req).await?)
    }

    /// Authenticates an existing device by its token.
    pub async fn resume(&self, token: &str) -> Result<Authenticated, ClientError> {
        authenticated("resume", self.request(Request::Resume { token: token.to_owned() }).await?)
    }

    fn allocate_id(&self) -> u32 {
        // Id 0 is reserved for errors about unreadable frames. Wrapping is
        // harmless: ids only need to be unique among outstanding requests,
        // of which there are at most `max_in_flight`.
        loop {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            if id != 0 {
                return id;
            }
        }
    }
}

pub(crate) fn authenticated(request: &'static str, response: Response) -> Result<Authenticated, ClientError> {
    match response {
        Response::Authenticated { user, device, token, cursor, admin, online } => {
            Ok(Authenticated { user, device, token, cursor, admin, online })
        }
        other => Err(unexpected(request, &other)),
    }
}

/// The error for a response of the wrong type.
pub(crate) fn unexpected(request: &str, response: &Response) -> ClientError {
    let name = match serde_json::to_value(response) {
        Ok(serde_json::Value::Object(fields)) => {
            fields.get("type").and_then(|t| t.as_str()).unwrap_or("unknown").to_owned()
        }
        _ => "unknown".to_owned(),
    };
    ClientError::Protocol { reason: format!("the server answered {request} with {name}") }
}

/// Requests sent or held while 0-RTT early data is unconfirmed.
struct EarlyData {
    accepted: EarlyOutcome,
    /// Frames sent as early data, to send again if the box refuses it. At
    /// most `max_in_flight`, as each has a permit.
    sent: Vec<(u32, Vec<u8>)>,
    /// Requests that must not go out as early data, in order.
    held: VecDeque<Outgoing>,
}

/// The driver task: the only owner of the transport.
struct Driver {
    sink: FrameSink,
    source: FrameSource,
    waiting: HashMap<u32, Waiting>,
    /// `Some` until the box has accepted or refused 0-RTT.
    early: Option<EarlyData>,
    zero_rtt: watch::Sender<ZeroRtt>,
    /// A server that stops reading would block a write forever (and with it
    /// every response); the driver gives up on it after this long.
    write_timeout: Duration,
}

impl Driver {
    async fn run(
        mut self,
        mut outgoing: mpsc::Receiver<Outgoing>,
        events: mpsc::Sender<Event>,
        closed: Arc<OnceLock<String>>,
    ) {
        let reason: String = loop {
            tokio::select! {
                // First, so that the refusal of early data is handled before
                // anything else is sent on a stream the box discarded.
                biased;
                accepted = early_outcome(&mut self.early) => {
                    if let Err(reason) = self.settle_early(accepted).await {
                        break reason;
                    }
                }
                next = outgoing.recv() => {
                    let Some(request) = next else {
                        // Every `Connection` handle is gone: say goodbye.
                        let _ = tokio::time::timeout(Duration::from_secs(2), self.sink.close()).await;
                        break "the client closed the connection".to_owned();
                    };
                    if let Err(reason) = self.dispatch(request).await {
                        break reason;
                    }
                }
                frame = self.source.recv_frame() => {
                    let bytes = match frame {
                        Ok(Some(bytes)) => bytes,
                        Ok(None) => break "the server closed the connection".to_owned(),
                        Err(reason) => break reason,
                    };
                    match ServerFrame::decode(&bytes) {
                        Ok(ServerFrame::Ok { id, body }) => complete(&mut self.waiting, id, Ok(body)),
                        Ok(ServerFrame::Err { id: 0, error }) => {
                            // The server could not read one of our frames and
                            // closes the connection.
                            break format!("the server rejected a frame: {}", error.message);
                        }
                        Ok(ServerFrame::Err { id, error }) => complete(&mut self.waiting, id, Err(error)),
                        Ok(ServerFrame::Event { event }) => {
                            if let Err(reason) = deliver(&events, event) {
                                break reason;
                            }
                        }
                        Err(err) => break format!("undecodable frame from the server ({err})"),
                    }
                }
            }
        };
        tracing::debug!(%reason, "connection ended");
        let _ = closed.set(reason);
        // Dropping `self.waiting` (and any held requests) fails every
        // outstanding request with `ConnectionClosed`; dropping `events` ends
        // `next_event` after the queue drains.
    }

    /// Sends a request, or holds it while early data is unconfirmed and the
    /// request is not safe to replay.
    async fn dispatch(&mut self, request: Outgoing) -> Result<(), TransportError> {
        if request.reply.is_closed() {
            // The caller timed out or was cancelled while queued.
            return Ok(());
        }
        if let Some(early) = &mut self.early {
            if !request.replay_safe {
                early.held.push_back(request);
                return Ok(());
            }
            early.sent.push((request.id, request.frame.clone()));
        }
        let Outgoing { id, frame, reply, permit, .. } = request;
        self.waiting.insert(id, Waiting { reply, _permit: permit });
        self.write(frame).await
    }

    async fn write(&mut self, frame: Vec<u8>) -> Result<(), TransportError> {
        match tokio::time::timeout(self.write_timeout, self.sink.send_frame(frame)).await {
            Ok(result) => result,
            Err(_) => Err("the server stopped reading from the connection".to_owned()),
        }
    }

    /// The handshake is over: send what was held, after sending the early
    /// frames again if the box refused them.
    async fn settle_early(&mut self, accepted: bool) -> Result<(), TransportError> {
        let Some(early) = self.early.take() else { return Ok(()) };
        if accepted {
            self.zero_rtt.send_replace(ZeroRtt::Accepted);
        } else {
            // Also how a handshake that failed altogether ends; then opening
            // the new stream fails and says why.
            transport::reopen(&mut self.sink, &mut self.source).await?;
            self.zero_rtt.send_replace(ZeroRtt::Rejected);
            for (id, frame) in early.sent {
                if self.waiting.contains_key(&id) {
                    self.write(frame).await?;
                }
            }
        }
        for request in early.held {
            self.dispatch(request).await?;
        }
        Ok(())
    }
}

/// Whether the box accepted the early data; never resolves when there is no
/// early data to wait for.
async fn early_outcome(early: &mut Option<EarlyData>) -> bool {
    match early {
        Some(early) => early.accepted.as_mut().await,
        None => std::future::pending().await,
    }
}

fn complete(waiting: &mut HashMap<u32, Waiting>, id: u32, answer: Result<Response, ErrorBody>) {
    match waiting.remove(&id) {
        // The caller may have given up (timeout); nothing to do then.
        Some(entry) => {
            let _ = entry.reply.send(answer);
        }
        None => tracing::debug!(id, "response to no outstanding request"),
    }
}

/// Queues an event for the application without ever blocking the driver,
/// which must keep reading responses.
fn deliver(events: &mpsc::Sender<Event>, event: Event) -> Result<(), String> {
    match events.try_send(event) {
        Ok(()) => Ok(()),
        // Typing and presence are never stored and stale within seconds.
        Err(mpsc::error::TrySendError::Full(Event::Typing { .. } | Event::Presence { .. })) => Ok(()),
        Err(mpsc::error::TrySendError::Full(_)) => {
            Err("the application fell behind reading events; re-sync from the cursor".to_owned())
        }
        // Nobody reads events on this connection (every handle is gone).
        Err(mpsc::error::TrySendError::Closed(_)) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message as WsMessage;

    /// A WebSocket server that answers hello, ping and login, and reports
    /// the kind of every request it receives.
    async fn recording_server() -> (String, mpsc::Receiver<&'static str>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("ws://{}", listener.local_addr().expect("addr"));
        let (seen_tx, seen) = mpsc::channel(16);
        tokio::spawn(async move {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else { return };
            while let Some(Ok(WsMessage::Binary(bytes))) = ws.next().await {
                let Ok(ClientFrame { id, req }) = ClientFrame::decode(&bytes) else { return };
                let _ = seen_tx.send(req.kind()).await;
                let body = match req {
                    Request::Hello { .. } => Response::Welcome {
                        version: 1,
                        server: "recorder".into(),
                        limits: Limits {
                            max_frame_bytes: 65536,
                            max_text_bytes: 4096,
                            max_sync_page: 10,
                            max_history_page: 10,
                            sends_per_second: 10,
                            max_attachment_bytes: 0,
                            max_group_members: 10,
                        },
                    },
                    Request::Login { username, .. } => Response::Authenticated {
                        user: username,
                        device: 1,
                        token: Some("t".into()),
                        cursor: 0,
                        admin: false,
                        online: Vec::new(),
                    },
                    _ => Response::Pong,
                };
                let answer = ServerFrame::Ok { id, body }.encode();
                if ws.send(WsMessage::Binary(answer.into())).await.is_err() {
                    return;
                }
            }
        });
        (url, seen)
    }

    #[tokio::test]
    async fn requests_unsafe_to_replay_wait_until_early_data_is_accepted() {
        let (url, mut seen) = recording_server().await;
        let url = ServerUrl::parse(&url).expect("url");
        let options = ConnectOptions::default();
        let mut opened = transport::connect(&url, &options).await.expect("connect");
        let (accept, accepted) = oneshot::channel::<bool>();
        opened.early = Some(Box::pin(async move { accepted.await.unwrap_or(false) }));
        let deadline = tokio::time::Instant::now() + options.connect_timeout;
        let conn = Arc::new(Connection::start(&url, opened, &options, deadline).await.expect("hello"));
        assert_eq!(conn.zero_rtt(), ZeroRtt::Pending);
        assert_eq!(seen.recv().await, Some("hello"), "hello is safe to replay");

        let login = tokio::spawn({
            let conn = Arc::clone(&conn);
            async move { conn.login("alice", "pw", "test").await }
        });
        // Let the login reach the driver (the test runtime has one thread
        // and runs tasks in order), then queue pings behind it.
        tokio::task::yield_now().await;
        for _ in 0..2 {
            assert_eq!(conn.request(Request::Ping).await.expect("ping"), Response::Pong);
        }
        // The server records a request before answering it, so everything
        // sent before the second ping has been recorded by now.
        assert_eq!(seen.recv().await, Some("ping"), "the login went out as early data");
        assert_eq!(seen.recv().await, Some("ping"));
        assert!(seen.try_recv().is_err() && !login.is_finished(), "the login is held");

        accept.send(true).expect("driver waits for the outcome");
        let auth = login.await.expect("join").expect("login after the handshake");
        assert_eq!(auth.user, "alice");
        assert_eq!(seen.recv().await, Some("login"));
        assert_eq!(conn.zero_rtt_settled().await, ZeroRtt::Accepted);
    }

    #[test]
    fn full_event_queue_drops_ephemera_and_fails_on_entries() {
        let (tx, _rx) = mpsc::channel(1);
        assert!(deliver(&tx, Event::Revoked).is_ok());
        let typing = Event::Typing { conversation: 1, chat: "bob".into(), user: "bob".into() };
        assert!(deliver(&tx, typing).is_ok());
        assert!(deliver(&tx, Event::Presence { user: "bob".into(), online: true }).is_ok());
        assert!(deliver(&tx, Event::GoingAway { reason: "bye".into() }).is_err());
    }
}
