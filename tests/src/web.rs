//! A bare HTTP/1.1 client for the web API tests: one request per
//! connection, over TLS that trusts the box certificate in the data
//! directory (its names are imbox.local and imbox), or over plain TCP.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// The body as it came (for binary bodies).
    pub bytes: Vec<u8>,
}

impl Answer {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The `error.code` of a JSON error.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"].as_str().unwrap_or_default().to_owned()
    }

    /// The session cookie's value from `Set-Cookie`.
    pub fn session_cookie(&self) -> Option<String> {
        let cookie = self.header("set-cookie")?;
        let value = cookie.split(';').next()?.strip_prefix("__Host-imbox=")?;
        Some(value.to_owned())
    }
}

/// Talks to one box, over HTTPS (`tls`) or plain HTTP.
#[derive(Clone)]
pub struct Http {
    addr: SocketAddr,
    tls: Option<TlsConnector>,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http").field("addr", &self.addr).field("tls", &self.tls.is_some()).finish()
    }
}

/// A TLS client configuration that trusts only `roots` and offers `alpn`.
pub fn client_config(roots: rustls::RootCertStore, alpn: &[&[u8]]) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

/// The box certificate in `data_dir`, as the only root.
fn box_roots(data_dir: &Path) -> rustls::RootCertStore {
    let pem = std::fs::read(data_dir.join("identity.crt")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(&pem).unwrap()).unwrap();
    roots
}

/// A TLS client that trusts only the box certificate in `data_dir`.
pub fn box_tls_connector(data_dir: &Path) -> TlsConnector {
    TlsConnector::from(Arc::new(client_config(box_roots(data_dir), &[])))
}

/// [`box_tls_connector`] offering the ALPN marker of clients that pin the
/// box key ([`imbox_protocol::PINNED_ALPN`], then `http/1.1`): served the
/// box key's certificate even when the owner installed one for browsers.
pub fn pinned_marker_connector(data_dir: &Path) -> TlsConnector {
    let alpn: &[&[u8]] = &[imbox_protocol::PINNED_ALPN, b"http/1.1"];
    TlsConnector::from(Arc::new(client_config(box_roots(data_dir), alpn)))
}

impl Http {
    /// HTTPS to `addr` through `tls`, which must accept the box's
    /// certificate for the name imbox.local.
    pub fn with_connector(addr: SocketAddr, tls: TlsConnector) -> Http {
        Http { addr, tls: Some(tls) }
    }

    /// HTTPS to `addr`, trusting the certificate in `data_dir`.
    pub fn https(data_dir: &Path, addr: SocketAddr) -> Http {
        Http { addr, tls: Some(box_tls_connector(data_dir)) }
    }

    /// Plain HTTP to `addr`.
    pub fn plain(addr: SocketAddr) -> Http {
        Http { addr, tls: None }
    }

    /// Sends one request; `headers` are added as given.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Answer {
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n", self.addr);
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        let body = body.unwrap_or("");
        if !body.is_empty() || !matches!(method, "GET" | "HEAD") {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        head.push_str(body);
        match &self.tls {
            Some(tls) => {
                let name = ServerName::try_from("imbox.local").unwrap();
                exchange(tls.connect(name, tcp).await.unwrap(), head.as_bytes()).await
            }
            None => exchange(tcp, head.as_bytes()).await,
        }
    }

    /// Sends one request with a binary body (with its Content-Length).
    pub async fn send_bytes(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Answer {
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n", self.addr);
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if !body.is_empty() || !matches!(method, "GET" | "HEAD") {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        match &self.tls {
            Some(tls) => {
                let name = ServerName::try_from("imbox.local").unwrap();
                exchange(tls.connect(name, tcp).await.unwrap(), &request).await
            }
            None => exchange(tcp, &request).await,
        }
    }

    /// Starts a request whose head announces all of `body` but sends only
    /// its first `send` bytes, then holds the connection open until the
    /// peer goes away: an upload cut off by whatever happens to the server.
    pub async fn send_partial(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        send: usize,
    ) {
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let mut request = head.into_bytes();
        request.extend_from_slice(&body[..send.min(body.len())]);
        async fn hold<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, request: &[u8]) {
            if stream.write_all(request).await.is_ok() && stream.flush().await.is_ok() {
                let mut sink = Vec::new();
                let _ = stream.read_to_end(&mut sink).await;
            }
        }
        match &self.tls {
            Some(tls) => {
                let name = ServerName::try_from("imbox.local").unwrap();
                hold(tls.connect(name, tcp).await.unwrap(), &request).await;
            }
            None => hold(tcp, &request).await,
        }
    }

    /// GET with a session cookie (if any).
    pub async fn get(&self, path: &str, cookie: Option<&str>) -> Answer {
        let cookie = cookie.map(|c| format!("__Host-imbox={c}"));
        let headers: Vec<(&str, &str)> = cookie.iter().map(|c| ("Cookie", c.as_str())).collect();
        self.send("GET", path, &headers, None).await
    }

    /// A JSON request with a session cookie and CSRF token (either may be
    /// absent, to test that they are required), marked `Sec-Fetch-Site:
    /// same-origin` as a browser marks the box's own pages' requests.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        cookie: Option<&str>,
        csrf: Option<&str>,
        body: serde_json::Value,
    ) -> Answer {
        let cookie = cookie.map(|c| format!("__Host-imbox={c}"));
        let mut headers = vec![("Content-Type", "application/json"), ("Sec-Fetch-Site", "same-origin")];
        if let Some(cookie) = &cookie {
            headers.push(("Cookie", cookie));
        }
        if let Some(csrf) = csrf {
            headers.push(("X-CSRF-Token", csrf));
        }
        self.send(method, path, &headers, Some(&body.to_string())).await
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, request: &[u8]) -> Answer {
    stream.write_all(request).await.unwrap();
    stream.flush().await.unwrap();
    let mut raw = Vec::new();
    // A TLS peer that closes without close_notify is fine for a test.
    let _ = stream.read_to_end(&mut raw).await;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").map_or(raw.len(), |at| at + 4);
    let bytes = raw[split..].to_vec();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status =
        lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Answer { status, headers, body: body.to_owned(), bytes }
}
