//! "Use my own certificate": a certificate chain and key the owner gives the
//! box (uploaded, or files on the data disk), served on HTTPS to browsers so
//! that they trust the box without a warning.
//!
//! Apps never see it: they pin the box key, so QUIC always serves the box
//! key's certificate, and HTTPS serves it to a client that offers the
//! [`imbox_protocol::PINNED_ALPN`] marker ([`crate::tls::HttpsCertificates`]).
//!
//! The choice lives in `<data_dir>/own-certificate.json`, an uploaded chain
//! and key in `<data_dir>/own-certificate.pem` (mode 0600); both are written
//! whole (temporary file, fsync, rename, fsync of the directory), the PEM
//! before the choice that names it, so a crash leaves either the old choice
//! or the new one. Without the choice file HTTPS serves the box's own
//! certificate. A chosen certificate that is missing or invalid at start is
//! logged, reported on the settings page, and the box's own is served.
//! Files on the data disk are read again every hour ([`reload_periodically`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// Largest chain or key file read from the data disk: a chain of a handful
/// of certificates is a few KiB.
pub const MAX_PEM_BYTES: u64 = 64 * 1024;

/// The certificate's remaining life below which it is flagged.
pub const WARN_DAYS: i64 = 30;

/// The name of the choice file in the data directory.
const CHOICE_FILE: &str = "own-certificate.json";
/// The name of the uploaded chain and key in the data directory.
const UPLOADED_FILE: &str = "own-certificate.pem";

/// Why a certificate was refused or could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum OwnCertError {
    /// No `CERTIFICATE` block in the chain.
    #[error("the chain holds no certificate: paste the PEM text that starts with -----BEGIN CERTIFICATE-----, the server's certificate first")]
    NoCertificate,
    /// A `CERTIFICATE` block that is not valid PEM or X.509.
    #[error(
        "the certificate chain cannot be read ({0}): give the PEM file your certificate authority issued"
    )]
    BadChain(String),
    /// No private key block in the key text.
    #[error("no private key found: paste the PEM text that starts with -----BEGIN PRIVATE KEY----- (or RSA / EC PRIVATE KEY)")]
    NoKey,
    /// A key of a kind rustls cannot sign with, or damaged.
    #[error("the private key cannot be used ({0}): use an ECDSA P-256 or P-384, RSA (2048 bits or more) or Ed25519 key")]
    BadKey(String),
    /// The key is not the one the certificate was issued for.
    #[error(
        "the private key does not belong to the certificate: give the key the certificate was issued for"
    )]
    KeyMismatch,
    /// The certificate is not valid yet.
    #[error(
        "the certificate is not valid before {0}: check the box's clock, or use a certificate valid now"
    )]
    NotYetValid(String),
    /// The certificate has expired.
    #[error("the certificate expired on {0}: renew it with your certificate authority and give the new one")]
    Expired(String),
    /// A path outside the data directory (or a link that leads out of it).
    #[error("{0} is not inside the data directory {1}: copy the files there (links that lead out of it are refused)")]
    Outside(String, String),
    /// A file that cannot be read.
    #[error("cannot read {path}: {reason}")]
    Unreadable { path: String, reason: String },
    /// A file larger than [`MAX_PEM_BYTES`].
    #[error("{0} is larger than {MAX_PEM_BYTES} bytes: it is not a certificate chain or key")]
    TooLarge(String),
    /// The choice could not be saved.
    #[error("cannot save the certificate on the data disk ({0}); nothing was changed")]
    Write(String),
}

impl OwnCertError {
    /// The stable code API clients match on.
    pub fn code(&self) -> &'static str {
        match self {
            OwnCertError::NoCertificate => "no_certificate",
            OwnCertError::BadChain(_) => "bad_certificate",
            OwnCertError::NoKey => "no_key",
            OwnCertError::BadKey(_) => "bad_key",
            OwnCertError::KeyMismatch => "key_mismatch",
            OwnCertError::NotYetValid(_) => "certificate_not_yet_valid",
            OwnCertError::Expired(_) => "certificate_expired",
            OwnCertError::Outside(..) => "outside_data_dir",
            OwnCertError::Unreadable { .. } => "unreadable",
            OwnCertError::TooLarge(_) => "file_too_large",
            OwnCertError::Write(_) => "internal",
        }
    }
}

