//! The admin API (`/api/admin/…`): users, their devices, invites, settings
//! and status. The router has already checked that the caller is an
//! administrator and, for changes, the CSRF token.

use hyper::body::Incoming;
use hyper::http::request::Parts;
use hyper::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::error::ApiError;
use super::reply::{json, no_content, read_json, Reply};
use super::setup::{check_new_password, check_username, StrengthBody};
use super::{qr, setup, status, Caller, Web};
use crate::store::{
    conversation_ref, invite_id, now_ms, parse_invite_id, valid_box_name, AccountState, MAX_RETENTION_DAYS,
};

/// Most accounts one invite may create.
const MAX_INVITE_USES: u32 = 1000;
/// Longest invite lifetime, in hours (a year).
const MAX_INVITE_HOURS: u64 = 24 * 366;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    username: String,
    password: String,
    #[serde(default)]
    password_confirm: Option<String>,
    #[serde(default)]
    admin: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPassword {
    password: String,
    #[serde(default)]
    password_confirm: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewInvite {
    #[serde(default = "one")]
    uses: u32,
    #[serde(default)]
    expires_in_hours: Option<u64>,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsChange {
    #[serde(default)]
    box_name: Option<String>,
    #[serde(default)]
    members_may_invite: Option<bool>,
}

/// `PUT /api/admin/conversations/REF/retention`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetentionChange {
    /// Days (0: forever); `null` for the box's setting.
    days: Option<u32>,
}

/// `PUT /api/admin/media`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MediaChange {
    /// Days after their last sending that attachments are kept (0:
    /// forever); `null` for the configuration's `media.retention_days`.
    retention_days: Option<u32>,
}

/// `POST /api/admin/storage/adopt`: move the data to this USB disk.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Adopt {
    device: String,
    /// The owner agreed to erase a disk that holds data or another box's.
    #[serde(default)]
    erase: bool,
}

/// A user in the list.
#[derive(Debug, Serialize)]
struct UserRow {
    id: u64,
    name: String,
    admin: bool,
    owner: bool,
    disabled: bool,
    created_at: u64,
    devices: u32,
}

