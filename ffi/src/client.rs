//! [`ImboxClient`]: one paired device, over the client library's
//! reconnecting [`Client`].
//!
//! The `Client` sits behind one async mutex. Requests take it for as long
//! as they run; waiting for events (`next_event`, the listener) takes it
//! too, but races that wait against a signal that a request wants the
//! client, and lets go when one does. The library's wait is cancel-safe, so
//! nothing is lost, and a request never waits for an event to arrive.
//!
//! The cursor follows the library's rule: an event from the delivery log
//! counts as processed once the next one is asked for, when it is saved in
//! the profile and acknowledged to the box. An app that crashes while
//! handling an event sees it again at its next start; one that handled it
//! never sees it twice.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use imbox_client::protocol::{PairingUri, Request, Response, Target};
use imbox_client::{Backoff, Client, ClientError, ClientOptions, ConnectOptions, ServerUrl};
use tokio::sync::{watch, MappedMutexGuard, Mutex, MutexGuard, Notify};

use crate::error::ImboxError;
use crate::records::{
    Attachment, Conversation, Device, DownloadedFile, HistoryPage, ImboxEvent, PairingInfo, PushKind,
    SentMessage, SessionInfo, TransferProgress,
};
use crate::runtime::{run, runtime, AbortOnDrop};

/// Receives events from a background task (`ImboxClient::set_listener`).
/// Calls come one at a time, from one of the SDK's threads: return
/// quickly, and hand long work to the app's own threads.
#[uniffi::export(with_foreign)]
pub trait EventListener: Send + Sync {
    /// The next event. Once this returns, the event counts as processed.
    fn on_event(&self, event: ImboxEvent);
    /// Waiting for events failed. Transient failures (`Unreachable`,
    /// `RateLimited`) are retried by the SDK after this; on any other the
    /// listener stops.
    fn on_error(&self, error: ImboxError);
}

/// Receives the progress of an upload or a download, after every chunk.
#[uniffi::export(with_foreign)]
pub trait ProgressListener: Send + Sync {
    fn on_progress(&self, progress: TransferProgress);
}

/// Options for how a client behaves, given when it is created.
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct ClientConfig {
    /// Send a keep-alive after this many idle seconds. `None` (the
    /// default) sends nothing while idle: the box then ends a quiet session
    /// after its idle timeout (60 s), and the next wait for events
    /// reconnects. A foreground app that waits for events can set 25 to
    /// keep one session (the box's pushes also keep a home router's UDP
    /// mapping alive); a background app calls `suspend()` instead.
    #[uniffi(default = None)]
    pub keepalive_seconds: Option<u32>,
    /// The name the box's logs show for this app.
    #[uniffi(default = None)]
    pub client_name: Option<String>,
}

impl ClientConfig {
    fn connect_options(&self) -> ConnectOptions {
        let keepalive = self.keepalive_seconds.map(|s| Duration::from_secs(u64::from(s.max(1))));
        ConnectOptions {
            client_name: self
                .client_name
                .clone()
                .unwrap_or_else(|| concat!("imbox-sdk/", env!("CARGO_PKG_VERSION")).to_owned()),
            quic_keep_alive: keepalive,
            ..ConnectOptions::default()
        }
    }

    fn client_options(&self) -> ClientOptions {
        ClientOptions {
            connect: self.connect_options(),
            keepalive: self.keepalive_seconds.map(|s| Duration::from_secs(u64::from(s.max(1)))),
            ..ClientOptions::default()
        }
    }
}

/// Where a client is in the app's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lifecycle {
    Active,
    /// In the background: no connection, no events until `resume()`.
    Suspended,
    /// Closed or logged out: every call fails.
    Closed,
}

/// A paired device: its profile directory, its connection to the box, its
/// events. All methods may be called from any thread, concurrently.
#[derive(uniffi::Object)]
pub struct ImboxClient {
    /// `None` once closed or logged out.
    client: Mutex<Option<Client>>,
    /// Requests waiting for the client: an event wait lets go when any.
    wanting: AtomicUsize,
    wanted: Notify,
    lifecycle: watch::Sender<Lifecycle>,
    /// The background task feeding a listener.
    listener: StdMutex<Option<AbortOnDrop<Result<(), ImboxError>>>>,
    dir: PathBuf,
}