/// Where the certificate HTTPS serves to browsers comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The box key's self-signed certificate.
    Box,
    /// A chain and key uploaded through the admin API.
    Uploaded,
    /// Files on the data disk the owner pointed the box at.
    Files,
}

/// A certificate as the settings page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct CertificateInfo {
    pub source: Source,
    pub subject: String,
    pub issuer: String,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<String>,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    /// SHA-256 of the leaf certificate, as browsers show it.
    pub sha256: String,
    /// Certificates in the chain, the leaf included.
    pub chain_length: usize,
    /// For [`Source::Files`]: the chain and key paths.
    pub chain_path: Option<String>,
    pub key_path: Option<String>,
    /// `expires_soon` (within [`WARN_DAYS`]) or `expired`; `None` otherwise.
    pub warning: Option<&'static str>,
}

/// A validated chain and key, ready to serve.
#[derive(Debug, Clone)]
pub struct OwnCertificate {
    pub key: Arc<CertifiedKey>,
    pub info: CertificateInfo,
}

/// The stored choice (the JSON of the choice file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "lowercase")]
pub enum Choice {
    /// The chain and key uploaded, in `own-certificate.pem`.
    Uploaded,
    /// The chain and key at these paths inside the data directory.
    Files { chain_path: PathBuf, key_path: PathBuf },
}

/// Colon-separated upper-case hex, as certificate viewers show digests.
pub fn colon_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

fn date(t: i64) -> String {
    OffsetDateTime::from_unix_timestamp(t).map_or_else(|_| t.to_string(), |d| d.date().to_string())
}

/// What a DER certificate says, for the settings page.
pub fn describe(
    chain: &[CertificateDer<'_>],
    source: Source,
    now: OffsetDateTime,
) -> Option<CertificateInfo> {
    let leaf = chain.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf).ok()?;
    let mut dns_names = Vec::new();
    let mut ip_addresses = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(n) => dns_names.push((*n).to_owned()),
                x509_parser::extensions::GeneralName::IPAddress(bytes) => {
                    let ip = match bytes.len() {
                        4 => <[u8; 4]>::try_from(*bytes).ok().map(|b| std::net::IpAddr::from(b).to_string()),
                        16 => {
                            <[u8; 16]>::try_from(*bytes).ok().map(|b| std::net::IpAddr::from(b).to_string())
                        }
                        _ => None,
                    };
                    ip_addresses.extend(ip);
                }
                _ => {}
            }
        }
    }
    let not_before = cert.validity().not_before.timestamp();
    let not_after = cert.validity().not_after.timestamp();
    let mut info = CertificateInfo {
        source,
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        dns_names,
        ip_addresses,
        not_before,
        not_after,
        sha256: colon_hex(&Sha256::digest(leaf.as_ref())),
        chain_length: chain.len(),
        chain_path: None,
        key_path: None,
        warning: None,
    };
    info.warning = info.warning_at(now);
    Some(info)
}

/// Checks a PEM chain (leaf first) and key and makes them servable: both
/// parse, the key is one rustls's ring provider signs with, it is the
/// leaf's key, and the leaf is valid at `now`.
pub fn validate(
    chain_pem: &[u8],
    key_pem: &[u8],
    source: Source,
    now: OffsetDateTime,
) -> Result<OwnCertificate, OwnCertError> {
    let chain = CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| OwnCertError::BadChain(e.to_string()))?;
    if chain.is_empty() {
        return Err(OwnCertError::NoCertificate);
    }
    for cert in &chain {
        x509_parser::parse_x509_certificate(cert).map_err(|e| OwnCertError::BadChain(e.to_string()))?;
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => OwnCertError::NoKey,
        other => OwnCertError::BadKey(other.to_string()),
    })?;
    let signer = crate::tls::provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| OwnCertError::BadKey(e.to_string()))?;
    let certified = CertifiedKey::new(chain.clone(), signer);
    match certified.keys_match() {
        Ok(()) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(OwnCertError::KeyMismatch)
        }
        Err(e) => return Err(OwnCertError::BadKey(e.to_string())),
    }
    let info = describe(&chain, source, now)
        .ok_or_else(|| OwnCertError::BadChain("the first certificate cannot be parsed".into()))?;
    let now = now.unix_timestamp();
    if now < info.not_before {
        return Err(OwnCertError::NotYetValid(date(info.not_before)));
    }
    if now > info.not_after {
        return Err(OwnCertError::Expired(date(info.not_after)));
    }
    Ok(OwnCertificate { key: Arc::new(certified), info })
}

