//! Which path goes where.
//!
//! Plain HTTP serves only the landing page (what this box is, its HTTPS
//! address, and the digests to compare with what the browser shows), the
//! stylesheet, `/health` and `/ws` (those two in `transport::http`).
//! Everything else is redirected to HTTPS, because it carries passwords,
//! session cookies or the claim code.
//!
//! Over HTTPS, every API request that changes something must come from this
//! box's own pages (`Origin`, `Sec-Fetch-Site`), and, once logged in, carry
//! the session's CSRF token. Every `/api/admin/` request needs an
//! administrator's session first: a member gets 403 before the path is even
//! looked at.

use std::net::IpAddr;

use hyper::body::Incoming;
use hyper::header::{HOST, ORIGIN};
use hyper::http::request::Parts;
use hyper::{Method, Request, StatusCode};

use super::error::ApiError;
use super::reply::{self, header, Reply};
use super::{admin_api, assets, login, pages, sessions, setup, Caller, Web};

/// The host part of a Host header, if it looks like a host name or address
/// (it is echoed into links and redirects).
pub fn host_name(parts_host: Option<&str>) -> Option<String> {
    let host = parts_host?.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        format!("[{}]", rest.split(']').next()?)
    } else {
        host.split(':').next()?.to_owned()
    };
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']');
    (!name.is_empty() && name.len() <= 253 && name.chars().all(allowed)).then_some(name)
}

/// `https://host[:port]` for the host the browser used.
pub fn https_origin(host: &str, port: u16) -> String {
    if port == 443 {
        format!("https://{host}")
    } else {
        format!("https://{host}:{port}")
    }
}

/// A request over plain HTTP.
pub fn plain(web: &Web, req: &Request<Incoming>) -> Reply {
    let path = req.uri().path();
    if let Some(asset) = assets::serve(req.headers(), path) {
        return asset;
    }
    let host = host_name(req.headers().get(HOST).and_then(|v| v.to_str().ok()));
    let https = web.listeners.https.first().map(|a| a.port());
    match (req.method(), path, https) {
        (&Method::GET | &Method::HEAD, "/", _) => pages::landing(web, host.as_deref()),
        (_, _, None) => reply::body(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "this page is served over HTTPS only, and HTTPS is turned off on this box (https.listen = [])\n",
        ),
        (_, _, Some(port)) => {
            // 308 keeps the method; the pages only ever link to HTTPS, so
            // this catches typed and bookmarked addresses.
            let host = host.unwrap_or_else(|| "imbox.local".to_owned());
            let query = req.uri().query().map(|q| format!("?{q}")).unwrap_or_default();
            let target = format!("{}{path}{query}", https_origin(&host, port));
            reply::redirect(StatusCode::PERMANENT_REDIRECT, &target)
        }
    }
}

/// A request over HTTPS.
pub async fn secure(web: &Web, req: Request<Incoming>, peer: IpAddr) -> Reply {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    if let Some(rest) = path.strip_prefix("/api/") {
        let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        return match api(web, &parts, body, peer, &segments).await {
            Ok(reply) => reply,
            Err(e) => e.reply(),
        };
    }
    if path == "/metrics" {
        return match web.admin(&parts) {
            Ok(_) => super::status::metrics(web),
            Err(e) => e.reply(),
        };
    }
    pages::page(web, &parts, &path)
}

/// Whether the method changes state (everything but GET and HEAD).
fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD)
}

/// Refuses state changes that a browser says came from another site. Tools
/// such as curl send neither header and are not refused here; the CSRF
/// token still applies to them once logged in.
pub fn check_origin(parts: &Parts) -> Result<(), ApiError> {
    if let Some(origin) = header(parts, ORIGIN) {
        let host = header(parts, HOST).ok_or(ApiError::BadOrigin)?;
        if !origin.eq_ignore_ascii_case(&format!("https://{host}")) {
            tracing::info!(%origin, %host, "refused a cross-site request");
            return Err(ApiError::BadOrigin);
        }
    }
    match header(parts, "sec-fetch-site") {
        None | Some("same-origin") | Some("none") => Ok(()),
        Some(_) => Err(ApiError::BadOrigin),
    }
}

