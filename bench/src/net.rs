//! Sockets and TLS shared by every system, so that imboxd and the MQTT brokers
//! are reached the same way: from the same loopback source addresses, with
//! the same TLS library, cipher preference and (absent) session resumption.
//!
//! Source addresses: a TCP connection or UDP socket bound to one local
//! address takes one of its ~28,000 ephemeral ports, so one address caps a
//! run near 28k connections to one server port. Every 127.0.0.0/8 address is
//! local on Linux, so connections are spread over 127.0.0.2, 127.0.0.3, …
//!
//! Resumption is off: every connection pays a full handshake, as a phone
//! that was offline for a while does, and no system gets cheaper handshakes
//! than another because of a ticket cache in this process.

use imbox_client::tls::{key_fingerprint, PinnedKey};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use imbox_protocol::Fingerprint;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpSocket, TcpStream};

/// Connections per source address that stay clear of the ephemeral port range
/// (32768–60999 by default).
pub const CONNECTIONS_PER_SOURCE: usize = 25_000;

/// How long opening a connection (TCP, TLS, first answer) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// A byte stream: TCP, or TLS over TCP.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// The local addresses connections are opened from.
#[derive(Debug, Clone)]
pub struct Sources(Vec<IpAddr>);

impl Sources {
    /// `count` addresses from 127.0.0.2 when the server is on IPv4 loopback;
    /// otherwise the system picks (binding a 127/8 address cannot reach it).
    pub fn new(count: usize, server: SocketAddr) -> Sources {
        match server.ip() {
            IpAddr::V4(ip) if ip.is_loopback() => {
                let first = u32::from(Ipv4Addr::new(127, 0, 0, 2));
                Sources((0..count.max(1) as u32).map(|i| IpAddr::V4(Ipv4Addr::from(first + i))).collect())
            }
            IpAddr::V4(_) => Sources(vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED)]),
            IpAddr::V6(_) => Sources(vec![IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)]),
        }
    }

    /// Enough addresses for `connections`, unless `requested` says otherwise.
    pub fn for_connections(requested: Option<u32>, connections: usize, server: SocketAddr) -> Sources {
        let count = match requested {
            Some(n) => n as usize,
            None => connections.div_ceil(CONNECTIONS_PER_SOURCE),
        };
        Sources::new(count, server)
    }

    /// The address of connection `index`: round robin.
    pub fn pick(&self, index: usize) -> IpAddr {
        self.0[index % self.0.len()]
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn all(&self) -> &[IpAddr] {
        &self.0
    }
}

/// The first address `host:port` resolves to, IPv4 preferred.
pub async fn resolve(host: &str, port: u16) -> anyhow::Result<SocketAddr> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .with_context(|| format!("cannot resolve {host}"))?
        .collect();
    addrs
        .iter()
        .find(|addr| addr.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .with_context(|| format!("{host} has no address"))
}

/// A TCP connection to `server` from `source`, Nagle off (chat frames are
/// small and latency is what is measured).
pub async fn tcp_connect(source: IpAddr, server: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = if server.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    if !source.is_unspecified() {
        socket.bind(SocketAddr::new(source, 0))?;
    }
    let stream = socket.connect(server).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// rustls with ring, ChaCha20-Poly1305 first: what imbox clients prefer (a
/// Raspberry Pi has no AES instructions), and the same for every system.
pub fn provider() -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites.sort_by_key(|suite| {
        !matches!(
            suite.suite(),
            rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
                | rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
                | rustls::CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        )
    });
    Arc::new(provider)
}

/// A client configuration that trusts the box with key `pin` (as imbox
/// clients do: no CA, the key's fingerprint from the pairing code).
pub fn pinned_tls(pin: Fingerprint, alpn: &[u8], tls13_only: bool) -> anyhow::Result<rustls::ClientConfig> {
    pinned_tls_with(provider(), pin, alpn, tls13_only)
}

/// [`pinned_tls`] offering the cipher suites of `provider`, in its order.
pub fn pinned_tls_with(
    provider: Arc<CryptoProvider>,
    pin: Fingerprint,
    alpn: &[u8],
    tls13_only: bool,
) -> anyhow::Result<rustls::ClientConfig> {
    let verifier = Arc::new(PinnedKey::new(pin, provider.signature_verification_algorithms));
    let builder = rustls::ClientConfig::builder_with_provider(provider);
    let builder = if tls13_only {
        builder.with_protocol_versions(&[&rustls::version::TLS13])?
    } else {
        builder.with_safe_default_protocol_versions()?
    };
    let mut config = builder.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth();
    // Over HTTPS, imbox's pinned clients offer the marker that gets them the
    // box key's certificate even where browsers are shown the owner's.
    config.alpn_protocols = if alpn == b"http/1.1" {
        vec![imbox_protocol::PINNED_ALPN.to_vec(), alpn.to_vec()]
    } else {
        vec![alpn.to_vec()]
    };
    config.resumption = Resumption::disabled();
    Ok(config)
}

/// A client configuration that trusts the certificates in a PEM file: as a
/// CA, or (for a self-signed server certificate) as the very certificate.
pub fn ca_file_tls(path: &Path) -> anyhow::Result<rustls::ClientConfig> {
    ca_file_tls_with(provider(), path)
}