impl CertificateInfo {
    /// The warning at `now` (`expires_soon` within [`WARN_DAYS`], or
    /// `expired`): a box runs for months, so it is worked out when asked.
    pub fn warning_at(&self, now: OffsetDateTime) -> Option<&'static str> {
        let left = self.not_after - now.unix_timestamp();
        if left < 0 {
            Some("expired")
        } else if left < WARN_DAYS * 86_400 {
            Some("expires_soon")
        } else {
            None
        }
    }
}

/// How often files on the data disk are read again, to serve a certificate
/// renewed in place (by certbot, say) without a restart.
pub const RELOAD_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Reads the chosen files again and serves them if they changed. Returns
/// whether it did; an error (a renewal half written, a bad file) leaves the
/// certificate served as it was.
pub fn reload_files(
    files: &OwnCertFiles,
    certs: &crate::tls::HttpsCertificates,
    now: OffsetDateTime,
) -> Result<bool, OwnCertError> {
    let Some(current) = certs.own() else { return Ok(false) };
    let (Some(chain), Some(key)) = (&current.chain_path, &current.key_path) else { return Ok(false) };
    let fresh = files.from_files(Path::new(chain), Path::new(key), now)?;
    if fresh.info.sha256 == current.sha256 {
        return Ok(false);
    }
    Ok(certs.replace_own_if(&current.sha256, fresh))
}

/// Runs [`reload_files`] every [`RELOAD_EVERY`] until shutdown.
pub async fn reload_periodically(
    files: OwnCertFiles,
    certs: Arc<crate::tls::HttpsCertificates>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut ticks = tokio::time::interval(RELOAD_EVERY);
    ticks.tick().await;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let (files, certs) = (files.clone(), certs.clone());
        let reloaded =
            tokio::task::spawn_blocking(move || reload_files(&files, &certs, OffsetDateTime::now_utc()))
                .await;
        match reloaded {
            Ok(Ok(true)) => {
                tracing::info!("the owner's certificate files changed: HTTPS serves the new certificate")
            }
            Ok(Ok(false)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "the owner's certificate files cannot be used; HTTPS keeps serving what it served")
            }
            Err(e) => tracing::error!(error = %e, "reading the owner's certificate files failed"),
        }
    }
}

/// The owner's certificate on the data disk: the choice file and the
/// uploaded chain and key.
#[derive(Debug, Clone)]
pub struct OwnCertFiles {
    data_dir: PathBuf,
}

impl OwnCertFiles {
    /// The files under `data_dir`.
    pub fn new(data_dir: &Path) -> OwnCertFiles {
        OwnCertFiles { data_dir: data_dir.to_owned() }
    }

    fn choice_path(&self) -> PathBuf {
        self.data_dir.join(CHOICE_FILE)
    }

    fn uploaded_path(&self) -> PathBuf {
        self.data_dir.join(UPLOADED_FILE)
    }

    /// The stored choice; `Ok(None)` for the box's own certificate.
    pub fn choice(&self) -> Result<Option<Choice>, OwnCertError> {
        let path = self.choice_path();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| OwnCertError::Unreadable {
                path: path.display().to_string(),
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => {
                Err(OwnCertError::Unreadable { path: path.display().to_string(), reason: e.to_string() })
            }
        }
    }

    /// The certificate the stored choice names, validated at `now`;
    /// `Ok(None)` when the box's own is chosen.
    pub fn load(&self, now: OffsetDateTime) -> Result<Option<OwnCertificate>, OwnCertError> {
        match self.choice()? {
            None => Ok(None),
            Some(Choice::Uploaded) => {
                let pem = read_limited(&self.uploaded_path())?;
                // One file holds the chain and the key; each parser takes
                // the blocks of its own kind.
                validate(&pem, &pem, Source::Uploaded, now).map(Some)
            }
            Some(Choice::Files { chain_path, key_path }) => {
                self.from_files(&chain_path, &key_path, now).map(Some)
            }
        }
    }

