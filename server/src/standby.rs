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
//! without a restart, and the page asks `/health` every
//! [`REFRESH_SECONDS`] and reloads when the answer changes (a timed reload
//! would pull the page from under someone reading it). Every page answers 503: nothing here is the box's
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
use crate::disks::{self, DiskIdentity, PresentDisk, Problem, StatusFile};
use crate::identity::CertResolver;
use crate::web::pages::{self, escape, text, Text};
use crate::web::reply::{self, Reply};

/// How often the page checks `/health`, in seconds; also the `Retry-After`.
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

/// The page's title and HTML content for `status`. Every sentence carries
/// its catalog key (`standby.*`), so the page's script shows it in the
/// reader's language; what the disk reports goes into it as slots (text).
fn page(box_name: &str, status: &StatusFile) -> String {
    let (title, heading, text, detail) = match status {
        StatusFile::Report(report) => match &report.problem {
            Some(problem) => {
                let (title, heading, text) = problem_text(problem);
                (title, heading, text, None)
            }
            None => (
                text("title.standby.starting", "The box is starting · {box}"),
                text("standby.starting.title", "The box is starting"),
                STARTING.element("span", ""),
                None,
            ),
        },
        StatusFile::Absent => (WAITING_TITLE, WAITING, NOT_REPORTED.element("span", ""), None),
        StatusFile::Unreadable(reason) => {
            (WAITING_TITLE, WAITING, NOT_REPORTED.element("span", ""), Some(reason.as_str()))
        }
    };
    // The reason a status file is unreadable is for whoever debugs the
    // image: English, and marked as such.
    let detail = detail
        .map(|d| format!("<p class=\"hint\" id=\"standby-detail\" lang=\"en\">{}</p>\n", escape(d)))
        .unwrap_or_default();
    let content = format!(
        "{heading}\n<div class=\"warning\" id=\"standby-problem\" role=\"status\">{text}</div>\n{detail}\
         {until}\n<p class=\"hint\" data-i18n=\"{again}\" data-i18n-params=\"{params}\">{again_en}</p>",
        heading = heading.element("h1", ""),
        until = UNTIL.element("p", ""),
        again = AGAIN.key,
        params = escape(&format!("{{\"seconds\":{REFRESH_SECONDS}}}")),
        again_en = escape(&AGAIN.english.replace("{seconds}", &REFRESH_SECONDS.to_string())),
    );
    pages::standby_page(box_name, title, &content, REFRESH_SECONDS)
}

/// `<span data-i18n-slot="NAME">VALUE</span>`: data inside a sentence.
fn slot(name: &str, value: &str) -> String {
    format!("<span data-i18n-slot=\"{name}\">{}</span>", escape(value))
}

/// A sentence with slots: `english` with `{name}` replaced by each slot's
/// value is the no-script text.
fn sentence(tag: &str, t: Text, slots: &[(&str, String)]) -> String {
    let mut html = escape(t.english);
    for (name, inner) in slots {
        html = html.replace(&format!("{{{name}}}"), inner);
    }
    format!("<{tag} data-i18n=\"{}\">{html}</{tag}>", t.key)
}

/// A disk as [`DiskIdentity::describe`] says it ("Samsung T7 (serial S5XX,
/// 500 GB)"), with its words translatable.
fn disk(d: &DiskIdentity) -> String {
    let model = d.model.trim();
    let mut html = if model.is_empty() {
        text("standby.disk.usb", "a USB disk").element("span", "")
    } else {
        escape(model)
    };
    let mut details = Vec::new();
    if !d.serial.trim().is_empty() {
        details.push(sentence(
            "span",
            text("standby.disk.serial", "serial {serial}"),
            &[("serial", slot("serial", d.serial.trim()))],
        ));
    }
    if d.size_bytes > 0 {
        details.push(escape(&disks::decimal_size(d.size_bytes)));
    }
    if !details.is_empty() {
        html = format!("{html} ({})", details.join(", "));
    }
    format!("<span data-i18n-slot=\"disk\">{html}</span>")
}

/// A present disk: "DISK at DEVICE".
fn present(p: &PresentDisk) -> String {
    sentence(
        "li",
        text("standby.disk.at", "{disk} at {device}"),
        &[("disk", disk(&p.disk)), ("device", slot("device", &p.device))],
    )
}

