//! Logging in to the pages, logging out, and who is logged in.

use std::net::IpAddr;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, SET_COOKIE};
use hyper::http::request::Parts;
use hyper::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::error::ApiError;
use super::reply::{json, no_content, read_json, Reply};
use super::{sessions, Caller, Web};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    username: String,
    password: String,
}

/// Where a user lands after logging in.
fn home(admin: bool) -> &'static str {
    if admin {
        "/admin"
    } else {
        "/member"
    }
}

/// `POST /api/login`: the same accounts, passwords and failed-login limits
/// as the messaging protocol.
pub async fn login(web: &Web, parts: &Parts, body: Incoming, peer: IpAddr) -> Result<Reply, ApiError> {
    let body: LoginBody = read_json(parts, body).await?;
    let hub = &web.hub;
    hub.logins.allowed(&body.username, peer).map_err(ApiError::RateLimited)?;
    let credentials = hub.store.credentials(&body.username)?;
    let hash = credentials.as_ref().map(|c| c.password_hash.clone());
    let matched = hub.passwords.verify(body.password, hash).await?;
    let Some(credentials) = credentials.filter(|_| matched) else {
        hub.logins.failed(&body.username, peer);
        tracing::info!(%peer, user = %body.username.chars().take(32).collect::<String>(), "failed web login");
        return Err(ApiError::BadCredentials);
    };
    hub.logins.succeeded(&body.username, peer);
    if credentials.disabled {
        return Err(ApiError::Disabled);
    }
    let session = web.sessions.create(credentials.user)?;
    tracing::info!(%peer, user = %credentials.username, "web login");
    let mut reply = json(
        StatusCode::OK,
        &json!({
            "user": credentials.username,
            "admin": credentials.admin,
            "csrf_token": session.csrf,
            "home": home(credentials.admin),
        }),
    );
    if let Ok(cookie) = HeaderValue::from_str(&sessions::set_cookie(&session.id)) {
        reply.headers_mut().insert(SET_COOKIE, cookie);
    }
    Ok(reply)
}

/// `POST /api/logout`.
pub fn logout(web: &Web, caller: &Caller) -> Reply {
    web.sessions.remove(&caller.session);
    let mut reply = no_content();
    if let Ok(cookie) = HeaderValue::from_str(&sessions::clear_cookie()) {
        reply.headers_mut().insert(SET_COOKIE, cookie);
    }
    reply
}

/// `GET /api/session`: who is logged in, and the CSRF token the pages send
/// back with every change.
pub fn whoami(web: &Web, caller: &Caller) -> Result<Reply, ApiError> {
    let settings = web.hub.store.box_settings()?;
    Ok(json(
        StatusCode::OK,
        &json!({
            "user": caller.account.name,
            "admin": caller.account.admin,
            "owner": settings.owner == Some(caller.account.id),
            "csrf_token": caller.csrf,
            "box_name": web.box_name(),
            "may_invite": caller.account.admin || settings.members_may_invite,
            "home": home(caller.account.admin),
        }),
    ))
}
