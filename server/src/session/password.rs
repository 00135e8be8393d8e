//! Password hashing (argon2id), on a few threads of its own.
//!
//! A hash costs tens of milliseconds of CPU and 19 MiB of memory by design.
//! Running them on a fixed, small set of threads (one per core) bounds both:
//! a burst of logins cannot take every core, and the allocator keeps at most
//! a few 19 MiB blocks around (each thread reuses its own) instead of one per
//! short-lived blocking thread, which grew the daemon to gigabytes.

use std::sync::{mpsc, Arc, Mutex};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use tokio::sync::oneshot;

/// Why hashing failed.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// argon2 refused the input or its parameters.
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// The hashing threads are gone (the daemon is shutting down).
    #[error("password hashing was interrupted")]
    Interrupted,
    /// Too many hashes are waiting; retry shortly.
    #[error("too many password checks are waiting; retry shortly")]
    Busy,
}

type Job = Box<dyn FnOnce() + Send>;

/// Hashes and checks passwords on a fixed number of threads.
#[derive(Debug, Clone)]
pub struct Passwords {
    jobs: mpsc::SyncSender<Job>,
}

/// Jobs waiting for a hashing thread, at most: beyond that callers are told
/// to retry, so a flood of logins queues no unbounded work.
const QUEUE: usize = 256;

/// A valid hash of a random password, checked against when the user does not
/// exist so that a wrong user name takes as long as a wrong password.
const DECOY: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2Vt3T7yJxQJ5xJHk0u7DUB9o8dM8lQJ3Vh9zWmBcbsc";

impl Passwords {
    /// Starts `threads` hashing threads.
    pub fn new(threads: usize) -> Passwords {
        let (jobs, queue) = mpsc::sync_channel::<Job>(QUEUE);
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads.max(1) {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new().name(format!("imbox-argon2-{i}")).spawn(move || loop {
                // The lock is held only while taking a job, not while hashing.
                let job = match queue.lock() {
                    Ok(queue) => queue.recv(),
                    Err(_) => return,
                };
                match job {
                    Ok(job) => job(),
                    Err(_) => return,
                }
            });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password hashing thread");
            }
        }
        Passwords { jobs }
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, PasswordError> + Send + 'static,
    ) -> Result<T, PasswordError> {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = reply.send(work());
        });
        self.jobs.try_send(job).map_err(|e| match e {
            mpsc::TrySendError::Full(_) => PasswordError::Busy,
            mpsc::TrySendError::Disconnected(_) => PasswordError::Interrupted,
        })?;
        answer.await.map_err(|_| PasswordError::Interrupted)?
    }

    /// Hashes a password into a PHC string.
    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        self.run(move || hash_now(&password)).await
    }

    /// Checks a password against a stored hash (or against a decoy when there
    /// is no such user: `None`); false for a mismatch.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, PasswordError> {
        self.run(move || {
            let real = hash.is_some();
            let phc = hash.unwrap_or_else(|| DECOY.to_owned());
            let parsed = PasswordHash::new(&phc).map_err(|e| PasswordError::Hash(e.to_string()))?;
            Ok(Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok() && real)
        })
        .await
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
