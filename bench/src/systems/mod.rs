//! The systems under load, behind one small interface so that every scenario
//! gives each of them the same load shape.
//!
//! | load shape | imbox | MQTT |
//! | --- | --- | --- |
//! | a session | hello, resume with a device token, sync until live | CONNECT (clean session), SUBSCRIBE `u/<i>` at QoS 1 |
//! | a login (storm) | hello, resume | CONNECT with user name and password |
//! | direct message to user X | `send` to X | QoS 1 PUBLISH to `u/X` |
//! | message to a group of G | `send` to `#group` (made with `create_group`) | QoS 1 PUBLISH to `g/<id>`, G subscribers |
//! | acknowledgement | `sent`, once durable on disk | PUBACK |
//! | delivery | a pushed `entry` event | a PUBLISH from the broker |
//!
//! Sessions under load go through neither general-purpose client (imbox's
//! `Connection`, rumqttc's `EventLoop`; `provision` and `startup` do use
//! imbox's): both sides open their sockets here, from the source address the
//! run assigns ([`crate::net`]) and with TLS resumption off, which neither
//! client library allows, and both run the same kind of per-connection task
//! (one per session, a bounded queue of messages to send, a bounded window of
//! unacknowledged ones), so that the generator costs the same per message
//! whichever system it drives.

pub mod imbox;
pub mod mqtt;

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::payload::Stamp;

/// Messages a session may have sent and not yet seen acknowledged. imboxd
/// holds 64 requests per session by default (`max_inflight_requests`); MQTT
/// brokers have similar windows.
pub const MAX_IN_FLIGHT: usize = 64;

/// Where a message goes, in the load shape's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    /// The user of session `index`.
    User(usize),
    /// Group `index`.
    Group(usize),
}

/// One message for a session to send.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing {
    pub dest: Dest,
    pub stamp: Stamp,
    /// How many deliveries it should make (other sessions that receive it).
    pub fanout: u32,
}

/// `first` and then whatever else is already queued in `outbox`, for a
/// session to write as one burst and flush once.
pub fn burst(first: Outgoing, outbox: &mut mpsc::Receiver<Outgoing>) -> impl Iterator<Item = Outgoing> + '_ {
    std::iter::once(first).chain(std::iter::from_fn(move || outbox.try_recv().ok()))
}

/// What sessions report while they run. Called from every session task, so
/// it must be cheap and thread-safe.
pub trait Observer: Send + Sync {
    /// The system acknowledged the message at `now_us`.
    fn acked(&self, message: &Outgoing, now_us: u64);
    /// The system refused the message.
    fn failed(&self, message: &Outgoing, reason: &str);
    /// The message was not sent: the session's window was full.
    fn missed(&self, message: &Outgoing);
    /// Another session's message arrived at `now_us`.
    fn delivered(&self, stamp: &Stamp, now_us: u64);
}

/// An observer for sessions that only need to stay open.
#[derive(Debug)]
pub struct Quiet;

impl Observer for Quiet {
    fn acked(&self, _: &Outgoing, _: u64) {}
    fn failed(&self, _: &Outgoing, _: &str) {}
    fn missed(&self, _: &Outgoing) {}
    fn delivered(&self, _: &Stamp, _: u64) {}
}

/// A connection's position in the run.
#[derive(Debug, Clone, Copy)]
pub struct Slot {
    /// The session's index (and, for MQTT, its user).
    pub index: usize,
    /// The group it belongs to, for group chat: MQTT subscribes to it at once.
    pub group: Option<usize>,
}

/// A system under load.
#[derive(Debug)]
pub enum System {
    Imbox(imbox::Imbox),
    Mqtt(mqtt::Mqtt),
}

impl System {
    /// `imbox` or `mqtt`.
    pub fn kind(&self) -> &'static str {
        match self {
            System::Imbox(_) => "imbox",
            System::Mqtt(_) => "mqtt",
        }
    }

    /// `wss`, `quic`, `ws`, `mqtts` or `mqtt`.
    pub fn transport(&self) -> &'static str {
        match self {
            System::Imbox(imbox) => imbox.transport(),
            System::Mqtt(mqtt) => mqtt.transport(),
        }
    }

    /// The URL driven, without credentials.
    pub fn url(&self) -> String {
        match self {
            System::Imbox(imbox) => imbox.url(),
            System::Mqtt(mqtt) => mqtt.url(),
        }
    }

    /// How many distinct users the system can put online: imbox has one per
    /// token; MQTT makes them up.
    pub fn users(&self) -> Option<usize> {
        match self {
            System::Imbox(imbox) => Some(imbox.users()),
            System::Mqtt(_) => None,
        }
    }

    /// A live session: logged in and receiving (imbox: synced until live;
    /// MQTT: subscribed).
    pub async fn open(&self, slot: Slot) -> anyhow::Result<Session> {
        match self {
            System::Imbox(imbox) => imbox.open(slot).await.map(Session::Imbox),
            System::Mqtt(mqtt) => mqtt.open(slot).await.map(Session::Mqtt),
        }
    }

    /// A login only, with a full handshake: the storm's unit of work.
    pub async fn log_in(&self, slot: Slot) -> anyhow::Result<Session> {
        match self {
            System::Imbox(imbox) => imbox.log_in(slot).await.map(Session::Imbox),
            System::Mqtt(mqtt) => mqtt.log_in(slot).await.map(Session::Mqtt),
        }
    }

    /// Makes group `group` with the users of `members` (session indices, the
    /// first one creating it) where the system needs that done beforehand;
    /// `sessions` is indexed like the slots.
    pub async fn create_group(
        &self,
        group: usize,
        members: &[usize],
        sessions: &mut [Option<Session>],
    ) -> anyhow::Result<()> {
        match self {
            System::Imbox(imbox) => imbox.create_group(group, members, sessions).await,
            // A topic exists once somebody subscribes to it.
            System::Mqtt(_) => Ok(()),
        }
    }

    /// Lets every connection's close go out before the process ends.
    pub async fn finish(&self) {
        if let System::Imbox(imbox) = self {
            imbox.finish().await;
        }
    }
}

/// One live session.
#[derive(Debug)]
pub enum Session {
    Imbox(imbox::Session),
    Mqtt(mqtt::Session),
}

/// Why a session's task ended.
#[derive(Debug)]
pub enum Ended {
    /// The run asked it to stop.
    Stopped,
    /// The server or the network ended it.
    Lost(String),
}

impl Session {
    /// Sends what arrives in `outbox`, reports acknowledgements and deliveries
    /// to `observer`, keeps the session alive, until `stop` is cancelled or the
    /// connection ends; then closes it politely.
    pub async fn run(
        self,
        outbox: mpsc::Receiver<Outgoing>,
        observer: Arc<dyn Observer>,
        stop: CancellationToken,
    ) -> Ended {
        match self {
            Session::Imbox(session) => session.run(outbox, observer, stop).await,
            Session::Mqtt(session) => session.run(outbox, observer, stop).await,
        }
    }

    /// Closes the session politely.
    pub async fn close(self) {
        match self {
            Session::Imbox(session) => session.close().await,
            Session::Mqtt(session) => session.close().await,
        }
    }
}
