//! The session core: one client's conversation with the server, with no
//! sockets in it.
//!
//! A transport (WebSocket, QUIC) decodes frames and hands each request to
//! [`Session::handle`], sends what comes back, and passes on what the router
//! pushes through [`Session::on_push`]. Everything else — the hello and
//! authentication states, sync cursors and the switch to live delivery,
//! de-duplication of pushes, rate limits, early-data rules — lives here, so
//! both transports behave the same and this is tested without a network.

pub(crate) mod errors;
pub mod limits;
pub mod password;

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use imbox_protocol::names;
use imbox_protocol::{
    ClientFrame, Entry, ErrorBody, ErrorCode, Event, Limits, ReceiptKind, Request, Response, ServerFrame,
    Target, PROTOCOL_VERSION, SUPPORTED_VERSIONS,
};

use crate::config::LimitsConfig;
use crate::router::{Inbox, Push, Router, SharedEntry, Signal};
use crate::store::push::PushOp;
use crate::store::{DeviceAuth, NewDevice, Page, Store, StoreError, WriteOp};
use limits::{LoginLimit, SendLimit};
use password::Passwords;

pub use errors::from_store;

#[cfg(test)]
mod tests;

/// What every session shares: the store, the router, limits and counters.
#[derive(Debug)]
pub struct Hub {
    pub store: Store,
    pub router: Arc<Router>,
    pub limits: LimitsConfig,
    pub passwords: Passwords,
    pub logins: LoginLimit,
    /// Sends and typing notices, per device and per user over all sessions.
    pub sends: SendLimit,
    /// The largest attachment accepted (`media.max_file_mb`), told in `welcome`.
    pub max_attachment_bytes: u64,
    /// Attachments: uploads, contents, their limits.
    pub media: Arc<crate::media::Media>,
    /// The box name told in `welcome`; the owner may change it while running.
    pub server_name: std::sync::RwLock<String>,
    /// Push wake-ups; `None` when `push.enabled` is false.
    pub push: Option<Arc<crate::push::Pusher>>,
}

/// Contacts told about a presence change, at most: presence is a courtesy,
/// and must not turn one login into a storm for a user in huge groups.
pub const MAX_PRESENCE_FANOUT: usize = 1000;

/// The limits announced in `welcome`.
fn announced(limits: &LimitsConfig, max_attachment_bytes: u64) -> Limits {
    Limits {
        max_frame_bytes: limits.max_frame_bytes,
        max_text_bytes: limits.max_text_bytes,
        max_sync_page: limits.max_sync_page,
        max_history_page: limits.max_history_page,
        sends_per_second: limits.sends_per_second,
        max_group_members: limits.max_group_members,
        max_attachment_bytes,
    }
}

/// A response that waits for a commit, computed off the session.
pub type Deferred = Pin<Box<dyn Future<Output = ServerFrame> + Send + 'static>>;

/// What to do with a handled request.
pub enum Handled {
    /// Send this frame now.
    Reply(ServerFrame),
    /// Send this frame when the future resolves (usually after a commit);
    /// the session may handle further requests meanwhile.
    Later(Deferred),
    /// Send this frame, then close the connection.
    Close(ServerFrame),
}

impl std::fmt::Debug for Handled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Handled::Reply(frame) => f.debug_tuple("Reply").field(frame).finish(),
            Handled::Later(_) => f.write_str("Later(..)"),
            Handled::Close(frame) => f.debug_tuple("Close").field(frame).finish(),
        }
    }
}

/// A frame on its way to the client: made for this session, or an entry's
/// frame shared by every session the entry goes to (encoded once for all).
#[derive(Debug, Clone)]
pub enum Outbound {
    Frame(ServerFrame),
    Entry(Arc<SharedEntry>),
}

impl Outbound {
    /// The frame's bytes.
    pub fn encode(&self) -> bytes::Bytes {
        match self {
            Outbound::Frame(frame) => bytes::Bytes::from(frame.encode()),
            Outbound::Entry(entry) => entry.frame(),
        }
    }

    /// The frame itself, when it was made for this session (what decides a
    /// close code; a shared entry never ends a session).
    pub fn frame(&self) -> Option<&ServerFrame> {
        match self {
            Outbound::Frame(frame) => Some(frame),
            Outbound::Entry(_) => None,
        }
    }
}

