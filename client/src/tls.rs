//! TLS for the `wss` and `quic` transports: the box is authenticated by its
//! pinned key, not by a certificate authority.
//!
//! A box's certificate is self-signed and its names match nothing in
//! particular (the box is reached by whatever address the network gives it),
//! so [`PinnedKey`] ignores names, issuers and validity dates (the box may
//! have no clock) and checks one thing in the certificate: that the SHA-256 of
//! its SubjectPublicKeyInfo is the fingerprint the device paired with. The
//! handshake signature is still verified with that key, so a copy of the
//! box's certificate is worthless without its private key.
//!
//! rustls reports a verifier's refusal as an error string by the time it has
//! come through quinn, so the verifier also remembers the key it refused
//! ([`PinnedKey::take_refused`]) and the transports turn that into
//! [`ClientError::KeyMismatch`].
//!
//! The rustls configurations are kept per pin for the life of the process
//! ([`pinned_tls`]): their session caches hold the tickets that let the next
//! connection to the same box resume (and, over QUIC, send its first requests
//! as 0-RTT early data). rustls only resumes a session with the verifier that
//! checked it, so sharing the verifier is what makes resumption possible, and
//! a resumed session skips the certificate because the ticket's secret can only
//! have come from the box that passed this verifier.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use imbox_protocol::{Fingerprint, PINNED_ALPN, QUIC_ALPN};
use quinn::crypto::rustls::QuicClientConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};

use crate::error::ClientError;

/// A verifier that accepts exactly one key, whatever certificate carries it.
/// The handshake signature is still checked, so the certificate alone proves
/// nothing. Public so that other tools (the load generator) pin the same way.
#[derive(Debug)]
pub struct PinnedKey {
    pin: Fingerprint,
    algorithms: WebPkiSupportedAlgorithms,
    /// The last key refused, with the server name the connection used, so
    /// that the failed connection can report which key it saw. Keyed by
    /// name because the verifier is shared by every connection to this pin.
    refused: Mutex<Option<(String, Fingerprint)>>,
}

/// The error a [`PinnedKey`] hands rustls; a tokio-rustls handshake gives it
/// back inside its `io::Error`.
#[derive(Debug, thiserror::Error)]
#[error("the box's key is {seen}, not the pinned {expected}")]
pub(crate) struct WrongKey {
    pub(crate) expected: Fingerprint,
    pub(crate) seen: Fingerprint,
}

impl PinnedKey {
    /// A verifier for `pin`, checking signatures with `algorithms`.
    pub fn new(pin: Fingerprint, algorithms: WebPkiSupportedAlgorithms) -> PinnedKey {
        PinnedKey { pin, algorithms, refused: Mutex::new(None) }
    }

    /// The key this verifier accepts.
    pub(crate) fn pin(&self) -> Fingerprint {
        self.pin
    }

    /// The key refused on the last connection to `server_name`, forgetting
    /// it. Call after a handshake failed.
    pub(crate) fn take_refused(&self, server_name: &str) -> Option<Fingerprint> {
        let mut refused = self.refused.lock().unwrap_or_else(PoisonError::into_inner);
        match refused.take() {
            Some((name, seen)) if name == server_name => Some(seen),
            other => {
                // Another connection's refusal: leave it for that one.
                *refused = other;
                None
            }
        }
    }
}

/// The fingerprint of the key in a DER certificate.
pub fn key_fingerprint(cert: &CertificateDer<'_>) -> Result<Fingerprint, rustls::Error> {
    let parsed = rustls::server::ParsedCertificate::try_from(cert)?;
    Ok(Fingerprint::of_spki(parsed.subject_public_key_info().as_ref()))
}

impl ServerCertVerifier for PinnedKey {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let seen = key_fingerprint(end_entity)?;
        if seen == self.pin {
            return Ok(ServerCertVerified::assertion());
        }
        *self.refused.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((server_name.to_str().into_owned(), seen));
        Err(rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(WrongKey {
            expected: self.pin,
            seen,
        })))))
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