impl std::fmt::Debug for ImboxClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImboxClient").field("dir", &self.dir).finish_non_exhaustive()
    }
}

/// Reads a pairing link (`imbox:pair?…`, or the web join link
/// `https://HOST/join#…`) without contacting the box.
#[uniffi::export]
pub fn parse_pairing_uri(uri: String) -> Result<PairingInfo, ImboxError> {
    let parsed: PairingUri = uri.parse().map_err(ClientError::from)?;
    Ok(PairingInfo::from(&parsed))
}

/// A conversation as apps name it: `#group`, `@user` or `user`, or `=ID`
/// (a conversation id from a message or event).
fn target(text: &str) -> Target {
    Target::parse(text.strip_prefix('@').unwrap_or(text))
}

#[uniffi::export]
impl ImboxClient {
    /// Opens the device paired in `profile_dir` (by `pair` or `login` in an
    /// earlier run). Nothing is sent until the first call that needs the box.
    #[uniffi::constructor(default(config = None))]
    pub fn open(profile_dir: String, config: Option<ClientConfig>) -> Result<Arc<ImboxClient>, ImboxError> {
        let config = config.unwrap_or_default();
        let client = Client::open(&profile_dir)?.with_options(config.client_options());
        Ok(ImboxClient::wrap(client, profile_dir))
    }

    /// Pairs this device from a pairing link (what an invite's QR code
    /// carries): pins the box's key from the link, creates the account
    /// `username` with the link's invite, registers this device as
    /// `device_name`, and keeps the profile in `profile_dir` (replacing any
    /// there).
    #[uniffi::constructor(default(config = None))]
    pub async fn pair(
        profile_dir: String,
        pairing_uri: String,
        username: String,
        password: String,
        device_name: String,
        config: Option<ClientConfig>,
    ) -> Result<Arc<ImboxClient>, ImboxError> {
        run(async move {
            let uri: PairingUri = pairing_uri.parse().map_err(ClientError::from)?;
            let config = config.unwrap_or_default();
            let client = Client::pair(
                &profile_dir,
                &uri,
                &config.connect_options(),
                &username,
                &password,
                &device_name,
            )
            .await?
            .with_options(config.client_options());
            Ok(ImboxClient::wrap(client, profile_dir))
        })
        .await
    }

    /// Logs a new device in to an existing account at `server_url`
    /// (`quic://HOST:PORT` or `wss://HOST:PORT`), checking the box's key
    /// against `pin` (`sha256:…`, from the pairing link or the box's setup
    /// page), and keeps the profile in `profile_dir`.
    #[uniffi::constructor(default(config = None))]
    pub async fn login(
        profile_dir: String,
        server_url: String,
        pin: String,
        username: String,
        password: String,
        device_name: String,
        config: Option<ClientConfig>,
    ) -> Result<Arc<ImboxClient>, ImboxError> {
        run(async move {
            let config = config.unwrap_or_default();
            let options =
                ConnectOptions { pin: Some(imbox_client::parse_pin(&pin)?), ..config.connect_options() };
            let client =
                Client::login_with(&profile_dir, &server_url, &options, &username, &password, &device_name)
                    .await?
                    .with_options(config.client_options());
            Ok(ImboxClient::wrap(client, profile_dir))
        })
        .await
    }

    /// Connects (resuming the session with the device's token) unless
    /// connected already, and says who this device is.
    pub async fn connect(self: Arc<Self>) -> Result<SessionInfo, ImboxError> {
        run(async move {
            let mut client = self.client().await?;
            session_info(&mut client).await
        })
        .await
    }

    /// The app went to the background: saves and acknowledges the cursor,
    /// closes the connection politely and stops waiting for events, so that
    /// nothing is sent and the box wakes the device by push instead. Calls
    /// that need the box fail with `Suspended` until `resume()`.
    pub async fn suspend(self: Arc<Self>) -> Result<(), ImboxError> {
        run(async move {
            let changed = self.lifecycle.send_if_modified(|state| {
                let active = *state == Lifecycle::Active;
                if active {
                    *state = Lifecycle::Suspended;
                }
                active
            });
            if !changed && *self.lifecycle.borrow() == Lifecycle::Closed {
                return Err(closed());
            }
            let mut client = self.lock().await;
            match client.as_mut() {
                Some(client) => Ok(client.disconnect().await?),
                None => Err(closed()),
            }
        })
        .await
    }

