//! A client over a profile that survives lost connections: it reconnects with
//! back-off, resumes with the stored token, retries sends under the same
//! message id, and reads its stream from its cursor so that every entry
//! is handed out exactly once.
//!
//! The cursor has two parts. The *delivered* position (in memory) is the last
//! entry handed to the caller; the *committed* position is the one saved in
//! the profile and acknowledged to the server. An entry counts as processed
//! once the caller asks for the next one (or calls [`Client::commit`]), so a
//! crash between receiving and processing an entry makes the next run see it
//! again rather than lose it.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use imbox_protocol::{
    Attachment, ConversationInfo, DeviceInfo, Entry, ErrorCode, Event, Fingerprint, Message, PairingUri,
    PushKind, Request, Response, Target,
};

use crate::backoff::Backoff;
use crate::connection::{authenticated, unexpected, Authenticated, ConnectOptions, Connection};
use crate::cursor::{LogCursor, Placement};
use crate::error::ClientError;
use crate::profile::{parse_pin, Profile};
use crate::url::ServerUrl;

/// How a [`Client`] behaves. The defaults suit the one-shot commands of the
/// command-line client.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Options for each connection.
    pub connect: ConnectOptions,
    /// How long to keep retrying after things start failing before giving up
    /// with the last error; `None` retries for ever (for a listener).
    pub retry_for: Option<Duration>,
    /// The reconnect schedule.
    pub backoff: Backoff,
    /// The most entries to ask for in one `sync` page (the server's own
    /// limit applies too).
    pub sync_page: u32,
    /// After this long without any traffic while waiting for pushes, ping the
    /// server, so that a silently dead connection is noticed. `None` sends
    /// nothing while idle (a phone's SDK by default: radio time is battery),
    /// so the box's idle timeout ends a quiet session and the next wait
    /// reconnects.
    pub keepalive: Option<Duration>,
    /// Save and acknowledge the cursor at least every this many entries, even
    /// while the caller is still busy with a long backlog.
    pub commit_every: u64,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect: ConnectOptions::default(),
            retry_for: Some(Duration::from_secs(15)),
            backoff: Backoff::default(),
            sync_page: 500,
            keepalive: Some(Duration::from_secs(30)),
            commit_every: 256,
        }
    }
}

/// What [`Client::next_update`] hands out: the delivery log's entries, each
/// once and in order, and what the box does not store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// The next entry of the delivery log.
    Entry(Entry),
    /// Another member is typing in a conversation.
    Typing { conversation: u64, chat: String, user: String },
    /// A contact came online or went offline.
    Presence { user: String, online: bool },
    /// A sync said that this device had been away longer than the box keeps
    /// its stream: some entries may be missing, so the app reloads
    /// conversations and their history.
    Resynced,
    /// A session opened (the first, or after a lost connection), with the
    /// contacts online at that moment.
    Connected { online: Vec<String> },
    /// The connection was lost; the client reconnects by itself.
    Disconnected { reason: String },
}

/// The most updates other than entries that wait to be handed out; beyond
/// it the oldest are dropped (typing and presence are momentary anyway).
const MAX_UPDATES: usize = 256;

/// The server's acknowledgement of a message: it is durable on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The client-chosen message id.
    pub id: String,
    /// The conversation's id.
    pub conversation: u64,
    /// The message's order within its conversation.
    pub seq: u64,
    /// When the server stored it, in milliseconds since the Unix epoch.
    pub sent_at: u64,
    /// True when an earlier attempt with this id had already been stored.
    pub duplicate: bool,
}