/// The pinned key refused in a failed tokio-rustls handshake, if that is
/// why it failed.
pub(crate) fn wrong_key_in(err: &std::io::Error) -> Option<&WrongKey> {
    match err.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(inner))) => {
            inner.downcast_ref::<WrongKey>()
        }
        _ => None,
    }
}

/// The TLS configurations for one pinned box, shared by every connection of
/// the process to it.
pub(crate) struct PinnedTls {
    pub(crate) verifier: Arc<PinnedKey>,
    /// TLS 1.2 or 1.3 for WebSocket over TLS and attachment transfers
    /// (HTTP/1.1), offering the [`PINNED_ALPN`] marker.
    pub(crate) wss: Arc<rustls::ClientConfig>,
    /// TLS 1.3 with ALPN `imbox/1` and early data, for QUIC.
    pub(crate) quic: Arc<QuicClientConfig>,
}

impl std::fmt::Debug for PinnedTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The configurations themselves are long and say nothing specific.
        f.debug_struct("PinnedTls").field("pin", &self.verifier.pin).finish_non_exhaustive()
    }
}

/// Pins kept at most; a process talks to a handful of boxes, so reaching
/// this means something creates pins in a loop, and starting over only costs
/// a full handshake per box.
const MAX_CACHED_PINS: usize = 64;

static BY_PIN: LazyLock<Mutex<HashMap<Fingerprint, Arc<PinnedTls>>>> = LazyLock::new(Default::default);

/// The TLS configurations for `pin`, made on first use.
pub(crate) fn pinned_tls(pin: Fingerprint) -> Result<Arc<PinnedTls>, ClientError> {
    let mut cache = BY_PIN.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(found) = cache.get(&pin) {
        return Ok(Arc::clone(found));
    }
    let made = Arc::new(make_pinned_tls(pin)?);
    if cache.len() >= MAX_CACHED_PINS {
        cache.clear();
    }
    cache.insert(pin, Arc::clone(&made));
    Ok(made)
}

