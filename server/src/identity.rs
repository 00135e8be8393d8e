//! The box identity: an ECDSA P-256 key made on first start, and a
//! self-signed certificate for it, renewed with the same key before it
//! expires.
//!
//! Clients pin the SHA-256 of the key's SubjectPublicKeyInfo (the
//! [`Fingerprint`]), so the key must never change by accident: a damaged or
//! unreadable key file stops start-up instead of being replaced.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use imbox_protocol::Fingerprint;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PublicKeyData};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::OffsetDateTime;

/// Why the identity could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The key file exists but cannot be read.
    #[error("cannot read the identity key {path}: {source}; check its owner and permissions (the key was not replaced)")]
    Unreadable { path: PathBuf, source: std::io::Error },
    /// The key file is not a valid key.
    #[error(
        "the identity key {path} is damaged ({reason}). It was not replaced, because every paired client pins it: \
         restore it from a backup; only to give this box a new identity (every client must then pair again), \
         move the file away and start imboxd again"
    )]
    Damaged { path: PathBuf, reason: String },
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    /// Key or certificate generation failed.
    #[error("cannot make the identity: {0}")]
    Generate(String),
}

/// The key, its fingerprint and the current certificate.
#[derive(Debug)]
pub struct Identity {
    key: KeyPair,
    fingerprint: Fingerprint,
    certificate: CertificateDer<'static>,
    not_after: OffsetDateTime,
    cert_path: PathBuf,
}

/// How long certificates live and when they are renewed.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    pub days: u32,
    pub renew_before_days: u32,
}

fn write_private(path: &Path, contents: &[u8], mode: u32) -> Result<(), IdentityError> {
    crate::files::write_whole(path, contents, mode)
        .map_err(|source| IdentityError::Write { path: path.to_owned(), source })
}

impl Identity {
    /// Loads the key (making it on first start) and a certificate that is not
    /// due for renewal.
    pub fn load_or_create(
        key_path: &Path,
        cert_path: &Path,
        validity: Validity,
    ) -> Result<Identity, IdentityError> {
        let key = match std::fs::read_to_string(key_path) {
            Ok(pem) => KeyPair::from_pem(&pem)
                .map_err(|e| IdentityError::Damaged { path: key_path.to_owned(), reason: e.to_string() })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
                    .map_err(|e| IdentityError::Generate(e.to_string()))?;
                write_private(key_path, key.serialize_pem().as_bytes(), 0o600)?;
                tracing::info!(path = %key_path.display(), "generated the box identity key");
                key
            }
            Err(source) => return Err(IdentityError::Unreadable { path: key_path.to_owned(), source }),
        };
        if !key.is_compatible(&rcgen::PKCS_ECDSA_P256_SHA256) {
            return Err(IdentityError::Damaged {
                path: key_path.to_owned(),
                reason: "it is not an ECDSA P-256 key".into(),
            });
        }
        let fingerprint = Fingerprint::of_spki(&key.subject_public_key_info());
        let mut identity = Identity {
            key,
            fingerprint,
            certificate: CertificateDer::from(Vec::new()),
            not_after: OffsetDateTime::UNIX_EPOCH,
            cert_path: cert_path.to_owned(),
        };
        match identity.read_certificate() {
            Some((der, not_after)) => {
                identity.certificate = der;
                identity.not_after = not_after;
                identity.renew_if_due(validity, OffsetDateTime::now_utc())?;
            }
            None => identity.renew(validity, OffsetDateTime::now_utc())?,
        }
        Ok(identity)
    }

    /// The stored certificate, if it is readable and for this key.
    fn read_certificate(&self) -> Option<(CertificateDer<'static>, OffsetDateTime)> {
        let pem = std::fs::read(&self.cert_path).ok()?;
        let der: CertificateDer<'static> = rustls_pki_types::pem::PemObject::from_pem_slice(&pem).ok()?;
        let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
        let not_after = cert.validity().not_after.to_datetime();
        let spki_matches = Fingerprint::of_spki(cert.tbs_certificate.subject_pki.raw) == self.fingerprint;
        drop(cert);
        spki_matches.then_some((der, not_after))
    }

    /// Makes a new certificate for the same key if the current one expires
    /// within the renewal window. Returns whether it did.
    pub fn renew_if_due(&mut self, validity: Validity, now: OffsetDateTime) -> Result<bool, IdentityError> {
        let due = self.not_after - time::Duration::days(validity.renew_before_days.into()) <= now;
        if due {
            self.renew(validity, now)?;
        }
        Ok(due)
    }

    fn renew(&mut self, validity: Validity, now: OffsetDateTime) -> Result<(), IdentityError> {
        let mut params = CertificateParams::new(vec!["imbox.local".to_owned(), "imbox".to_owned()])
            .map_err(|e| IdentityError::Generate(e.to_string()))?;
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, "imbox");
        params.distinguished_name = name;
        // A day of slack for clocks that are behind (the Pi has no real-time
        // clock); clients check the key, not the dates.
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(validity.days.into());
        let cert = params.self_signed(&self.key).map_err(|e| IdentityError::Generate(e.to_string()))?;
        write_private(&self.cert_path, cert.pem().as_bytes(), 0o644)?;
        self.certificate = cert.der().clone();
        self.not_after = params.not_after;
        tracing::info!(not_after = %params.not_after, "issued a certificate for the box identity");
        Ok(())
    }

    /// The key's fingerprint, which clients pin.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// When the current certificate expires.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// The certificate and key in the form rustls serves.
    pub fn certified_key(&self) -> Result<Arc<CertifiedKey>, IdentityError> {
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.serialize_der()));
        let signer = rustls::crypto::ring::sign::any_ecdsa_type(&der)
            .map_err(|e| IdentityError::Generate(format!("rustls refused the key: {e}")))?;
        Ok(Arc::new(CertifiedKey::new(vec![self.certificate.clone()], signer)))
    }
}

