//! TLS settings shared by the HTTPS and QUIC listeners.
//!
//! The Raspberry Pi 4's Cortex-A72 has no AES instructions, so AES-GCM runs
//! in software there, several times slower than ChaCha20-Poly1305. The
//! server therefore offers ChaCha20-Poly1305 first and picks by its own order
//! rather than the client's (phones with AES hardware list AES first).
//!
//! HTTPS may show browsers a certificate of the owner's
//! ([`crate::own_cert`]) while every client that pins the box key keeps
//! getting the box key's certificate: [`HttpsCertificates`] picks per
//! connection, by the [`PINNED_ALPN`] marker pinned clients offer. QUIC
//! always serves the box key's certificate.

use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use imbox_protocol::PINNED_ALPN;
use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::CertificateDer;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use crate::identity::CertResolver;
use crate::own_cert::{CertificateInfo, OwnCertificate};

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rustls refused the settings.
    #[error("TLS settings refused: {0}")]
    Rustls(#[from] rustls::Error),
    /// quinn refused the TLS settings.
    #[error("QUIC TLS settings refused: {0}")]
    Quic(String),
}

/// Resumable QUIC sessions kept (each a few hundred bytes).
pub const QUIC_SESSION_CACHE: usize = 65_536;

/// ring's provider with ChaCha20-Poly1305 first in every list.
pub fn provider() -> Arc<CryptoProvider> {
    let mut provider = ring::default_provider();
    use rustls::CipherSuite as S;
    let rank = |suite: S| match suite {
        S::TLS13_CHACHA20_POLY1305_SHA256 => 0,
        S::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => 1,
        S::TLS13_AES_128_GCM_SHA256 => 2,
        S::TLS13_AES_256_GCM_SHA384 => 3,
        _ => 4,
    };
    provider.cipher_suites.sort_by_key(|s| rank(s.suite()));
    Arc::new(provider)
}

/// A server configuration for `alpn`, serving the box identity through
/// `certs`. QUIC needs TLS 1.3 and allows 0-RTT early data; HTTPS also speaks
/// TLS 1.2 for older browsers.
pub fn server_config(
    certs: Arc<dyn ResolvesServerCert>,
    alpn: &[&[u8]],
    for_quic: bool,
) -> Result<ServerConfig, TlsError> {
    let versions: &[&rustls::SupportedProtocolVersion] =
        if for_quic { &[&rustls::version::TLS13] } else { rustls::DEFAULT_VERSIONS };
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config.ignore_client_order = true;
    if for_quic {
        // 0-RTT needs single-use tickets, which rustls gives only with
        // server-side session state (its defence against replay across
        // connections); the cache is bounded, and a phone whose entry was
        // evicted just does a full handshake. quinn requires exactly
        // u32::MAX here to offer 0-RTT; what early data may do is decided per
        // request by the session.
        config.session_storage = rustls::server::ServerSessionMemoryCache::new(QUIC_SESSION_CACHE);
        config.max_early_data_size = u32::MAX;
    } else {
        // Stateless tickets: browsers resume without the box keeping state.
        config.ticketer = ring::Ticketer::new()?;
    }
    Ok(config)
}

/// The certificates of the HTTPS listener: the box key's (renewed in place
/// by [`crate::identity::renew_daily`]) and, when the owner installed one,
/// theirs, which can be swapped or removed while the box runs.
#[derive(Debug)]
pub struct HttpsCertificates {
    box_cert: Arc<CertResolver>,
    own: RwLock<Option<OwnCertificate>>,
    /// Why the owner's chosen certificate was not loaded at start, until
    /// the choice is changed.
    problem: RwLock<Option<String>>,
    /// Held by a change through the admin API from its files to what is
    /// served: two administrators changing it at once must leave the files
    /// on the data disk and the certificate served the same one.
    changes: Mutex<()>,
}

impl HttpsCertificates {
    /// Serving the box key's certificate from `box_cert`, and `own` to
    /// browsers if given.
    pub fn new(box_cert: Arc<CertResolver>, own: Option<OwnCertificate>) -> HttpsCertificates {
        HttpsCertificates {
            box_cert,
            own: RwLock::new(own),
            problem: RwLock::new(None),
            changes: Mutex::new(()),
        }
    }

    /// Waits for other changes to finish; hold the guard from writing the
    /// files to [`HttpsCertificates::set_own`]. Blocks: call it off the async
    /// workers.
    pub fn one_change_at_a_time(&self) -> MutexGuard<'_, ()> {
        self.changes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Serves `own` to browsers from the next handshake on (`None`: the box
    /// key's certificate to everyone), and forgets any start-up problem.
    pub fn set_own(&self, own: Option<OwnCertificate>) {
        *self.own.write().unwrap_or_else(|p| p.into_inner()) = own;
        *self.problem.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Serves `new` instead of the owner's certificate if the one served
    /// is still the one with SHA-256 `expected`: a reload of files must not
    /// undo a change made meanwhile through the admin API. Returns whether
    /// it did.
    pub fn replace_own_if(&self, expected: &str, new: OwnCertificate) -> bool {
        let mut own = self.own.write().unwrap_or_else(|p| p.into_inner());
        if own.as_ref().is_some_and(|o| o.info.sha256 == expected) {
            *own = Some(new);
            true
        } else {
            false
        }
    }

    /// Records why the chosen certificate could not be used at start.
    pub fn set_problem(&self, problem: String) {
        *self.problem.write().unwrap_or_else(|p| p.into_inner()) = Some(problem);
    }

    /// Why the chosen certificate is not served, if it is not.
    pub fn problem(&self) -> Option<String> {
        self.problem.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The owner's certificate, if one is served to browsers.
    pub fn own(&self) -> Option<CertificateInfo> {
        self.own.read().unwrap_or_else(|p| p.into_inner()).as_ref().map(|o| o.info.clone())
    }

    /// The leaf certificate browsers are shown now (the one whose digest
    /// the pages print).
    pub fn browser_certificate(&self) -> Option<CertificateDer<'static>> {
        match &*self.own.read().unwrap_or_else(|p| p.into_inner()) {
            Some(own) => own.key.cert.first().cloned(),
            None => self.box_cert.certificate(),
        }
    }

    /// The box key's certificate (DER).
    pub fn box_certificate(&self) -> Option<CertificateDer<'static>> {
        self.box_cert.certificate()
    }
}

impl ResolvesServerCert for HttpsCertificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let pinned = hello.alpn().is_some_and(|mut offered| offered.any(|p| p == PINNED_ALPN));
        if !pinned {
            if let Some(own) = &*self.own.read().unwrap_or_else(|p| p.into_inner()) {
                return Some(own.key.clone());
            }
        }
        self.box_cert.resolve(hello)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chacha_comes_first() {
        let provider = provider();
        assert_eq!(provider.cipher_suites[0].suite(), rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256);
    }
}