fn make_pinned_tls(pin: Fingerprint) -> Result<PinnedTls, ClientError> {
    let provider = Arc::new(provider());
    let verifier = Arc::new(PinnedKey::new(pin, provider.signature_verification_algorithms));
    // Only misconfiguration of this file can make these fail.
    let setup = |reason: String| ClientError::Tls { url: format!("the box {pin}"), reason };

    let mut wss = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| setup(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    // The marker first asks a box that serves browsers a certificate of the
    // owner's for its own key's; the box then picks http/1.1.
    wss.alpn_protocols = vec![PINNED_ALPN.to_vec(), b"http/1.1".to_vec()];

    let mut quic = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| setup(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    quic.alpn_protocols = vec![QUIC_ALPN.to_vec()];
    // Lets a resumed connection carry replay-safe requests in its first
    // flight; the connection holds back the others until the box confirms.
    quic.enable_early_data = true;
    let quic = QuicClientConfig::try_from(quic).map_err(|e| setup(e.to_string()))?;

    Ok(PinnedTls { verifier, wss: Arc::new(wss), quic: Arc::new(quic) })
}

/// *ring*, with ChaCha20-Poly1305 preferred: rustls servers follow the
/// client's order by default, and the box (a Raspberry Pi 4) has no AES
/// instructions, so ChaCha20 is several times cheaper for it. AES-128-GCM
/// stays available, as QUIC requires it for its Initial packets.
fn provider() -> CryptoProvider {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites.sort_by_key(|suite| {
        !matches!(
            suite.suite(),
            rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
                | rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
                | rustls::CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        )
    });
    provider
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::internal::msgs::codec::{Codec, Reader};
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A self-signed certificate for names that match nothing, long expired.
    fn odd_certificate(key: &rcgen::KeyPair) -> CertificateDer<'static> {
        let mut params =
            rcgen::CertificateParams::new(vec!["nothing.invalid".to_owned()]).expect("certificate params");
        params.not_before = rcgen::date_time_ymd(1999, 1, 1);
        params.not_after = rcgen::date_time_ymd(2000, 1, 1);
        params.self_signed(key).expect("self-signed certificate").der().clone()
    }

    fn new_key() -> rcgen::KeyPair {
        rcgen::KeyPair::generate().expect("P-256 key")
    }

    fn fingerprint_of(key: &rcgen::KeyPair) -> Fingerprint {
        Fingerprint::of_spki(&rcgen::PublicKeyData::subject_public_key_info(key))
    }

    fn verifier(pin: Fingerprint) -> PinnedKey {
        PinnedKey::new(pin, provider().signature_verification_algorithms)
    }

    fn check(verifier: &PinnedKey, cert: &CertificateDer<'_>, name: &str) -> Result<(), rustls::Error> {
        let name = ServerName::try_from(name.to_owned()).expect("server name");
        verifier.verify_server_cert(cert, &[], &name, &[], UnixTime::now()).map(|_| ())
    }

    /// A TLS 1.3 CertificateVerify-style signature by `key` over `message`.
    fn signature(key: &rcgen::KeyPair, message: &[u8]) -> DigitallySignedStruct {
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let signing_key = provider().key_provider.load_private_key(der).expect("signing key");
        let signer =
            signing_key.choose_scheme(&[SignatureScheme::ECDSA_NISTP256_SHA256]).expect("ECDSA P-256 signer");
        let sig = signer.sign(message).expect("signature");
        // The struct's constructor is private; decode it as it comes off the wire.
        let mut wire = Vec::new();
        SignatureScheme::ECDSA_NISTP256_SHA256.encode(&mut wire);
        wire.extend_from_slice(&u16::try_from(sig.len()).expect("short signature").to_be_bytes());
        wire.extend_from_slice(&sig);
        DigitallySignedStruct::read(&mut Reader::init(&wire)).expect("signature struct")
    }

    #[test]
    fn the_fingerprint_is_that_of_the_key_rcgen_reports() {
        let key = new_key();
        let cert = odd_certificate(&key);
        assert_eq!(key_fingerprint(&cert).expect("parse"), fingerprint_of(&key));
        assert!(key_fingerprint(&CertificateDer::from(vec![0x30, 0x03, 1, 2, 3])).is_err());
    }

    #[test]
    fn the_pinned_key_is_accepted_whatever_the_names_and_dates() {
        let key = new_key();
        let cert = odd_certificate(&key);
        let verifier = verifier(fingerprint_of(&key));
        for name in ["192.0.2.10", "imbox.local", "fe80::1", "unrelated.example"] {
            check(&verifier, &cert, name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn another_key_is_refused_with_both_fingerprints() {
        let paired = new_key();
        let impostor = new_key();
        let verifier = verifier(fingerprint_of(&paired));
        let err = check(&verifier, &odd_certificate(&impostor), "imbox.local").expect_err("wrong key");
        let rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(inner))) = &err else {
            panic!("unexpected error {err:?}");
        };
        let wrong = inner.downcast_ref::<WrongKey>().expect("a WrongKey inside");
        assert_eq!((wrong.expected, wrong.seen), (fingerprint_of(&paired), fingerprint_of(&impostor)));
        // Remembered for the connection that used this name, and only once.
        assert_eq!(verifier.take_refused("other.local"), None);
        assert_eq!(verifier.take_refused("imbox.local"), Some(fingerprint_of(&impostor)));
        assert_eq!(verifier.take_refused("imbox.local"), None);
    }

    #[test]
    fn a_handshake_signed_by_another_key_than_the_certificates_is_refused() {
        let key = new_key();
        let cert = odd_certificate(&key);
        let verifier = verifier(fingerprint_of(&key));
        let message = b"TLS 1.3, server CertificateVerify\0transcript hash";
        verifier.verify_tls13_signature(message, &cert, &signature(&key, message)).expect("own signature");
        let forged = signature(&new_key(), message);
        assert!(verifier.verify_tls13_signature(message, &cert, &forged).is_err());
        assert!(verifier.verify_tls12_signature(message, &cert, &forged).is_err());
        // And the certificate's own key over another message is no good either.
        let replayed = signature(&key, b"another transcript");
        assert!(verifier.verify_tls13_signature(message, &cert, &replayed).is_err());
    }

    #[derive(Debug)]
    struct Always(Arc<rustls::sign::CertifiedKey>);

    impl rustls::server::ResolvesServerCert for Always {
        fn resolve(&self, _: rustls::server::ClientHello<'_>) -> Option<Arc<rustls::sign::CertifiedKey>> {
            Some(Arc::clone(&self.0))
        }
    }

    /// A TLS server on one end of an in-memory pipe that presents `cert` but
    /// signs with `signer`, answering "pong" to the client's "ping".
    async fn handshake(
        cert: CertificateDer<'static>,
        signer: &rcgen::KeyPair,
        client: Arc<rustls::ClientConfig>,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> std::io::Result<()> {
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(signer.serialize_der()));
        let signing_key = provider().key_provider.load_private_key(der).expect("signing key");
        // Built by hand: rustls's own builders refuse a key that does not
        // match the certificate, which is exactly the forgery tested here.
        let certified = Arc::new(rustls::sign::CertifiedKey::new(vec![cert], signing_key));
        let server = rustls::ServerConfig::builder_with_provider(Arc::new(provider()))
            .with_protocol_versions(versions)
            .expect("versions")
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Always(certified)));
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        let served = tokio::spawn(async move {
            let mut tls = acceptor.accept(server_io).await?;
            let mut ping = [0; 4];
            tls.read_exact(&mut ping).await?;
            tls.write_all(b"pong").await?;
            tls.shutdown().await
        });
        let connector = tokio_rustls::TlsConnector::from(client);
        let name = ServerName::try_from("imbox.local").expect("name");
        let result = async {
            let mut tls = connector.connect(name, client_io).await?;
            tls.write_all(b"ping").await?;
            let mut pong = [0; 4];
            tls.read_exact(&mut pong).await?;
            assert_eq!(&pong, b"pong");
            Ok(())
        }
        .await;
        served.abort();
        result
    }

    #[tokio::test]
    async fn real_handshakes_check_both_the_pin_and_the_signature() {
        let key = new_key();
        let cert = odd_certificate(&key);
        let tls = make_pinned_tls(fingerprint_of(&key)).expect("config");
        for versions in [&[&rustls::version::TLS13][..], &[&rustls::version::TLS12][..]] {
            handshake(cert.clone(), &key, Arc::clone(&tls.wss), versions).await.expect("the paired box");

            let forger = new_key();
            let err = handshake(cert.clone(), &forger, Arc::clone(&tls.wss), versions)
                .await
                .expect_err("a certificate without its key");
            assert!(wrong_key_in(&err).is_none(), "the key is right; the signature is not: {err}");

            let other = make_pinned_tls(fingerprint_of(&new_key())).expect("config");
            let err = handshake(cert.clone(), &key, Arc::clone(&other.wss), versions)
                .await
                .expect_err("another box");
            let wrong = wrong_key_in(&err).unwrap_or_else(|| panic!("not a WrongKey: {err}"));
            assert_eq!(wrong.seen, fingerprint_of(&key));
        }
    }

    #[test]
    fn configurations_are_shared_per_pin_and_prefer_chacha20() {
        let pin = fingerprint_of(&new_key());
        let first = pinned_tls(pin).expect("config");
        let again = pinned_tls(pin).expect("config");
        assert!(Arc::ptr_eq(&first, &again), "one session cache per box");
        assert_eq!(
            first.wss.alpn_protocols,
            [PINNED_ALPN.to_vec(), b"http/1.1".to_vec()],
            "the pinned-client marker first, so that a box with the owner's certificate serves the box key's"
        );
        assert_eq!(first.verifier.pin(), pin);
        let other = pinned_tls(fingerprint_of(&new_key())).expect("config");
        assert!(!Arc::ptr_eq(&first, &other));
        assert_eq!(
            first.wss.crypto_provider().cipher_suites[0].suite(),
            rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
        );
    }
}