    /// Reads and validates a chain and key at paths inside the data
    /// directory (relative paths are taken from it).
    pub fn from_files(
        &self,
        chain_path: &Path,
        key_path: &Path,
        now: OffsetDateTime,
    ) -> Result<OwnCertificate, OwnCertError> {
        let chain_path = self.inside(chain_path)?;
        let key_path = self.inside(key_path)?;
        let mut cert = validate(&read_limited(&chain_path)?, &read_limited(&key_path)?, Source::Files, now)?;
        cert.info.chain_path = Some(chain_path.display().to_string());
        cert.info.key_path = Some(key_path.display().to_string());
        Ok(cert)
    }

    /// `path` with every link resolved, if that is inside the data
    /// directory.
    pub fn inside(&self, path: &Path) -> Result<PathBuf, OwnCertError> {
        let joined = self.data_dir.join(path);
        let unreadable = |p: &Path, e: std::io::Error| OwnCertError::Unreadable {
            path: p.display().to_string(),
            reason: e.to_string(),
        };
        let root = self.data_dir.canonicalize().map_err(|e| unreadable(&self.data_dir, e))?;
        let real = joined.canonicalize().map_err(|e| unreadable(&joined, e))?;
        if real.starts_with(&root) && real != root {
            Ok(real)
        } else {
            Err(OwnCertError::Outside(path.display().to_string(), self.data_dir.display().to_string()))
        }
    }

    /// `path` (inside the data directory) relative to the data directory.
    fn relative(&self, path: &Path) -> Result<PathBuf, OwnCertError> {
        let real = self.inside(path)?;
        let root = self.data_dir.canonicalize().map_err(|e| OwnCertError::Unreadable {
            path: self.data_dir.display().to_string(),
            reason: e.to_string(),
        })?;
        Ok(real.strip_prefix(&root).map(Path::to_owned).unwrap_or(real))
    }

    /// Stores an uploaded chain and key (already validated) and chooses them.
    pub fn save_uploaded(&self, chain_pem: &str, key_pem: &str) -> Result<(), OwnCertError> {
        let mut both = String::with_capacity(chain_pem.len() + key_pem.len() + 1);
        both.push_str(chain_pem.trim_end());
        both.push('\n');
        both.push_str(key_pem.trim_end());
        both.push('\n');
        write_durably(&self.uploaded_path(), both.as_bytes(), 0o600)?;
        self.save_choice(&Choice::Uploaded)
    }

    /// Chooses files on the data disk (already validated).
    /// The paths are stored relative to the data directory, so that they
    /// still hold when the data moves to another disk (a USB SSD).
    pub fn save_files(&self, chain_path: &Path, key_path: &Path) -> Result<(), OwnCertError> {
        self.save_choice(&Choice::Files {
            chain_path: self.relative(chain_path)?,
            key_path: self.relative(key_path)?,
        })?;
        // An earlier upload's key is not kept where nothing uses it.
        remove_durably(&self.uploaded_path())
    }

    /// Goes back to the box's own certificate, removing an uploaded key.
    pub fn clear(&self) -> Result<(), OwnCertError> {
        remove_durably(&self.choice_path())?;
        remove_durably(&self.uploaded_path())
    }

    fn save_choice(&self, choice: &Choice) -> Result<(), OwnCertError> {
        let json = serde_json::to_vec_pretty(choice).map_err(|e| OwnCertError::Write(e.to_string()))?;
        write_durably(&self.choice_path(), &json, 0o600)
    }
}