/// The title, heading and text of a problem.
fn problem_text(problem: &Problem) -> (Text, Text, String) {
    match problem {
        Problem::Missing { disk: d } => (
            text("title.standby.missing", "The data disk is missing · {box}"),
            text("standby.missing.title", "The data disk is missing"),
            sentence(
                "span",
                text(
                    "standby.missing.text",
                    "The data disk of this box is missing: {disk}. Plug it in; the box starts by itself when it \
                     appears. The box does not serve anything else meanwhile, so that nobody reads or writes an \
                     old copy of the data.",
                ),
                &[("disk", disk(d))],
            ),
        ),
        Problem::CheckFailed { disk: d, device } => (
            text("title.standby.check_failed", "The data disk failed its check · {box}"),
            text("standby.check_failed.title", "The data disk failed its check"),
            sentence(
                "span",
                text(
                    "standby.check_failed.text",
                    "The file system on the data disk, {disk} at {device}, failed its check; it was not mounted, \
                     so nothing on it was changed. Unplug the disk, repair its file system on a Linux computer \
                     ({command} on the partition labelled {label}) or restore a backup onto it, and plug it in \
                     again: the box checks it again when it appears.",
                ),
                &[
                    ("disk", disk(d)),
                    ("device", slot("device", device)),
                    ("command", "<code data-i18n-slot=\"command\">e2fsck -f</code>".to_owned()),
                    ("label", "<code data-i18n-slot=\"label\">imbox-data</code>".to_owned()),
                ],
            ),
        ),
        Problem::TwoDisks { disks } => {
            let listed = disks.iter().map(present).collect::<Vec<_>>().join("\n");
            let count = disks.len();
            let intro = text(
                "standby.two_disks.text",
                "{count} disks hold this box's data, so none of them was mounted and none was changed:",
            );
            (
                text("title.standby.two_disks", "Two disks hold this box's data · {box}"),
                text("standby.two_disks.title", "Two disks hold this box's data"),
                format!(
                    "<p data-i18n=\"{}\" data-i18n-params=\"{}\">{}</p>\n<ul>\n{listed}\n</ul>\n{}",
                    intro.key,
                    escape(&format!("{{\"count\":{count}}}")),
                    escape(&intro.english.replace("{count}", &count.to_string())),
                    text(
                        "standby.two_disks.then",
                        "Unplug the ones you do not want to use; the box starts with the remaining one by itself."
                    )
                    .element("p", ""),
                ),
            )
        }
    }
}

const WAITING_TITLE: Text = text("title.standby.waiting", "The box is waiting for its storage · {box}");
const WAITING: Text = text("standby.waiting.title", "The box is waiting for its storage");

const STARTING: Text = text(
    "standby.starting.text",
    "The storage service reports no problem with the data disk any more, so the box starts in a moment.",
);

/// What the page says when the storage service has not written its status.
const NOT_REPORTED: Text = text(
    "standby.waiting.text",
    "The box's storage service has not reported yet, so the box does not know whether its data disk is \
     there. It normally does within a minute of switching on; if this page stays, switch the box off and on \
     again.",
);

const UNTIL: Text = text(
    "standby.until",
    "Until then the box serves nothing but this page and keeps its data as it was: apps and browsers \
     reconnect by themselves once it is back.",
);

const AGAIN: Text = text("standby.again", "This page checks again every {seconds} seconds.");

#[cfg(test)]
mod tests {
    use super::*;

    /// A status file of the storage service reporting `problem` (JSON).
    fn report(problem: &str) -> StatusFile {
        let text = format!(
            r#"{{"box": "b", "data": {{"kind": "none", "device": ""}}, "disks": [], "problem": {problem}}}"#
        );
        StatusFile::Report(serde_json::from_str(&text).unwrap())
    }

    #[test]
    fn the_page_says_what_is_wrong_and_escapes_what_the_disk_reports() {
        let missing =
            report(r#"{"kind": "missing", "disk": {"model": "<T7>", "serial": "S&1", "size_bytes": 0}}"#);
        let html = page("Kitchen", &missing);
        assert!(html.contains("<meta name=\"imbox-standby-check\" content=\"5\">"), "{html}");
        assert!(!html.contains("http-equiv=\"refresh\""), "no timed reload: {html}");
        assert!(
            html.contains("missing: <span data-i18n-slot=\"disk\">&lt;T7&gt; (<span data-i18n=\"standby.disk.serial\">serial <span data-i18n-slot=\"serial\">S&amp;1</span></span>)</span>. Plug it in"),
            "{html}"
        );
        assert!(html.contains("Kitchen"));
        assert_eq!(problem_kind(&missing), "missing");
        assert_eq!(problem_kind(&report("null")), "none");
        assert!(page("b", &report("null")).contains("starts in a moment"));
        assert_eq!(problem_kind(&StatusFile::Absent), "unreported");
        let bad = StatusFile::Unreadable("storage.json is not the status".into());
        assert!(page("b", &bad).contains("has not reported yet"));
        assert!(page("b", &bad).contains("id=\"standby-detail\" lang=\"en\">storage.json is not the status"));
    }

    #[test]
    fn every_standby_page_is_translatable() {
        use crate::web::translations::assert_translatable;
        let disk = r#"{"model": "Samsung T7", "serial": "S5", "size_bytes": 500107862016}"#;
        let cases = [
            ("missing", report(&format!(r#"{{"kind": "missing", "disk": {disk}}}"#))),
            (
                "unnamed",
                report(r#"{"kind": "missing", "disk": {"model": "", "serial": "", "size_bytes": 0}}"#),
            ),
            (
                "check-failed",
                report(&format!(r#"{{"kind": "check-failed", "device": "/dev/sda1", "disk": {disk}}}"#)),
            ),
            (
                "two-disks",
                report(
                    r#"{"kind": "two-disks", "disks": [{"device": "/dev/sda", "model": "A", "serial": "1", "size_bytes": 1},
                        {"device": "/dev/sdb", "model": "B", "serial": "", "size_bytes": 0}]}"#,
                ),
            ),
            ("starting", report("null")),
            ("unreported", StatusFile::Absent),
            ("unreadable", StatusFile::Unreadable("cut short".into())),
        ];
        for (what, status) in cases {
            let keys = assert_translatable(what, &page("Kitchen", &status));
            assert!(keys.iter().any(|k| k.starts_with("title.standby.")), "{what}: {keys:?}");
        }
    }
}
