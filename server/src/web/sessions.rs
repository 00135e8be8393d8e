//! Web sessions: who is logged in to the pages, kept in memory.
//!
//! A session is a random 256-bit id in a cookie (`__Host-imbox`: HttpOnly,
//! Secure, SameSite=Strict, Path=/) plus a CSRF token the pages send back in
//! `X-CSRF-Token` with every state change. Only the SHA-256 of the id is
//! kept, like device tokens. Sessions live in memory: a restart logs every
//! administrator out, which costs one login and spares the data disk writes.
//! They are bounded in number and expire after an idle time and an absolute
//! lifetime; the account behind each one is checked again on every request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::store::{new_secret, token_hash, StoreError};

/// The cookie's name. The `__Host-` prefix makes browsers accept it only
/// with Secure, Path=/ and no Domain, so no other host can set it.
pub const COOKIE: &str = "__Host-imbox";

/// Sessions kept at most; past that the oldest are dropped.
pub const MAX_SESSIONS: usize = 10_000;

/// A session unused for this long ends.
pub const IDLE: Duration = Duration::from_secs(12 * 3600);

/// No session lives longer than this.
pub const LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Debug, Clone)]
struct Entry {
    user: u64,
    csrf: String,
    created: Instant,
    last_seen: Instant,
}

/// A session found for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub user: u64,
    pub csrf: String,
}

/// A session just made: the cookie value (secret) and its CSRF token.
#[derive(Debug, Clone)]
pub struct Created {
    pub id: String,
    pub csrf: String,
}

/// Every web session of the box.
#[derive(Debug, Default)]
pub struct WebSessions {
    map: Mutex<HashMap<[u8; 32], Entry>>,
}

fn alive(entry: &Entry, now: Instant) -> bool {
    now.duration_since(entry.last_seen) < IDLE && now.duration_since(entry.created) < LIFETIME
}

impl WebSessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Entry>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a session for `user`.
    pub fn create(&self, user: u64) -> Result<Created, StoreError> {
        let (id, csrf) = (new_secret()?, new_secret()?);
        let now = Instant::now();
        let mut map = self.lock();
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, e| alive(e, now));
            while map.len() >= MAX_SESSIONS {
                let Some(oldest) = map.iter().min_by_key(|(_, e)| e.last_seen).map(|(k, _)| *k) else {
                    break;
                };
                map.remove(&oldest);
            }
        }
        map.insert(token_hash(&id), Entry { user, csrf: csrf.clone(), created: now, last_seen: now });
        Ok(Created { id, csrf })
    }

    /// The live session with this cookie value, touched.
    pub fn find(&self, id: &str) -> Option<Found> {
        let key = token_hash(id);
        let now = Instant::now();
        let mut map = self.lock();
        let entry = map.get_mut(&key)?;
        if !alive(entry, now) {
            map.remove(&key);
            return None;
        }
        entry.last_seen = now;
        Some(Found { user: entry.user, csrf: entry.csrf.clone() })
    }

    /// Ends the session with this cookie value.
    pub fn remove(&self, id: &str) {
        self.lock().remove(&token_hash(id));
    }

    /// Ends every session of `user` (removed, disabled, new password).
    pub fn remove_user(&self, user: u64) {
        self.lock().retain(|_, e| e.user != user);
    }

    /// Sessions held now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The `Set-Cookie` value that stores a session in the browser.
pub fn set_cookie(id: &str) -> String {
    format!("{COOKIE}={id}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={}", LIFETIME.as_secs())
}

/// The `Set-Cookie` value that deletes it.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// The session id in the request's `Cookie` headers, if any.
pub fn cookie_value<'a>(headers: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    headers
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty())
}

/// Compares secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn sessions_expire_when_idle_and_at_their_lifetime() {
        let sessions = WebSessions::default();
        let s = sessions.create(7).unwrap();
        assert_eq!(sessions.find(&s.id).unwrap(), Found { user: 7, csrf: s.csrf.clone() });
        tokio::time::advance(IDLE - Duration::from_secs(1)).await;
        assert!(sessions.find(&s.id).is_some(), "use keeps it alive");
        tokio::time::advance(IDLE).await;
        assert!(sessions.find(&s.id).is_none(), "idle too long");

        let s = sessions.create(7).unwrap();
        for _ in 0..30 {
            tokio::time::advance(IDLE / 2).await;
            sessions.find(&s.id);
        }
        assert!(sessions.find(&s.id).is_none(), "past its lifetime");
    }

    #[test]
    fn users_and_single_sessions_can_be_ended() {
        let sessions = WebSessions::default();
        let (a, b, c) =
            (sessions.create(1).unwrap(), sessions.create(1).unwrap(), sessions.create(2).unwrap());
        sessions.remove(&a.id);
        assert!(sessions.find(&a.id).is_none() && sessions.find(&b.id).is_some());
        sessions.remove_user(1);
        assert!(sessions.find(&b.id).is_none() && sessions.find(&c.id).is_some());
    }

    #[test]
    fn cookies_are_host_only_secure_httponly_strict_and_parsed_back() {
        let cookie = set_cookie("abc");
        for part in ["__Host-imbox=abc", "Path=/", "Secure", "HttpOnly", "SameSite=Strict"] {
            assert!(cookie.contains(part), "{cookie}");
        }
        assert!(!cookie.contains("Domain"));
        assert!(clear_cookie().contains("Max-Age=0"));
        let headers = ["theme=dark; __Host-imbox=xyz", "other=1"];
        assert_eq!(cookie_value(headers.into_iter()), Some("xyz"));
        assert_eq!(cookie_value(["imbox=xyz"].into_iter()), None);
        assert!(same_secret("abc", "abc") && !same_secret("abc", "abd") && !same_secret("abc", "ab"));
    }

    #[test]
    fn the_number_of_sessions_is_bounded() {
        let sessions = WebSessions::default();
        for user in 0..(MAX_SESSIONS as u64 + 5) {
            sessions.create(user).unwrap();
        }
        assert_eq!(sessions.len(), MAX_SESSIONS);
    }
}
