//! The pairing URI: what the QR code on the setup page carries.
//!
//! ```text
//! imbox:pair?v=1&fp=sha256:<43 chars>&host=192.0.2.10&host=imbox.local&quic=443&wss=443&invite=<token>&name=Kitchen%20box
//! ```
//!
//! `host` may repeat (addresses in the order to try); `quic` and `wss` are
//! the ports of the two transports (at least one is present); `invite` and
//! `name` are optional. Values are percent-encoded. Unknown parameters are
//! ignored, so later versions can add some.
//!
//! The same parameters also travel as the **join link** of the web chat
//! client, `https://HOST[:PORT]/join#v=1&fp=…`: opened in a browser it is the
//! page that registers the invited person; read by an app it is the pairing
//! URI (the fragment never reaches the box or a log). So an invite's QR code
//! works for a phone with or without the app.

use std::fmt;
use std::str::FromStr;

use crate::identity::Fingerprint;

/// A parsed pairing URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairingUri {
    /// Host names or IP addresses of the box, in the order to try.
    pub hosts: Vec<String>,
    /// The QUIC port, if the box serves QUIC.
    pub quic_port: Option<u16>,
    /// The HTTPS (wss://) port, if the box serves it.
    pub wss_port: Option<u16>,
    /// The box's key fingerprint, to pin.
    pub fingerprint: Fingerprint,
    /// A one-time invite token.
    pub invite: Option<String>,
    /// The box's name, for display.
    pub name: Option<String>,
}

/// Why a pairing URI could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PairingError {
    /// Not a URI of the form `imbox:pair?…` or `https://HOST/join#…`.
    #[error(
        "not an imbox pairing URI (it should start with imbox:pair? or be an https://…/join#… link): {0}"
    )]
    NotPairing(String),
    /// A version this client does not read.
    #[error("pairing URI version {0} is not supported: update the client")]
    Version(String),
    /// A required part is missing or unreadable.
    #[error("the pairing URI has no valid {0}")]
    Missing(&'static str),
}

impl PairingUri {
    /// The server URLs to try, QUIC first (it resumes faster and survives
    /// network changes), then WebSocket over TLS, for each host.
    pub fn server_urls(&self) -> Vec<String> {
        let mut urls = Vec::new();
        for host in &self.hosts {
            let host =
                if host.contains(':') && !host.starts_with('[') { format!("[{host}]") } else { host.clone() };
            if let Some(port) = self.quic_port {
                urls.push(format!("quic://{host}:{port}"));
            }
            if let Some(port) = self.wss_port {
                urls.push(format!("wss://{host}:{port}"));
            }
        }
        urls
    }

    /// The web join link for this URI at `origin` (`https://host[:port]`, the
    /// address the inviter's browser used): the pairing parameters in the
    /// fragment.
    pub fn join_link(&self, origin: &str) -> String {
        let text = self.to_string();
        let query = text.strip_prefix("imbox:pair?").unwrap_or(&text);
        format!("{}/join#{query}", origin.trim_end_matches('/'))
    }
}

impl fmt::Display for PairingUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query.append_pair("v", "1");
        query.append_pair("fp", &self.fingerprint.to_string());
        for host in &self.hosts {
            query.append_pair("host", host);
        }
        if let Some(port) = self.quic_port {
            query.append_pair("quic", &port.to_string());
        }
        if let Some(port) = self.wss_port {
            query.append_pair("wss", &port.to_string());
        }
        if let Some(invite) = &self.invite {
            query.append_pair("invite", invite);
        }
        if let Some(name) = &self.name {
            query.append_pair("name", name);
        }
        write!(f, "imbox:pair?{}", query.finish())
    }
}

impl FromStr for PairingUri {
    type Err = PairingError;

