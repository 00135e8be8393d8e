//! The box's identity: the SHA-256 of its public key.
//!
//! A box has no CA-signed certificate, so clients pin its key instead: the
//! SHA-256 of the key's DER SubjectPublicKeyInfo, carried in the pairing URI
//! and checked on every TLS handshake. Certificates may be renewed (the key
//! stays), host names and addresses may change; the fingerprint does not.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use sha2::{Digest, Sha256};

/// The SHA-256 of a DER-encoded SubjectPublicKeyInfo.
///
/// Written `sha256:` followed by the 32 bytes in unpadded base64url (43
/// characters). Parsing also accepts 64 hexadecimal digits, with or without
/// `:` between byte pairs, as people may copy them from elsewhere.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

/// Why a fingerprint could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} is not a key fingerprint: expected sha256: followed by 43 base64url characters (as `imboxd identity` prints)")]
pub struct BadFingerprint(pub String);

impl Fingerprint {
    /// The fingerprint of a DER SubjectPublicKeyInfo.
    pub fn of_spki(spki_der: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(spki_der).into())
    }

    /// Hexadecimal with colons, the way certificate viewers show digests.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Fingerprint {
    type Err = BadFingerprint;

    fn from_str(text: &str) -> Result<Fingerprint, BadFingerprint> {
        let bad = || BadFingerprint(text.to_owned());
        let trimmed = text.trim();
        if let Some(b64) = trimmed.strip_prefix("sha256:") {
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(b64).map_err(|_| bad())?;
            return bytes.try_into().map(Fingerprint).map_err(|_| bad());
        }
        let hex: String = trimmed.chars().filter(|c| *c != ':').collect();
        if hex.len() != 64 || !hex.is_ascii() {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Fingerprint(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_accepts_hex() {
        let fp = Fingerprint::of_spki(b"not really a key");
        let text = fp.to_string();
        assert!(text.starts_with("sha256:") && text.len() == 7 + 43);
        assert_eq!(text.parse::<Fingerprint>(), Ok(fp));
        assert_eq!(fp.to_hex().parse::<Fingerprint>(), Ok(fp));
        assert_eq!(fp.to_hex().replace(':', "").to_lowercase().parse::<Fingerprint>(), Ok(fp));
    }

    #[test]
    fn rejects_what_is_not_a_fingerprint() {
        for bad in ["", "sha256:", "sha256:abc", "xyz", &"0".repeat(63), &"g".repeat(64)] {
            assert!(bad.parse::<Fingerprint>().is_err(), "{bad:?}");
        }
    }
}