    /// The app came back to the foreground: reconnects (with QUIC 0-RTT
    /// when this process connected to the box before) and lets events
    /// flow again.
    pub async fn resume(self: Arc<Self>) -> Result<SessionInfo, ImboxError> {
        run(async move {
            self.lifecycle.send_if_modified(|state| {
                let suspended = *state == Lifecycle::Suspended;
                if suspended {
                    *state = Lifecycle::Active;
                }
                suspended
            });
            let mut client = self.client().await?;
            session_info(&mut client).await
        })
        .await
    }

    /// The device changed networks (Wi-Fi to mobile data, say): moves the
    /// QUIC connection to a new local socket, and the box follows it
    /// (connection migration) without a new handshake; the session and its
    /// events go on. Returns the new local address, or `None` when no
    /// connection is open (the next call connects anew). A `wss://`
    /// connection cannot move (TCP is tied to the old address): it is
    /// closed, with the cursor saved, and the next call or event wait
    /// reconnects; `None` then too.
    pub async fn network_changed(self: Arc<Self>) -> Result<Option<String>, ImboxError> {
        run(async move {
            let mut client = self.client().await?;
            let Some(conn) = client.current_connection() else {
                return Ok(None);
            };
            match conn.rebind() {
                Ok(()) => Ok(conn.local_addr().map(|addr| addr.to_string())),
                Err(ClientError::RebindUnsupported { .. }) => {
                    client.disconnect().await?;
                    Ok(None)
                }
                Err(err) => Err(err.into()),
            }
        })
        .await
    }

    /// The local address of the open connection, if any.
    pub async fn local_address(self: Arc<Self>) -> Result<Option<String>, ImboxError> {
        run(async move {
            let client = self.client().await?;
            Ok(client.current_connection().and_then(|conn| conn.local_addr()).map(|addr| addr.to_string()))
        })
        .await
    }

    /// Sends a text message to `to` (`@user`, `#group` or `=ID`). Give
    /// `client_id` (a UUID the app keeps) to retry a send after a failure
    /// or a crash without ever storing the message twice.
    #[uniffi::method(default(client_id = None))]
    pub async fn send_text(
        self: Arc<Self>,
        to: String,
        text: String,
        client_id: Option<String>,
    ) -> Result<SentMessage, ImboxError> {
        self.send_attachments(to, text, Vec::new(), client_id).await
    }

    /// Sends a message with attachments (from `upload`, or received in
    /// another message) and a caption, which may be empty.
    #[uniffi::method(default(client_id = None))]
    pub async fn send_attachments(
        self: Arc<Self>,
        to: String,
        text: String,
        attachments: Vec<Attachment>,
        client_id: Option<String>,
    ) -> Result<SentMessage, ImboxError> {
        run(async move {
            let mut client = self.client().await?;
            let id = client_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            let attachments = attachments.into_iter().map(Into::into).collect();
            Ok(client.send_message(&target(&to), &id, &text, attachments).await?.into())
        })
        .await
    }

    /// Uploads the file at `path` (resuming an interrupted upload of the
    /// same file) and returns its description, to send with
    /// `send_attachments`.
    #[uniffi::method(default(progress = None))]
    pub async fn upload(
        self: Arc<Self>,
        path: String,
        progress: Option<Arc<dyn ProgressListener>>,
    ) -> Result<Attachment, ImboxError> {
        run(async move {
            let mut client = self.client().await?;
            let uploaded = client.upload(&path, reporter(progress)).await?;
            Ok(uploaded.attachment.into())
        })
        .await
    }

    /// Downloads attachment `id` into `dest_path`, checked against its id;
    /// the file appears only once complete and correct.
    #[uniffi::method(default(progress = None))]
    pub async fn download(
        self: Arc<Self>,
        id: String,
        dest_path: String,
        progress: Option<Arc<dyn ProgressListener>>,
    ) -> Result<DownloadedFile, ImboxError> {
        run(async move {
            let mut client = self.client().await?;
            let downloaded = client.download(&id, &dest_path, reporter(progress)).await?;
            Ok(DownloadedFile { size: downloaded.size, media_type: downloaded.media_type })
        })
        .await
    }

