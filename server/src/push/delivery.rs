//! One push request over HTTPS: TCP, TLS checked against the web roots
//! (`webpki-roots`) and the configured extra CA, HTTP/1.1 with hyper, one
//! connection per request (wake-ups are rare and go to many hosts: nothing
//! is worth keeping open).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue, CONTENT_LENGTH, HOST, RETRY_AFTER};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Why a push request failed before the push service answered it.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// No TCP connection could be made.
    #[error("cannot reach {host}: {reason} — the box needs internet access to reach this push service")]
    Connect { host: String, reason: String },
    /// The TLS handshake failed (often: a certificate no trusted CA signed).
    #[error("the secure connection to {host} failed: {reason} — for a push service with a private CA, set push.extra_ca_file")]
    Tls { host: String, reason: String },
    /// The request was sent but no whole answer came.
    #[error("{host} did not answer: {reason}")]
    Http { host: String, reason: String },
    /// The push service took longer than `push.request_timeout_ms`.
    #[error("{host} did not answer within {}s — the push service may be down or unreachable", after.as_secs())]
    Timeout { host: String, after: Duration },
}

/// Why the extra CA file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// The file cannot be read.
    #[error("cannot read push.extra_ca_file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    /// The file holds no usable certificate.
    #[error("push.extra_ca_file {path} holds no usable PEM certificate ({reason}); give a PEM file of CA certificates or set it to \"\"")]
    Bad { path: String, reason: String },
}

/// What the push service answered.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    /// `Retry-After` in seconds, when given as a number (push services
    /// send seconds; an HTTP date is taken as absent).
    pub retry_after: Option<Duration>,
}

/// A push request ready to go.
#[derive(Debug)]
pub struct PushRequest {
    pub url: url::Url,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Vec<u8>,
}

/// The HTTPS client of the push sender.
#[derive(Clone)]
pub struct Delivery {
    tls: TlsConnector,
    connect_timeout: Duration,
    request_timeout: Duration,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .finish_non_exhaustive()
    }
}

impl Delivery {
    /// A client trusting the web roots and, when given, the CAs in
    /// `extra_ca` (PEM).
    pub fn new(
        extra_ca: Option<&Path>,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> Result<Delivery, CaError> {
        let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        if let Some(path) = extra_ca {
            let shown = path.display().to_string();
            let pem = std::fs::read(path).map_err(|source| CaError::Read { path: shown.clone(), source })?;
            let bad = |reason: String| CaError::Bad { path: shown.clone(), reason };
            let certs: Vec<_> = rustls_pki_types::pem::PemObject::pem_slice_iter(&pem)
                .collect::<Result<_, _>>()
                .map_err(|e| bad(format!("{e:?}")))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(bad("no certificate in it could be used".into()));
            }
        }
        let config = ClientConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| CaError::Bad { path: String::new(), reason: e.to_string() })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Delivery { tls: TlsConnector::from(Arc::new(config)), connect_timeout, request_timeout })
    }

    /// Sends one request and reads the status (the body is read and
    /// dropped, up to a bound).
    pub async fn send(&self, request: &PushRequest) -> Result<Answer, DeliveryError> {
        let host = request.url.host_str().unwrap_or_default().to_owned();
        match tokio::time::timeout(self.request_timeout, self.exchange(request, &host)).await {
            Ok(answer) => answer,
            Err(_) => Err(DeliveryError::Timeout { host, after: self.request_timeout }),
        }
    }

    async fn exchange(&self, request: &PushRequest, host: &str) -> Result<Answer, DeliveryError> {
        let url = &request.url;
        let port = url.port_or_known_default().unwrap_or(443);
        let connect_err = |reason: String| DeliveryError::Connect { host: host.to_owned(), reason };
        let tls_err = |reason: String| DeliveryError::Tls { host: host.to_owned(), reason };
        let http_err = |e: hyper::Error| DeliveryError::Http { host: host.to_owned(), reason: e.to_string() };
        // An IPv6 literal comes bracketed from the URL.
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let connect = async {
            let tcp = TcpStream::connect((bare, port)).await.map_err(|e| connect_err(e.to_string()))?;
            let _ = tcp.set_nodelay(true);
            let name = ServerName::try_from(bare.to_owned()).map_err(|e| tls_err(e.to_string()))?;
            self.tls.connect(name, tcp).await.map_err(|e| tls_err(e.to_string()))
        };
        let tls = tokio::time::timeout(self.connect_timeout, connect).await.map_err(|_| {
            connect_err(format!("no connection within {}s", self.connect_timeout.as_secs()))
        })??;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.map_err(http_err)?;
        // The connection ends with this function: the task is aborted when
        // the request is done or times out.
        let driver = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(conn));
        let mut builder = Request::builder().method(Method::POST).uri(url.as_str());
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        };
        builder = builder.header(HOST, authority).header(CONTENT_LENGTH, request.body.len());
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        let req = builder
            .body(Full::new(Bytes::from(request.body.clone())))
            .map_err(|e| DeliveryError::Http { host: host.to_owned(), reason: e.to_string() })?;
        let response = sender.send_request(req).await.map_err(http_err)?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        // Read a little of the body so the exchange ends cleanly; push
        // services answer with empty or short bodies.
        let mut body = response.into_body();
        let mut read = 0usize;
        while read < 16 * 1024 {
            match body.frame().await {
                Some(Ok(frame)) => read += frame.data_ref().map_or(0, |d| d.len()),
                _ => break,
            }
        }
        drop(driver);
        Ok(Answer { status, retry_after })
    }
}
