//! `phone`: what the client library's QUIC session costs a phone, through a
//! counting UDP relay ([`crate::relay`]) in front of imboxd.
//!
//! - **Resume latency**: the app comes back to the foreground; the time from
//!   the start of the reconnection to the answer of the first `sync` (hello,
//!   resume, sync: the library's own calls), with a 0-RTT session ticket and
//!   with a full handshake, at each simulated round-trip time (the relay holds
//!   every datagram for half of it). A full handshake connects to a relay
//!   address the client never saw, so it has no ticket for it.
//! - **Bytes per idle hour**: a session connected, resumed and synced, then
//!   left alone, once without client keep-alives (the library's phone
//!   setting) and once with them every `keep_alive` (the library's default):
//!   every datagram both ways over `idle` seconds, which must cover the box's
//!   idle timeout (`quic.idle_timeout_ms`, 60 s) and a few keep-alive periods.
//!   The hour is extrapolated from the window at the same rate for a session
//!   still open at its end; a session the box's idle timeout ended carries
//!   nothing more, so its hour is the window's bytes.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use imbox_client::{ConnectOptions, Connection, ServerUrl, ZeroRtt};
use imbox_protocol::{Request, Response};

use crate::cli::PhoneArgs;
use crate::latency::median;
use crate::relay::{Relay, Traffic};
use crate::results::{IdleTraffic, PhoneFigures, ResumeFigures};
use crate::systems::imbox::TokensFile;

use super::{Envelope, Subject};

/// The first relay address; run `i` of a full handshake uses the next ones.
const RELAY_BASE: [u8; 4] = [127, 0, 1, 1];

pub async fn run(args: PhoneArgs) -> anyhow::Result<()> {
    let envelope = Envelope::start(None);
    let url = ServerUrl::parse(&args.url)?;
    let server = crate::net::resolve(url.host(), url.port()).await?;
    let tokens = TokensFile::read(&args.tokens)?;
    let token = tokens.users.first().context("the tokens file has no user")?.token.clone();
    let pin_text = args.pin.clone().unwrap_or_else(|| tokens.pin.clone());
    let pin = pin_text.parse().map_err(|e| anyhow::anyhow!("--pin: {e}"))?;
    let options = |keep_alive: Option<Duration>| ConnectOptions {
        client_name: concat!("imbox-bench-phone/", env!("CARGO_PKG_VERSION")).to_owned(),
        pin: Some(pin),
        quic_keep_alive: keep_alive,
        ..ConnectOptions::default()
    };
    let phone = Phone { server, token, options: options(None) };

    let mut next_relay = 0u32;
    let mut resume = Vec::new();
    for &rtt_ms in &args.rtts_ms {
        let figures = phone.resume_latency(rtt_ms, args.runs, &mut next_relay).await?;
        tracing::info!(
            rtt_ms,
            zero_rtt_ms = ?figures.zero_rtt_ms_median,
            full_handshake_ms = ?figures.full_handshake_ms_median,
            refused = figures.zero_rtt_refused,
            "resume latency"
        );
        resume.push(figures);
    }

    // Both idle sessions at once, each through its own relay.
    let window = Duration::from_secs(args.idle_seconds);
    let without = Phone { options: options(None), ..phone.clone() };
    let with =
        Phone { options: options(Some(Duration::from_secs(args.keep_alive_seconds))), ..phone.clone() };
    let (a, b) = tokio::join!(
        without.idle_traffic(relay_address(next_relay), window, None),
        with.idle_traffic(relay_address(next_relay + 1), window, Some(args.keep_alive_seconds)),
    );
    let idle = vec![a?, b?];
    for session in &idle {
        tracing::info!(
            keep_alive = ?session.keep_alive_seconds,
            wire_bytes = session.wire_bytes,
            per_hour = session.wire_bytes_per_hour,
            open_at_end = session.open_at_end,
            "idle traffic"
        );
    }

    let parameters = serde_json::json!({
        "runs": args.runs,
        "rtts_ms": args.rtts_ms,
        "idle_seconds": args.idle_seconds,
        "keep_alive_seconds": args.keep_alive_seconds,
    });
    let subject = Subject {
        system: "imbox".into(),
        label: args.label.clone().unwrap_or_else(|| "imbox (QUIC)".into()),
        transport: "quic".into(),
        url: Some(args.url.clone()),
    };
    let result = envelope.finish("phone", subject, parameters, PhoneFigures { resume, idle })?;
    result.write(&args.out)
}