/// A reconnecting client for the device a profile describes. Methods take
/// `&mut self`: one task drives a `Client`. For concurrent requests on one
/// connection, use [`Connection`] directly.
#[derive(Debug)]
pub struct Client {
    dir: PathBuf,
    /// The profile as last saved; `profile.cursor` is the committed position.
    profile: Profile,
    url: ServerUrl,
    /// The box's key, from the profile or [`Client::use_pin`].
    pin: Option<Fingerprint>,
    options: ClientOptions,
    conn: Option<Connection>,
    backoff: Backoff,
    /// When the current run of failures began, for `retry_for`.
    failing_since: Option<Instant>,
    /// The delivered position.
    cursor: LogCursor,
    /// The position last acknowledged to the server.
    acked: u64,
    /// Entries of the last sync page or pushes not yet handed out.
    pending: VecDeque<Entry>,
    /// Whether the session has read the log to its end, so that the server
    /// pushes new entries.
    live: bool,
    /// A sync answered that this device had been away longer than the box
    /// keeps its stream (see [`Client::take_resync`]).
    resynced: bool,
    /// What the server said when the current (or last) session opened.
    session: Option<Authenticated>,
    /// Updates other than entries not yet handed out; `None` until the
    /// first [`Client::next_update`], so that entry-only readers keep none.
    updates: Option<VecDeque<Update>>,
}

/// What happened while waiting for a push.
enum Waited {
    Event(Event),
    Closed(ClientError),
    Idle(Result<Response, ClientError>),
}