/// The SubjectPublicKeyInfo of a DER certificate.
pub fn cert_spki(der: &CertificateDer<'_>) -> Option<Vec<u8>> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(cert.tbs_certificate.subject_pki.raw.to_vec())
}

/// Serves the current certificate to rustls, and lets renewal swap it
/// without restarting listeners.
#[derive(Debug)]
pub struct CertResolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertResolver {
    pub fn new(key: Arc<CertifiedKey>) -> CertResolver {
        CertResolver { current: RwLock::new(key) }
    }

    /// Replaces the certificate served from now on.
    pub fn replace(&self, key: Arc<CertifiedKey>) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = key;
    }

    /// The certificate served now (DER), e.g. to show its digest, which is
    /// what browsers display, on the plain-HTTP landing page.
    pub fn certificate(&self) -> Option<CertificateDer<'static>> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).cert.first().cloned()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

/// Checks daily whether the certificate is due and renews it in place.
pub async fn renew_daily(
    mut identity: Identity,
    validity: Validity,
    resolver: Arc<CertResolver>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut ticks = tokio::time::interval(Duration::from_secs(24 * 3600));
    ticks.tick().await;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        match identity.renew_if_due(validity, OffsetDateTime::now_utc()) {
            Ok(false) => {}
            Ok(true) => match identity.certified_key() {
                Ok(key) => resolver.replace(key),
                Err(e) => tracing::error!(error = %e, "renewed certificate not usable"),
            },
            Err(e) => tracing::error!(error = %e, "certificate renewal failed; retrying tomorrow"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALIDITY: Validity = Validity { days: 365, renew_before_days: 30 };

    fn paths(dir: &Path) -> (PathBuf, PathBuf) {
        (dir.join("identity.key"), dir.join("identity.crt"))
    }

    #[test]
    fn the_key_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (key, cert) = paths(dir.path());
        let first = Identity::load_or_create(&key, &cert, VALIDITY).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
        let second = Identity::load_or_create(&key, &cert, VALIDITY).unwrap();
        assert_eq!(first.fingerprint(), second.fingerprint());
        assert_eq!(first.certificate, second.certificate, "a valid certificate is reused");
        let spki = cert_spki(&second.certificate).unwrap();
        assert_eq!(Fingerprint::of_spki(&spki), second.fingerprint());
    }

    #[test]
    fn renewal_keeps_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let (key, cert) = paths(dir.path());
        let mut identity = Identity::load_or_create(&key, &cert, VALIDITY).unwrap();
        let old = identity.certificate.clone();
        let now = OffsetDateTime::now_utc();
        assert!(!identity.renew_if_due(VALIDITY, now).unwrap());
        assert!(identity.renew_if_due(VALIDITY, now + time::Duration::days(340)).unwrap());
        assert_ne!(identity.certificate, old);
        assert_eq!(Fingerprint::of_spki(&cert_spki(&identity.certificate).unwrap()), identity.fingerprint());
        let reloaded = Identity::load_or_create(&key, &cert, VALIDITY).unwrap();
        assert_eq!(reloaded.certificate, identity.certificate);
    }

    #[test]
    fn a_damaged_key_stops_instead_of_being_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let (key, cert) = paths(dir.path());
        std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n").unwrap();
        let err = Identity::load_or_create(&key, &cert, VALIDITY).unwrap_err();
        assert!(matches!(err, IdentityError::Damaged { .. }));
        assert!(err.to_string().contains("not replaced"));
        assert!(std::fs::read_to_string(&key).unwrap().contains("not a key"));
    }

    #[test]
    fn a_certificate_for_another_key_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let (key, cert) = paths(dir.path());
        Identity::load_or_create(&key, &cert, VALIDITY).unwrap();
        let other = tempfile::tempdir().unwrap();
        let (other_key, other_cert) = paths(other.path());
        Identity::load_or_create(&other_key, &other_cert, VALIDITY).unwrap();
        std::fs::copy(&other_cert, &cert).unwrap();
        let identity = Identity::load_or_create(&key, &cert, VALIDITY).unwrap();
        assert_eq!(Fingerprint::of_spki(&cert_spki(&identity.certificate).unwrap()), identity.fingerprint());
    }
}
