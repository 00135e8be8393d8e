//! An MQTT 3.1.1 broker over TLS (`mqtts://`, or `mqtt://` without), with
//! rumqttc's packet codec.
//!
//! Each session connects with a clean session and QoS 1: the broker answers
//! a PUBLISH with a PUBACK once it has taken the message (whether it has
//! written it anywhere depends on the broker; imboxd's answer means fsync'd),
//! and pushes each message to every subscriber, which acknowledges it with a
//! PUBACK of its own.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{FutureExt, SinkExt, StreamExt};
use rumqttc::mqttbytes::v4::{
    Codec, ConnAck, Connect, Packet, PubAck, Publish, Subscribe, SubscribeReasonCode,
};
use rumqttc::mqttbytes::QoS;
use tokio::sync::mpsc;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

use super::{burst, Dest, Ended, Observer, Outgoing, Slot, MAX_IN_FLIGHT};
use crate::clock;
use crate::net::{self, Sources, CONNECT_TIMEOUT};
use crate::payload::Stamp;

/// The keep-alive announced in CONNECT; the session pings at half of it.
const KEEP_ALIVE: Duration = Duration::from_secs(60);

/// The largest packet either side may send.
const MAX_PACKET: usize = 1024 * 1024;

/// The topic of user `index`'s inbox.
fn user_topic(index: usize) -> String {
    format!("u/{index}")
}

/// The topic of group `index`.
fn group_topic(index: usize) -> String {
    format!("g/{index}")
}

/// A broker at one URL.
#[derive(Debug)]
pub struct Mqtt {
    url: String,
    host: String,
    server: SocketAddr,
    sources: Sources,
    tls: Option<Arc<rustls::ClientConfig>>,
    login: Option<(String, String)>,
    run: u32,
}