/// `/api/admin/…`, after the administrator and CSRF checks.
pub async fn route(
    web: &Web,
    caller: &Caller,
    parts: &Parts,
    body: Incoming,
    segments: &[&str],
) -> Result<Reply, ApiError> {
    let store = &web.hub.store;
    match (&parts.method, segments) {
        (&Method::GET, ["status"]) => Ok(json(StatusCode::OK, &status::status(web)?)),
        (&Method::GET, ["storage"]) => Ok(json(StatusCode::OK, &status::storage(web))),
        (&Method::POST, ["storage", "adopt"]) => {
            let adopt: Adopt = read_json(parts, body).await?;
            let progress = web.disks.adopt(store, &adopt.device, adopt.erase).await?;
            tracing::info!(by = %caller.account.name, device = %adopt.device, erase = adopt.erase, "moving the data to a USB disk");
            Ok(json(StatusCode::ACCEPTED, &json!({ "move": progress })))
        }
        (&Method::POST, ["strength"]) => {
            let body: StrengthBody = read_json(parts, body).await?;
            Ok(setup::rate(web, &body))
        }
        (&Method::GET, ["users"]) => {
            let owner = store.box_settings()?.owner;
            let users: Vec<UserRow> = store
                .users()?
                .into_iter()
                .map(|u| UserRow {
                    owner: Some(u.id) == owner,
                    id: u.id,
                    name: u.name,
                    admin: u.admin,
                    disabled: u.disabled,
                    created_at: u.created_at,
                    devices: u.devices,
                })
                .collect();
            Ok(json(StatusCode::OK, &json!({ "users": users })))
        }
        (&Method::POST, ["users"]) => {
            let new: NewUser = read_json(parts, body).await?;
            check_username(&new.username)?;
            check_new_password(web, &new.username, &new.password, new.password_confirm.as_deref())?;
            let hash = web.hub.passwords.hash(new.password).await?;
            let id = store.create_user(&new.username, hash, new.admin).await?;
            tracing::info!(by = %caller.account.name, user = %new.username, admin = new.admin, "user created");
            Ok(json(StatusCode::CREATED, &json!({ "id": id, "name": new.username, "admin": new.admin })))
        }
        (&Method::GET, ["users", name]) => {
            let account = account(web, name)?;
            let devices = store.devices(account.id, 0)?;
            Ok(json(StatusCode::OK, &json!({ "user": account, "devices": devices })))
        }
        (&Method::DELETE, ["users", name]) => {
            let account = changeable(web, caller, name, "remove")?;
            store.remove_user(name).await?;
            web.sessions.remove_user(account.id);
            tracing::info!(by = %caller.account.name, user = %name, "user removed");
            Ok(no_content())
        }
        (&Method::POST, ["users", name, action @ ("disable" | "enable")]) => {
            let disable = *action == "disable";
            let account =
                if disable { changeable(web, caller, name, "disable")? } else { account(web, name)? };
            store.set_disabled(name, disable).await?;
            if disable {
                web.sessions.remove_user(account.id);
            }
            tracing::info!(by = %caller.account.name, user = %name, action = %action, "user changed");
            Ok(no_content())
        }
        (&Method::POST, ["users", name, "password"]) => {
            let account = account(web, name)?;
            let new: NewPassword = read_json(parts, body).await?;
            check_new_password(web, name, &new.password, new.password_confirm.as_deref())?;
            let hash = web.hub.passwords.hash(new.password).await?;
            store.set_password(name, hash).await?;
            if account.id != caller.account.id {
                // Whoever was logged in to the pages with the old password
                // is not any more; devices keep their own tokens.
                web.sessions.remove_user(account.id);
            }
            tracing::info!(by = %caller.account.name, user = %name, "password reset");
            Ok(no_content())
        }
        (&Method::GET, ["users", name, "devices"]) => {
            let account = account(web, name)?;
            Ok(json(StatusCode::OK, &json!({ "devices": store.devices(account.id, 0)? })))
        }
        (&Method::DELETE, ["users", name, "devices", device]) => {
            let account = account(web, name)?;
            let device: u64 = device.parse().map_err(|_| {
                ApiError::NotFound(format!("{device:?} is not a device id: device ids are numbers"))
            })?;
            store.revoke_device(account.id, device).await?;
            tracing::info!(by = %caller.account.name, user = %name, device, "device revoked");
            Ok(no_content())
        }
        (&Method::GET, ["invites"]) => Ok(json(StatusCode::OK, &json!({ "invites": store.invites()? }))),
        (&Method::POST, ["invites"]) => create_invite(web, caller, parts, body).await,
        (&Method::DELETE, ["invites", id]) => {
            let hash = parse_invite_id(id).ok_or_else(|| {
                ApiError::NotFound(format!("{id:?} is not an invite id (64 hexadecimal digits)"))
            })?;
            store.revoke_invite(hash).await?;
            tracing::info!(by = %caller.account.name, invite = %id, "invite revoked");
            Ok(no_content())
        }
        (&Method::PUT, ["conversations", reference, "retention"]) => {
            // A path cannot carry '#' as it is: `%23name` is a group.
            let reference = match reference.strip_prefix("%23") {
                Some(name) => format!("#{name}"),
                None => (*reference).to_owned(),
            };
            let target = conversation_ref(&reference).ok_or_else(|| {
                ApiError::NotFound(format!(
                    "{reference:?} names no conversation: give a group as #name (%23name in a path) or a conversation id"
                ))
            })?;
            let change: RetentionChange = read_json(parts, body).await?;
            let id = store.set_retention(target, change.days).await?;
            tracing::info!(by = %caller.account.name, conversation = id, days = ?change.days, "retention changed");
            Ok(json(StatusCode::OK, &json!({ "conversation": id, "days": change.days })))
        }
        (&Method::GET, ["media"]) => Ok(json(StatusCode::OK, &super::status::media(web)?)),
        (&Method::GET, ["push"]) => Ok(json(StatusCode::OK, &super::status::push(web))),
        (&Method::PUT, ["media"]) => {
            let change: MediaChange = read_json(parts, body).await?;
            if change.retention_days.is_some_and(|d| d > MAX_RETENTION_DAYS) {
                return Err(ApiError::BadRequest(format!(
                    "retention_days is 0 (keep forever) to {MAX_RETENTION_DAYS}, or null for the configuration's"
                )));
            }
            store.set_media_retention(change.retention_days).await?;
            tracing::info!(by = %caller.account.name, days = ?change.retention_days, "media retention changed");
            Ok(json(StatusCode::OK, &super::status::media(web)?))
        }
        (&Method::GET, ["settings"]) => settings(web),
        (&Method::PUT, ["settings"]) => {
            let change: SettingsChange = read_json(parts, body).await?;
            if let Some(name) = change.box_name.as_deref().filter(|n| !valid_box_name(n)) {
                return Err(ApiError::BadRequest(format!(
                    "{name:?} is not a valid box name: use 1 to 64 characters, not all spaces, without control characters"
                )));
            }
            store.update_settings(change.box_name, change.members_may_invite).await?;
            // New sessions greet with the new name at once.
            *web.hub.server_name.write().unwrap_or_else(|p| p.into_inner()) = web.box_name();
            tracing::info!(by = %caller.account.name, "settings changed");
            settings(web)
        }
        (_, ["certificate"]) => super::certificate::route(web, caller, parts, body).await,
        (
            _,
            ["status"]
            | ["storage"]
            | ["storage", "adopt"]
            | ["strength"]
            | ["users"]
            | ["users", _]
            | ["users", _, "disable" | "enable" | "password" | "devices"]
            | ["users", _, "devices", _]
            | ["invites"]
            | ["invites", _]
            | ["conversations", _, "retention"]
            | ["media"]
            | ["push"]
            | ["settings"],
        ) => Err(ApiError::MethodNotAllowed),
        _ => Err(ApiError::NotFound("no such admin endpoint: see docs/API.md".into())),
    }
}

