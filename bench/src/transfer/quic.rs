//! Transfers over imboxd's QUIC transfer streams (protocol/src/transfer.rs):
//! a connection, its session stream (hello, resume), then one more
//! bidirectional stream per transfer with a length-prefixed header each way
//! and the bytes between them.
//!
//! quinn does not say which cipher suite a connection negotiated, so the
//! client's suites are wrapped ([`noting`]) to note which one last made
//! packet keys: QUIC's first packets use AES-128-GCM, then the handshake and
//! the data use the negotiated suite, so after the handshake the note names
//! it ([`negotiated`]). Transfers run one at a time, so one note serves.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::{bail, ensure, Context};
use futures_util::{SinkExt, StreamExt};
use imbox_protocol::stream::length_prefixed;
use imbox_protocol::transfer::{TransferRequest, TransferResponse, MAX_TRANSFER_HEADER};
use imbox_protocol::{ClientFrame, Request, Response, ServerFrame, SUPPORTED_VERSIONS};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

use super::https::Done;
use super::{Expect, Payload};
use crate::net::{self, CONNECT_TIMEOUT};

/// The largest session frame read (hello and resume answers are small).
const MAX_SESSION_FRAME: usize = 1024 * 1024;

/// The suite whose QUIC packet keys were made last, in this process.
static LAST_KEYS: Mutex<Option<rustls::CipherSuite>> = Mutex::new(None);

/// The suite the last QUIC handshake negotiated (read once it is done).
pub fn negotiated() -> Option<rustls::CipherSuite> {
    *LAST_KEYS.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A suite's QUIC algorithm that notes its suite in [`LAST_KEYS`] whenever
/// it makes packet keys.
struct Noting {
    inner: &'static dyn rustls::quic::Algorithm,
    suite: rustls::CipherSuite,
}

impl std::fmt::Debug for Noting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Noting").field("suite", &self.suite).finish_non_exhaustive()
    }
}

impl rustls::quic::Algorithm for Noting {
    fn packet_key(
        &self,
        key: rustls::crypto::cipher::AeadKey,
        iv: rustls::crypto::cipher::Iv,
    ) -> Box<dyn rustls::quic::PacketKey> {
        *LAST_KEYS.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(self.suite);
        self.inner.packet_key(key, iv)
    }

    fn header_protection_key(
        &self,
        key: rustls::crypto::cipher::AeadKey,
    ) -> Box<dyn rustls::quic::HeaderProtectionKey> {
        self.inner.header_protection_key(key)
    }

    fn aead_key_len(&self) -> usize {
        self.inner.aead_key_len()
    }

    fn fips(&self) -> bool {
        self.inner.fips()
    }
}

/// `provider` with each TLS 1.3 suite's QUIC algorithm wrapped in
/// [`Noting`]. rustls wants suites that live for the whole program: the few
/// made here (two per cipher offer) are leaked.
pub fn noting(mut provider: rustls::crypto::CryptoProvider) -> rustls::crypto::CryptoProvider {
    for entry in &mut provider.cipher_suites {
        if let rustls::SupportedCipherSuite::Tls13(suite) = *entry {
            let quic = suite.quic.map(|inner| {
                let noting: &'static Noting =
                    Box::leak(Box::new(Noting { inner, suite: suite.common.suite }));
                noting as &'static dyn rustls::quic::Algorithm
            });
            let copy = rustls::Tls13CipherSuite {
                common: rustls::CipherSuiteCommon {
                    suite: suite.common.suite,
                    hash_provider: suite.common.hash_provider,
                    confidentiality_limit: suite.common.confidentiality_limit,
                },
                hkdf_provider: suite.hkdf_provider,
                aead_alg: suite.aead_alg,
                quic,
            };
            *entry = rustls::SupportedCipherSuite::Tls13(Box::leak(Box::new(copy)));
        }
    }
    provider
}

/// imboxd over QUIC, as a device with `token`.
#[derive(Debug)]
pub struct ImboxQuic {
    endpoint: quinn::Endpoint,
    config: quinn::ClientConfig,
    server: SocketAddr,
    host: String,
    token: String,
}

/// A connection with its session resumed; transfers open streams beside it.
struct Connected {
    connection: quinn::Connection,
    /// The suite the handshake negotiated.
    cipher: Option<String>,
    // The session stream stays open while the transfer runs.
    _session: (
        FramedWrite<quinn::SendStream, LengthDelimitedCodec>,
        FramedRead<quinn::RecvStream, LengthDelimitedCodec>,
    ),
}

impl ImboxQuic {
    /// `url` is `quic://HOST:PORT`; `tls` pins the box's key with the QUIC
    /// ALPN (TLS 1.3).
    pub async fn new(url: &str, tls: rustls::ClientConfig, token: String) -> anyhow::Result<ImboxQuic> {
        let parsed = url::Url::parse(url).with_context(|| format!("{url} is not a URL"))?;
        ensure!(parsed.scheme() == "quic", "{url}: expected quic://HOST:PORT");
        let host = parsed.host_str().with_context(|| format!("{url} has no host"))?.to_owned();
        let port = parsed.port().with_context(|| format!("{url} has no port"))?;
        let server = net::resolve(&host, port).await?;
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
            .map_err(|e| anyhow::anyhow!("QUIC TLS settings refused: {e}"))?;
        let mut config = quinn::ClientConfig::new(Arc::new(crypto));
        // quinn's default windows (1.25 MB per stream), which need no tuning
        // on loopback; the box's own windows bound the uploads.
        let mut transport = quinn::TransportConfig::default();
        transport.max_idle_timeout(Some(quinn::VarInt::from_u32(60_000).into()));
        config.transport_config(Arc::new(transport));
        let source = match server {
            SocketAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
        };
        Ok(ImboxQuic { endpoint: net::quic_endpoint(source)?, config, server, host, token })
    }