fn read_limited(path: &Path) -> Result<Vec<u8>, OwnCertError> {
    let unreadable = |e: std::io::Error| OwnCertError::Unreadable {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let size = std::fs::metadata(path).map_err(unreadable)?.len();
    if size > MAX_PEM_BYTES {
        return Err(OwnCertError::TooLarge(path.display().to_string()));
    }
    std::fs::read(path).map_err(unreadable)
}

/// Writes `path` whole or not at all ([`crate::files::write_whole`]).
fn write_durably(path: &Path, contents: &[u8], mode: u32) -> Result<(), OwnCertError> {
    crate::files::write_whole(path, contents, mode)
        .map_err(|e| OwnCertError::Write(format!("{}: {e}", path.display())))
}

fn remove_durably(path: &Path) -> Result<(), OwnCertError> {
    match std::fs::remove_file(path) {
        Ok(()) => crate::files::sync_parent(path)
            .map_err(|e| OwnCertError::Write(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(OwnCertError::Write(format!("{}: {e}", path.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Ca = rcgen::CertifiedIssuer<'static, rcgen::KeyPair>;

    fn ca() -> Ca {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, "Test CA");
        rcgen::CertifiedIssuer::self_signed(params, key).unwrap()
    }

    fn leaf(ca: &Ca, days: (i64, i64), alg: &'static rcgen::SignatureAlgorithm) -> (String, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate_for(alg).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["box.example".to_owned()]).unwrap();
        params.subject_alt_names.push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
        params.distinguished_name.push(rcgen::DnType::CommonName, "box.example");
        let now = OffsetDateTime::now_utc();
        params.not_before = now + time::Duration::days(days.0);
        params.not_after = now + time::Duration::days(days.1);
        (params.signed_by(&key, &**ca).unwrap().pem(), key)
    }

    #[test]
    fn a_matching_chain_and_key_are_described() {
        let ca = ca();
        let (chain, key) = leaf(&ca, (-1, 100), &rcgen::PKCS_ECDSA_P256_SHA256);
        let chain = format!("{chain}{}", ca.pem());
        let cert = validate(
            chain.as_bytes(),
            key.serialize_pem().as_bytes(),
            Source::Uploaded,
            OffsetDateTime::now_utc(),
        )
        .unwrap();
        assert_eq!(cert.info.dns_names, ["box.example"]);
        assert_eq!(cert.info.ip_addresses, ["127.0.0.1"]);
        assert_eq!(cert.info.chain_length, 2);
        assert!(cert.info.issuer.contains("Test CA"), "{}", cert.info.issuer);
        assert_eq!(cert.info.warning, None);
        assert_eq!(cert.info.sha256.len(), 32 * 3 - 1);
    }

    #[test]
    fn other_key_types_load() {
        let ca = ca();
        for alg in [&rcgen::PKCS_ECDSA_P384_SHA384, &rcgen::PKCS_ED25519] {
            let (chain, key) = leaf(&ca, (-1, 10), alg);
            let cert = validate(
                chain.as_bytes(),
                key.serialize_pem().as_bytes(),
                Source::Files,
                OffsetDateTime::now_utc(),
            )
            .unwrap();
            assert_eq!(cert.info.warning, Some("expires_soon"));
        }
    }

    #[test]
    fn refusals_are_typed() {
        let ca = ca();
        let now = OffsetDateTime::now_utc();
        let (chain, key) = leaf(&ca, (-1, 100), &rcgen::PKCS_ECDSA_P256_SHA256);
        let key = key.serialize_pem();
        let other = rcgen::KeyPair::generate().unwrap().serialize_pem();
        let v = |c: &str, k: &str| validate(c.as_bytes(), k.as_bytes(), Source::Uploaded, now).unwrap_err();
        assert!(matches!(v(&chain, &other), OwnCertError::KeyMismatch));
        assert!(matches!(v("garbage", &key), OwnCertError::NoCertificate));
        assert!(matches!(
            v("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", &key),
            OwnCertError::BadChain(_)
        ));
        assert!(matches!(v(&chain, "garbage"), OwnCertError::NoKey));
        let (old, old_key) = leaf(&ca, (-100, -1), &rcgen::PKCS_ECDSA_P256_SHA256);
        assert!(matches!(v(&old, &old_key.serialize_pem()), OwnCertError::Expired(_)));
        let (early, early_key) = leaf(&ca, (2, 100), &rcgen::PKCS_ECDSA_P256_SHA256);
        assert!(matches!(v(&early, &early_key.serialize_pem()), OwnCertError::NotYetValid(_)));
    }

    #[test]
    fn renewed_files_are_served_and_bad_ones_leave_the_served_one() {
        let dir = tempfile::tempdir().unwrap();
        let files = OwnCertFiles::new(dir.path());
        let now = OffsetDateTime::now_utc();
        let ca = ca();
        let write = |chain: &str, key: Option<&rcgen::KeyPair>| {
            std::fs::write(dir.path().join("chain.pem"), chain).unwrap();
            if let Some(key) = key {
                std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
            }
        };
        let (chain, key) = leaf(&ca, (-1, 100), &rcgen::PKCS_ECDSA_P256_SHA256);
        write(&chain, Some(&key));
        let first = files.from_files(Path::new("chain.pem"), Path::new("key.pem"), now).unwrap();
        // Any key serves as the box's here: only the owner's is looked at.
        let box_cert = Arc::new(crate::identity::CertResolver::new(first.key.clone()));
        let certs = crate::tls::HttpsCertificates::new(box_cert, Some(first.clone()));
        assert!(!reload_files(&files, &certs, now).unwrap(), "unchanged files change nothing");

        let (renewed, renewed_key) = leaf(&ca, (-1, 100), &rcgen::PKCS_ECDSA_P256_SHA256);
        write(&renewed, Some(&renewed_key));
        assert!(reload_files(&files, &certs, now).unwrap());
        let served = certs.own().unwrap().sha256;
        assert_ne!(served, first.info.sha256);

        // A renewal caught half written: the new chain with the old key.
        let (half, _) = leaf(&ca, (-1, 100), &rcgen::PKCS_ECDSA_P256_SHA256);
        write(&half, None);
        assert!(matches!(reload_files(&files, &certs, now), Err(OwnCertError::KeyMismatch)));
        assert_eq!(certs.own().unwrap().sha256, served, "the served one is kept");

        // Back to the box's through the API: a reload does not undo it.
        write(&chain, Some(&key));
        certs.set_own(None);
        assert!(!reload_files(&files, &certs, now).unwrap());
        assert!(certs.own().is_none());
        assert!(!certs.replace_own_if(&served, first), "nothing to replace");
    }

    #[test]
    fn the_choice_persists_and_paths_stay_inside() {
        let dir = tempfile::tempdir().unwrap();
        let files = OwnCertFiles::new(dir.path());
        let now = OffsetDateTime::now_utc();
        assert!(files.load(now).unwrap().is_none());
        let ca = ca();
        let (chain, key) = leaf(&ca, (-1, 100), &rcgen::PKCS_ECDSA_P256_SHA256);
        files.save_uploaded(&chain, &key.serialize_pem()).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(UPLOADED_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(files.load(now).unwrap().unwrap().info.source, Source::Uploaded);

        std::fs::create_dir(dir.path().join("tls")).unwrap();
        std::fs::write(dir.path().join("tls/chain.pem"), &chain).unwrap();
        std::fs::write(dir.path().join("tls/key.pem"), key.serialize_pem()).unwrap();
        let cert = files.from_files(Path::new("tls/chain.pem"), Path::new("tls/key.pem"), now).unwrap();
        files.save_files(&dir.path().join("tls/chain.pem"), Path::new("tls/key.pem")).unwrap();
        let stored = Choice::Files { chain_path: "tls/chain.pem".into(), key_path: "tls/key.pem".into() };
        assert_eq!(files.choice().unwrap(), Some(stored), "kept relative to the data directory");
        assert!(!dir.path().join(UPLOADED_FILE).exists());
        assert_eq!(files.load(now).unwrap().unwrap().info.sha256, cert.info.sha256);

        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("key.pem"), key.serialize_pem()).unwrap();
        let err = files.inside(&outside.path().join("key.pem")).unwrap_err();
        assert!(matches!(err, OwnCertError::Outside(..)), "{err}");
        assert!(matches!(files.inside(Path::new("../")).unwrap_err(), OwnCertError::Outside(..)));
        std::os::unix::fs::symlink(outside.path().join("key.pem"), dir.path().join("link.pem")).unwrap();
        assert!(matches!(files.inside(Path::new("link.pem")).unwrap_err(), OwnCertError::Outside(..)));

        files.clear().unwrap();
        assert!(files.load(now).unwrap().is_none());
    }
}
