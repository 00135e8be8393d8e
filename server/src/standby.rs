//! `imboxd standby`: what the box serves when it must not serve its data.
//!
//! When the adopted USB data disk is missing, fails its file-system check,
//! or two disks both claim to be this box's, the image's storage service
//! does not start imboxd on other data (an old copy on the SD card would
//! take writes that are lost when the disk returns). It starts this mode
//! instead: a page over plain HTTP and HTTPS that says what is wrong and
//! what to do, taken from the storage service's status file
//! (`/run/imbox/storage.json`, its `problem` member; [`crate::disks`]).
//!
//! Standby opens no database and writes nothing. The identity key lives on
//! the missing disk, so HTTPS uses a self-signed certificate made at start
//! and never stored; browsers warn about it, which is the price of showing
//! the page on `https://` addresses people and apps have bookmarked.
//!
//! The status file is read again for every request (capped at
//! [`disks::MAX_STATUS_BYTES`]), so the page follows the storage service
//! without a restart, and the page reloads itself every
//! [`REFRESH_SECONDS`]. Every page answers 503: nothing here is the box's
//! real content, and `GET /health` says `{"status":"standby","problem":KIND}`
//! so that monitoring does not take standby for a healthy box.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper::header::{HeaderValue, RETRY_AFTER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::disks::{self, Problem, StatusFile};
use crate::identity::CertResolver;
use crate::web::pages::{self, escape};
use crate::web::reply::{self, Reply};

/// How often the page reloads itself, in seconds; also the `Retry-After`.
pub const REFRESH_SECONDS: u32 = 5;

/// Connections served at once: a few browsers and the health check. More
/// are closed at once rather than queued.
const MAX_CONNECTIONS: usize = 128;

/// How long a client has for the TLS handshake and for each request's
/// headers.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why standby could not start.
#[derive(Debug, thiserror::Error)]
pub enum StandbyError {
    /// A listener could not be bound.
    #[error(
        "cannot listen on {addr}: {source}; is imboxd (or another program) using that port? \
         imboxd-standby.service conflicts with imboxd.service, so only one of them runs"
    )]
    Bind { addr: SocketAddr, source: std::io::Error },
    /// The temporary certificate could not be made.
    #[error("cannot make the temporary HTTPS certificate: {0}")]
    Certificate(String),
    /// rustls refused the TLS settings.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

