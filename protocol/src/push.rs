//! Push registrations: a device asks the box to wake it with an RFC 8291
//! encrypted, VAPID-signed (RFC 8292) POST to an endpoint when something
//! arrives while it has no session (docs/PROTOCOL.md, "Push").
//!
//! The checks here need no cryptography, so that a client can run them
//! before it asks; the box also checks that `p256dh` is a point on the
//! P-256 curve.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

/// Which kind of push service the endpoint belongs to. Both are sent the
/// same way (RFC 8291 encryption, VAPID); the kind is kept for display.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushKind {
    /// A browser's push service (`PushManager.subscribe`).
    Webpush,
    /// A UnifiedPush distributor (ntfy, NextPush…) on an Android phone.
    Unifiedpush,
}

impl PushKind {
    /// The name on the wire and on the admin pages.
    pub fn as_str(self) -> &'static str {
        match self {
            PushKind::Webpush => "webpush",
            PushKind::Unifiedpush => "unifiedpush",
        }
    }
}

/// The longest endpoint URL accepted, in bytes.
pub const MAX_ENDPOINT_BYTES: usize = 1024;

/// The length of `p256dh` decoded: an uncompressed P-256 point.
pub const P256DH_BYTES: usize = 65;

/// The length of `auth` decoded.
pub const AUTH_BYTES: usize = 16;

/// Why a registration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The endpoint is longer than [`MAX_ENDPOINT_BYTES`].
    #[error("the push endpoint has {0} bytes; the limit is {MAX_ENDPOINT_BYTES}")]
    EndpointTooLong(usize),
    /// The endpoint is not an absolute `https://` URL with a host.
    #[error("the push endpoint must be an https:// URL with a host (got {0:?})")]
    EndpointNotHttps(String),
    /// `p256dh` is not the base64url of a 65-byte uncompressed point.
    #[error("p256dh must be the unpadded base64url of a 65-byte uncompressed P-256 point (0x04, x, y)")]
    BadP256dh,
    /// `auth` is not the base64url of 16 bytes.
    #[error("auth must be the unpadded base64url of 16 random bytes")]
    BadAuth,
}

/// A registration as the box keeps it: the endpoint, checked, and the keys
/// decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedRegistration {
    pub endpoint: url::Url,
    pub p256dh: [u8; P256DH_BYTES],
    pub auth: [u8; AUTH_BYTES],
}

/// Decodes base64url, padded or not (browsers hand out both).
fn decode_b64url(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok()
}

/// Checks a registration's fields as the box does, but for the curve.
pub fn check_registration(
    endpoint: &str,
    p256dh: &str,
    auth: &str,
) -> Result<CheckedRegistration, PushError> {
    if endpoint.len() > MAX_ENDPOINT_BYTES {
        return Err(PushError::EndpointTooLong(endpoint.len()));
    }
    let shown = || endpoint.chars().take(80).collect::<String>();
    let url = url::Url::parse(endpoint).map_err(|_| PushError::EndpointNotHttps(shown()))?;
    if url.scheme() != "https" || url.host_str().is_none_or(str::is_empty) || !url.username().is_empty() {
        return Err(PushError::EndpointNotHttps(shown()));
    }
    let p256dh = decode_b64url(p256dh)
        .and_then(|b| <[u8; P256DH_BYTES]>::try_from(b).ok())
        .filter(|b| b[0] == 0x04)
        .ok_or(PushError::BadP256dh)?;
    let auth =
        decode_b64url(auth).and_then(|b| <[u8; AUTH_BYTES]>::try_from(b).ok()).ok_or(PushError::BadAuth)?;
    Ok(CheckedRegistration { endpoint: url, p256dh, auth })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "BLn9b-VR0ca83knDNZ32dCHGyjJp-1riX9ZTN40MqV8K_LpQmLqxC_DoHvqvFXO_nGdAB4W9dogZb_sM-uV4JbY";
    const AUTH: &str = "_ordMnz7uTCmrpBTeUV4Bw";

    #[test]
    fn a_browser_subscription_passes() {
        let checked = check_registration("https://push.example.org:8443/wpush/v2/abc", KEY, AUTH)
            .expect("a valid subscription");
        assert_eq!(checked.p256dh[0], 4);
        assert_eq!(checked.endpoint.port(), Some(8443));
        // Padded base64url, as some browsers give it, is the same key.
        assert!(check_registration("https://p.example/x", &format!("{KEY}="), &format!("{AUTH}==")).is_ok());
    }

    #[test]
    fn bad_fields_get_their_own_errors() {
        let long = format!("https://p.example/{}", "a".repeat(MAX_ENDPOINT_BYTES));
        assert!(matches!(check_registration(&long, KEY, AUTH), Err(PushError::EndpointTooLong(_))));
        for endpoint in
            ["http://p.example/x", "p.example/x", "https://", "https://u:p@p.example/x", "mailto:a@b"]
        {
            assert!(
                matches!(check_registration(endpoint, KEY, AUTH), Err(PushError::EndpointNotHttps(_))),
                "{endpoint}"
            );
        }
        assert_eq!(check_registration("https://p.example/x", &KEY[..40], AUTH), Err(PushError::BadP256dh));
        let compressed = URL_SAFE_NO_PAD.encode([2u8; 65]);
        assert_eq!(check_registration("https://p.example/x", &compressed, AUTH), Err(PushError::BadP256dh));
        assert_eq!(check_registration("https://p.example/x", KEY, "c2hvcnQ"), Err(PushError::BadAuth));
        assert_eq!(check_registration("https://p.example/x", KEY, "!!!"), Err(PushError::BadAuth));
    }

    #[test]
    fn kinds_are_named_on_the_wire() {
        for kind in [PushKind::Webpush, PushKind::Unifiedpush] {
            let bytes = rmp_serde::to_vec(&kind).expect("encodes");
            assert_eq!(rmp_serde::from_slice::<String>(&bytes).ok().as_deref(), Some(kind.as_str()));
        }
    }
}