/// [`ca_file_tls`] offering the cipher suites of `provider`, in its order.
pub fn ca_file_tls_with(provider: Arc<CryptoProvider>, path: &Path) -> anyhow::Result<rustls::ClientConfig> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("{} holds a malformed certificate", path.display()))?;
    anyhow::ensure!(!certs.is_empty(), "{} holds no certificate", path.display());
    let mut roots = rustls::RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certs.iter().cloned());
    let webpki = if added > 0 {
        Some(WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider)).build()?)
    } else {
        None
    };
    let keys = certs.iter().filter_map(|cert| key_fingerprint(cert).ok()).collect();
    let verifier =
        Arc::new(TrustedFile { webpki, keys, algorithms: provider.signature_verification_algorithms });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.resumption = Resumption::disabled();
    Ok(config)
}

/// Trusts a broker's certificate file: a chain to a CA in it, or a server
/// certificate whose key is in it (a self-signed one used as its own CA,
/// which webpki refuses when it is marked as a CA).
#[derive(Debug)]
struct TrustedFile {
    webpki: Option<Arc<WebPkiServerVerifier>>,
    keys: Vec<Fingerprint>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for TrustedFile {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if key_fingerprint(end_entity).is_ok_and(|seen| self.keys.contains(&seen)) {
            return Ok(ServerCertVerified::assertion());
        }
        match &self.webpki {
            Some(webpki) => {
                webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            None => Err(rustls::Error::General("the server's certificate is not in the --ca file".into())),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// TLS over a TCP connection, within [`CONNECT_TIMEOUT`].
pub async fn tls_connect(
    config: &Arc<rustls::ClientConfig>,
    host: &str,
    tcp: TcpStream,
) -> anyhow::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let name =
        ServerName::try_from(host.to_owned()).with_context(|| format!("{host} is not a valid TLS name"))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::clone(config));
    Ok(connector.connect(name, tcp).await?)
}

/// QUIC endpoints, a few per source address. A UDP socket per connection (as
/// a phone has) would cost a quinn endpoint each, with receive buffers of its
/// own, which 100,000 connections in one process cannot afford; a single
/// endpoint per address would funnel every packet through one task. A few per
/// address spread the work over the cores and keep memory small.
#[derive(Debug)]
pub struct QuicEndpoints {
    per_source: Vec<Vec<quinn::Endpoint>>,
}

impl QuicEndpoints {
    const PER_SOURCE: usize = 8;

    pub fn open(sources: &Sources) -> anyhow::Result<QuicEndpoints> {
        let mut per_source = Vec::with_capacity(sources.len());
        for &ip in sources.all() {
            let mut endpoints = Vec::with_capacity(Self::PER_SOURCE);
            for _ in 0..Self::PER_SOURCE {
                let socket = udp_socket(SocketAddr::new(ip, 0))
                    .with_context(|| format!("cannot open a UDP socket on {ip}"))?;
                let runtime = quinn::default_runtime().context("no async runtime for QUIC")?;
                let endpoint = quinn::Endpoint::new(quinn::EndpointConfig::default(), None, socket, runtime)?;
                endpoints.push(endpoint);
            }
            per_source.push(endpoints);
        }
        Ok(QuicEndpoints { per_source })
    }

    /// The endpoint for connection `index` (whose source is `index % sources`).
    pub fn pick(&self, index: usize) -> &quinn::Endpoint {
        let sources = self.per_source.len().max(1);
        let endpoints = &self.per_source[index % sources];
        &endpoints[(index / sources) % endpoints.len()]
    }

    /// Waits (briefly) until every connection's close has been sent.
    pub async fn wait_idle(&self) {
        let all = self.per_source.iter().flatten().map(|endpoint| endpoint.wait_idle());
        let _ = tokio::time::timeout(Duration::from_secs(3), futures_util::future::join_all(all)).await;
    }
}

/// Socket buffers of the QUIC endpoints. Hundreds of connections share
/// one endpoint and a storm's handshakes arrive at once; the default
/// (about 200 KiB) overflows and every lost handshake packet costs a second
/// of retransmission timeout, which would be charged to the server.
const UDP_BUFFER: usize = 8 * 1024 * 1024;

/// One QUIC client endpoint on `source` with the buffers of
/// [`QuicEndpoints`]: for a few connections that carry bulk data.
pub fn quic_endpoint(source: IpAddr) -> anyhow::Result<quinn::Endpoint> {
    let socket = udp_socket(SocketAddr::new(source, 0))
        .with_context(|| format!("cannot open a UDP socket on {source}"))?;
    let runtime = quinn::default_runtime().context("no async runtime for QUIC")?;
    Ok(quinn::Endpoint::new(quinn::EndpointConfig::default(), None, socket, runtime)?)
}

/// A UDP socket bound to `addr` with [`UDP_BUFFER`] (as far as
/// net.core.rmem_max and wmem_max allow).
fn udp_socket(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::DGRAM, None)?;
    // Smaller buffers only cost retransmissions: not worth failing over.
    let _ = socket.set_recv_buffer_size(UDP_BUFFER);
    let _ = socket.set_send_buffer_size(UDP_BUFFER);
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_start_at_127_0_0_2_and_cover_the_connections() {
        let server: SocketAddr = "127.0.0.1:8443".parse().expect("addr");
        let sources = Sources::for_connections(None, 100_000, server);
        assert_eq!(sources.len(), 4);
        assert_eq!(sources.pick(0), IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
        assert_eq!(sources.pick(3), IpAddr::V4(Ipv4Addr::new(127, 0, 0, 5)));
        assert_eq!(sources.pick(4), IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
        assert_eq!(Sources::for_connections(None, 10, server).len(), 1);
        assert_eq!(
            Sources::for_connections(Some(300), 10, server).pick(299),
            IpAddr::V4(Ipv4Addr::new(127, 0, 1, 45))
        );
        let remote: SocketAddr = "192.0.2.1:1".parse().expect("addr");
        assert!(Sources::new(3, remote).pick(2).is_unspecified());
    }
}