impl Client {
    /// Opens the profile in `dir`. Connecting waits for the first request.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Client, ClientError> {
        let dir = dir.into();
        let profile = Profile::load(&dir)?;
        let url = ServerUrl::parse(&profile.server)?;
        let pin = profile.pin.as_deref().map(parse_pin).transpose()?;
        Ok(Client::from_parts(dir, profile, url, None, pin, ClientOptions::default()))
    }

    /// Logs a new device in at a `ws://` server and stores its profile in
    /// `dir`, replacing any profile there. [`Client::login_with`] takes a
    /// pin, for `wss://` and `quic://`.
    pub async fn login(
        dir: impl Into<PathBuf>,
        server: &str,
        username: &str,
        password: &str,
        device_name: &str,
    ) -> Result<Client, ClientError> {
        Client::login_with(dir, server, &ConnectOptions::default(), username, password, device_name).await
    }

    /// Logs a new device in at `server`, connecting with `options` (which
    /// carry the pin for `wss://` and `quic://`), and stores its profile,
    /// pin included, in `dir`, replacing any profile there.
    pub async fn login_with(
        dir: impl Into<PathBuf>,
        server: &str,
        options: &ConnectOptions,
        username: &str,
        password: &str,
        device_name: &str,
    ) -> Result<Client, ClientError> {
        let req = Request::Login {
            username: username.to_owned(),
            password: password.to_owned(),
            device_name: device_name.to_owned(),
        };
        Client::authenticate_new(dir.into(), server, options, req).await
    }

    /// Creates an account with an invite at a `ws://` server, logs its first
    /// device in and stores its profile in `dir`, replacing any profile
    /// there. [`Client::register_with`] takes a pin.
    pub async fn register(
        dir: impl Into<PathBuf>,
        server: &str,
        username: &str,
        password: &str,
        invite: &str,
        device_name: &str,
    ) -> Result<Client, ClientError> {
        let options = ConnectOptions::default();
        Client::register_with(dir, server, &options, username, password, invite, device_name).await
    }

    /// Creates an account with an invite at `server`, connecting with
    /// `options` (which carry the pin for `wss://` and `quic://`), logs its
    /// first device in and stores its profile, pin included, in `dir`.
    pub async fn register_with(
        dir: impl Into<PathBuf>,
        server: &str,
        options: &ConnectOptions,
        username: &str,
        password: &str,
        invite: &str,
        device_name: &str,
    ) -> Result<Client, ClientError> {
        Client::authenticate_new(
            dir.into(),
            server,
            options,
            register(username, password, invite, device_name),
        )
        .await
    }

    /// Pairs this device with a box from its pairing URI (what the invite's
    /// QR code carries): tries the box's addresses in the URI's order (QUIC
    /// first, then WebSocket over TLS, for each host) with the URI's key
    /// pinned, registers `username` with the URI's invite on the first that
    /// connects, and stores the profile (that server and the pin) in `dir`.
    /// `options.pin` is replaced by the URI's fingerprint.
    pub async fn pair(
        dir: impl Into<PathBuf>,
        uri: &PairingUri,
        options: &ConnectOptions,
        username: &str,
        password: &str,
        device_name: &str,
    ) -> Result<Client, ClientError> {
        let invite = uri.invite.as_deref().ok_or(ClientError::NoInvite)?;
        let options = ConnectOptions { pin: Some(uri.fingerprint), ..options.clone() };
        let mut errors = Vec::new();
        for text in uri.server_urls() {
            let url = match ServerUrl::parse(&text) {
                Ok(url) => url,
                Err(err) => {
                    errors.push(err);
                    continue;
                }
            };
            match Connection::connect_with(&url, &options).await {
                Ok(conn) => {
                    // Registering is not retried elsewhere: it would create
                    // the account or spend the invite twice.
                    let req = register(username, password, invite, device_name);
                    return Client::authenticate_on(dir.into(), url, conn, &options, req).await;
                }
                Err(err) => {
                    tracing::info!("{err}; trying the box's next address");
                    errors.push(err);
                }
            }
        }
        if errors.len() == 1 {
            if let Some(only) = errors.pop() {
                return Err(only);
            }
        }
        Err(ClientError::NoAddressWorked { errors })
    }

    /// `login` and `register` are not retried: each attempt creates a
    /// device, and a wrong password must not be repeated.
    async fn authenticate_new(
        dir: PathBuf,
        server: &str,
        options: &ConnectOptions,
        req: Request,
    ) -> Result<Client, ClientError> {
        let url = ServerUrl::parse(server)?;
        let conn = Connection::connect_with(&url, options).await?;
        Client::authenticate_on(dir, url, conn, options, req).await
    }

    async fn authenticate_on(
        dir: PathBuf,
        url: ServerUrl,
        conn: Connection,
        options: &ConnectOptions,
        req: Request,
    ) -> Result<Client, ClientError> {
        let kind = req.kind();
        let auth = authenticated(kind, conn.request(req).await?)?;
        let Authenticated { user, device, token, cursor, .. } = auth.clone();
        let Some(token) = token else {
            return Err(ClientError::Protocol {
                reason: format!("the answer to {kind} carried no device token"),
            });
        };
        let pin = options.pin;
        let profile = Profile {
            server: url.to_string(),
            user,
            device,
            token,
            cursor,
            pin: pin.map(|pin| pin.to_string()),
        };
        profile.save(&dir)?;
        let client_options = ClientOptions { connect: options.clone(), ..ClientOptions::default() };
        let mut client = Client::from_parts(dir, profile, url, Some(conn), pin, client_options);
        client.acked = cursor;
        client.live = false;
        client.session = Some(auth);
        Ok(client)
    }

    fn from_parts(
        dir: PathBuf,
        profile: Profile,
        url: ServerUrl,
        conn: Option<Connection>,
        pin: Option<Fingerprint>,
        options: ClientOptions,
    ) -> Client {
        Client {
            cursor: LogCursor::new(profile.cursor),
            acked: 0,
            dir,
            profile,
            url,
            pin,
            backoff: options.backoff.clone(),
            options,
            conn,
            failing_since: None,
            pending: VecDeque::new(),
            live: false,
            resynced: false,
            session: None,
            updates: None,
        }
    }

    /// Replaces the options (before first use, typically). The profile's pin
    /// (or [`Client::use_pin`]'s) is used rather than `options.connect.pin`.
    pub fn with_options(mut self, options: ClientOptions) -> Client {
        self.backoff = options.backoff.clone();
        self.options = options;
        self
    }

    /// Talks to `url` instead of the profile's server for as long as this
    /// client lives (the profile keeps its URL).
    pub fn use_server(&mut self, url: ServerUrl) {
        if url != self.url {
            self.drop_connection();
            self.url = url;
        }
    }

    /// Checks the box's key against `pin` instead of the profile's pin for as
    /// long as this client lives (the profile keeps its pin).
    pub fn use_pin(&mut self, pin: Fingerprint) {
        if self.pin != Some(pin) {
            self.drop_connection();
            self.pin = Some(pin);
        }
    }

    /// The pin connections check the box's key against.
    pub fn pin(&self) -> Option<Fingerprint> {
        self.pin.or(self.options.connect.pin)
    }

    /// The profile directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The profile as last saved.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// The server this client talks to.
    pub fn server_url(&self) -> &ServerUrl {
        &self.url
    }

    /// The options in use.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// Handles a failed attachment transfer as any failed request: waits
    /// before the next attempt while the failure is transient and
    /// `retry_for` allows, gives the error back otherwise.
    pub(crate) async fn recover_attachment(&mut self, err: ClientError) -> Result<(), ClientError> {
        self.recover(err).await
    }

    /// A transfer went through: the next failure starts a new back-off.
    pub(crate) fn attachment_succeeded(&mut self) {
        self.succeeded();
    }

    /// What the server said when the current (or last) session opened:
    /// who this device is, and the contacts online then.
    pub fn session(&self) -> Option<&Authenticated> {
        self.session.as_ref()
    }

    /// The connection, if one is open now; unlike [`Client::connection`]
    /// it never connects.
    pub fn current_connection(&self) -> Option<&Connection> {
        self.conn.as_ref().filter(|conn| !conn.is_closed())
    }

    /// The position of the last entry handed out.
    pub fn cursor(&self) -> u64 {
        self.cursor.position()
    }

    /// The live connection, connecting and resuming first if needed.
    pub async fn connection(&mut self) -> Result<&Connection, ClientError> {
        self.ensure_connected().await?;
        self.conn()
    }

    /// Sends any request, reconnecting and retrying while the failures are
    /// transient. A request that is not safe to replay
    /// ([`Request::is_replay_safe`]) is not resent after its connection broke
    /// mid-request, because it may have been carried out.
    pub async fn call(&mut self, req: Request) -> Result<Response, ClientError> {
        let replay_safe = req.is_replay_safe();
        loop {
            self.ensure_connected().await?;
            let result = self.conn()?.request(req.clone()).await;
            match result {
                Ok(response) => {
                    self.succeeded();
                    return Ok(response);
                }
                Err(err) if err.breaks_connection() && !replay_safe => {
                    self.drop_connection();
                    return Err(err);
                }
                Err(err) => self.recover(err).await?,
            }
        }
    }

    /// Sends a text message under a fresh id, retrying across reconnects
    /// until the server confirms that it is stored.
    pub async fn send(&mut self, to: &Target, text: &str) -> Result<Sent, ClientError> {
        self.send_with_id(to, &uuid::Uuid::new_v4().to_string(), text).await
    }

    /// Sends a text message under `id`. Sending the same id again (from any
    /// run) never stores a second copy.
    pub async fn send_with_id(&mut self, to: &Target, id: &str, text: &str) -> Result<Sent, ClientError> {
        self.send_message(to, id, text, Vec::new()).await
    }

    /// Sends a message with text and attachments (uploaded before, see
    /// [`Client::upload`]) under `id`, retrying across reconnects until the
    /// server confirms that it is stored. Sending the same id again (from
    /// any run) never stores a second copy.
    pub async fn send_message(
        &mut self,
        to: &Target,
        id: &str,
        text: &str,
        attachments: Vec<Attachment>,
    ) -> Result<Sent, ClientError> {
        imbox_protocol::check_attachments(&attachments)?;
        let req = Request::Send { to: to.clone(), id: id.to_owned(), text: text.to_owned(), attachments };
        match self.call(req).await? {
            Response::Sent { conversation, seq, sent_at, duplicate } => {
                Ok(Sent { id: id.to_owned(), conversation, seq, sent_at, duplicate })
            }
            other => Err(unexpected("send", &other)),
        }
    }

    /// Reads a conversation's messages before sequence number `before` (the
    /// newest when `None`), oldest first; the flag tells whether older ones
    /// exist.
    pub async fn history(
        &mut self,
        conversation: &Target,
        before: Option<u64>,
        limit: u32,
    ) -> Result<(Vec<Message>, bool), ClientError> {
        let req = Request::History { conversation: conversation.clone(), before, limit };
        match self.call(req).await? {
            Response::History { messages, more } => Ok((messages, more)),
            other => Err(unexpected("history", &other)),
        }
    }

    /// Lists the conversations the user belongs to.
    pub async fn conversations(&mut self) -> Result<Vec<ConversationInfo>, ClientError> {
        match self.call(Request::Conversations).await? {
            Response::Conversations { conversations } => Ok(conversations),
            other => Err(unexpected("conversations", &other)),
        }
    }

    /// Lists the user's devices.
    pub async fn devices(&mut self) -> Result<Vec<DeviceInfo>, ClientError> {
        match self.call(Request::Devices).await? {
            Response::Devices { devices } => Ok(devices),
            other => Err(unexpected("devices", &other)),
        }
    }

    /// The box's VAPID public key (unpadded base64url of an uncompressed
    /// P-256 point): the `applicationServerKey` a browser subscribes with,
    /// the VAPID key a UnifiedPush distributor is given. A box with push
    /// turned off answers `push_disabled`.
    pub async fn push_key(&mut self) -> Result<String, ClientError> {
        match self.call(Request::PushKey).await? {
            Response::PushKey { key } => Ok(key),
            other => Err(unexpected("push_key", &other)),
        }
    }

    /// Asks the box to wake this device with a content-free push to
    /// `endpoint` whenever something arrives while it has no session;
    /// replaces this device's earlier registration. `p256dh` and `auth` are
    /// the subscription's keys in base64url (RFC 8291). The fields are
    /// checked here first ([`imbox_protocol::push::check_registration`]),
    /// so a bad one fails without a round trip.
    pub async fn register_push(
        &mut self,
        kind: PushKind,
        endpoint: &str,
        p256dh: &str,
        auth: &str,
    ) -> Result<(), ClientError> {
        imbox_protocol::push::check_registration(endpoint, p256dh, auth)?;
        let req = Request::RegisterPush {
            kind,
            endpoint: endpoint.to_owned(),
            p256dh: p256dh.to_owned(),
            auth: auth.to_owned(),
        };
        match self.call(req).await? {
            Response::Done => Ok(()),
            other => Err(unexpected("register_push", &other)),
        }
    }

    /// Removes this device's push registration; the box keeps none after
    /// this (logging out and revoking remove it too).
    pub async fn unregister_push(&mut self) -> Result<(), ClientError> {
        match self.call(Request::UnregisterPush).await? {
            Response::Done => Ok(()),
            other => Err(unexpected("unregister_push", &other)),
        }
    }

    /// Creates a group (the user becomes its admin) with these members.
    pub async fn create_group(
        &mut self,
        name: &str,
        members: &[String],
    ) -> Result<ConversationInfo, ClientError> {
        let req = Request::CreateGroup { name: name.to_owned(), members: members.to_vec() };
        match self.call(req).await? {
            Response::Group { conversation } => Ok(conversation),
            other => Err(unexpected("create_group", &other)),
        }
    }

    /// Revokes this device's token on the server and deletes the profile.
    /// A token the server no longer accepts counts as logged out already.
    pub async fn logout(mut self) -> Result<(), ClientError> {
        match self.call(Request::Logout).await {
            Ok(_) | Err(ClientError::Revoked { .. }) => {}
            Err(err) => return Err(err),
        }
        if let Some(conn) = self.conn.take() {
            conn.close().await;
        }
        Profile::remove(&self.dir)
    }

    /// The next delivery-log entry after the cursor, or `None` once the log
    /// has been read to its end. Entries come in position order, each once.
    /// After a `None`, the next call reads on from the cursor, so calling
    /// this until `None` again picks up whatever was added meanwhile.
    pub async fn next_backlog_entry(&mut self) -> Result<Option<Entry>, ClientError> {
        loop {
            match self.next(false).await? {
                None => return Ok(None),
                Some(Update::Entry(entry)) => return Ok(Some(entry)),
                // Only after `next_update`, which hands these out.
                Some(_) => {}
            }
        }
    }

    /// The next delivery-log entry after the cursor, waiting for the server
    /// to push one once the backlog is read. Reconnects and re-syncs from the
    /// cursor after a lost connection or a server restart, so entries come in
    /// position order, each once.
    pub async fn next_entry(&mut self) -> Result<Entry, ClientError> {
        loop {
            if let Some(Update::Entry(entry)) = self.next(true).await? {
                return Ok(entry);
            }
        }
    }

    /// The next update: a delivery-log entry (as [`Client::next_entry`]
    /// hands them out: in order, each once, the cursor committed as the
    /// next one is asked for), or what the box does not store (typing,
    /// presence), or a change of the connection. Waits for the server to
    /// push something once the backlog is read; reconnects by itself.
    ///
    /// Cancel-safe: dropping the future before it finishes loses nothing,
    /// so that a caller can race it against other work on the client (the
    /// SDK does, to let requests through while it waits).
    pub async fn next_update(&mut self) -> Result<Update, ClientError> {
        self.updates.get_or_insert_with(VecDeque::new);
        loop {
            if let Some(update) = self.next(true).await? {
                return Ok(update);
            }
        }
    }

    // Cancel safety (for `next_update`): every await below either changes
    // nothing before it completes (requests, connecting, sleeping) or is
    // followed by synchronous bookkeeping only, so an entry or event that
    // was taken off the connection is in `pending` or `updates` before the
    // next await.
    async fn next(&mut self, wait_live: bool) -> Result<Option<Update>, ClientError> {
        loop {
            // Everything handed out before this call has been processed.
            if self.cursor.position().saturating_sub(self.profile.cursor) >= self.options.commit_every.max(1)
            {
                self.commit().await?;
            }
            if let Some(update) = self.updates.as_mut().and_then(VecDeque::pop_front) {
                return Ok(Some(update));
            }
            while let Some(entry) = self.pending.pop_front() {
                if self.cursor.advance(entry.position) {
                    return Ok(Some(Update::Entry(entry)));
                }
            }
            // Before waiting on the network, record progress so far.
            self.commit().await?;
            self.ensure_connected().await?;
            if !self.live {
                self.fetch_page().await?;
            } else if let Some(event) = self.conn()?.try_next_event() {
                self.handle_event(event).await?;
            } else if wait_live {
                self.wait_for_push().await?;
            } else {
                // The log is read to its end. The next backlog read syncs
                // again, so that it sees entries added since, whether or not
                // their pushes have arrived yet.
                self.live = false;
                return Ok(None);
            }
        }
    }

    /// Whether a sync since the last call said that this device had been
    /// away longer than the box keeps its stream, so that some entries may
    /// be missing: the app then reloads conversations and their history.
    pub fn take_resync(&mut self) -> bool {
        std::mem::take(&mut self.resynced)
    }

    async fn fetch_page(&mut self) -> Result<(), ClientError> {
        let since = self.cursor.position();
        let conn = self.conn()?;
        let server_page = conn.welcome().limits.max_sync_page;
        let limit = match server_page {
            0 => self.options.sync_page,
            max => self.options.sync_page.min(max),
        }
        .max(1);
        let result = conn.request(Request::Sync { since, limit }).await;
        match result {
            Ok(Response::Entries { mut entries, next, more, resync }) => {
                self.succeeded();
                if resync {
                    // The box no longer keeps all that happened while this
                    // device was away; what is left still comes in order.
                    tracing::warn!(
                        since,
                        "this device was away longer than the box keeps its stream: some messages \
                         may be missing here; read the conversations' history to fill the gap"
                    );
                    self.resynced = true;
                    self.push_update(Update::Resynced);
                }
                // Positions must be ascending for de-duplication to keep
                // every entry; do not rely on the server for it.
                entries.sort_by_key(|entry| entry.position);
                if entries.is_empty() && more {
                    if next <= since {
                        let reason = format!("sync from {since} returned no entries, yet more from {next}");
                        return Err(self.fail(ClientError::Protocol { reason }));
                    }
                    // Nothing for this device up to `next`.
                    self.cursor.advance(next);
                }
                self.pending.extend(entries);
                self.live = !more;
                Ok(())
            }
            Ok(other) => Err(self.fail(unexpected("sync", &other))),
            Err(err) => self.recover(err).await,
        }
    }

    async fn wait_for_push(&mut self) -> Result<(), ClientError> {
        let waited = {
            let conn = self.conn()?;
            let keepalive = async {
                match self.options.keepalive {
                    Some(every) => tokio::time::sleep(every).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                event = conn.next_event() => match event {
                    Some(event) => Waited::Event(event),
                    None => Waited::Closed(conn.closed_error()),
                },
                () = keepalive => Waited::Idle(conn.request(Request::Ping).await),
            }
        };
        match waited {
            Waited::Idle(Ok(_)) => Ok(()),
            Waited::Idle(Err(err)) | Waited::Closed(err) => self.recover(err).await,
            Waited::Event(event) => self.handle_event(event).await,
        }
    }

    async fn handle_event(&mut self, event: Event) -> Result<(), ClientError> {
        match event {
            Event::Entry { entry } => match self.cursor.place(entry.position) {
                Placement::Seen => {}
                Placement::Next => {
                    self.succeeded();
                    self.pending.push_back(entry);
                }
            },
            Event::GoingAway { reason } => {
                tracing::info!(%reason, "the server is going away; reconnecting");
                let reason = format!("the server is shutting down ({reason})");
                self.recover(ClientError::ConnectionClosed { reason }).await?;
            }
            Event::Revoked => {
                self.drop_connection();
                return Err(self.revoked());
            }
            // Not stored: handed out by `next_update` only.
            Event::Typing { conversation, chat, user } => {
                self.push_update(Update::Typing { conversation, chat, user })
            }
            Event::Presence { user, online } => self.push_update(Update::Presence { user, online }),
        }
        Ok(())
    }

    /// Saves the delivered position to the profile and acknowledges it to
    /// the server (when connected; otherwise after the next reconnect).
    /// Fails only when the profile cannot be written.
    pub async fn commit(&mut self) -> Result<(), ClientError> {
        let position = self.cursor.position();
        if position > self.profile.cursor {
            let mut updated = self.profile.clone();
            updated.cursor = position;
            updated.save(&self.dir)?;
            self.profile = updated;
        }
        if position > self.acked {
            let Some(conn) = self.conn.as_ref().filter(|conn| !conn.is_closed()) else {
                return Ok(());
            };
            match conn.request(Request::Ack { position }).await {
                Ok(_) => self.acked = position,
                Err(err) => {
                    // The profile holds the cursor; the server learns it at
                    // the next commit.
                    tracing::debug!(%err, "ack failed");
                    if err.breaks_connection() {
                        self.drop_connection();
                    }
                }
            }
        }
        Ok(())
    }

    /// Saves and acknowledges the cursor, then closes the connection
    /// politely, as an app going to the background does: nothing stays open
    /// or is sent. The client stays usable; its next request or wait for
    /// entries reconnects (with 0-RTT over QUIC).
    pub async fn disconnect(&mut self) -> Result<(), ClientError> {
        let committed = self.commit().await;
        if let Some(conn) = self.conn.take() {
            conn.close().await;
        }
        self.drop_connection();
        committed
    }

    /// Closes the connection politely. Call [`Client::commit`] first to keep
    /// the cursor.
    pub async fn close(mut self) {
        if let Some(conn) = self.conn.take() {
            conn.close().await;
        }
    }

    async fn ensure_connected(&mut self) -> Result<(), ClientError> {
        loop {
            match &self.conn {
                Some(conn) if !conn.is_closed() => return Ok(()),
                Some(_) => self.drop_connection(),
                None => {}
            }
            match self.open_session().await {
                Ok(conn) => self.conn = Some(conn),
                Err(err) => self.recover(err).await?,
            }
        }
    }

    async fn open_session(&mut self) -> Result<Connection, ClientError> {
        let options = ConnectOptions { pin: self.pin(), ..self.options.connect.clone() };
        let conn = Connection::connect_with(&self.url, &options).await?;
        let auth: Authenticated = match conn.resume(&self.profile.token).await {
            Err(ClientError::Server { error, .. }) if error.code == ErrorCode::BadCredentials => {
                return Err(self.revoked())
            }
            other => other?,
        };
        if auth.device != self.profile.device {
            return Err(ClientError::Protocol {
                reason: format!(
                    "the token of device {} was accepted as device {}",
                    self.profile.device, auth.device
                ),
            });
        }
        // The server's cursor is ahead only if another process using this
        // profile acknowledged more; those entries were handed out there.
        self.cursor.advance(auth.cursor);
        self.acked = auth.cursor;
        self.live = false;
        self.pending.clear();
        self.push_update(Update::Connected { online: auth.online.clone() });
        self.session = Some(auth);
        Ok(conn)
    }

    /// Handles a failed step: drops a broken connection, then either waits
    /// for the next retry (`Ok`) or gives the error back when retrying
    /// cannot help or has gone on for longer than `retry_for`.
    async fn recover(&mut self, err: ClientError) -> Result<(), ClientError> {
        let err = self.fail(err);
        if !err.is_transient() {
            return Err(err);
        }
        let now = Instant::now();
        let since = *self.failing_since.get_or_insert(now);
        let mut delay = self.backoff.next_delay().max(err.retry_after().unwrap_or_default());
        if let Some(limit) = self.options.retry_for {
            let spent = now.duration_since(since);
            if spent >= limit {
                return Err(err);
            }
            delay = delay.min(limit - spent);
        }
        tracing::info!("{err}; retrying in {} ms", delay.as_millis());
        tokio::time::sleep(delay).await;
        Ok(())
    }

    /// Drops the connection if `err` broke it; returns `err`.
    fn fail(&mut self, err: ClientError) -> ClientError {
        if err.breaks_connection() {
            if self.conn.is_some() {
                self.push_update(Update::Disconnected { reason: err.to_string() });
            }
            self.drop_connection();
        }
        err
    }

    /// Keeps an update for `next_update`, if anyone reads them.
    fn push_update(&mut self, update: Update) {
        if let Some(updates) = &mut self.updates {
            if updates.len() >= MAX_UPDATES {
                updates.pop_front();
            }
            updates.push_back(update);
        }
    }

    fn drop_connection(&mut self) {
        // Dropping the handle ends the driver task, which closes the socket.
        self.conn = None;
        self.live = false;
        self.pending.clear();
    }

    fn succeeded(&mut self) {
        self.failing_since = None;
        self.backoff.reset();
    }

    fn conn(&self) -> Result<&Connection, ClientError> {
        self.conn.as_ref().ok_or_else(|| ClientError::ConnectionClosed { reason: "not connected".to_owned() })
    }

    pub(crate) fn revoked(&self) -> ClientError {
        ClientError::Revoked {
            server: self.profile.server.clone(),
            dir: self.dir.clone(),
            user: self.profile.user.clone(),
            pin: self.pin().map(|pin| pin.to_string()),
        }
    }
}

fn register(username: &str, password: &str, invite: &str, device_name: &str) -> Request {
    Request::Register {
        username: username.to_owned(),
        password: password.to_owned(),
        invite: invite.to_owned(),
        device_name: device_name.to_owned(),
    }
}