/// Standby, serving.
#[derive(Debug)]
pub struct Standby {
    /// The plain-HTTP addresses bound.
    pub http: Vec<SocketAddr>,
    /// The HTTPS addresses bound.
    pub https: Vec<SocketAddr>,
    /// The temporary certificate HTTPS serves, as PEM (empty without
    /// HTTPS), for a client that is to trust it.
    pub certificate_pem: String,
    /// Cancel to stop.
    pub shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Standby {
    /// Waits for shutdown, then for open connections (at most a few
    /// seconds: nothing here needs finishing).
    pub async fn wait(self) {
        self.shutdown.cancelled().await;
        self.tasks.close();
        if tokio::time::timeout(Duration::from_secs(3), self.tasks.wait()).await.is_err() {
            tracing::debug!("some standby connections did not close within 3 s");
        }
        tracing::info!("standby stopped");
    }
}

/// What every connection shares.
#[derive(Debug)]
struct Context {
    /// The storage service's status file.
    status: PathBuf,
    box_name: String,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    connections: Arc<Semaphore>,
}

/// Binds `http.listen` and `https.listen` of `config` and serves the standby
/// page, reading `status` for every request.
pub async fn start(config: &Config, status: PathBuf) -> Result<Standby, StandbyError> {
    // Bind everything first, so that a port in use stops start-up with
    // nothing half-running.
    let mut http = Vec::new();
    for &addr in &config.http.listen {
        http.push(bind(addr).await?);
    }
    let mut https = Vec::new();
    for &addr in &config.https.listen {
        https.push(bind(addr).await?);
    }
    let (certificate_pem, acceptor) = if https.is_empty() {
        (String::new(), None)
    } else {
        let (pem, key) = temporary_certificate()?;
        let resolver = Arc::new(CertResolver::new(key));
        let tls = crate::tls::server_config(resolver, &[b"http/1.1"], false)?;
        (pem, Some(TlsAcceptor::from(Arc::new(tls))))
    };
    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    let ctx = Arc::new(Context {
        status,
        box_name: config.box_name.clone(),
        shutdown: shutdown.clone(),
        tasks: tasks.clone(),
        connections: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
    });
    let mut http_bound = Vec::new();
    for (listener, local) in http {
        tracing::info!("standby: listening on http://{local}");
        http_bound.push(local);
        tasks.spawn(accept_loop(listener, ctx.clone(), None));
    }
    let mut https_bound = Vec::new();
    for (listener, local) in https {
        tracing::info!("standby: listening on https://{local} (a temporary certificate)");
        https_bound.push(local);
        tasks.spawn(accept_loop(listener, ctx.clone(), acceptor.clone()));
    }
    tracing::warn!(
        status = %ctx.status.display(),
        "standby: the box's data is not available; serving a page that says why until the storage \
         service starts imboxd"
    );
    Ok(Standby { http: http_bound, https: https_bound, certificate_pem, shutdown, tasks })
}

/// Starts standby and serves until `shutdown` is cancelled.
pub async fn run(config: &Config, status: PathBuf, shutdown: CancellationToken) -> Result<(), StandbyError> {
    let standby = start(config, status).await?;
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    let token = standby.shutdown.clone();
    tokio::spawn(async move {
        shutdown.cancelled().await;
        token.cancel();
    });
    standby.wait().await;
    Ok(())
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), StandbyError> {
    let fail = |source| StandbyError::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(fail)?;
    let local = listener.local_addr().map_err(fail)?;
    Ok((listener, local))
}

/// A self-signed P-256 certificate for imbox.local, made now and kept only
/// in memory.
fn temporary_certificate() -> Result<(String, Arc<rustls::sign::CertifiedKey>), StandbyError> {
    let fail = |e: &dyn std::fmt::Display| StandbyError::Certificate(e.to_string());
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| fail(&e))?;
    let mut params = rcgen::CertificateParams::new(vec!["imbox.local".to_owned(), "imbox".to_owned()])
        .map_err(|e| fail(&e))?;
    let mut name = rcgen::DistinguishedName::new();
    name.push(rcgen::DnType::CommonName, "imbox (standby)");
    params.distinguished_name = name;
    // The Pi has no real-time clock: a day of slack either side of a clock
    // that may be wrong until NTP answers.
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(30);
    let cert = params.self_signed(&key).map_err(|e| fail(&e))?;
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signer = rustls::crypto::ring::sign::any_ecdsa_type(&der).map_err(|e| fail(&e))?;
    Ok((cert.pem(), Arc::new(rustls::sign::CertifiedKey::new(vec![cert.der().clone()], signer))))
}

async fn accept_loop(listener: TcpListener, ctx: Arc<Context>, tls: Option<TlsAcceptor>) {
    loop {
        let accepted = tokio::select! {
            () = ctx.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Usually out of file descriptors: back off instead of spinning.
                tracing::warn!(error = %e, "standby: accept failed; pausing");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = ctx.connections.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "standby: too many connections; closing this one");
            continue;
        };
        let ctx2 = ctx.clone();
        let tls = tls.clone();
        ctx.tasks.spawn(async move {
            match tls {
                None => serve(stream, ctx2).await,
                Some(acceptor) => match tokio::time::timeout(CLIENT_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => serve(stream, ctx2).await,
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "standby: TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "standby: TLS handshake timed out"),
                },
            }
            drop(permit);
        });
    }
}

async fn serve<IO>(io: IO, ctx: Arc<Context>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let shutdown = ctx.shutdown.clone();
    let service = service_fn(move |req| {
        let ctx = ctx.clone();
        async move { Ok::<_, Infallible>(answer(&ctx, &req)) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(CLIENT_TIMEOUT)
        .max_buf_size(16 * 1024)
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "standby: connection ended");
            }
        }
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(2), conn).await;
        }
    }
}