/// `POST /api/invites`: members may invite when the owner allows it.
pub async fn member_invite(
    web: &Web,
    caller: &Caller,
    parts: &Parts,
    body: Incoming,
) -> Result<Reply, ApiError> {
    if !caller.account.admin && !web.hub.store.box_settings()?.members_may_invite {
        return Err(ApiError::Forbidden(
            "on this box only administrators may invite: ask one of them for an invite".into(),
        ));
    }
    create_invite(web, caller, parts, body).await
}

/// Creates an invite and answers with its token, pairing URI and QR code:
/// the only time they are shown, since the box keeps only the token's hash.
async fn create_invite(web: &Web, caller: &Caller, parts: &Parts, body: Incoming) -> Result<Reply, ApiError> {
    let new: NewInvite = read_json(parts, body).await?;
    if !(1..=MAX_INVITE_USES).contains(&new.uses) {
        return Err(ApiError::BadRequest(format!("uses must be between 1 and {MAX_INVITE_USES}")));
    }
    if new.expires_in_hours.is_some_and(|h| !(1..=MAX_INVITE_HOURS).contains(&h)) {
        return Err(ApiError::BadRequest(format!(
            "expires_in_hours must be between 1 and {MAX_INVITE_HOURS}, or absent for an invite that does not expire"
        )));
    }
    let expires_at = new.expires_in_hours.map(|h| now_ms().saturating_add(h.saturating_mul(3_600_000)));
    let token = web.hub.store.create_invite(Some(caller.account.id), new.uses, expires_at).await?;
    let mut uri = web.pairing.uri(Some(token.clone()));
    uri.name = Some(web.box_name());
    // The join link at the address the inviter's browser used: opened in a
    // browser it is the web client's join page, read by an app it pairs. The
    // QR code carries it, so a phone without the app can join too.
    let join_link = web.origin(parts).map(|origin| uri.join_link(&origin));
    let uri = uri.to_string();
    let qr_svg =
        qr::svg(join_link.as_deref().unwrap_or(&uri)).map_err(|e| ApiError::Internal(e.to_string()))?;
    tracing::info!(by = %caller.account.name, uses = new.uses, "invite created");
    Ok(json(
        StatusCode::CREATED,
        &json!({
            "id": invite_id(&token),
            "token": token,
            "uri": uri,
            "join_link": join_link,
            "qr_svg": qr_svg,
            "uses": new.uses,
            "expires_at": expires_at,
        }),
    ))
}

fn settings(web: &Web) -> Result<Reply, ApiError> {
    let settings = web.hub.store.box_settings()?;
    Ok(json(
        StatusCode::OK,
        &json!({
            "box_name": web.box_name(),
            "members_may_invite": settings.members_may_invite,
            "claimed_at": settings.claimed_at,
        }),
    ))
}

fn account(web: &Web, name: &str) -> Result<AccountState, ApiError> {
    web.hub
        .store
        .account_by_name(name)?
        .ok_or_else(|| ApiError::NotFound(format!("there is no user named {name:?}")))
}

/// An account the caller may remove or disable: not the owner, not oneself
/// (so that the box always keeps someone who can administer it).
fn changeable(web: &Web, caller: &Caller, name: &str, what: &str) -> Result<AccountState, ApiError> {
    let target = account(web, name)?;
    if web.hub.store.box_settings()?.owner == Some(target.id) {
        return Err(ApiError::Refused(format!("the owner's account cannot be {what}d")));
    }
    if target.id == caller.account.id {
        return Err(ApiError::Refused(format!(
            "you cannot {what} your own account: ask another administrator"
        )));
    }
    Ok(target)
}
