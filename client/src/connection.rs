//! One live connection to a server: the hello exchange, concurrent requests
//! matched to their responses by id, and the stream of pushed events.
//!
//! A single driver task owns the transport. Callers hand it encoded requests
//! through a bounded queue together with a oneshot sender; the driver remembers
//! the sender under the request's id and completes it when the response with
//! that id arrives. Events go to a bounded queue that [`Connection::next_event`]
//! reads. Nothing here reconnects: that is [`crate::Client`]'s job.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use imbox_protocol::{
    ClientFrame, ErrorBody, Event, Limits, Request, Response, ServerFrame, SUPPORTED_VERSIONS,
};
use tokio::sync::{mpsc, oneshot, Mutex, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::error::ClientError;
use crate::transport::{self, FrameSink, FrameSource};
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
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            client_name: concat!("imbox-cli/", env!("CARGO_PKG_VERSION")).to_owned(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_in_flight: 256,
            event_queue: 1024,
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
}

/// A request on its way to the driver task.
struct Outgoing {
    id: u32,
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
}

impl Connection {
    /// Connects to a `ws://HOST:PORT` URL with default options and says hello.
    pub async fn connect(url: &str) -> Result<Connection, ClientError> {
        Connection::connect_with(&ServerUrl::parse(url)?, &ConnectOptions::default()).await
    }

    /// Connects to `url` and says hello.
    pub async fn connect_with(url: &ServerUrl, options: &ConnectOptions) -> Result<Connection, ClientError> {
        let deadline = tokio::time::Instant::now() + options.connect_timeout;
        let (sink, source) = transport::connect(url, options.connect_timeout).await?;

        let (outgoing_tx, outgoing_rx) = mpsc::channel(options.max_in_flight.max(1));
        let (event_tx, event_rx) = mpsc::channel(options.event_queue.max(1));
        let closed = Arc::new(OnceLock::new());
        let driver = tokio::spawn(drive(
            sink,
            source,
            outgoing_rx,
            event_tx,
            Arc::clone(&closed),
            options.request_timeout,
        ));
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
                },
            },
            request_timeout: options.request_timeout,
            outgoing: outgoing_tx,
            events: Mutex::new(event_rx),
            next_id: AtomicU32::new(1),
            in_flight: Arc::new(Semaphore::new(options.max_in_flight.max(1))),
            closed,
            driver,
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
        self.outgoing.send(Outgoing { id, frame, reply, permit }).await.map_err(|_| self.closed_error())?;
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

fn authenticated(request: &'static str, response: Response) -> Result<Authenticated, ClientError> {
    match response {
        Response::Authenticated { user, device, token, cursor, admin } => {
            Ok(Authenticated { user, device, token, cursor, admin })
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

/// The driver task: the only owner of the transport.
async fn drive(
    mut sink: FrameSink,
    mut source: FrameSource,
    mut outgoing: mpsc::Receiver<Outgoing>,
    events: mpsc::Sender<Event>,
    closed: Arc<OnceLock<String>>,
    write_timeout: Duration,
) {
    let mut waiting: HashMap<u32, Waiting> = HashMap::new();
    let reason: String = loop {
        tokio::select! {
            next = outgoing.recv() => {
                let Some(Outgoing { id, frame, reply, permit }) = next else {
                    // Every `Connection` handle is gone: say goodbye.
                    let _ = tokio::time::timeout(Duration::from_secs(2), sink.close()).await;
                    break "the client closed the connection".to_owned();
                };
                if reply.is_closed() {
                    // The caller timed out or was cancelled while queued.
                    continue;
                }
                waiting.insert(id, Waiting { reply, _permit: permit });
                // A server that stops reading would block this write forever
                // (and with it every response); give up on it instead.
                match tokio::time::timeout(write_timeout, sink.send_frame(frame)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(reason)) => break reason,
                    Err(_) => break "the server stopped reading from the connection".to_owned(),
                }
            }
            frame = source.recv_frame() => {
                let bytes = match frame {
                    Ok(Some(bytes)) => bytes,
                    Ok(None) => break "the server closed the connection".to_owned(),
                    Err(reason) => break reason,
                };
                match ServerFrame::decode(&bytes) {
                    Ok(ServerFrame::Ok { id, body }) => complete(&mut waiting, id, Ok(body)),
                    Ok(ServerFrame::Err { id: 0, error }) => {
                        // The server could not read one of our frames and
                        // closes the connection.
                        break format!("the server rejected a frame: {}", error.message);
                    }
                    Ok(ServerFrame::Err { id, error }) => complete(&mut waiting, id, Err(error)),
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
    // Dropping `waiting` fails every outstanding request with
    // `ConnectionClosed`; dropping `events` ends `next_event` after the queue
    // drains.
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