    fn from_str(text: &str) -> Result<PairingUri, PairingError> {
        let not = || PairingError::NotPairing(text.chars().take(80).collect());
        let mut parsed = url::Url::parse(text.trim()).map_err(|_| not())?;
        if parsed.scheme() == "https" && parsed.path() == "/join" {
            // A join link: its fragment is the pairing query.
            let fragment = parsed.fragment().ok_or_else(not)?.to_owned();
            parsed = url::Url::parse(&format!("imbox:pair?{fragment}")).map_err(|_| not())?;
        }
        if parsed.scheme() != "imbox" || parsed.path() != "pair" {
            return Err(not());
        }
        let mut uri = PairingUri {
            hosts: Vec::new(),
            quic_port: None,
            wss_port: None,
            fingerprint: Fingerprint([0; 32]),
            invite: None,
            name: None,
        };
        let mut fingerprint = None;
        for (key, value) in parsed.query_pairs() {
            match key.as_ref() {
                "v" if value != "1" => return Err(PairingError::Version(value.into_owned())),
                "fp" => {
                    fingerprint = Some(value.parse().map_err(|_| PairingError::Missing("fingerprint (fp)"))?)
                }
                "host" if !value.is_empty() => uri.hosts.push(value.into_owned()),
                "quic" => {
                    uri.quic_port = Some(value.parse().map_err(|_| PairingError::Missing("QUIC port"))?)
                }
                "wss" => uri.wss_port = Some(value.parse().map_err(|_| PairingError::Missing("wss port"))?),
                "invite" => uri.invite = Some(value.into_owned()),
                "name" => uri.name = Some(value.into_owned()),
                _ => {}
            }
        }
        uri.fingerprint = fingerprint.ok_or(PairingError::Missing("fingerprint (fp)"))?;
        if uri.hosts.is_empty() {
            return Err(PairingError::Missing("host"));
        }
        if uri.quic_port.is_none() && uri.wss_port.is_none() {
            return Err(PairingError::Missing("port (quic or wss)"));
        }
        Ok(uri)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PairingUri {
        PairingUri {
            hosts: vec!["192.0.2.10".into(), "imbox.local".into(), "fe80::1".into()],
            quic_port: Some(443),
            wss_port: Some(8443),
            fingerprint: Fingerprint::of_spki(b"key"),
            invite: Some("tok-en_1".into()),
            name: Some("Kitchen box & co".into()),
        }
    }

    #[test]
    fn round_trips() {
        let uri = sample();
        let text = uri.to_string();
        assert!(text.starts_with("imbox:pair?v=1&fp=sha256"));
        assert_eq!(text.parse::<PairingUri>(), Ok(uri));
    }

    #[test]
    fn a_join_link_carries_the_same_uri() {
        let uri = sample();
        let link = uri.join_link("https://imbox.local:8443/");
        assert!(link.starts_with("https://imbox.local:8443/join#v=1&fp=sha256"), "{link}");
        assert_eq!(link.parse::<PairingUri>(), Ok(uri));
        for bad in ["https://imbox.local/join", "https://imbox.local/chat#v=1", "http://imbox.local/join#v=1"]
        {
            assert!(matches!(bad.parse::<PairingUri>(), Err(PairingError::NotPairing(_))), "{bad}");
        }
    }

    #[test]
    fn lists_quic_then_wss_for_each_host() {
        let urls = sample().server_urls();
        assert_eq!(urls[0], "quic://192.0.2.10:443");
        assert_eq!(urls[1], "wss://192.0.2.10:8443");
        assert_eq!(urls[4], "quic://[fe80::1]:443");
    }

    #[test]
    fn refuses_incomplete_uris() {
        assert!(matches!("https://example.org".parse::<PairingUri>(), Err(PairingError::NotPairing(_))));
        let fp = Fingerprint::of_spki(b"key");
        assert_eq!(
            format!("imbox:pair?v=1&fp={fp}&quic=443").parse::<PairingUri>(),
            Err(PairingError::Missing("host"))
        );
        assert!(matches!(
            "imbox:pair?v=2&host=a&quic=1".parse::<PairingUri>(),
            Err(PairingError::Version(_))
        ));
        assert!(format!("imbox:pair?v=1&fp={fp}&host=a").parse::<PairingUri>().is_err());
    }
}
