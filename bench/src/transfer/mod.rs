//! Moving one big file to a server and back, the way the attachment
//! scenario measures it: imboxd over HTTPS (tus, then a download by id),
//! imboxd over QUIC (transfer streams), and nginx over HTTPS (a WebDAV `PUT`,
//! then a static `GET` with `sendfile`).
//!
//! Every transfer opens a fresh connection with a full handshake (as a phone
//! that sends a photo now and then does), and checks what it moved: an
//! upload must come back with the content's SHA-256 (imboxd) or a success
//! status (nginx), a download must give every byte of the file in order.
//!
//! - [`https`]: HTTP/1.1 over rustls (hyper's client connection), for
//!   imboxd's tus endpoint and downloads, and for nginx.
//! - [`quic`]: imboxd's QUIC transfer streams (protocol/src/transfer.rs).

pub mod https;
pub mod quic;

use std::sync::Arc;

use bytes::Bytes;
use clap::ValueEnum;
use rustls::crypto::CryptoProvider;
use sha2::{Digest, Sha256};

use crate::schedule::Dice;

/// The cipher suites the client offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CipherOffer {
    /// rustls' own order: AES-256-GCM, AES-128-GCM, then ChaCha20-Poly1305,
    /// as clients with AES instructions (x86 machines, most phones) offer
    /// them. A server that follows the client's order picks AES here.
    AesFirst,
    /// TLS_CHACHA20_POLY1305_SHA256 alone, which forces it on both sides:
    /// what a Raspberry Pi 4 (no AES instructions) should run. Over QUIC,
    /// ChaCha20 first and TLS_AES_128_GCM_SHA256 after it: QUIC protects its
    /// first packets with AES-128-GCM whatever is negotiated (RFC 9001,
    /// 5.2), so a QUIC client must offer it.
    Chacha20,
}

impl CipherOffer {
    /// The name in result files and scenario names.
    pub fn as_str(self) -> &'static str {
        match self {
            CipherOffer::AesFirst => "aes-first",
            CipherOffer::Chacha20 => "chacha20",
        }
    }

    /// ring's provider offering these suites over TLS on TCP, in this order.
    pub fn provider(self) -> Arc<CryptoProvider> {
        let mut provider = rustls::crypto::ring::default_provider();
        if self == CipherOffer::Chacha20 {
            provider
                .cipher_suites
                .retain(|suite| suite.suite() == rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256);
        }
        Arc::new(provider)
    }

    /// The provider for QUIC: as [`CipherOffer::provider`], with
    /// TLS_AES_128_GCM_SHA256 kept (last) for ChaCha20, and every suite
    /// noting when its keys are made ([`quic::negotiated`]).
    pub fn quic_provider(self) -> Arc<CryptoProvider> {
        let mut provider = rustls::crypto::ring::default_provider();
        provider.cipher_suites.retain(|suite| suite.version() == &rustls::version::TLS13);
        if self == CipherOffer::Chacha20 {
            use rustls::CipherSuite as S;
            provider.cipher_suites.retain(|suite| {
                matches!(suite.suite(), S::TLS13_CHACHA20_POLY1305_SHA256 | S::TLS13_AES_128_GCM_SHA256)
            });
            provider.cipher_suites.sort_by_key(|suite| suite.suite() != S::TLS13_CHACHA20_POLY1305_SHA256);
        }
        Arc::new(quic::noting(provider))
    }

    /// The TLS 1.3 suites offered, in order, as rustls names them.
    pub fn offered(provider: &CryptoProvider) -> Vec<String> {
        provider
            .cipher_suites
            .iter()
            .filter(|suite| suite.version() == &rustls::version::TLS13)
            .map(|suite| format!("{:?}", suite.suite()))
            .collect()
    }
}

/// The file moved: random bytes, made once, with the first 16 bytes changed
/// for every upload ([`Payload::stamp`]), because imboxd stores each content
/// once and an upload of bytes it holds already would measure that instead.
#[derive(Debug, Clone)]
pub struct Payload {
    bytes: Bytes,
    sha256: String,
}

