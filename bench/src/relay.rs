//! A UDP relay on loopback between QUIC clients and a server: it counts the
//! datagrams and bytes that pass each way (what a phone's radio would carry)
//! and may hold each datagram for a fixed delay, so that a loopback run shows
//! what a round trip of a mobile network costs.
//!
//! Each client address gets a socket of its own towards the server, so the
//! server sees one peer per client, as without the relay. The relay listens
//! on an address of its own (127.0.0.K): a client that connects to it names
//! a server it has no TLS session ticket for.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// IPv4 and UDP headers: what each datagram adds on the wire beyond its
/// payload.
pub const IPV4_UDP_HEADERS: u64 = 28;

/// Clients one relay serves at most; a run uses one or two.
const MAX_CLIENTS: usize = 16;

/// Datagrams waiting out their delay, per direction of each client; more
/// are dropped, as a router's full queue would.
const DELAY_QUEUE: usize = 4096;

/// The largest datagram relayed (QUIC's are at most 1,500 bytes here).
const MAX_DATAGRAM: usize = 65_535;

/// Datagrams and bytes (UDP payload) relayed in one direction.
#[derive(Debug, Default)]
pub struct Counter {
    datagrams: AtomicU64,
    bytes: AtomicU64,
}

impl Counter {
    fn add(&self, bytes: usize) {
        self.datagrams.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Datagrams and payload bytes so far.
    pub fn read(&self) -> Traffic {
        Traffic {
            datagrams: self.datagrams.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }
}

/// Datagrams and payload bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    pub datagrams: u64,
    pub bytes: u64,
}

impl Traffic {
    /// What passed between `earlier` and `self`.
    pub fn since(self, earlier: Traffic) -> Traffic {
        Traffic {
            datagrams: self.datagrams.saturating_sub(earlier.datagrams),
            bytes: self.bytes.saturating_sub(earlier.bytes),
        }
    }

    /// Bytes with the IPv4 and UDP headers of every datagram.
    pub fn wire_bytes(self) -> u64 {
        self.bytes + self.datagrams * IPV4_UDP_HEADERS
    }
}

/// A running relay; it stops when dropped.
#[derive(Debug)]
pub struct Relay {
    address: SocketAddr,
    /// Client to server.
    pub up: Arc<Counter>,
    /// Server to client.
    pub down: Arc<Counter>,
    tasks: JoinSet<()>,
}

impl Relay {
    /// Listens on `listen` (port 0 for any) and relays to `server`, holding
    /// each datagram for `delay` in each direction (so a round trip gains
    /// twice `delay`).
    pub async fn start(listen: SocketAddr, server: SocketAddr, delay: Duration) -> anyhow::Result<Relay> {
        let socket =
            UdpSocket::bind(listen).await.with_context(|| format!("cannot bind the relay to {listen}"))?;
        let address = socket.local_addr()?;
        let (up, down) = (Arc::new(Counter::default()), Arc::new(Counter::default()));
        let mut tasks = JoinSet::new();
        let front = Arc::new(socket);
        tasks.spawn(serve(front, server, delay, up.clone(), down.clone()));
        Ok(Relay { address, up, down, tasks })
    }

    /// Where clients send.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Both directions: (client to server, server to client).
    pub fn traffic(&self) -> (Traffic, Traffic) {
        (self.up.read(), self.down.read())
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.tasks.abort_all();
    }
}

/// A datagram and when it may leave.
type Delayed = (Instant, Vec<u8>);

/// Sends what `queue` holds from `socket` to `to` once each is due.
async fn deliver(socket: Arc<UdpSocket>, to: SocketAddr, mut queue: mpsc::Receiver<Delayed>) {
    while let Some((due, datagram)) = queue.recv().await {
        tokio::time::sleep_until(due).await;
        if socket.send_to(&datagram, to).await.is_err() {
            return;
        }
    }
}

async fn serve(
    front: Arc<UdpSocket>,
    server: SocketAddr,
    delay: Duration,
    up: Arc<Counter>,
    down: Arc<Counter>,
) {
    let mut clients: HashMap<SocketAddr, mpsc::Sender<Delayed>> = HashMap::new();
    let mut tasks = JoinSet::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let Ok((n, client)) = front.recv_from(&mut buf).await else { return };
        if !clients.contains_key(&client) {
            if clients.len() >= MAX_CLIENTS {
                continue;
            }
            let Ok(back) = UdpSocket::bind(SocketAddr::new(front_ip(&front), 0)).await else { continue };
            let back = Arc::new(back);
            let (to_server, queue) = mpsc::channel(DELAY_QUEUE);
            tasks.spawn(deliver(back.clone(), server, queue));
            let (to_client, queue) = mpsc::channel(DELAY_QUEUE);
            tasks.spawn(deliver(front.clone(), client, queue));
            tasks.spawn(answers(back, to_client, delay, down.clone()));
            clients.insert(client, to_server);
        }
        if let Some(to_server) = clients.get(&client) {
            up.add(n);
            let _ = to_server.try_send((Instant::now() + delay, buf[..n].to_vec()));
        }
    }
}

/// The server's datagrams to one client, queued for their delay.
async fn answers(
    back: Arc<UdpSocket>,
    to_client: mpsc::Sender<Delayed>,
    delay: Duration,
    down: Arc<Counter>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    while let Ok((n, _)) = back.recv_from(&mut buf).await {
        down.add(n);
        let _ = to_client.try_send((Instant::now() + delay, buf[..n].to_vec()));
    }
}

fn front_ip(front: &UdpSocket) -> std::net::IpAddr {
    front.local_addr().map(|a| a.ip()).unwrap_or(std::net::Ipv4Addr::LOCALHOST.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A UDP echo server on loopback; its address.
    async fn echo() -> SocketAddr {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind the echo server");
        let address = socket.local_addr().expect("echo address");
        tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                let _ = socket.send_to(&buf[..n], from).await;
            }
        });
        address
    }

    #[tokio::test]
    async fn every_datagram_is_relayed_and_counted_both_ways() {
        let server = echo().await;
        let relay = Relay::start("127.0.0.1:0".parse().unwrap(), server, Duration::ZERO).await.unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut buf = [0u8; 64];
        for message in [&b"hello"[..], &b"phone"[..], &b"!"[..]] {
            client.send_to(message, relay.address()).await.unwrap();
            let (n, from) = client.recv_from(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], message, "the server's answer comes back unchanged");
            assert_eq!(from, relay.address(), "answers come from the relay, not the server");
        }
        let (up, down) = relay.traffic();
        assert_eq!(up, Traffic { datagrams: 3, bytes: 11 });
        assert_eq!(down, Traffic { datagrams: 3, bytes: 11 });
        assert_eq!(up.wire_bytes(), 11 + 3 * IPV4_UDP_HEADERS);
        assert_eq!(up.since(Traffic { datagrams: 1, bytes: 5 }), Traffic { datagrams: 2, bytes: 6 });
    }
}