fn relay_address(index: u32) -> SocketAddr {
    let base = u32::from(Ipv4Addr::from(RELAY_BASE));
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(base + index)), 0)
}

/// One phone: the library's connection to the box through relays.
#[derive(Debug, Clone)]
struct Phone {
    server: SocketAddr,
    token: String,
    options: ConnectOptions,
}

impl Phone {
    /// The library's reconnection as an app does it on coming back: connect
    /// (hello), resume, sync. Returns the time to the sync's answer and the
    /// connection.
    async fn reconnect(&self, relay: &Relay) -> anyhow::Result<(Duration, Connection)> {
        let url = ServerUrl::parse(&format!("quic://{}", relay.address()))?;
        let start = Instant::now();
        let connection = Connection::connect_with(&url, &self.options).await?;
        let cursor = connection.resume(&self.token).await?.cursor;
        match connection.request(Request::Sync { since: cursor, limit: 50 }).await? {
            Response::Entries { .. } => Ok((start.elapsed(), connection)),
            other => bail!("sync was answered with {other:?}"),
        }
    }

    async fn resume_latency(
        &self,
        rtt_ms: u64,
        runs: usize,
        next_relay: &mut u32,
    ) -> anyhow::Result<ResumeFigures> {
        let delay = Duration::from_millis(rtt_ms) / 2;
        let mut full = Vec::new();
        let mut zero = Vec::new();
        let mut pings = Vec::new();
        let mut refused = 0;
        // The 0-RTT runs share one relay address, whose ticket the first
        // (full) connection leaves in the library's cache.
        let resumed = Relay::start(relay_address(*next_relay), self.server, delay).await?;
        *next_relay += 1;
        let (_, first) = self.reconnect(&resumed).await?;
        first.close().await;
        for _ in 0..runs {
            let fresh = Relay::start(relay_address(*next_relay), self.server, delay).await?;
            *next_relay += 1;
            let (took, connection) = self.reconnect(&fresh).await?;
            full.push(ms(took));
            let ping = Instant::now();
            connection.request(Request::Ping).await?;
            pings.push(ms(ping.elapsed()));
            connection.close().await;

            let (took, connection) = self.reconnect(&resumed).await?;
            match connection.zero_rtt_settled().await {
                ZeroRtt::Accepted => zero.push(ms(took)),
                _ => {
                    refused += 1;
                    full.push(ms(took));
                }
            }
            connection.close().await;
        }
        Ok(ResumeFigures {
            rtt_ms: rtt_ms as f64,
            ping_ms_median: median(&pings),
            zero_rtt_ms_median: median(&zero),
            full_handshake_ms_median: median(&full),
            zero_rtt_ms: zero,
            full_handshake_ms: full,
            zero_rtt_refused: refused,
        })
    }

    async fn idle_traffic(
        &self,
        listen: SocketAddr,
        window: Duration,
        keep_alive_seconds: Option<u64>,
    ) -> anyhow::Result<IdleTraffic> {
        let relay = Relay::start(listen, self.server, Duration::ZERO).await?;
        let (_, connection) = self.reconnect(&relay).await?;
        // The handshake's and the sync's last acknowledgements, and the path
        // MTU probes, are not idle traffic.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let (up0, down0) = relay.traffic();
        let start = Instant::now();
        tokio::time::sleep(window).await;
        let (up1, down1) = relay.traffic();
        let seconds = start.elapsed().as_secs_f64();
        let open_at_end = !connection.is_closed();
        let (up, down): (Traffic, Traffic) = (up1.since(up0), down1.since(down0));
        let wire = up.wire_bytes() + down.wire_bytes();
        let per_hour = if open_at_end { wire as f64 * 3600.0 / seconds } else { wire as f64 };
        connection.close().await;
        Ok(IdleTraffic {
            keep_alive_seconds,
            window_seconds: seconds,
            datagrams_up: up.datagrams,
            datagrams_down: down.datagrams,
            bytes_up: up.bytes,
            bytes_down: down.bytes,
            wire_bytes: wire,
            open_at_end,
            wire_bytes_per_hour: per_hour,
        })
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
