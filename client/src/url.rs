//! Server addresses as people type them: `ws://imbox.local:8080`,
//! `wss://imbox.local:8443`, `quic://192.0.2.10:443`.

use std::fmt;

use imbox_protocol::WEBSOCKET_PATH;

use crate::error::ClientError;

/// How to reach a server. The TLS schemes ([`Scheme::Wss`], [`Scheme::Quic`])
/// authenticate the box by its pinned key, so connecting to them needs a
/// fingerprint ([`crate::ConnectOptions::pin`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// WebSocket over plain TCP: no encryption, for loopback and tests.
    Ws,
    /// WebSocket over TLS on imboxd's HTTPS listener.
    Wss,
    /// QUIC with ALPN `imbox/1`: one bidirectional stream of length-prefixed
    /// frames.
    Quic,
}

impl Scheme {
    /// The scheme as written in a URL.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Ws => "ws",
            Scheme::Wss => "wss",
            Scheme::Quic => "quic",
        }
    }

    /// Whether the transport is encrypted, and so needs a pinned key.
    pub fn is_tls(self) -> bool {
        matches!(self, Scheme::Wss | Scheme::Quic)
    }

    fn default_port(self) -> u16 {
        match self {
            Scheme::Ws => 80,
            Scheme::Wss | Scheme::Quic => 443,
        }
    }
}

/// A parsed server URL: scheme, host, port and (for WebSocket) the path of
/// imboxd's WebSocket endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUrl {
    scheme: Scheme,
    host: String,
    port: u16,
    /// Empty for QUIC, which has no path.
    path: String,
}

impl ServerUrl {
    /// Parses `ws://HOST[:PORT][/PATH]`, `wss://HOST[:PORT][/PATH]` or
    /// `quic://HOST[:PORT]`. The WebSocket path `/ws` is appended when the
    /// URL does not end with it, so `ws://box:8080` and `ws://box:8080/ws`
    /// name the same endpoint, and a reverse-proxy prefix
    /// (`wss://proxy/imbox`) keeps working (`wss://proxy/imbox/ws`). QUIC
    /// has no path. The default port is 80 for `ws` and 443 otherwise.
    ///
    /// ```
    /// use imbox_client::ServerUrl;
    /// let url = ServerUrl::parse("ws://127.0.0.1:8080").unwrap();
    /// assert_eq!(url.to_string(), "ws://127.0.0.1:8080/ws");
    /// let url = ServerUrl::parse("quic://imbox.local").unwrap();
    /// assert_eq!(url.to_string(), "quic://imbox.local:443");
    /// ```
    pub fn parse(text: &str) -> Result<ServerUrl, ClientError> {
        let invalid =
            |reason: &str| ClientError::InvalidUrl { url: text.to_owned(), reason: reason.to_owned() };
        let trimmed = text.trim();
        let Some((scheme, rest)) = trimmed.split_once("://") else {
            return Err(invalid("the scheme is missing"));
        };
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "ws" => Scheme::Ws,
            "wss" => Scheme::Wss,
            "quic" => Scheme::Quic,
            "http" => return Err(invalid("imbox clients speak WebSocket: write ws:// instead")),
            "https" => return Err(invalid("imbox clients speak WebSocket or QUIC: write wss:// instead")),
            _ => return Err(invalid("unknown scheme")),
        };
        if rest.contains(['?', '#']) {
            return Err(invalid("a query or fragment is not allowed"));
        }
        let (authority, path) = match rest.find('/') {
            Some(slash) => rest.split_at(slash),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(invalid("user names and passwords do not belong in the URL"));
        }
        let (host, port) = split_host_port(authority).map_err(invalid)?;
        let port = match port {
            None => scheme.default_port(),
            Some(port) => match port.parse::<u16>() {
                Ok(0) | Err(_) => return Err(invalid("the port must be a number from 1 to 65535")),
                Ok(port) => port,
            },
        };
        if host.is_empty() {
            return Err(invalid("the host is missing"));
        }
        let is_ipv6 = host.contains(':');
        if !is_ipv6 && !host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')) {
            return Err(invalid("the host may only contain letters, digits, '-', '.' and '_'"));
        }
        if path.contains(char::is_whitespace) {
            return Err(invalid("the path may not contain spaces"));
        }
        let path = match scheme {
            Scheme::Quic if !path.trim_end_matches('/').is_empty() => {
                return Err(invalid("a quic:// URL has no path"));
            }
            Scheme::Quic => String::new(),
            Scheme::Ws | Scheme::Wss => websocket_path(path),
        };
        Ok(ServerUrl { scheme, host: host.to_ascii_lowercase(), port, path })
    }

    /// The transport the URL names.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The host name or address (IPv6 without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, the scheme's default when the URL had none.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The WebSocket path (always ending in `/ws`); empty for QUIC.
    pub fn path(&self) -> &str {
        &self.path
    }
}

/// Splits `host:port`, `host`, `[v6]:port` or `[v6]`.
fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), &'static str> {
    if let Some(bracketed) = authority.strip_prefix('[') {
        let Some((host, after)) = bracketed.split_once(']') else {
            return Err("an IPv6 address needs a closing ']'");
        };
        return match after {
            "" => Ok((host, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((host, Some(port))),
                None => Err("unexpected text after the IPv6 address"),
            },
        };
    }
    match authority.split_once(':') {
        None => Ok((authority, None)),
        Some((_, port)) if port.contains(':') => Err("write an IPv6 address in brackets: ws://[::1]:8080"),
        Some((host, port)) => Ok((host, Some(port))),
    }
}