impl From<ServerFrame> for Outbound {
    fn from(frame: ServerFrame) -> Outbound {
        Outbound::Frame(frame)
    }
}

/// Where a session is in its life.
#[derive(Debug)]
enum Phase {
    /// Waiting for `hello`.
    New,
    /// Said hello; not authenticated.
    Greeted,
    /// Authenticated as a device.
    Ready(Box<Device>),
    /// Logged out or revoked; only closing remains.
    Ended,
}

#[derive(Debug)]
struct Device {
    auth: DeviceAuth,
    registration: u64,
    /// The highest log position sent to the client (by sync or push).
    delivered: u64,
    /// Whether the client has synced to the end, so that new entries are
    /// pushed.
    live: bool,
}

/// One client's session.
#[derive(Debug)]
pub struct Session {
    hub: Arc<Hub>,
    peer: IpAddr,
    phase: Phase,
    inbox: Option<Inbox>,
    /// The lag signal of the inbox, kept after the transport takes the
    /// inbox: catch-up raises it to come back for the next page.
    lag: Option<Arc<Signal>>,
    /// Set by a transport while the request came in 0-RTT early data.
    early_data: bool,
}

fn ok(id: u32, body: Response) -> Handled {
    Handled::Reply(ServerFrame::Ok { id, body })
}

fn err(id: u32, code: ErrorCode, message: impl Into<String>) -> Handled {
    Handled::Reply(ServerFrame::Err { id, error: ErrorBody::new(code, message) })
}

fn store_err(id: u32, e: &StoreError) -> Handled {
    Handled::Reply(ServerFrame::Err { id, error: from_store(e) })
}

fn rate_limited(id: u32, wait: std::time::Duration, what: &str) -> Handled {
    Handled::Reply(ServerFrame::Err {
        id,
        error: ErrorBody {
            code: ErrorCode::RateLimited,
            message: format!("too many {what}; wait {} ms and retry", wait.as_millis().max(1)),
            retry_after_ms: Some(wait.as_millis().max(1) as u64),
        },
    })
}

fn push_disabled(id: u32) -> Handled {
    err(
        id,
        ErrorCode::PushDisabled,
        "push is turned off on this box ([push] enabled = false); ask its owner to turn it on",
    )
}

/// The answer when a password could not be checked or hashed.
fn password_failure(id: u32, e: &password::PasswordError) -> Handled {
    let code = match e {
        password::PasswordError::Busy | password::PasswordError::Interrupted => ErrorCode::Unavailable,
        password::PasswordError::Hash(_) => ErrorCode::Internal,
    };
    Handled::Reply(ServerFrame::Err {
        id,
        error: ErrorBody { code, message: format!("{e}"), retry_after_ms: Some(500) },
    })
}

/// Answers a queued write once it is durable.
fn later<F>(id: u32, pending: Result<crate::store::Pending, StoreError>, done: F) -> Handled
where
    F: FnOnce(crate::store::Outcome) -> Result<Response, StoreError> + Send + 'static,
{
    match pending {
        Err(e) => store_err(id, &e),
        Ok(pending) => Handled::Later(Box::pin(async move {
            match pending.wait().await.and_then(done) {
                Ok(body) => ServerFrame::Ok { id, body },
                Err(e) => ServerFrame::Err { id, error: from_store(&e) },
            }
        })),
    }
}

impl Session {
    /// A new session for a client at `peer`.
    pub fn new(hub: Arc<Hub>, peer: IpAddr) -> Session {
        Session { hub, peer, phase: Phase::New, inbox: None, lag: None, early_data: false }
    }

    /// Whether the session has authenticated.
    pub fn is_authenticated(&self) -> bool {
        matches!(self.phase, Phase::Ready(_))
    }

    /// The router registration made at authentication, once: the transport
    /// takes it to receive pushes.
    pub fn take_inbox(&mut self) -> Option<Inbox> {
        self.inbox.take()
    }

    /// Marks the following requests as arriving in 0-RTT early data (or not).
    pub fn set_early_data(&mut self, early: bool) {
        self.early_data = early;
    }