    /// The conversations the user belongs to.
    pub async fn conversations(self: Arc<Self>) -> Result<Vec<Conversation>, ImboxError> {
        run(async move {
            let mut client = self.client().await?;
            Ok(client.conversations().await?.into_iter().map(Into::into).collect())
        })
        .await
    }

    /// Up to `limit` messages of `conversation` before `seq` = `before`
    /// (the newest when `None`), oldest first.
    #[uniffi::method(default(before = None, limit = 50))]
    pub async fn history(
        self: Arc<Self>,
        conversation: String,
        before: Option<u64>,
        limit: u32,
    ) -> Result<HistoryPage, ImboxError> {
        run(async move {
            let mut client = self.client().await?;
            let (messages, more) = client.history(&target(&conversation), before, limit).await?;
            Ok(HistoryPage { messages: messages.into_iter().map(Into::into).collect(), more })
        })
        .await
    }

    /// Creates a group `name` (without `#`) with these members; the user
    /// becomes its admin.
    pub async fn create_group(
        self: Arc<Self>,
        name: String,
        members: Vec<String>,
    ) -> Result<Conversation, ImboxError> {
        run(async move {
            let mut client = self.client().await?;
            let name = name.strip_prefix('#').unwrap_or(&name).to_owned();
            Ok(client.create_group(&name, &members).await?.into())
        })
        .await
    }

    /// Adds `user` to `group` (`#name` or `=ID`).
    pub async fn add_member(
        self: Arc<Self>,
        group: String,
        user: String,
    ) -> Result<Conversation, ImboxError> {
        let req = Request::AddMember { group: group_target(&group), user };
        self.group_request(req).await
    }

    /// Removes `user` from `group` (group admins only).
    pub async fn remove_member(
        self: Arc<Self>,
        group: String,
        user: String,
    ) -> Result<Conversation, ImboxError> {
        let req = Request::RemoveMember { group: group_target(&group), user };
        self.group_request(req).await
    }

    /// Leaves `group`.
    pub async fn leave(self: Arc<Self>, group: String) -> Result<(), ImboxError> {
        self.request_done(Request::Leave { group: group_target(&group) }).await
    }

    /// Marks every message of `conversation` up to `seq` as read; the
    /// other members get a `Receipt` event.
    pub async fn mark_read(self: Arc<Self>, conversation: String, seq: u64) -> Result<(), ImboxError> {
        self.request_done(Request::MarkRead { conversation: target(&conversation), seq }).await
    }

    /// Marks every message of `conversation` up to `seq` as delivered.
    pub async fn mark_delivered(self: Arc<Self>, conversation: String, seq: u64) -> Result<(), ImboxError> {
        self.request_done(Request::MarkDelivered { conversation: target(&conversation), seq }).await
    }

    /// Tells the other members of `conversation` that the user is typing.
    pub async fn typing(self: Arc<Self>, conversation: String) -> Result<(), ImboxError> {
        self.request_done(Request::Typing { conversation: target(&conversation) }).await
    }

    /// The box's VAPID public key (unpadded base64url): what a UnifiedPush
    /// distributor or a Web Push subscription is given. Fails with
    /// `PushDisabled` when the box's owner turned push off.
    pub async fn push_key(self: Arc<Self>) -> Result<String, ImboxError> {
        run(async move { Ok(self.client().await?.push_key().await?) }).await
    }

    /// Asks the box to wake this device with a content-free push to
    /// `endpoint` whenever something arrives while it has no session
    /// (suspended); replaces an earlier registration. `p256dh` and `auth`
    /// are the subscription's keys in base64url (RFC 8291).
    pub async fn register_push(
        self: Arc<Self>,
        kind: PushKind,
        endpoint: String,
        p256dh: String,
        auth: String,
    ) -> Result<(), ImboxError> {
        run(async move {
            let mut client = self.client().await?;
            Ok(client.register_push(kind.into(), &endpoint, &p256dh, &auth).await?)
        })
        .await
    }

    /// Removes this device's push registration (logging out removes it too).
    pub async fn unregister_push(self: Arc<Self>) -> Result<(), ImboxError> {
        run(async move { Ok(self.client().await?.unregister_push().await?) }).await
    }