/// The answer to any request. The body is never read.
fn answer<B>(ctx: &Context, req: &Request<B>) -> Reply {
    let path = req.uri().path();
    let read = matches!(*req.method(), Method::GET | Method::HEAD);
    let mut reply = match crate::web::assets::serve(req.headers(), path) {
        Some(asset) if read => asset,
        _ => {
            let status = disks::read_status(&ctx.status);
            if read && path == "/health" {
                health(&status)
            } else {
                let mut page = reply::html(StatusCode::SERVICE_UNAVAILABLE, page(&ctx.box_name, &status));
                page.headers_mut().insert(RETRY_AFTER, HeaderValue::from(REFRESH_SECONDS));
                page
            }
        }
    };
    reply::harden(&mut reply);
    reply
}

/// The kind of problem `/health` names: the [`Problem`] kinds, `none` when
/// the storage service reports none (imboxd is about to start), and
/// `unreported` when there is no readable status file.
pub fn problem_kind(status: &StatusFile) -> &'static str {
    match status {
        StatusFile::Report(report) => report.problem.as_ref().map_or("none", Problem::kind),
        StatusFile::Absent | StatusFile::Unreadable(_) => "unreported",
    }
}

fn health(status: &StatusFile) -> Reply {
    let body = serde_json::json!({ "status": "standby", "problem": problem_kind(status) });
    reply::json(StatusCode::SERVICE_UNAVAILABLE, &body)
}

/// The page's title and HTML content for `status`.
fn page(box_name: &str, status: &StatusFile) -> String {
    let (title, text, detail) = match status {
        StatusFile::Report(report) => match &report.problem {
            Some(problem) => {
                let (title, text) = problem.describe();
                (title, text, None)
            }
            None => (
                "The box is starting",
                "The storage service reports no problem with the data disk any more, so the box \
                 starts in a moment."
                    .to_owned(),
                None,
            ),
        },
        StatusFile::Absent => ("The box is waiting for its storage", NOT_REPORTED.to_owned(), None),
        StatusFile::Unreadable(reason) => {
            ("The box is waiting for its storage", NOT_REPORTED.to_owned(), Some(reason.as_str()))
        }
    };
    let detail = detail
        .map(|d| format!("<p class=\"hint\" id=\"standby-detail\">{}</p>\n", escape(d)))
        .unwrap_or_default();
    let content = format!(
        "<h1>{title}</h1>\n<p class=\"warning\" id=\"standby-problem\" role=\"status\">{text}</p>\n{detail}\
         <p>Until then the box serves nothing but this page and keeps its data as it was: apps and \
         browsers reconnect by themselves once it is back.</p>\n\
         <p class=\"hint\">This page checks again every {REFRESH_SECONDS} seconds.</p>",
        title = escape(title),
        text = escape(&text),
    );
    pages::standby_page(box_name, title, &content, REFRESH_SECONDS)
}

/// What the page says when the storage service has not written its status.
const NOT_REPORTED: &str = "The box's storage service has not reported yet, so the box does not know \
    whether its data disk is there. It normally does within a minute of switching on; if this page \
    stays, switch the box off and on again.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_says_what_is_wrong_and_escapes_what_the_disk_reports() {
        let report = |problem: &str| {
            let text = format!(
                r#"{{"box": "b", "data": {{"kind": "none", "device": ""}}, "disks": [], "problem": {problem}}}"#
            );
            StatusFile::Report(serde_json::from_str(&text).unwrap())
        };
        let missing =
            report(r#"{"kind": "missing", "disk": {"model": "<T7>", "serial": "S&1", "size_bytes": 0}}"#);
        let html = page("Kitchen", &missing);
        assert!(html.contains("<meta http-equiv=\"refresh\" content=\"5\">"), "{html}");
        assert!(html.contains("missing: &lt;T7&gt; (serial S&amp;1). Plug it in"), "{html}");
        assert!(html.contains("Kitchen"));
        assert_eq!(problem_kind(&missing), "missing");
        assert_eq!(problem_kind(&report("null")), "none");
        assert!(page("b", &report("null")).contains("starts in a moment"));
        assert_eq!(problem_kind(&StatusFile::Absent), "unreported");
        let bad = StatusFile::Unreadable("storage.json is not the status".into());
        assert!(page("b", &bad).contains("has not reported yet"));
        assert!(page("b", &bad).contains("id=\"standby-detail\">storage.json is not the status"));
    }
}