    /// Handles one request.
    pub async fn handle(&mut self, frame: ClientFrame) -> Handled {
        let ClientFrame { id, req } = frame;
        if self.early_data && !req.is_replay_safe() {
            return err(
                id,
                ErrorCode::NotInEarlyData,
                format!(
                    "{} is not accepted in 0-RTT early data; send it again after the handshake",
                    req.kind()
                ),
            );
        }
        match (&self.phase, req) {
            (Phase::Ended, _) => err(id, ErrorCode::NotAuthenticated, "this session has ended; reconnect"),
            (_, Request::Ping) => ok(id, Response::Pong),
            (Phase::New, Request::Hello { versions, client }) => self.hello(id, &versions, &client),
            (Phase::New, _) => err(id, ErrorCode::HelloRequired, "send hello first"),
            (Phase::Ready(_), Request::Hello { .. }) => {
                err(id, ErrorCode::AlreadyAuthenticated, "this session is already authenticated")
            }
            (_, Request::Hello { .. }) => err(id, ErrorCode::HelloRequired, "hello was already sent"),
            (Phase::Greeted, Request::Login { username, password, device_name }) => {
                self.login(id, username, password, device_name).await
            }
            (Phase::Greeted, Request::Register { username, password, invite, device_name }) => {
                self.register(id, username, password, invite, device_name).await
            }
            (Phase::Greeted, Request::Resume { token }) => self.resume(id, &token),
            (Phase::Greeted, _) => {
                err(id, ErrorCode::NotAuthenticated, "log in first (login, register or resume)")
            }
            (Phase::Ready(_), Request::Login { .. } | Request::Register { .. } | Request::Resume { .. }) => {
                err(id, ErrorCode::AlreadyAuthenticated, "this session is already authenticated")
            }
            (Phase::Ready(_), req) => self.authenticated(id, req).await,
        }
    }

    fn hello(&mut self, id: u32, versions: &[u16], client: &str) -> Handled {
        let Some(&version) = SUPPORTED_VERSIONS.iter().rev().find(|v| versions.contains(v)) else {
            return Handled::Close(ServerFrame::Err {
                id,
                error: ErrorBody::new(
                    ErrorCode::UnsupportedVersion,
                    format!(
                        "this server speaks protocol versions {SUPPORTED_VERSIONS:?}, the client offered {versions:?}; update the client"
                    ),
                ),
            });
        };
        tracing::debug!(peer = %self.peer, client = %client.chars().take(64).collect::<String>(), version, "hello");
        self.phase = Phase::Greeted;
        ok(
            id,
            Response::Welcome {
                version: version.min(PROTOCOL_VERSION),
                server: self.hub.server_name.read().unwrap_or_else(|p| p.into_inner()).clone(),
                limits: announced(&self.hub.limits, self.hub.max_attachment_bytes),
            },
        )
    }

    async fn login(&mut self, id: u32, username: String, password: String, device_name: String) -> Handled {
        if let Err(e) = names::check_device_name(&device_name) {
            return err(id, ErrorCode::InvalidName, e.to_string());
        }
        if let Err(wait) = self.hub.logins.allowed(&username, self.peer) {
            return rate_limited(id, wait, "failed logins");
        }
        let credentials = match self.hub.store.credentials(&username) {
            Ok(c) => c,
            Err(e) => return store_err(id, &e),
        };
        let hash = credentials.as_ref().map(|c| c.password_hash.clone());
        let matched = match self.hub.passwords.verify(password, hash).await {
            Ok(m) => m,
            Err(e) => return password_failure(id, &e),
        };
        let Some(credentials) = credentials.filter(|_| matched) else {
            self.hub.logins.failed(&username, self.peer);
            tracing::info!(peer = %self.peer, user = %username.chars().take(32).collect::<String>(), "failed login");
            return err(id, ErrorCode::BadCredentials, "wrong user name or password");
        };
        self.hub.logins.succeeded(&username, self.peer);
        if credentials.disabled {
            // Told only after the right password, so that it reveals nothing
            // to someone guessing.
            return err(
                id,
                ErrorCode::BadCredentials,
                "this account is disabled; ask the box's administrator to enable it",
            );
        }
        let cap = self.hub.limits.max_devices_per_user;
        match self.hub.store.add_device_capped(credentials.user, &device_name, cap).await {
            Ok(device) => self.authenticated_as(id, device),
            Err(e) => store_err(id, &e),
        }
    }

