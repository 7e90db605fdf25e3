//! Password hashing with argon2id, run off the async reactor.
//!
//! Hashing is deliberately slow, so at most a few hashes run at once (a login
//! flood waits its turn instead of filling the blocking pool), and an unknown
//! user costs the same time as a wrong password.

use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::ServiceError;

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashCost {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for HashCost {
    /// OWASP's argon2id recommendation: 19 MiB, 2 passes, 1 lane.
    fn default() -> Self {
        HashCost { memory_kib: 19 * 1024, iterations: 2, parallelism: 1 }
    }
}

/// Hashes and verifies passwords.
#[derive(Clone)]
pub struct Passwords {
    argon: Argon2<'static>,
    slots: Arc<Semaphore>,
    /// A hash of nothing in particular, verified when the user does not exist.
    decoy: Arc<String>,
}

impl Passwords {
    /// A hasher with these costs, running at most `concurrency` hashes at once.
    pub fn new(cost: HashCost, concurrency: usize) -> Result<Passwords, String> {
        let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None)
            .map_err(|e| format!("invalid argon2 parameters: {e}"))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let salt = SaltString::generate(&mut OsRng);
        let decoy = argon.hash_password(b"decoy", &salt).map_err(|e| format!("argon2: {e}"))?.to_string();
        Ok(Passwords { argon, slots: Arc::new(Semaphore::new(concurrency.max(1))), decoy: Arc::new(decoy) })
    }

    /// A salted PHC string for `password`.
    pub async fn hash(&self, password: String) -> Result<String, ServiceError> {
        let _slot = self.slots.acquire().await.map_err(|_| ServiceError::Internal)?;
        let argon = self.argon.clone();
        tokio::task::spawn_blocking(move || {
            let salt = SaltString::generate(&mut OsRng);
            argon.hash_password(password.as_bytes(), &salt).map(|h| h.to_string())
        })
        .await
        .map_err(|_| ServiceError::Internal)?
        .map_err(|e| {
            tracing::error!(error = %e, "password hashing failed");
            ServiceError::Internal
        })
    }

    /// Whether `password` matches `hash`; with `None`, spends the same time and says no.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, ServiceError> {
        let _slot = self.slots.acquire().await.map_err(|_| ServiceError::Internal)?;
        let argon = self.argon.clone();
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.decoy.as_str().to_owned());
        tokio::task::spawn_blocking(move || {
            let Ok(parsed) = PasswordHash::new(&hash) else {
                tracing::error!("stored password hash is not a PHC string");
                return false;
            };
            // The stored hash carries its own parameters, so old hashes keep verifying after a cost change.
            argon.verify_password(password.as_bytes(), &parsed).is_ok() && known
        })
        .await
        .map_err(|_| ServiceError::Internal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> Passwords {
        Passwords::new(HashCost { memory_kib: 256, iterations: 1, parallelism: 1 }, 2).expect("params")
    }

    #[tokio::test]
    async fn hash_is_salted_argon2id_and_verifies() {
        let p = cheap();
        let a = p.hash("secret".into()).await.expect("hash");
        let b = p.hash("secret".into()).await.expect("hash");
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "salted");
        assert!(!a.contains("secret"));
        assert!(p.verify("secret".into(), Some(a.clone())).await.expect("verify"));
        assert!(!p.verify("Secret".into(), Some(a)).await.expect("verify"));
        assert!(!p.verify("decoy".into(), None).await.expect("verify"), "unknown user never verifies");
    }
}
