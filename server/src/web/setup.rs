//! The setup API: claiming the box. It exists only while the box has no
//! owner; afterwards every path under `/api/setup/` answers 410 Gone.

use std::net::IpAddr;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, SET_COOKIE};
use hyper::http::request::Parts;
use hyper::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::claim::{self, ClaimCode};
use super::error::ApiError;
use super::reply::{json, read_json, Reply};
use super::{sessions, strength, Web};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeBody {
    code: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClaimBody {
    code: String,
    username: String,
    password: String,
    password_confirm: String,
}

/// Body of the strength checks (here and in the admin API).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrengthBody {
    pub password: String,
    #[serde(default)]
    pub username: String,
}

/// `/api/setup/…`.
pub async fn route(
    web: &Web,
    parts: &Parts,
    body: Incoming,
    peer: IpAddr,
    segments: &[&str],
) -> Result<Reply, ApiError> {
    if web.claimed()? {
        return Err(ApiError::Claimed);
    }
    match (&parts.method, segments) {
        (&Method::GET, []) => Ok(json(
            StatusCode::OK,
            &json!({
                "claimed": false,
                "box_name": web.box_name(),
                "fingerprint": web.fingerprint.to_string(),
                "code_length": claim::LENGTH,
            }),
        )),
        (&Method::POST, ["verify"]) => {
            let body: CodeBody = read_json(parts, body).await?;
            check_code(web, peer, &body.code)?;
            Ok(json(StatusCode::OK, &json!({ "ok": true })))
        }
        (&Method::POST, ["strength"]) => {
            let body: StrengthBody = read_json(parts, body).await?;
            Ok(rate(web, &body))
        }
        (&Method::POST, ["claim"]) => claim(web, parts, body, peer).await,
        (_, [] | ["verify"] | ["strength"] | ["claim"]) => Err(ApiError::MethodNotAllowed),
        _ => Err(ApiError::NotFound("no such setup endpoint: see docs/API.md".into())),
    }
}

/// Answers a strength check (setup and admin API alike).
pub fn rate(web: &Web, body: &StrengthBody) -> Reply {
    let name = web.box_name();
    json(StatusCode::OK, &strength::rate(&body.password, &[&body.username, &name, "imbox"]))
}

/// Checks a typed code against the stored hash, counting wrong ones.
fn check_code(web: &Web, peer: IpAddr, text: &str) -> Result<ClaimCode, ApiError> {
    web.claim_limit.allowed(peer).map_err(ApiError::RateLimited)?;
    let settings = web.hub.store.box_settings()?;
    if settings.claimed_at.is_some() {
        return Err(ApiError::Claimed);
    }
    match ClaimCode::parse(text) {
        Some(code) if settings.claim_hash == Some(code.hash()) => Ok(code),
        _ => {
            web.claim_limit.failed(peer);
            tracing::warn!(%peer, "wrong claim code");
            Err(ApiError::WrongClaimCode)
        }
    }
}

/// Checks a new password: typed twice alike, and hard enough to guess.
pub fn check_new_password(
    web: &Web,
    username: &str,
    password: &str,
    confirm: Option<&str>,
) -> Result<(), ApiError> {
    if confirm.is_some_and(|c| c != password) {
        return Err(ApiError::BadRequest(
            "the two passwords differ: type the same password in both fields".into(),
        ));
    }
    let name = web.box_name();
    let verdict = strength::rate(password, &[username, &name, "imbox"]);
    if verdict.acceptable {
        Ok(())
    } else {
        Err(ApiError::WeakPassword(verdict))
    }
}

/// Checks a new user name.
pub fn check_username(name: &str) -> Result<(), ApiError> {
    if imbox_protocol::names::valid_username(name) {
        Ok(())
    } else {
        Err(ApiError::InvalidName(name.to_owned()))
    }
}

async fn claim(web: &Web, parts: &Parts, body: Incoming, peer: IpAddr) -> Result<Reply, ApiError> {
    let body: ClaimBody = read_json(parts, body).await?;
    let code = check_code(web, peer, &body.code)?;
    check_username(&body.username)?;
    check_new_password(web, &body.username, &body.password, Some(&body.password_confirm))?;
    let hash = web.hub.passwords.hash(body.password).await?;
    let owner = web.hub.store.claim(code.hash(), &body.username, hash).await?;
    claim::remove_file(&web.claim_file);
    tracing::info!(owner = %body.username, %peer, "the box was claimed");
    let session = web.sessions.create(owner)?;
    let mut reply = json(
        StatusCode::CREATED,
        &json!({ "user": body.username, "admin": true, "owner": true, "csrf_token": session.csrf }),
    );
    if let Ok(cookie) = HeaderValue::from_str(&sessions::set_cookie(&session.id)) {
        reply.headers_mut().insert(SET_COOKIE, cookie);
    }
    Ok(reply)
}