    async fn register(
        &mut self,
        id: u32,
        username: String,
        password: String,
        invite: String,
        device_name: String,
    ) -> Handled {
        if !names::valid_username(&username) {
            return err(
                id,
                ErrorCode::InvalidName,
                "a user name is 1-32 of a-z, 0-9, '_', '-', '.', starting with a letter or digit",
            );
        }
        if !names::valid_password(&password) {
            return err(
                id,
                ErrorCode::WeakPassword,
                format!(
                    "a password needs at least {} characters (and at most {} bytes)",
                    names::MIN_PASSWORD,
                    names::MAX_PASSWORD
                ),
            );
        }
        if let Err(e) = names::check_device_name(&device_name) {
            return err(id, ErrorCode::InvalidName, e.to_string());
        }
        // Checked before the costly hash, and counted like a failed login, so
        // that made-up invites cost an attacker more than the box.
        if let Err(wait) = self.hub.logins.allowed(&username, self.peer) {
            return rate_limited(id, wait, "failed attempts");
        }
        match self.hub.store.invite_usable(&invite) {
            Ok(true) => {}
            Ok(false) => {
                self.hub.logins.failed(&username, self.peer);
                return store_err(id, &StoreError::InvalidInvite);
            }
            Err(e) => return store_err(id, &e),
        }
        let hash = match self.hub.passwords.hash(password).await {
            Ok(h) => h,
            Err(e) => return password_failure(id, &e),
        };
        match self.hub.store.register(&username, hash, &invite, &device_name).await {
            Ok(device) => self.authenticated_as(id, device),
            Err(e) => store_err(id, &e),
        }
    }

    fn resume(&mut self, id: u32, token: &str) -> Handled {
        match self.hub.store.authenticate(token) {
            Ok(Some(auth)) => self.enter(id, auth, None),
            Ok(None) => err(
                id,
                ErrorCode::BadCredentials,
                "this device token is unknown or was revoked; log in again",
            ),
            Err(e) => store_err(id, &e),
        }
    }

    fn authenticated_as(&mut self, id: u32, device: NewDevice) -> Handled {
        self.enter(id, device.auth, Some(device.token))
    }

