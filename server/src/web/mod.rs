//! The web side of imboxd: the plain-HTTP landing page, the first-run setup,
//! the admin pages, the JSON API behind them, and Prometheus metrics.
//!
//! Layout — each module is one concept:
//! - [`routes`]: which path goes where over HTTP and HTTPS, and the checks a
//!   request passes on the way (origin, session, administrator, CSRF).
//! - [`reply`]: responses (JSON, pages, redirects, security headers) and
//!   bounded request bodies; [`error`]: the typed errors of the API.
//! - [`sessions`]: web sessions in memory and their cookie.
//! - [`claim`]: the one-time claim code, its file and its rate limit;
//!   [`setup`]: the setup API, which exists only while the box is unclaimed.
//! - [`login`]: logging in and out; [`admin_api`]: the admin API;
//!   [`certificate`]: the certificate HTTPS shows browsers.
//! - [`status`]: status, storage, the message rate and `/metrics`.
//! - [`pages`]: the HTML, CSS and JavaScript embedded in the binary;
//!   [`qr`]: QR codes drawn as SVG; [`strength`]: password strength (zxcvbn).
//! - `translations` (tests only): every text a page shows has a message
//!   catalog key, and the catalogs agree.
//!
//! docs/API.md describes every endpoint.

pub mod admin_api;
pub mod assets;
pub mod certificate;
pub mod claim;
pub mod error;
pub mod login;
pub mod pages;
pub mod qr;
pub mod reply;
pub mod routes;
pub mod sessions;
pub mod setup;
pub mod status;
pub mod strength;
#[cfg(test)]
pub mod translations;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::COOKIE;
use hyper::http::request::Parts;
use hyper::Request;
use imbox_protocol::Fingerprint;

use crate::config::Config;
use crate::disks::Disks;
use crate::pairing::PairingTemplate;
use crate::session::Hub;
use crate::store::AccountState;
use crate::transport::OpenConnections;
use error::ApiError;
use sessions::WebSessions;

/// The addresses the listeners are bound to, for the status page.
#[derive(Debug, Clone, Default)]
pub struct Listeners {
    pub http: Vec<SocketAddr>,
    pub https: Vec<SocketAddr>,
    pub quic: Vec<SocketAddr>,
}

/// What the web side is built from (see [`Web::new`]).
#[derive(Debug)]
pub struct WebParts {
    pub hub: Arc<Hub>,
    pub pairing: PairingTemplate,
    pub certs: Arc<crate::tls::HttpsCertificates>,
    pub fingerprint: Fingerprint,
    pub open: Arc<OpenConnections>,
    pub listeners: Listeners,
}

/// Everything the pages and the API share.
#[derive(Debug)]
pub struct Web {
    pub(crate) hub: Arc<Hub>,
    pairing: PairingTemplate,
    certs: Arc<crate::tls::HttpsCertificates>,
    fingerprint: Fingerprint,
    open: Arc<OpenConnections>,
    listeners: Listeners,
    sessions: WebSessions,
    claim_file: PathBuf,
    claim_limit: claim::ClaimLimit,
    plain_websocket: bool,
    default_box_name: String,
    data_dir: PathBuf,
    database_path: PathBuf,
    rate: status::MessageRate,
    started: std::time::Instant,
    disks: Arc<Disks>,
    request_timeout: std::time::Duration,
}

/// A logged-in user making a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub account: AccountState,
    pub csrf: String,
    pub session: String,
}

impl Web {
    /// The web side of a server with `config`.
    pub fn new(config: &Config, parts: WebParts) -> Web {
        Web {
            hub: parts.hub,
            pairing: parts.pairing,
            certs: parts.certs,
            fingerprint: parts.fingerprint,
            open: parts.open,
            listeners: parts.listeners,
            sessions: WebSessions::default(),
            claim_file: claim::file_path(&config.setup.claim_file, &config.data_dir),
            claim_limit: claim::ClaimLimit::default(),
            plain_websocket: config.http.plain_websocket,
            default_box_name: config.box_name.clone(),
            data_dir: config.data_dir.clone(),
            database_path: config.database_path(),
            rate: status::MessageRate::default(),
            started: std::time::Instant::now(),
            request_timeout: std::time::Duration::from_millis(config.http.request_timeout_ms),
            disks: Arc::new(Disks::new(
                config.setup.storage_status.clone(),
                config.setup.storage_progress.clone(),
                &config.data_dir,
            )),
        }
    }