    /// The user's devices.
    pub async fn devices(self: Arc<Self>) -> Result<Vec<Device>, ImboxError> {
        run(async move {
            let mut client = self.client().await?;
            Ok(client.devices().await?.into_iter().map(Into::into).collect())
        })
        .await
    }

    /// Revokes another of the user's devices; its sessions end.
    pub async fn revoke_device(self: Arc<Self>, device: u64) -> Result<(), ImboxError> {
        self.request_done(Request::RevokeDevice { device }).await
    }

    /// The next event: waits until there is one. Events from the delivery
    /// log come each once, in order, across restarts (the previous one is
    /// committed when this is called again). Use this or a listener, not
    /// both. While suspended, waits until `resume()`.
    pub async fn next_event(self: Arc<Self>) -> Result<ImboxEvent, ImboxError> {
        run(async move { self.wait_event().await }).await
    }

    /// Hands every event to `listener` from a background task, replacing
    /// any listener set before. The task stops at `close()`, `logout()`,
    /// `clear_listener()` or a lasting error (reported to the listener);
    /// until then it keeps this client (and its connection) alive even when
    /// the app holds no reference to it any more.
    pub fn set_listener(self: Arc<Self>, listener: Arc<dyn EventListener>) -> Result<(), ImboxError> {
        let this = Arc::clone(&self);
        let task = runtime()?.spawn(async move { this.feed(listener).await });
        let old = self.listener_slot().replace(AbortOnDrop(task));
        drop(old);
        Ok(())
    }

    /// Stops the listener set by `set_listener`; events wait for the next
    /// listener or `next_event()`. The event being handed out when this is
    /// called may come again.
    pub fn clear_listener(&self) {
        let old = self.listener_slot().take();
        drop(old);
    }

    /// Revokes this device's token on the box and deletes its profile. The
    /// client is closed afterwards.
    pub async fn logout(self: Arc<Self>) -> Result<(), ImboxError> {
        run(async move {
            let mut slot = self.lock().await;
            let client = slot.take().ok_or_else(closed)?;
            self.lifecycle.send_replace(Lifecycle::Closed);
            self.clear_listener();
            Ok(client.logout().await?)
        })
        .await
    }

    /// Saves the cursor and closes the connection; every later call fails
    /// with `Closed`. The profile stays: `open` it again later.
    pub async fn close(self: Arc<Self>) -> Result<(), ImboxError> {
        run(async move {
            self.lifecycle.send_replace(Lifecycle::Closed);
            self.clear_listener();
            let mut slot = self.lock().await;
            let Some(mut client) = slot.take() else {
                return Ok(());
            };
            let committed = client.commit().await;
            client.close().await;
            Ok(committed?)
        })
        .await
    }

    /// The profile directory.
    pub fn profile_dir(&self) -> String {
        self.dir.to_string_lossy().into_owned()
    }
}

impl ImboxClient {
    fn wrap(client: Client, dir: String) -> Arc<ImboxClient> {
        Arc::new(ImboxClient {
            client: Mutex::new(Some(client)),
            wanting: AtomicUsize::new(0),
            wanted: Notify::new(),
            lifecycle: watch::Sender::new(Lifecycle::Active),
            listener: StdMutex::new(None),
            dir: PathBuf::from(dir),
        })
    }

