//! The pepper: the HMAC key that turns a plaintext key into its stored digest. It never leaves
//! its secret store except into a [`KeyHasher`], and it can rotate: digests made under the
//! previous version still verify (and are then moved to the current one).

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use crate::{KeyHasher, PepperVersion};

mod file;
#[cfg(feature = "aws")]
mod secrets_manager;

pub use file::FilePepper;
#[cfg(feature = "aws")]
pub use secrets_manager::{SecretValue, SecretsManagerPepper, read_secret};

/// A shorter pepper is refused: HMAC-SHA256's key should carry at least 256 bits.
pub const MIN_PEPPER_BYTES: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PepperError {
    #[error("the secret `{secret}` does not exist or has no current value")]
    Missing { secret: String },
    #[error("the secret `{secret}` is {len} bytes; at least {MIN_PEPPER_BYTES} are required")]
    TooShort { secret: String, len: usize },
    #[error("the secret `{secret}` could not be read: {cause}")]
    Unavailable { secret: String, cause: String },
}

/// One version of the pepper, checked for length. Zeroized on drop.
pub struct Pepper {
    bytes: Zeroizing<Vec<u8>>,
    version: PepperVersion,
}

impl Pepper {
    /// `secret` names where it came from, for the error.
    pub fn new(bytes: Vec<u8>, version: PepperVersion, secret: &str) -> Result<Self, PepperError> {
        let bytes = Zeroizing::new(bytes);
        if bytes.len() < MIN_PEPPER_BYTES {
            return Err(PepperError::TooShort { secret: secret.to_owned(), len: bytes.len() });
        }
        Ok(Self { bytes, version })
    }

    pub fn hasher(&self) -> KeyHasher {
        KeyHasher::new(&self.bytes, self.version.clone())
    }
}

/// The hashers for the current pepper and, after a rotation, the previous one.
#[derive(Debug, Clone)]
pub struct PepperSet {
    pub current: KeyHasher,
    pub previous: Option<KeyHasher>,
}

impl PepperSet {
    pub fn new(current: &Pepper, previous: Option<&Pepper>) -> Self {
        Self { current: current.hasher(), previous: previous.map(Pepper::hasher) }
    }
}

/// Where peppers come from: Secrets Manager in AWS, a 0600 file locally.
pub trait PepperProvider: Send + Sync {
    fn load(&self) -> impl Future<Output = Result<PepperSet, PepperError>> + Send;
}

/// A provider's answer, fetched once (at cold start) and refreshed after `refresh`, so a
/// rotation reaches warm instances without a fetch per request.
pub struct CachedPepper<P> {
    provider: P,
    refresh: Duration,
    state: RwLock<(Arc<PepperSet>, Instant)>,
}

impl<P: PepperProvider> CachedPepper<P> {
    /// Fetches now: a missing, short or unreachable pepper refuses to start.
    pub async fn load(provider: P, refresh: Duration) -> Result<Self, PepperError> {
        let set = provider.load().await?;
        Ok(Self { provider, refresh, state: RwLock::new((Arc::new(set), Instant::now())) })
    }

    /// The peppers to hash with. Past the refresh interval, fetches again; if that fails the
    /// cached peppers stay in use (they are still correct until the secret rotates) and the
    /// failure is logged.
    pub async fn current(&self) -> Arc<PepperSet> {
        let (set, fetched) = {
            let state = self.state.read().expect("pepper lock");
            (Arc::clone(&state.0), state.1)
        };
        if fetched.elapsed() < self.refresh {
            return set;
        }
        match self.reload().await {
            Ok(fresh) => fresh,
            Err(error) => {
                tracing::warn!(%error, "pepper refresh failed; keeping the cached pepper");
                // Try again after another interval rather than on every request.
                self.state.write().expect("pepper lock").1 = Instant::now();
                set
            }
        }
    }

    /// Fetches now and replaces the cache.
    pub async fn reload(&self) -> Result<Arc<PepperSet>, PepperError> {
        let fresh = Arc::new(self.provider.load().await?);
        *self.state.write().expect("pepper lock") = (Arc::clone(&fresh), Instant::now());
        Ok(fresh)
    }

    pub fn provider(&self) -> &P {
        &self.provider
    }
}