    /// A new connection (full handshake) and its session, resumed with the
    /// token.
    async fn connect(&self) -> anyhow::Result<Connected> {
        let connection = self
            .endpoint
            .connect_with(self.config.clone(), self.server, &self.host)?
            .await
            .context("the QUIC handshake failed")?;
        let cipher = negotiated().map(|suite| format!("{suite:?}"));
        let (send, recv) = connection.open_bi().await.context("cannot open the session stream")?;
        let codec = || LengthDelimitedCodec::builder().max_frame_length(MAX_SESSION_FRAME).new_codec();
        let mut frames = FramedWrite::new(send, codec());
        let mut answers = FramedRead::new(recv, codec());
        let hello = Request::Hello {
            versions: SUPPORTED_VERSIONS.to_vec(),
            client: concat!("imbox-bench/", env!("CARGO_PKG_VERSION")).to_owned(),
        };
        let resume = Request::Resume { token: self.token.clone() };
        for (id, req) in [(1u32, hello), (2, resume)] {
            let kind = req.kind();
            frames.send(bytes::Bytes::from(ClientFrame { id, req }.encode())).await?;
            let answer = tokio::time::timeout(CONNECT_TIMEOUT, async {
                loop {
                    let bytes = answers.next().await.context("the box closed the session")??;
                    match ServerFrame::decode(&bytes)
                        .map_err(|e| anyhow::anyhow!("undecodable frame: {e}"))?
                    {
                        ServerFrame::Ok { id: answered, body } if answered == id => return Ok(body),
                        ServerFrame::Err { id: answered, error } if answered == id || answered == 0 => {
                            bail!("{kind} failed: {error}")
                        }
                        _ => {}
                    }
                }
            })
            .await
            .with_context(|| format!("no answer to {kind}"))??;
            match (id, answer) {
                (1, Response::Welcome { .. }) | (2, Response::Authenticated { .. }) => {}
                (_, other) => bail!("{kind} was answered with {other:?}"),
            }
        }
        Ok(Connected { connection, cipher, _session: (frames, answers) })
    }

    /// Uploads the file on a transfer stream and checks the attachment id.
    pub async fn upload(&self, payload: &Payload, name: &str) -> anyhow::Result<Done> {
        let connected = self.connect().await?;
        let (mut send, mut recv) =
            connected.connection.open_bi().await.context("cannot open a transfer stream")?;
        let request = TransferRequest::Upload {
            token: self.token.clone(),
            upload: None,
            length: payload.len(),
            name: name.to_owned(),
            media_type: "application/octet-stream".to_owned(),
        };
        send.write_all(&length_prefixed(&request.encode())).await?;
        let offset = match read_header(&mut recv).await? {
            TransferResponse::Ready { offset, .. } => offset,
            other => bail!("the upload was answered with {other:?}"),
        };
        ensure!(offset == 0, "a new upload starts at offset {offset}");
        send.write_chunk(payload.bytes().clone()).await.context("the upload broke off")?;
        send.finish()?;
        match read_header(&mut recv).await? {
            TransferResponse::Stored { attachment, size, .. } => {
                ensure!(size == payload.len(), "the box stored {size} of {} bytes", payload.len());
                ensure!(
                    attachment == payload.sha256(),
                    "the box named the upload {attachment}, its SHA-256 is {}",
                    payload.sha256()
                );
            }
            other => bail!("the finished upload was answered with {other:?}"),
        }
        connected.connection.close(0u32.into(), b"done");
        Ok(Done { cipher: connected.cipher })
    }

    /// Downloads the attachment of `payload` on a transfer stream and checks
    /// every byte.
    pub async fn download(&self, payload: &Payload) -> anyhow::Result<Done> {
        let connected = self.connect().await?;
        let (mut send, mut recv) =
            connected.connection.open_bi().await.context("cannot open a transfer stream")?;
        let request = TransferRequest::Download {
            token: self.token.clone(),
            attachment: payload.sha256().to_owned(),
            offset: 0,
        };
        send.write_all(&length_prefixed(&request.encode())).await?;
        send.finish()?;
        match read_header(&mut recv).await? {
            TransferResponse::Blob { size, offset, .. } => {
                ensure!(size == payload.len(), "the box holds {size} bytes, the file has {}", payload.len());
                ensure!(offset == 0, "the download starts at {offset}, not 0");
            }
            other => bail!("the download was answered with {other:?}"),
        }
        let mut expect = Expect::new(payload.bytes(), 0);
        while let Some(chunk) = recv.read_chunk(usize::MAX, true).await.context("the download broke off")? {
            expect.take(&chunk.bytes)?;
        }
        expect.finish()?;
        connected.connection.close(0u32.into(), b"done");
        Ok(Done { cipher: connected.cipher })
    }

    /// Waits (briefly) for the connections' closes to go out.
    pub async fn finish(&self) {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(3), self.endpoint.wait_idle()).await;
    }
}

/// One length-prefixed transfer header.
async fn read_header(recv: &mut quinn::RecvStream) -> anyhow::Result<TransferResponse> {
    let mut length = [0u8; 4];
    recv.read_exact(&mut length).await.context("the box sent no transfer header")?;
    let length = u32::from_be_bytes(length) as usize;
    ensure!(length <= MAX_TRANSFER_HEADER, "a transfer header of {length} bytes");
    let mut header = vec![0u8; length];
    recv.read_exact(&mut header).await.context("the transfer header broke off")?;
    TransferResponse::decode(&header).map_err(|e| anyhow::anyhow!("undecodable transfer header: {e}"))
}