    /// The client, for a request: fails when suspended or closed; takes it
    /// from an event wait.
    async fn client(&self) -> Result<MappedMutexGuard<'_, Client>, ImboxError> {
        match *self.lifecycle.borrow() {
            Lifecycle::Active => {}
            Lifecycle::Suspended => return Err(suspended()),
            Lifecycle::Closed => return Err(closed()),
        }
        MutexGuard::try_map(self.lock().await, Option::as_mut).map_err(|_| closed())
    }

    /// The mutex, taken from an event wait if one holds it.
    async fn lock(&self) -> MutexGuard<'_, Option<Client>> {
        // Counted until the lock is taken or the caller gives up (a
        // cancelled call), so that an event wait never waits for a request
        // that went away.
        struct Wanting<'a>(&'a AtomicUsize);
        impl Drop for Wanting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        self.wanting.fetch_add(1, Ordering::SeqCst);
        let _wanting = Wanting(&self.wanting);
        self.wanted.notify_one();
        self.client.lock().await
    }

    fn listener_slot(&self) -> std::sync::MutexGuard<'_, Option<AbortOnDrop<Result<(), ImboxError>>>> {
        // A panic while holding this lock left nothing half-done.
        self.listener.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn wait_event(&self) -> Result<ImboxEvent, ImboxError> {
        let mut lifecycle = self.lifecycle.subscribe();
        loop {
            let state =
                *lifecycle.wait_for(|state| *state != Lifecycle::Suspended).await.map_err(|_| closed())?;
            if state == Lifecycle::Closed {
                return Err(closed());
            }
            let mut guard = self.client.lock().await;
            if self.wanting.load(Ordering::SeqCst) > 0 || *lifecycle.borrow_and_update() != Lifecycle::Active
            {
                drop(guard);
                tokio::task::yield_now().await;
                continue;
            }
            let client = guard.as_mut().ok_or_else(closed)?;
            tokio::select! {
                biased;
                () = self.wanted.notified() => {}
                _ = lifecycle.changed() => {}
                update = client.next_update() => return Ok(update?.into()),
            }
            drop(guard);
            tokio::task::yield_now().await;
        }
    }

    async fn feed(self: Arc<Self>, listener: Arc<dyn EventListener>) -> Result<(), ImboxError> {
        let mut backoff = Backoff::default();
        loop {
            match self.wait_event().await {
                Ok(event) => {
                    backoff.reset();
                    listener.on_event(event);
                }
                Err(err) if err.is_transient() => {
                    let delay = match &err {
                        ImboxError::RateLimited { retry_after_ms: Some(ms), .. } => {
                            Duration::from_millis(*ms)
                        }
                        _ => backoff.next_delay(),
                    };
                    listener.on_error(err);
                    tokio::time::sleep(delay).await;
                }
                Err(err) => {
                    listener.on_error(err);
                    return Ok(());
                }
            }
        }
    }

    async fn request_done(self: Arc<Self>, req: Request) -> Result<(), ImboxError> {
        run(async move {
            let kind = req.kind();
            let mut client = self.client().await?;
            match client.call(req).await? {
                Response::Done => Ok(()),
                other => Err(unexpected(kind, &other)),
            }
        })
        .await
    }

    async fn group_request(self: Arc<Self>, req: Request) -> Result<Conversation, ImboxError> {
        run(async move {
            let kind = req.kind();
            let mut client = self.client().await?;
            match client.call(req).await? {
                Response::Group { conversation } => Ok(conversation.into()),
                other => Err(unexpected(kind, &other)),
            }
        })
        .await
    }
}

async fn session_info(client: &mut Client) -> Result<SessionInfo, ImboxError> {
    let conn = client.connection().await?;
    let early_data = conn.zero_rtt_settled().await.into();
    let local_address = conn.local_addr().map(|addr| addr.to_string());
    let server = conn.url().to_string();
    let session = client.session().ok_or_else(|| ImboxError::Protocol {
        message: "connected without a session (a bug in the SDK): report it".to_owned(),
    })?;
    Ok(SessionInfo {
        user: session.user.clone(),
        device: session.device,
        admin: session.admin,
        online: session.online.clone(),
        server,
        local_address,
        early_data,
    })
}

fn reporter(listener: Option<Arc<dyn ProgressListener>>) -> impl FnMut(imbox_client::Progress) + Send {
    move |progress| {
        if let Some(listener) = &listener {
            listener.on_progress(progress.into());
        }
    }
}

/// A group as apps name it: `#name`, `name`, or `=ID`.
fn group_target(text: &str) -> Target {
    match Target::parse(text) {
        Target::User(name) => Target::Group(name),
        other => other,
    }
}

fn unexpected(kind: &str, response: &Response) -> ImboxError {
    ImboxError::Protocol {
        message: format!("the box answered {kind} with {response:?}; update the app or the box"),
    }
}

fn closed() -> ImboxError {
    ImboxError::Closed { message: "this client was closed or logged out: open the profile again".to_owned() }
}

fn suspended() -> ImboxError {
    ImboxError::Suspended { message: "the client is suspended: call resume() first".to_owned() }
}

/// Checks a server URL as `login` will, for apps that ask for one.
#[uniffi::export]
pub fn check_server_url(url: String) -> Result<String, ImboxError> {
    Ok(ServerUrl::parse(&url)?.to_string())
}
