//! Transfers over HTTPS: HTTP/1.1 (hyper's client connection) over rustls,
//! one fresh connection per transfer. imboxd is driven as tus clients drive
//! it (`POST` to create, one `PATCH` with the whole file, then
//! `GET /api/attachments/ID`); nginx as a WebDAV share (`PUT`, `GET`,
//! `DELETE`).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{bail, ensure, Context};
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use imbox_protocol::transfer::{ATTACHMENTS_PATH, ATTACHMENT_HEADER, TUS_VERSION, UPLOADS_PATH};
use tokio::task::JoinHandle;

use super::{Expect, Payload};
use crate::net;

/// Where an HTTPS server is and how to trust it.
#[derive(Debug, Clone)]
pub struct HttpsServer {
    addr: SocketAddr,
    host: String,
    /// `host:port` for the Host header.
    authority: String,
    /// The URL's path, without a trailing `/` (nginx: where files go).
    base: String,
    tls: Arc<rustls::ClientConfig>,
}

impl HttpsServer {
    /// `url` is `https://HOST:PORT[/PATH]`; `tls` trusts the server.
    pub async fn new(url: &str, mut tls: rustls::ClientConfig) -> anyhow::Result<HttpsServer> {
        let parsed = url::Url::parse(url).with_context(|| format!("{url} is not a URL"))?;
        ensure!(parsed.scheme() == "https", "{url}: only https:// is measured");
        let host = parsed.host_str().with_context(|| format!("{url} has no host"))?.to_owned();
        let port = parsed.port_or_known_default().unwrap_or(443);
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(HttpsServer {
            addr: net::resolve(&host, port).await?,
            authority: format!("{host}:{port}"),
            host,
            base: parsed.path().trim_end_matches('/').to_owned(),
            tls: Arc::new(tls),
        })
    }

    /// A new connection: TCP, a full TLS handshake, HTTP/1.1.
    pub async fn connect(&self) -> anyhow::Result<Connection> {
        let tcp = net::tcp_connect(std::net::Ipv4Addr::UNSPECIFIED.into(), self.addr)
            .await
            .with_context(|| format!("cannot connect to {}", self.addr))?;
        let tls = net::tls_connect(&self.tls, &self.host, tcp).await.context("the TLS handshake failed")?;
        let cipher = tls.get_ref().1.negotiated_cipher_suite().map(|suite| format!("{:?}", suite.suite()));
        let (sender, connection) = http1::handshake(TokioIo::new(tls)).await?;
        let driver = tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "HTTPS connection ended");
            }
        });
        Ok(Connection { sender, driver, cipher, authority: self.authority.clone() })
    }

    fn path(&self, rest: &str) -> String {
        format!("{}/{rest}", self.base)
    }
}

/// One HTTP/1.1 connection.
#[derive(Debug)]
pub struct Connection {
    sender: http1::SendRequest<Full<Bytes>>,
    driver: JoinHandle<()>,
    /// The TLS suite negotiated, as rustls names it.
    pub cipher: Option<String>,
    authority: String,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl Connection {
    fn request(&self, method: Method, path: &str) -> hyper::http::request::Builder {
        Request::builder().method(method).uri(path).header(hyper::header::HOST, &self.authority)
    }

    async fn send(&mut self, request: Request<Full<Bytes>>) -> anyhow::Result<Response<Incoming>> {
        self.sender.ready().await.context("the connection closed")?;
        Ok(self.sender.send_request(request).await?)
    }
}

/// A response's body, for the small ones (errors, tus answers).
async fn small_body(response: Response<Incoming>) -> String {
    match response.into_body().collect().await {
        Ok(body) => String::from_utf8_lossy(&body.to_bytes()).chars().take(300).collect(),
        Err(e) => format!("(unreadable body: {e})"),
    }
}

/// Reads a download's body and checks it against `payload`.
async fn expect_body(response: Response<Incoming>, payload: &Payload) -> anyhow::Result<()> {
    let mut expect = Expect::new(payload.bytes(), 0);
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.context("the download broke off")?.into_data() {
            expect.take(&data)?;
        }
    }
    expect.finish()
}

fn header<'a>(response: &'a Response<Incoming>, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|value| value.to_str().ok())
}

/// What a transfer reports besides its timing.
#[derive(Debug, Clone, Default)]
pub struct Done {
    /// The TLS suite negotiated.
    pub cipher: Option<String>,
}

/// imboxd's tus endpoint and downloads, as a device with `token`.
#[derive(Debug, Clone)]
pub struct ImboxHttps {
    pub server: HttpsServer,
    pub token: String,
}