fn websocket_path(path: &str) -> String {
    let base = path.trim_end_matches('/');
    if base.ends_with(WEBSOCKET_PATH) {
        base.to_owned()
    } else {
        format!("{base}{WEBSOCKET_PATH}")
    }
}

impl fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = self.scheme.as_str();
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}{}", self.host, self.port, self.path)
        } else {
            write!(f, "{scheme}://{}:{}{}", self.host, self.port, self.path)
        }
    }
}

impl std::str::FromStr for ServerUrl {
    type Err = ClientError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        ServerUrl::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> String {
        match ServerUrl::parse(text) {
            Ok(url) => url.to_string(),
            Err(err) => panic!("{text}: {err}"),
        }
    }

    #[test]
    fn websocket_path_is_appended_when_missing() {
        assert_eq!(parsed("ws://127.0.0.1:8080"), "ws://127.0.0.1:8080/ws");
        assert_eq!(parsed("ws://127.0.0.1:8080/"), "ws://127.0.0.1:8080/ws");
        assert_eq!(parsed("ws://127.0.0.1:8080/ws"), "ws://127.0.0.1:8080/ws");
        assert_eq!(parsed("ws://127.0.0.1:8080/ws/"), "ws://127.0.0.1:8080/ws");
        assert_eq!(parsed("ws://proxy.lan/imbox"), "ws://proxy.lan:80/imbox/ws");
        assert_eq!(parsed(" WS://Imbox.Local:9000 "), "ws://imbox.local:9000/ws");
    }

    #[test]
    fn ipv6_hosts_need_brackets() {
        assert_eq!(parsed("ws://[::1]:8080"), "ws://[::1]:8080/ws");
        let url = ServerUrl::parse("ws://[::1]").expect("bracketed IPv6");
        assert_eq!((url.host(), url.port()), ("::1", 80));
        assert!(ServerUrl::parse("ws://::1:8080").is_err());
        assert!(ServerUrl::parse("ws://[::1:8080").is_err());
    }

    #[test]
    fn bad_urls_are_refused_with_a_reason() {
        for bad in [
            "",
            "imbox.local:8080",
            "http://imbox.local",
            "ftp://x",
            "ws://",
            "ws://:8080",
            "ws://host:0",
            "ws://host:99999",
            "ws://host:port",
            "ws://us er@host",
            "ws://a@host:1",
            "ws://host:1/ws?x=1",
            "ws://host:1/w s",
            "quic://host:1/ws",
        ] {
            let err = ServerUrl::parse(bad).expect_err(bad);
            assert!(matches!(err, ClientError::InvalidUrl { .. }), "{bad}: {err}");
            assert!(err.to_string().contains("expected ws://HOST:PORT"));
        }
    }

    #[test]
    fn tls_transports_parse() {
        let quic = ServerUrl::parse("quic://box.lan:4433").expect("quic URL");
        assert_eq!((quic.scheme(), quic.to_string().as_str()), (Scheme::Quic, "quic://box.lan:4433"));
        assert_eq!(quic.path(), "");
        assert_eq!(parsed("QUIC://Box.Lan:4433/"), "quic://box.lan:4433");
        assert_eq!(parsed("quic://[fe80::1]:443"), "quic://[fe80::1]:443");
        assert_eq!(parsed("quic://box.lan"), "quic://box.lan:443");

        let wss = ServerUrl::parse("wss://box.lan").expect("wss URL");
        assert_eq!((wss.scheme(), wss.to_string().as_str()), (Scheme::Wss, "wss://box.lan:443/ws"));
        assert_eq!(parsed("wss://192.0.2.10:8443"), "wss://192.0.2.10:8443/ws");
        assert_eq!(parsed("wss://192.0.2.10:8443/ws"), "wss://192.0.2.10:8443/ws");
        assert_eq!(parsed("wss://proxy.lan/imbox/"), "wss://proxy.lan:443/imbox/ws");

        assert!(Scheme::Wss.is_tls() && Scheme::Quic.is_tls() && !Scheme::Ws.is_tls());
    }

    #[test]
    fn pairing_uri_urls_parse() {
        let uri: imbox_protocol::PairingUri = format!(
            "imbox:pair?v=1&fp={}&host=192.0.2.10&host=fe80::1&quic=443&wss=8443",
            imbox_protocol::Fingerprint::of_spki(b"key")
        )
        .parse()
        .expect("pairing URI");
        let urls: Vec<String> = uri.server_urls().iter().map(|url| parsed(url)).collect();
        assert_eq!(
            urls,
            [
                "quic://192.0.2.10:443",
                "wss://192.0.2.10:8443/ws",
                "quic://[fe80::1]:443",
                "wss://[fe80::1]:8443/ws"
            ]
        );
    }

    #[test]
    fn https_urls_get_a_hint() {
        let err = ServerUrl::parse("https://box.lan").expect_err("https");
        assert!(err.to_string().contains("write wss:// instead"), "{err}");
    }
}
