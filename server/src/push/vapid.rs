//! The box's VAPID key (RFC 8292): an ECDSA P-256 key made on first start
//! and kept in the data directory, with which every push request is
//! signed, so that a push service (and the device's subscription, which
//! names the key) knows the requests come from this box.
//!
//! The JWT is built here rather than with a JWT crate: it is three fixed
//! fields, and `web-push-native`'s VAPID helper leaves the port out of
//! `aud`, which must be the endpoint's whole origin.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rcgen::{KeyPair, PublicKeyData};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

/// How long a signature is valid: RFC 8292 allows at most 24 hours.
pub const TOKEN_LIFETIME_S: u64 = 12 * 3600;

/// Why the VAPID key could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum VapidError {
    /// The key file exists but cannot be read.
    #[error("cannot read the push (VAPID) key {path}: {source}; check its owner and permissions")]
    Unreadable { path: PathBuf, source: std::io::Error },
    /// The key file is not an ECDSA P-256 key.
    #[error(
        "the push (VAPID) key {path} is damaged ({reason}); it was not replaced, because every push \
         subscription names it: restore it from a backup, or move it away and start imboxd again \
         (every device must then turn push on again)"
    )]
    Damaged { path: PathBuf, reason: String },
    /// The key file could not be written.
    #[error("cannot write the push (VAPID) key {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    /// Key generation failed.
    #[error("cannot make the push (VAPID) key: {0}")]
    Generate(String),
}

/// The key pair, ready to sign.
pub struct Vapid {
    key: EcdsaKeyPair,
    /// The uncompressed public point, base64url: the `k` of the header and
    /// the `applicationServerKey` of browsers.
    public: String,
    rng: SystemRandom,
}

impl std::fmt::Debug for Vapid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vapid").field("public", &self.public).finish_non_exhaustive()
    }
}

impl Vapid {
    /// Loads `path`, making the key (mode 0600) when there is none.
    pub fn load_or_create(path: &Path) -> Result<Vapid, VapidError> {
        let damaged = |reason: String| VapidError::Damaged { path: path.to_owned(), reason };
        let pem = match std::fs::read_to_string(path) {
            Ok(pem) => pem,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
                    .map_err(|e| VapidError::Generate(e.to_string()))?;
                let pem = key.serialize_pem();
                crate::files::write_whole(path, pem.as_bytes(), 0o600)
                    .map_err(|source| VapidError::Write { path: path.to_owned(), source })?;
                tracing::info!(path = %path.display(), "generated the push (VAPID) key");
                pem
            }
            Err(source) => return Err(VapidError::Unreadable { path: path.to_owned(), source }),
        };
        let pair = KeyPair::from_pem(&pem).map_err(|e| damaged(e.to_string()))?;
        if !pair.is_compatible(&rcgen::PKCS_ECDSA_P256_SHA256) {
            return Err(damaged("it is not an ECDSA P-256 key".into()));
        }
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pair.serialize_der(), &rng)
            .map_err(|e| damaged(e.to_string()))?;
        let public = URL_SAFE_NO_PAD.encode(pair.der_bytes());
        Ok(Vapid { key, public, rng })
    }

    /// The public key, base64url of the uncompressed point (65 bytes).
    pub fn public_key(&self) -> &str {
        &self.public
    }

    /// The `Authorization` header for a request to `origin` (scheme, host
    /// and port of the endpoint), valid until `now_s + TOKEN_LIFETIME_S`.
    pub fn authorization(&self, origin: &str, contact: &str, now_s: u64) -> Result<String, VapidError> {
        let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = serde_json::json!({
            "aud": origin,
            "exp": now_s + TOKEN_LIFETIME_S,
            "sub": contact,
        });
        let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signed = format!("{header}.{claims}");
        let signature = self
            .key
            .sign(&self.rng, signed.as_bytes())
            .map_err(|_| VapidError::Generate("signing failed".into()))?;
        let token = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()));
        Ok(format!("vapid t={token}, k={}", self.public))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};

    #[test]
    fn the_key_is_kept_and_signs_verifiable_tokens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("push-vapid.pem");
        let first = Vapid::load_or_create(&path).expect("made");
        let again = Vapid::load_or_create(&path).expect("loaded");
        assert_eq!(first.public_key(), again.public_key());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777, 0o600);
        let public = URL_SAFE_NO_PAD.decode(first.public_key()).expect("b64");
        assert_eq!((public.len(), public[0]), (65, 4));

        let header =
            first.authorization("https://push.example:8443", "mailto:a@b.example", 1000).expect("sign");
        let rest = header.strip_prefix("vapid t=").expect("scheme");
        let (token, k) = rest.split_once(", k=").expect("k");
        assert_eq!(k, first.public_key());
        let (signed, signature) = token.rsplit_once('.').expect("three parts");
        let signature = URL_SAFE_NO_PAD.decode(signature).expect("b64");
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &public)
            .verify(signed.as_bytes(), &signature)
            .expect("the signature verifies");
        let claims = URL_SAFE_NO_PAD.decode(signed.split('.').nth(1).expect("claims")).expect("b64");
        let claims: serde_json::Value = serde_json::from_slice(&claims).expect("json");
        assert_eq!(claims["aud"], "https://push.example:8443");
        assert_eq!(claims["exp"], 1000 + TOKEN_LIFETIME_S);
        assert_eq!(claims["sub"], "mailto:a@b.example");
    }

    #[test]
    fn a_damaged_key_is_refused_not_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("push-vapid.pem");
        std::fs::write(&path, "not a key").expect("write");
        assert!(matches!(Vapid::load_or_create(&path), Err(VapidError::Damaged { .. })));
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "not a key");
    }
}