    /// Registers the authenticated device with the router and answers.
    fn enter(&mut self, id: u32, auth: DeviceAuth, token: Option<String>) -> Handled {
        let registration = self.hub.router.register(auth.user, auth.device);
        // One read of the contacts serves both sides of presence: telling
        // them this user came online (first session only), and telling this
        // session who is online now (later changes come as events).
        let contacts = self.hub.store.contacts(auth.user, MAX_PRESENCE_FANOUT).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "presence skipped");
            Vec::new()
        });
        if registration.first {
            self.presence(&auth, &contacts, true);
        }
        let online_now: Vec<u64> = contacts.into_iter().filter(|&c| self.hub.router.is_online(c)).collect();
        let online = self.hub.store.usernames(&online_now).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "the online contacts were not read");
            Vec::new()
        });
        let body = Response::Authenticated {
            user: auth.username.clone(),
            device: auth.device,
            token,
            cursor: auth.cursor,
            admin: auth.admin,
            online,
        };
        tracing::debug!(peer = %self.peer, user = %auth.username, device = auth.device, "authenticated");
        self.lag = Some(registration.inbox.signal.clone());
        self.inbox = Some(registration.inbox);
        self.phase = Phase::Ready(Box::new(Device {
            delivered: auth.cursor,
            auth,
            registration: registration.session,
            live: false,
        }));
        ok(id, body)
    }

    /// Tells the user's contacts that the user came online or went offline.
    fn presence(&self, auth: &DeviceAuth, contacts: &[u64], online: bool) {
        let event = Arc::new(Event::Presence { user: auth.username.clone(), online });
        for &contact in contacts {
            self.hub.router.push_event(contact, None, &event);
        }
    }

    /// [`Self::presence`] with the contacts read now.
    fn presence_now(&self, auth: &DeviceAuth, online: bool) {
        match self.hub.store.contacts(auth.user, MAX_PRESENCE_FANOUT) {
            Ok(contacts) => self.presence(auth, &contacts, online),
            Err(e) => tracing::warn!(error = %e, "presence skipped"),
        }
    }

    async fn authenticated(&mut self, id: u32, req: Request) -> Handled {
        let Phase::Ready(device) = &mut self.phase else {
            return err(id, ErrorCode::NotAuthenticated, "log in first");
        };
        let hub = &self.hub;
        let user = device.auth.user;
        let limits = &hub.limits;
        match req {
            Request::Send { to, id: message_id, text, attachments } => {
                if text.len() > limits.max_text_bytes as usize {
                    return err(
                        id,
                        ErrorCode::TooLarge,
                        format!("the text has {} bytes; the limit is {}", text.len(), limits.max_text_bytes),
                    );
                }
                if !names::valid_message_id(&message_id) {
                    return err(
                        id,
                        ErrorCode::InvalidName,
                        "a message id is 1-64 printable ASCII characters",
                    );
                }
                let attachments = match crate::media::records_of(&attachments) {
                    Ok(records) => records,
                    Err(e) => return err(id, ErrorCode::InvalidArgument, e.to_string()),
                };
                if let Err(wait) = hub.sends.check(user, device.auth.device) {
                    return rate_limited(id, wait, "messages");
                }
                let op = WriteOp::Send {
                    sender: user,
                    device: device.auth.device,
                    to,
                    client_id: message_id,
                    text,
                    attachments,
                };
                later(id, hub.store.submit(op), |outcome| {
                    let sent = match outcome {
                        crate::store::Outcome::Sent(s) => s,
                        other => return Err(StoreError::Invalid(format!("internal: unexpected {other:?}"))),
                    };
                    Ok(Response::Sent {
                        conversation: sent.conversation,
                        seq: sent.seq,
                        sent_at: sent.sent_at,
                        duplicate: sent.duplicate,
                    })
                })
            }
            Request::Sync { since, limit } => {
                let limit = limit.clamp(1, limits.max_sync_page);
                let Page { entries, more, resync } = match hub.store.stream_page(user, since, limit) {
                    Ok(page) => page,
                    Err(e) => return store_err(id, &e),
                };
                let next = entries.last().map_or(since, |e| e.position);
                if !more {
                    // The page reached the end of the stream: from here on
                    // new entries are pushed. Entries committed after this
                    // page's snapshot have higher positions than any in it
                    // (positions are given out in commit order) and pass the
                    // filter in `on_push`; older ones are dropped there.
                    let head = if entries.is_empty() {
                        match hub.store.stream_head() {
                            Ok(h) => h.min(since),
                            Err(e) => return store_err(id, &e),
                        }
                    } else {
                        next
                    };
                    device.live = true;
                    device.delivered = head;
                } else {
                    device.delivered = device.delivered.max(next);
                }
                ok(id, Response::Entries { entries, next, more, resync })
            }
            Request::Ack { position } => {
                later(id, hub.store.submit(WriteOp::Ack { device: device.auth.device, position }), |_| {
                    Ok(Response::Done)
                })
            }
            Request::History { conversation, before, limit } => {
                let limit = limit.clamp(1, limits.max_history_page);
                match hub.store.history(user, &conversation, before, limit) {
                    Ok((messages, more)) => ok(id, Response::History { messages, more }),
                    Err(e) => store_err(id, &e),
                }
            }
            Request::Conversations => match hub.store.conversations(user) {
                Ok(conversations) => ok(id, Response::Conversations { conversations }),
                Err(e) => store_err(id, &e),
            },
            Request::CreateGroup { name, members } => {
                if !names::valid_group_name(&name) {
                    return err(
                        id,
                        ErrorCode::InvalidName,
                        "a group name is 1-64 of a-z, 0-9, '_', '-', '.', starting with a letter or digit",
                    );
                }
                if members.len() >= limits.max_group_members as usize {
                    return err(
                        id,
                        ErrorCode::TooLarge,
                        format!("a group may have at most {} members", limits.max_group_members),
                    );
                }
                let op = WriteOp::CreateGroup {
                    creator: user,
                    name,
                    members,
                    max_members: limits.max_group_members,
                };
                self.group_reply(id, op)
            }
            Request::AddMember { group, user: member } => {
                let op = WriteOp::AddMember {
                    actor: user,
                    group,
                    user: member,
                    max_members: limits.max_group_members,
                };
                self.group_reply(id, op)
            }
            Request::RemoveMember { group, user: member } => {
                self.group_reply(id, WriteOp::RemoveMember { actor: user, group, user: member })
            }
            Request::Leave { group } => {
                later(id, hub.store.submit(WriteOp::Leave { user, group }), |_| Ok(Response::Done))
            }
            Request::MarkRead { conversation, seq } => self.receipt(id, conversation, ReceiptKind::Read, seq),
            Request::MarkDelivered { conversation, seq } => {
                self.receipt(id, conversation, ReceiptKind::Delivered, seq)
            }
            Request::Typing { conversation } => {
                if let Err(wait) = hub.sends.check(user, device.auth.device) {
                    return rate_limited(id, wait, "typing notices");
                }
                let registration = device.registration;
                let name = device.auth.username.clone();
                match hub.store.members_for(user, &conversation) {
                    Ok((conversation, chat, members)) => {
                        // Readers name a direct conversation after the other
                        // person: here, the one typing.
                        let chat = if chat.starts_with('#') { chat } else { name.clone() };
                        let event = Arc::new(Event::Typing { conversation, chat, user: name });
                        for member in members.into_iter().filter(|&m| m != user) {
                            hub.router.push_event(member, Some(registration), &event);
                        }
                        ok(id, Response::Done)
                    }
                    Err(e) => store_err(id, &e),
                }
            }
            Request::PushKey => match &hub.push {
                Some(pusher) => ok(id, Response::PushKey { key: pusher.public_key().to_owned() }),
                None => push_disabled(id),
            },
            Request::RegisterPush { kind, endpoint, p256dh, auth } => {
                if hub.push.is_none() {
                    return push_disabled(id);
                }
                let fields = match crate::push::Pusher::check(&endpoint, &p256dh, &auth) {
                    Ok(fields) => fields,
                    Err(e) => return err(id, ErrorCode::InvalidArgument, e.to_string()),
                };
                let op = WriteOp::Push(PushOp::Register {
                    user,
                    device: device.auth.device,
                    kind: kind.as_str().to_owned(),
                    endpoint: fields.endpoint,
                    p256dh: fields.p256dh,
                    auth: fields.auth,
                });
                later(id, hub.store.submit(op), |_| Ok(Response::Done))
            }
            Request::UnregisterPush => {
                let op = WriteOp::Push(PushOp::Unregister { user, device: device.auth.device });
                later(id, hub.store.submit(op), |_| Ok(Response::Done))
            }
            Request::Devices => match hub.store.devices(user, device.auth.device) {
                Ok(devices) => ok(id, Response::Devices { devices }),
                Err(e) => store_err(id, &e),
            },
            // Revoking the device this session runs on is a logout: the
            // client gets its `done` and then the close, rather than a
            // `revoked` event racing the answer.
            Request::RevokeDevice { device: target } if target == device.auth.device => {
                Box::pin(self.authenticated(id, Request::Logout)).await
            }
            Request::RevokeDevice { device: target } => {
                later(id, hub.store.submit(WriteOp::RevokeDevice { user, device: target }), |_| {
                    Ok(Response::Done)
                })
            }
            Request::Logout => {
                let op = WriteOp::RevokeDevice { user, device: device.auth.device };
                let result = hub.store.write(op).await;
                self.end();
                match result {
                    Ok(_) => Handled::Close(ServerFrame::Ok { id, body: Response::Done }),
                    Err(e) => Handled::Close(ServerFrame::Err { id, error: from_store(&e) }),
                }
            }
            Request::Hello { .. }
            | Request::Login { .. }
            | Request::Register { .. }
            | Request::Resume { .. }
            | Request::Ping => err(id, ErrorCode::InvalidArgument, "unexpected request"),
        }
    }

    fn receipt(&mut self, id: u32, conversation: Target, kind: ReceiptKind, seq: u64) -> Handled {
        let Phase::Ready(device) = &self.phase else {
            return err(id, ErrorCode::NotAuthenticated, "log in first");
        };
        let op = WriteOp::Receipt { user: device.auth.user, conversation, kind, seq };
        later(id, self.hub.store.submit(op), |_| Ok(Response::Done))
    }

    /// Queues a group change; answers with the group as the caller now sees it.
    fn group_reply(&mut self, id: u32, op: WriteOp) -> Handled {
        let Phase::Ready(device) = &self.phase else {
            return err(id, ErrorCode::NotAuthenticated, "log in first");
        };
        let user = device.auth.user;
        let store = self.hub.store.clone();
        later(id, self.hub.store.submit(op), move |outcome| match outcome {
            crate::store::Outcome::Conversation(conversation) => {
                Ok(Response::Group { conversation: store.conversation(user, conversation)? })
            }
            other => Err(StoreError::Invalid(format!("internal: unexpected {other:?}"))),
        })
    }

    /// Turns something the router pushed into frames for the client, and
    /// whether the session must close.
    pub fn on_push(&mut self, push: Push) -> (Vec<Outbound>, bool) {
        let Phase::Ready(device) = &mut self.phase else {
            return (Vec::new(), false);
        };
        match push {
            Push::Event(event) => {
                (vec![ServerFrame::Event { event: Arc::unwrap_or_clone(event) }.into()], false)
            }
            Push::Revoked => {
                self.end();
                (vec![ServerFrame::Event { event: Event::Revoked }.into()], true)
            }
            Push::Entry(entry) => {
                if !device.live || entry.position() <= device.delivered {
                    // Not live yet (the client is paging through sync) or
                    // already sent: the client has it or will get it by sync.
                    return (Vec::new(), false);
                }
                // Positions are box-wide, so a user's entries skip numbers
                // and a push cannot show a gap. What the router could not
                // queue raised the lag flag before any later entry was
                // offered: if it is up, this push may come after a missing
                // one, so the store is read from `delivered` instead (this
                // entry included: it was committed before it was pushed).
                if self.lag.as_ref().is_some_and(|lag| lag.take_lagged()) {
                    return self.catch_up();
                }
                device.delivered = entry.position();
                (vec![Outbound::Entry(entry)], false)
            }
        }
    }

    /// Sends what the router could not queue, read from the store (after the
    /// router flagged this session as lagging). Also re-checks the token,
    /// since a revocation may have been among what was not queued.
    pub fn catch_up(&mut self) -> (Vec<Outbound>, bool) {
        let Phase::Ready(device) = &mut self.phase else {
            return (Vec::new(), false);
        };
        let (user, since) = (device.auth.user, device.delivered);
        // Revoked, removed or disabled: any of them may have been among what
        // the router could not queue.
        let still_valid = self.hub.store.device_active(user, device.auth.device);
        if let Ok(false) = still_valid {
            self.end();
            return (vec![ServerFrame::Event { event: Event::Revoked }.into()], true);
        }
        if !device.live {
            return (Vec::new(), false);
        }
        // One page per wake-up keeps a session from monopolising its thread
        // and lets the transport read requests between pages. If more
        // remain, the lag signal is raised again so that the transport comes
        // back for the next page: a push cannot be relied on to find the gap,
        // since none may come. Pushes that arrive meanwhile are at or below
        // `delivered` (dropped) or past a gap (another page), so every entry
        // goes out once, in order.
        match self.hub.store.stream_page(user, since, self.hub.limits.max_sync_page) {
            Ok(Page { entries, more, .. }) => {
                if let Some(last) = entries.last() {
                    device.delivered = last.position;
                }
                let frames = entries.into_iter().map(|entry| entry_frame(entry).into()).collect();
                if more {
                    if let Some(lag) = &self.lag {
                        lag.raise();
                    }
                }
                (frames, false)
            }
            Err(e) => {
                tracing::warn!(error = %e, "catch-up failed; the client will resync after reconnecting");
                (
                    vec![ServerFrame::Event {
                        event: Event::GoingAway { reason: "server error, please reconnect".into() },
                    }
                    .into()],
                    true,
                )
            }
        }
    }

    /// Leaves the router and tells contacts if this was the user's last
    /// session.
    fn end(&mut self) {
        if let Phase::Ready(device) = std::mem::replace(&mut self.phase, Phase::Ended) {
            if self.hub.router.unregister(device.auth.user, device.registration) {
                self.presence_now(&device.auth, false);
            }
        }
    }
}

fn entry_frame(entry: Entry) -> ServerFrame {
    ServerFrame::Event { event: Event::Entry { entry } }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.end();
    }
}
