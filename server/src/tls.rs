//! TLS settings shared by the HTTPS and QUIC listeners.
//!
//! The Raspberry Pi 4's Cortex-A72 has no AES instructions, so AES-GCM runs
//! in software there, several times slower than ChaCha20-Poly1305. The
//! server therefore offers ChaCha20-Poly1305 first and picks by its own order
//! rather than the client's (phones with AES hardware list AES first).

use std::sync::Arc;

use rustls::crypto::{ring, CryptoProvider};
use rustls::server::ResolvesServerCert;
use rustls::ServerConfig;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chacha_comes_first() {
        let provider = provider();
        assert_eq!(provider.cipher_suites[0].suite(), rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256);
    }
}
