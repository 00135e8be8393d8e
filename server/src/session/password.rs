//! Password hashing (argon2id), off the async threads and bounded.
//!
//! A hash costs tens of milliseconds of CPU and 19 MiB of memory by design;
//! the semaphore keeps a burst of logins from taking every core and from
//! multiplying that memory.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use tokio::sync::Semaphore;

/// Why hashing failed.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// argon2 refused the input or its parameters.
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// The blocking pool is gone (the runtime is shutting down).
    #[error("password hashing was interrupted")]
    Interrupted,
}

/// Hashes and checks passwords, a bounded number at a time.
#[derive(Debug, Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
}

/// A valid hash of a random password, checked against when the user does not
/// exist so that a wrong user name takes as long as a wrong password.
const DECOY: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2Vt3T7yJxQJ5xJHk0u7DUB9o8dM8lQJ3Vh9zWmBcbsc";

impl Passwords {
    /// At most `parallel` hashes run at once.
    pub fn new(parallel: usize) -> Passwords {
        Passwords { permits: Arc::new(Semaphore::new(parallel.max(1))) }
    }

    /// Hashes a password into a PHC string.
    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        let _permit = self.permits.acquire().await.map_err(|_| PasswordError::Interrupted)?;
        tokio::task::spawn_blocking(move || hash_now(&password))
            .await
            .map_err(|_| PasswordError::Interrupted)?
    }

    /// Checks a password against a stored hash (or against a decoy when there
    /// is no such user: `None`); false for a mismatch.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, PasswordError> {
        let _permit = self.permits.acquire().await.map_err(|_| PasswordError::Interrupted)?;
        tokio::task::spawn_blocking(move || {
            let real = hash.is_some();
            let phc = hash.unwrap_or_else(|| DECOY.to_owned());
            let parsed = PasswordHash::new(&phc).map_err(|e| PasswordError::Hash(e.to_string()))?;
            Ok(Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok() && real)
        })
        .await
        .map_err(|_| PasswordError::Interrupted)?
    }
}

/// Hashes on the current thread (for the command line).
pub fn hash_now(password: &str) -> Result<String, PasswordError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| PasswordError::Hash(format!("no randomness for a salt: {e}")))?;
    let salt = SaltString::encode_b64(&bytes).map_err(|e| PasswordError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_decoys_never_match() {
        let p = Passwords::new(2);
        let hash = p.hash("correct horse".into()).await.unwrap();
        assert!(p.verify("correct horse".into(), Some(hash.clone())).await.unwrap());
        assert!(!p.verify("wrong horse".into(), Some(hash)).await.unwrap());
        assert!(!p.verify("anything".into(), None).await.unwrap());
    }
}