    /// `https://host[:port]` at the host name the request's browser used and
    /// the first HTTPS listener's port; `None` without HTTPS or a usable Host.
    pub fn origin(&self, parts: &hyper::http::request::Parts) -> Option<String> {
        let host = routes::host_name(reply::header(parts, hyper::header::HOST))?;
        let port = self.listeners.https.first()?.port();
        Some(routes::https_origin(&host, port))
    }

    /// How long a request may pause (`http.request_timeout_ms`).
    pub fn request_timeout(&self) -> std::time::Duration {
        self.request_timeout
    }

    /// Whether `/ws` is served over plain HTTP (`http.plain_websocket`).
    pub fn plain_websocket(&self) -> bool {
        self.plain_websocket
    }

    /// The file the claim code is written to.
    pub fn claim_file(&self) -> &std::path::Path {
        &self.claim_file
    }

    /// The box's name: the one the owner set, else the configured one.
    pub fn box_name(&self) -> String {
        match self.hub.store.box_settings() {
            Ok(settings) => settings.name.unwrap_or_else(|| self.default_box_name.clone()),
            Err(_) => self.default_box_name.clone(),
        }
    }

    /// Whether the box has an owner.
    fn claimed(&self) -> Result<bool, ApiError> {
        Ok(self.hub.store.box_settings()?.claimed_at.is_some())
    }

    /// The user behind the request's session cookie, if it is live and the
    /// account still exists and is enabled.
    pub(crate) fn caller(&self, parts: &Parts) -> Result<Caller, ApiError> {
        let cookies = parts.headers.get_all(COOKIE).iter().filter_map(|v| v.to_str().ok());
        let id = sessions::cookie_value(cookies).ok_or(ApiError::NotLoggedIn)?;
        let found = self.sessions.find(id).ok_or(ApiError::NotLoggedIn)?;
        match self.hub.store.account(found.user)? {
            Some(account) if !account.disabled => {
                Ok(Caller { account, csrf: found.csrf, session: id.to_owned() })
            }
            Some(_) => {
                self.sessions.remove_user(found.user);
                Err(ApiError::Disabled)
            }
            None => {
                self.sessions.remove_user(found.user);
                Err(ApiError::NotLoggedIn)
            }
        }
    }

    /// [`Web::caller`], who must be an administrator.
    fn admin(&self, parts: &Parts) -> Result<Caller, ApiError> {
        let caller = self.caller(parts)?;
        if caller.account.admin {
            Ok(caller)
        } else {
            Err(ApiError::NotAdmin)
        }
    }
}

/// Serves one HTTP request that is not the WebSocket or the health check.
pub async fn handle(web: &Web, req: Request<Incoming>, peer: IpAddr, secure: bool) -> reply::StreamReply {
    let path = req.uri().path();
    if secure && is_media_path(path) {
        let mut reply = crate::media::tus::handle(web, req).await;
        reply::harden(&mut reply);
        crate::media::download::contain(&mut reply);
        return reply;
    }
    let mut reply = if secure { routes::secure(web, req, peer).await } else { routes::plain(web, &req) };
    reply::harden(&mut reply);
    reply::boxed(reply)
}

/// Whether a path is one of the attachments' (uploads, downloads).
fn is_media_path(path: &str) -> bool {
    use imbox_protocol::transfer::{ATTACHMENTS_PATH, UPLOADS_PATH};
    [UPLOADS_PATH, ATTACHMENTS_PATH]
        .iter()
        .any(|prefix| path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/')))
}
