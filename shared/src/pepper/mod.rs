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
pub use secrets_manager::{SecretValue, SecretsManagerPepper, SecretsManagerSigningSecret, read_secret};

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
    /// `false` when only the current pepper was fetched: whether a previous one exists is not
    /// known yet, and `previous` being `None` means nothing.
    pub previous_known: bool,
}

impl PepperSet {
    pub fn new(current: &Pepper, previous: Option<&Pepper>) -> Self {
        Self { current: current.hasher(), previous: previous.map(Pepper::hasher), previous_known: true }
    }

    /// Only the current pepper; the previous one still to be fetched.
    pub fn current_only(current: &Pepper) -> Self {
        Self { current: current.hasher(), previous: None, previous_known: false }
    }
}

/// Where peppers come from: Secrets Manager in AWS, a 0600 file locally.
pub trait PepperProvider: Send + Sync {
    fn load(&self) -> impl Future<Output = Result<PepperSet, PepperError>> + Send;

    /// The current pepper, where fetching it alone is cheaper than [`PepperProvider::load`]
    /// (Secrets Manager: one call instead of two). By default, the whole set.
    fn load_current(&self) -> impl Future<Output = Result<PepperSet, PepperError>> + Send {
        self.load()
    }
}

/// A provider's answer, fetched once (at cold start) and refreshed after `refresh`, so a
/// rotation reaches warm instances without a fetch per request.
pub struct CachedPepper<P> {
    provider: P,
    refresh: Duration,
    state: RwLock<(Arc<PepperSet>, Instant)>,
    /// Held while the previous pepper is fetched, so concurrent misses fetch it once.
    completing: tokio::sync::Mutex<()>,
}

impl<P: PepperProvider> CachedPepper<P> {
    /// Fetches the whole set now: a missing, short or unreachable pepper refuses to start.
    pub async fn load(provider: P, refresh: Duration) -> Result<Self, PepperError> {
        let set = provider.load().await?;
        Ok(Self::holding(provider, refresh, set))
    }

    /// Fetches only the current pepper now (refusing to start as [`CachedPepper::load`] does);
    /// the previous one is fetched by [`CachedPepper::complete`] when first needed, or by the
    /// first refresh. What a cold start needs: issuing and verifying with the current pepper.
    pub async fn load_current(provider: P, refresh: Duration) -> Result<Self, PepperError> {
        let set = provider.load_current().await?;
        Ok(Self::holding(provider, refresh, set))
    }

    fn holding(provider: P, refresh: Duration, set: PepperSet) -> Self {
        let state = RwLock::new((Arc::new(set), Instant::now()));
        Self { provider, refresh, state, completing: tokio::sync::Mutex::new(()) }
    }

    /// The whole set, previous pepper included: the cached one if it is whole, else fetched
    /// now (once, however many callers wait for it). An error means the previous pepper cannot
    /// be known: the caller must not treat a miss as final.
    pub async fn complete(&self) -> Result<Arc<PepperSet>, PepperError> {
        let cached = || Arc::clone(&self.state.read().expect("pepper lock").0);
        let set = cached();
        if set.previous_known {
            return Ok(set);
        }
        let _only_one = self.completing.lock().await;
        let set = cached();
        if set.previous_known { Ok(set) } else { self.reload().await }
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A rotated secret: current `two`, previous `one`; counts whole loads and current-only ones.
    #[derive(Default)]
    struct Rotated {
        whole: AtomicUsize,
        current_only: AtomicUsize,
    }

    fn pepper(text: &str) -> Pepper {
        Pepper::new(text.repeat(16).into_bytes(), PepperVersion::new(text), "test").unwrap()
    }

    impl PepperProvider for Rotated {
        async fn load(&self) -> Result<PepperSet, PepperError> {
            self.whole.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(PepperSet::new(&pepper("two"), Some(&pepper("one"))))
        }

        async fn load_current(&self) -> Result<PepperSet, PepperError> {
            self.current_only.fetch_add(1, Ordering::SeqCst);
            Ok(PepperSet::current_only(&pepper("two")))
        }
    }

    #[tokio::test]
    async fn a_cold_start_fetches_the_previous_pepper_once_and_only_when_asked() {
        let cached = Arc::new(CachedPepper::load_current(Rotated::default(), Duration::from_secs(300)).await.unwrap());
        let set = cached.current().await;
        assert!(!set.previous_known && set.previous.is_none());
        assert_eq!(cached.provider().whole.load(Ordering::SeqCst), 0, "nothing more until needed");

        let waiting: Vec<_> = (0..8)
            .map(|_| {
                tokio::spawn({
                    let cached = Arc::clone(&cached);
                    async move { cached.complete().await.unwrap() }
                })
            })
            .collect();
        for task in waiting {
            let whole = task.await.unwrap();
            assert!(whole.previous_known);
            assert_eq!(whole.previous.as_ref().unwrap().version(), &PepperVersion::new("one"));
        }
        assert_eq!(cached.provider().whole.load(Ordering::SeqCst), 1, "eight waiters, one fetch");
        assert!(cached.current().await.previous_known, "the whole set is what is cached now");
        cached.complete().await.unwrap();
        assert_eq!(cached.provider().whole.load(Ordering::SeqCst), 1);
        assert_eq!(cached.provider().current_only.load(Ordering::SeqCst), 1);
    }
}