impl Mqtt {
    /// Prepares to drive the broker at `url` (`mqtts://HOST:PORT` or
    /// `mqtt://HOST:PORT`), trusting the certificates in `ca`.
    pub async fn new(
        url: &str,
        ca: Option<&Path>,
        login: Option<(String, String)>,
        sources: Option<u32>,
        connections: usize,
    ) -> anyhow::Result<Mqtt> {
        let (scheme, rest) = url.split_once("://").context("the URL has no scheme (mqtts://HOST:PORT)")?;
        let tls = match scheme {
            "mqtts" | "ssl" | "tls" => true,
            "mqtt" | "tcp" => false,
            other => bail!("{other}:// is not an MQTT URL: use mqtts://HOST:PORT"),
        };
        let authority = rest.trim_end_matches('/');
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) => (host, port.parse::<u16>().with_context(|| format!("bad port in {url}"))?),
            None => (authority, if tls { 8883 } else { 1883 }),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        let server = net::resolve(&host, port).await?;
        let tls = if tls {
            let ca = ca.context("--ca (the broker's certificate or its CA, PEM) is required for mqtts://")?;
            Some(Arc::new(net::ca_file_tls(ca)?))
        } else {
            None
        };
        Ok(Mqtt {
            url: format!("{scheme}://{authority}"),
            host,
            server,
            sources: Sources::for_connections(sources, connections, server),
            tls,
            login,
            run: clock::run_id(),
        })
    }

    pub fn transport(&self) -> &'static str {
        if self.tls.is_some() {
            "mqtts"
        } else {
            "mqtt"
        }
    }

    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// TCP, TLS, CONNECT and CONNACK.
    async fn connect(&self, slot: Slot) -> anyhow::Result<Session> {
        let source = self.sources.pick(slot.index);
        let attempt = async {
            let tcp = net::tcp_connect(source, self.server)
                .await
                .with_context(|| format!("cannot connect from {source} to {}", self.server))?;
            let stream: Box<dyn net::Stream> = match &self.tls {
                Some(tls) => Box::new(net::tls_connect(tls, &self.host, tcp).await?),
                None => Box::new(tcp),
            };
            let codec = Codec { max_incoming_size: MAX_PACKET, max_outgoing_size: MAX_PACKET };
            let (sink, source) = Framed::new(stream, codec).split();
            let mut session = Session { sink, source, index: slot.index, next_pkid: 0, run: self.run };
            // Client ids are unique per run: a broker disconnects the older of
            // two connections with the same id.
            let mut connect = Connect::new(format!("ib-{:08x}-{}", self.run, slot.index));
            connect.keep_alive = KEEP_ALIVE.as_secs() as u16;
            connect.clean_session = true;
            if let Some((user, password)) = &self.login {
                connect.set_login(user.clone(), password.clone());
            }
            session.sink.send(Packet::Connect(connect)).await.context("cannot send CONNECT")?;
            match session.expect().await? {
                Packet::ConnAck(ConnAck {
                    code: rumqttc::mqttbytes::v4::ConnectReturnCode::Success, ..
                }) => Ok(session),
                Packet::ConnAck(ConnAck { code, .. }) => bail!("the broker refused the connection: {code:?}"),
                other => bail!("CONNECT was answered with {other:?}"),
            }
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
            Ok(result) => result,
            Err(_) => bail!("no CONNACK within {}s", CONNECT_TIMEOUT.as_secs()),
        }
    }

    /// Connected and subscribed to the user's topic (and the group's).
    pub async fn open(&self, slot: Slot) -> anyhow::Result<Session> {
        let mut session = self.connect(slot).await?;
        let mut subscribe = Subscribe::new(user_topic(slot.index), QoS::AtLeastOnce);
        if let Some(group) = slot.group {
            subscribe.add(group_topic(group), QoS::AtLeastOnce);
        }
        let topics = subscribe.filters.len();
        subscribe.pkid = session.allocate_pkid::<()>(&HashMap::new());
        let subscribed = async {
            session.sink.send(Packet::Subscribe(subscribe)).await.context("cannot send SUBSCRIBE")?;
            match session.expect().await? {
                Packet::SubAck(ack) if ack.return_codes.len() == topics => {
                    if ack
                        .return_codes
                        .iter()
                        .any(|code| *code != SubscribeReasonCode::Success(QoS::AtLeastOnce))
                    {
                        bail!("the broker granted {:?} instead of QoS 1", ack.return_codes);
                    }
                    Ok(())
                }
                other => bail!("SUBSCRIBE was answered with {other:?}"),
            }
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, subscribed).await {
            Ok(result) => result.map(|()| session),
            Err(_) => bail!("no SUBACK within {}s", CONNECT_TIMEOUT.as_secs()),
        }
    }

    /// CONNECT with user name and password only.
    pub async fn log_in(&self, slot: Slot) -> anyhow::Result<Session> {
        self.connect(slot).await
    }
}

type Frames = Framed<Box<dyn net::Stream>, Codec>;

/// One connected MQTT session.
pub struct Session {
    sink: SplitSink<Frames, Packet>,
    source: SplitStream<Frames>,
    /// The session's index: its own messages to a group come back to it and
    /// are no delivery.
    index: usize,
    next_pkid: u16,
    run: u32,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("mqtt::Session").field("index", &self.index).finish_non_exhaustive()
    }
}

impl Session {
    /// The next packet, before the session runs.
    async fn expect(&mut self) -> anyhow::Result<Packet> {
        match self.source.next().await {
            None => bail!("the broker closed the connection"),
            Some(Err(e)) => bail!("unreadable packet from the broker: {e}"),
            Some(Ok(packet)) => Ok(packet),
        }
    }

    /// A packet id (1..=65535) not in use by an unacknowledged publish.
    fn allocate_pkid<T>(&mut self, in_use: &HashMap<u16, T>) -> u16 {
        loop {
            self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
            if !in_use.contains_key(&self.next_pkid) {
                return self.next_pkid;
            }
        }
    }