/// Requires the session's CSRF token in `X-CSRF-Token`, and a browser's word
/// that the request came from this box's own pages: an `Origin` (which
/// [`check_origin`] holds to this box) or `Sec-Fetch-Site: same-origin`. A
/// token alone is not enough, because a token can leak (a screenshot, a
/// log, a page left open) while the cookie rides along with any cross-site
/// request; every browser that sends the cookie with a `POST` also sends one
/// of the two headers.
pub fn check_csrf(caller: &Caller, parts: &Parts) -> Result<(), ApiError> {
    match header(parts, "x-csrf-token") {
        Some(token) if sessions::same_secret(token, &caller.csrf) => {}
        _ => return Err(ApiError::Csrf),
    }
    check_origin(parts)?;
    let has_origin = header(parts, ORIGIN).is_some();
    let same_site = header(parts, "sec-fetch-site") == Some("same-origin");
    if has_origin || same_site {
        Ok(())
    } else {
        tracing::info!("refused a cookie-authenticated change without Origin or Sec-Fetch-Site");
        Err(ApiError::BadOrigin)
    }
}

async fn api(
    web: &Web,
    parts: &Parts,
    body: Incoming,
    peer: IpAddr,
    segments: &[&str],
) -> Result<Reply, ApiError> {
    let method = &parts.method;
    if changes_state(method) {
        check_origin(parts)?;
    }
    match segments {
        ["setup", rest @ ..] => setup::route(web, parts, body, peer, rest).await,
        ["admin", rest @ ..] => {
            let caller = web.admin(parts)?;
            if changes_state(method) {
                check_csrf(&caller, parts)?;
            }
            admin_api::route(web, &caller, parts, body, rest).await
        }
        ["login"] if method == Method::POST => login::login(web, parts, body, peer).await,
        ["logout"] if method == Method::POST => {
            let caller = web.caller(parts)?;
            check_csrf(&caller, parts)?;
            Ok(login::logout(web, &caller))
        }
        ["session"] if method == Method::GET => login::whoami(web, &web.caller(parts)?),
        ["invites"] if method == Method::POST => {
            let caller = web.caller(parts)?;
            check_csrf(&caller, parts)?;
            admin_api::member_invite(web, &caller, parts, body).await
        }
        ["login"] | ["logout"] | ["session"] | ["invites"] => Err(ApiError::MethodNotAllowed),
        _ => Err(ApiError::NotFound("no such API endpoint: see docs/API.md".into())),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut builder = Request::builder().method(Method::POST).uri("/api/admin/users");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn cross_site_requests_are_refused() {
        assert!(check_origin(&parts(&[("host", "box:8443"), ("origin", "https://box:8443")])).is_ok());
        assert!(check_origin(&parts(&[("host", "box:8443")])).is_ok(), "tools send no Origin");
        for bad in ["https://evil.example", "http://box:8443", "null"] {
            let refused = check_origin(&parts(&[("host", "box:8443"), ("origin", bad)]));
            assert!(matches!(refused, Err(ApiError::BadOrigin)), "{bad}");
        }
        let site = check_origin(&parts(&[("host", "box"), ("sec-fetch-site", "cross-site")]));
        assert!(matches!(site, Err(ApiError::BadOrigin)));
    }

    #[test]
    fn the_csrf_token_must_match() {
        let caller = Caller {
            account: crate::store::AccountState {
                id: 1,
                name: "olivia".into(),
                admin: true,
                disabled: false,
                created_at: 0,
            },
            csrf: "token".into(),
            session: "s".into(),
        };
        let from_page = [("x-csrf-token", "token"), ("host", "box"), ("origin", "https://box")];
        assert!(check_csrf(&caller, &parts(&from_page)).is_ok());
        let fetched = [("x-csrf-token", "token"), ("sec-fetch-site", "same-origin")];
        assert!(check_csrf(&caller, &parts(&fetched)).is_ok());
        // A valid token with neither header, or with a navigation's `none`,
        // does not say the request came from the box's pages.
        for headers in
            [&[("x-csrf-token", "token")][..], &[("x-csrf-token", "token"), ("sec-fetch-site", "none")]]
        {
            assert!(matches!(check_csrf(&caller, &parts(headers)), Err(ApiError::BadOrigin)));
        }
        assert!(matches!(check_csrf(&caller, &parts(&[])), Err(ApiError::Csrf)));
        assert!(matches!(check_csrf(&caller, &parts(&[("x-csrf-token", "tokem")])), Err(ApiError::Csrf)));
    }

    #[test]
    fn hosts_are_cleaned_before_they_are_echoed() {
        assert_eq!(host_name(Some("imbox.local:8080")).as_deref(), Some("imbox.local"));
        assert_eq!(host_name(Some("[::1]:8080")).as_deref(), Some("[::1]"));
        assert_eq!(host_name(Some("192.0.2.7")).as_deref(), Some("192.0.2.7"));
        assert_eq!(host_name(Some("evil\"><script>")), None);
        assert_eq!(host_name(None), None);
        assert_eq!(https_origin("imbox.local", 443), "https://imbox.local");
        assert_eq!(https_origin("imbox.local", 8443), "https://imbox.local:8443");
    }
}