impl ImboxHttps {
    fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }

    /// Creates an upload, sends the whole file in one `PATCH` and checks the
    /// attachment id the box answers with.
    pub async fn upload(&self, payload: &Payload, name: &str) -> anyhow::Result<Done> {
        let mut connection = self.server.connect().await?;
        let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
        let create = connection
            .request(Method::POST, UPLOADS_PATH)
            .header("authorization", self.bearer())
            .header("tus-resumable", TUS_VERSION)
            .header("upload-length", payload.len())
            .header(
                "upload-metadata",
                format!("filename {},filetype {}", b64(name), b64("application/octet-stream")),
            )
            .body(Full::new(Bytes::new()))?;
        let created = connection.send(create).await?;
        if created.status() != StatusCode::CREATED {
            bail!("POST {UPLOADS_PATH}: {} {}", created.status(), small_body(created).await);
        }
        let location =
            header(&created, "location").context("the upload was created without a Location")?.to_owned();
        let _ = small_body(created).await;
        let patch = connection
            .request(Method::PATCH, &location)
            .header("authorization", self.bearer())
            .header("tus-resumable", TUS_VERSION)
            .header("upload-offset", 0)
            .header("content-type", "application/offset+octet-stream")
            .body(Full::new(payload.bytes().clone()))?;
        let patched = connection.send(patch).await?;
        if patched.status() != StatusCode::NO_CONTENT {
            bail!("PATCH {location}: {} {}", patched.status(), small_body(patched).await);
        }
        let offset = header(&patched, "upload-offset").and_then(|v| v.parse::<u64>().ok());
        ensure!(offset == Some(payload.len()), "the PATCH left the upload at offset {offset:?}");
        let id = header(&patched, ATTACHMENT_HEADER).context("the last PATCH named no attachment")?;
        ensure!(id == payload.sha256(), "the box named the upload {id}, its SHA-256 is {}", payload.sha256());
        Ok(Done { cipher: connection.cipher.clone() })
    }

    /// Downloads the attachment of `payload` and checks every byte.
    pub async fn download(&self, payload: &Payload) -> anyhow::Result<Done> {
        let mut connection = self.server.connect().await?;
        let path = format!("{ATTACHMENTS_PATH}/{}", payload.sha256());
        let get = connection
            .request(Method::GET, &path)
            .header("authorization", self.bearer())
            .body(Full::new(Bytes::new()))?;
        let response = connection.send(get).await?;
        if response.status() != StatusCode::OK {
            bail!("GET {path}: {} {}", response.status(), small_body(response).await);
        }
        expect_body(response, payload).await?;
        Ok(Done { cipher: connection.cipher.clone() })
    }
}

/// nginx as a WebDAV share under the URL's path.
#[derive(Debug, Clone)]
pub struct Nginx {
    pub server: HttpsServer,
}

impl Nginx {
    /// `PUT`s the file as `name`.
    pub async fn upload(&self, payload: &Payload, name: &str) -> anyhow::Result<Done> {
        let mut connection = self.server.connect().await?;
        let path = self.server.path(name);
        let put = connection
            .request(Method::PUT, &path)
            .header("content-type", "application/octet-stream")
            .body(Full::new(payload.bytes().clone()))?;
        let response = connection.send(put).await?;
        let status = response.status();
        if status != StatusCode::CREATED && status != StatusCode::NO_CONTENT {
            bail!("PUT {path}: {status} {}", small_body(response).await);
        }
        let _ = small_body(response).await;
        Ok(Done { cipher: connection.cipher.clone() })
    }

    /// `GET`s `name` and checks every byte against `payload`.
    pub async fn download(&self, payload: &Payload, name: &str) -> anyhow::Result<Done> {
        let mut connection = self.server.connect().await?;
        let path = self.server.path(name);
        let get = connection.request(Method::GET, &path).body(Full::new(Bytes::new()))?;
        let response = connection.send(get).await?;
        if response.status() != StatusCode::OK {
            bail!("GET {path}: {} {}", response.status(), small_body(response).await);
        }
        expect_body(response, payload).await?;
        Ok(Done { cipher: connection.cipher.clone() })
    }

    /// Deletes `name` (not measured: it keeps the disk from filling).
    pub async fn delete(&self, name: &str) -> anyhow::Result<()> {
        let mut connection = self.server.connect().await?;
        let path = self.server.path(name);
        let delete = connection.request(Method::DELETE, &path).body(Full::new(Bytes::new()))?;
        let response = connection.send(delete).await?;
        let status = response.status();
        ensure!(status.is_success(), "DELETE {path}: {status} {}", small_body(response).await);
        Ok(())
    }
}