    pub async fn run(
        mut self,
        mut outbox: mpsc::Receiver<Outgoing>,
        observer: Arc<dyn Observer>,
        stop: CancellationToken,
    ) -> Ended {
        let mut pending: HashMap<u16, Outgoing> = HashMap::with_capacity(MAX_IN_FLIGHT);
        let ping_every = KEEP_ALIVE / 2;
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
        let ended = loop {
            tokio::select! {
                biased;
                () = stop.cancelled() => break Ended::Stopped,
                packet = self.source.next() => {
                    if let Err(reason) = self.read_burst(packet, &mut pending, observer.as_ref()).await {
                        break Ended::Lost(reason);
                    }
                }
                next = outbox.recv() => {
                    let Some(message) = next else { break Ended::Stopped };
                    if let Err(reason) = self.write_burst(message, &mut outbox, &mut pending, observer.as_ref()).await {
                        break Ended::Lost(reason);
                    }
                }
                _ = ping.tick() => {
                    if let Err(e) = self.sink.send(Packet::PingReq).await {
                        break Ended::Lost(e.to_string());
                    }
                }
            }
        };
        if matches!(ended, Ended::Stopped) {
            self.close().await;
        }
        ended
    }

    /// Writes `first` and whatever else is already queued, then flushes once.
    async fn write_burst(
        &mut self,
        first: Outgoing,
        outbox: &mut mpsc::Receiver<Outgoing>,
        pending: &mut HashMap<u16, Outgoing>,
        observer: &dyn Observer,
    ) -> Result<(), String> {
        for message in burst(first, outbox) {
            if pending.len() >= MAX_IN_FLIGHT {
                observer.missed(&message);
                continue;
            }
            let topic = match message.dest {
                Dest::User(index) => user_topic(index),
                Dest::Group(index) => group_topic(index),
            };
            let mut publish = Publish::new(topic, QoS::AtLeastOnce, message.stamp.encode().into_bytes());
            publish.pkid = self.allocate_pkid(pending);
            let pkid = publish.pkid;
            self.sink.feed(Packet::Publish(publish)).await.map_err(|e| e.to_string())?;
            pending.insert(pkid, message);
        }
        self.sink.flush().await.map_err(|e| e.to_string())
    }

    /// Handles `first` and every packet already received, then flushes the
    /// PUBACKs they called for in one write.
    async fn read_burst(
        &mut self,
        first: Option<Result<Packet, rumqttc::mqttbytes::Error>>,
        pending: &mut HashMap<u16, Outgoing>,
        observer: &dyn Observer,
    ) -> Result<(), String> {
        let mut next = Some(first);
        while let Some(packet) = next {
            match packet {
                None => return Err("the broker closed the connection".to_owned()),
                Some(Err(e)) => return Err(format!("unreadable packet from the broker: {e}")),
                Some(Ok(packet)) => self.on_packet(packet, pending, observer).await?,
            }
            // Polling once and dropping the future loses nothing: a partial
            // packet stays in the codec's buffer.
            next = self.source.next().now_or_never();
        }
        self.sink.flush().await.map_err(|e| e.to_string())
    }

    async fn on_packet(
        &mut self,
        packet: Packet,
        pending: &mut HashMap<u16, Outgoing>,
        observer: &dyn Observer,
    ) -> Result<(), String> {
        match packet {
            Packet::PubAck(ack) => {
                if let Some(message) = pending.remove(&ack.pkid) {
                    observer.acked(&message, clock::now_us());
                }
            }
            Packet::Publish(publish) => {
                let now = clock::now_us();
                if publish.qos == QoS::AtLeastOnce {
                    let ack = Packet::PubAck(PubAck::new(publish.pkid));
                    self.sink.feed(ack).await.map_err(|e| e.to_string())?;
                }
                let stamp = std::str::from_utf8(&publish.payload).ok().and_then(Stamp::decode);
                if let Some(stamp) = stamp.filter(|s| s.run == self.run && s.sender as usize != self.index) {
                    observer.delivered(&stamp, now);
                }
            }
            Packet::Disconnect => return Err("the broker disconnected the session".to_owned()),
            // PINGRESP, and anything a QoS 1 session does not expect.
            _ => {}
        }
        Ok(())
    }

    /// DISCONNECT, then the end of the connection.
    pub async fn close(mut self) {
        let goodbye = async {
            let _ = self.sink.send(Packet::Disconnect).await;
            let _ = self.sink.close().await;
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), goodbye).await;
    }
}