impl Payload {
    /// `size` bytes from a seeded generator.
    pub fn new(size: usize, seed: u64) -> Payload {
        let mut dice = Dice::new(seed);
        let mut bytes = vec![0u8; size];
        for chunk in bytes.chunks_mut(8) {
            let word = dice.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        let sha256 = hex_sha256(&bytes);
        Payload { bytes: Bytes::from(bytes), sha256 }
    }

    /// The same bytes with `stamp` written over the first 16 (or fewer): a
    /// new content, and its SHA-256.
    pub fn stamp(&self, stamp: u128) -> Payload {
        let mut bytes = self.bytes.to_vec();
        let n = bytes.len().min(16);
        bytes[..n].copy_from_slice(&stamp.to_le_bytes()[..n]);
        let sha256 = hex_sha256(&bytes);
        Payload { bytes: Bytes::from(bytes), sha256 }
    }

    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    pub fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// The attachment id imboxd must answer: the SHA-256 in lowercase hex.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares downloaded bytes, as they arrive, with the file.
#[derive(Debug)]
pub struct Expect<'a> {
    file: &'a [u8],
    received: usize,
}

impl<'a> Expect<'a> {
    /// Expects `file` from `offset` on.
    pub fn new(file: &'a [u8], offset: usize) -> Expect<'a> {
        Expect { file, received: offset.min(file.len()) }
    }

    /// The next bytes of the download.
    pub fn take(&mut self, chunk: &[u8]) -> anyhow::Result<()> {
        let end = self.received + chunk.len();
        anyhow::ensure!(end <= self.file.len(), "the download is longer than the file ({end} bytes)");
        anyhow::ensure!(
            &self.file[self.received..end] == chunk,
            "the download differs from the file between bytes {} and {end}",
            self.received
        );
        self.received = end;
        Ok(())
    }

    /// Fails unless the whole file came.
    pub fn finish(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.received == self.file.len(),
            "the download ended after {} of {} bytes",
            self.received,
            self.file.len()
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real imboxd in this process, a device token for it, and the
    /// transfer clients of both transports offering `offer`.
    async fn box_and_clients(
        offer: CipherOffer,
    ) -> (imbox_tests::Server, https::ImboxHttps, quic::ImboxQuic) {
        let server = imbox_tests::Server::start().await;
        server.add_users(&["uma"]).await;
        let url = imbox_client::ServerUrl::parse(&server.client_url()).expect("URL");
        let connection =
            imbox_client::Connection::connect_with(&url, &server.options()).await.expect("connect");
        let auth = connection.login("uma", imbox_tests::PASSWORD, "bench test").await.expect("login");
        let token = auth.token.expect("a token");
        connection.close().await;
        let https_url = server.wss.as_deref().expect("an HTTPS listener").replace("wss://", "https://");
        let quic_url = format!("quic://{}", server.quic.expect("a QUIC listener"));
        let tls = crate::net::pinned_tls_with(offer.provider(), server.fingerprint, b"http/1.1", false)
            .expect("TLS settings");
        let quic_tls = crate::net::pinned_tls_with(
            offer.quic_provider(),
            server.fingerprint,
            imbox_protocol::QUIC_ALPN,
            true,
        )
        .expect("QUIC TLS settings");
        let https = https::ImboxHttps {
            server: https::HttpsServer::new(&https_url, tls).await.expect("HTTPS server"),
            token: token.clone(),
        };
        let quic = quic::ImboxQuic::new(&quic_url, quic_tls, token).await.expect("QUIC client");
        (server, https, quic)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn files_go_up_and_come_back_over_both_transports_with_chacha20() {
        for offer in [CipherOffer::AesFirst, CipherOffer::Chacha20] {
            let (_server, https, quic) = box_and_clients(offer).await;
            let file = Payload::new(3 << 20, 11);
            let (over_https, over_quic) = (file.stamp(1), file.stamp(2));
            // imboxd picks ChaCha20 by its own order, whatever the client
            // put first, on both transports.
            let chacha = Some("TLS13_CHACHA20_POLY1305_SHA256".to_owned());
            assert_eq!(https.upload(&over_https, "a.bin").await.expect("tus upload").cipher, chacha);
            assert_eq!(https.download(&over_https).await.expect("HTTPS download").cipher, chacha);
            assert_eq!(quic.upload(&over_quic, "b.bin").await.expect("QUIC upload").cipher, chacha);
            assert_eq!(quic.download(&over_quic).await.expect("QUIC download").cipher, chacha);
            // Across transports: what went up over QUIC comes down over HTTPS.
            https.download(&over_quic).await.expect("the QUIC upload over HTTPS");
            // A content never uploaded is refused on both.
            let never = file.stamp(3);
            assert!(https.download(&never).await.is_err(), "{offer:?}");
            assert!(quic.download(&never).await.is_err(), "{offer:?}");
            quic.finish().await;
        }
    }

    #[test]
    fn stamps_make_new_contents_of_the_same_size() {
        let payload = Payload::new(1000, 7);
        let a = payload.stamp(1);
        let b = payload.stamp(2);
        assert_eq!(a.len(), 1000);
        assert_ne!(a.sha256(), b.sha256());
        assert_eq!(a.bytes()[16..], payload.bytes()[16..]);
        assert_eq!(a.sha256().len(), 64);
        assert_eq!(Payload::new(5, 1).stamp(9).len(), 5);
    }

    #[test]
    fn expect_catches_a_wrong_byte_and_a_short_download() {
        let file = b"hello world";
        let mut ok = Expect::new(file, 0);
        ok.take(b"hello").expect("first part");
        ok.take(b" world").expect("second part");
        ok.finish().expect("complete");
        let mut wrong = Expect::new(file, 0);
        assert!(wrong.take(b"hellO").is_err());
        let mut short = Expect::new(file, 6);
        short.take(b"wor").expect("part");
        assert!(short.finish().is_err());
        assert!(Expect::new(file, 0).take(b"hello world!").is_err());
    }

    #[test]
    fn chacha20_alone_is_offered_alone_except_over_quic() {
        let offered = |provider: Arc<CryptoProvider>| CipherOffer::offered(&provider);
        assert_eq!(
            offered(CipherOffer::Chacha20.provider()),
            vec!["TLS13_CHACHA20_POLY1305_SHA256".to_owned()]
        );
        assert_eq!(
            offered(CipherOffer::Chacha20.quic_provider()),
            vec!["TLS13_CHACHA20_POLY1305_SHA256".to_owned(), "TLS13_AES_128_GCM_SHA256".to_owned()]
        );
        let aes = offered(CipherOffer::AesFirst.provider());
        assert_eq!(aes.first().map(String::as_str), Some("TLS13_AES_256_GCM_SHA384"));
        assert!(aes.contains(&"TLS13_CHACHA20_POLY1305_SHA256".to_owned()));
        assert_eq!(offered(CipherOffer::AesFirst.quic_provider()), aes);
    }
}
