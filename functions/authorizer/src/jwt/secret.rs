//! The HS256 session secret in Secrets Manager, refreshed like the pepper: `AWSCURRENT` and,
//! after a rotation, `AWSPREVIOUS` (so sessions signed just before a rotation survive it), read
//! at start and again once the refresh interval has passed. A secret two rotations old stops
//! verifying at the first refresh after the second rotation. If a refresh fails, the cached
//! secrets stay in use (the failure is logged) and the next try is one interval later, as for
//! the pepper.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use jsonwebtoken::DecodingKey;
use latchkey::Clock;
use latchkey::pepper::{MIN_PEPPER_BYTES, PepperError, read_secret};

pub struct SharedSecrets {
    source: Option<Source>,
    /// Current first, then previous.
    state: RwLock<(Arc<Vec<DecodingKey>>, DateTime<Utc>)>,
    /// Held while refreshing: one read of the secret at a time.
    refreshing: tokio::sync::Mutex<()>,
}

struct Source {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
    refresh: TimeDelta,
    clock: Arc<dyn Clock>,
}

impl SharedSecrets {
    /// One secret, never read again.
    pub fn fixed(secret: &[u8]) -> Self {
        let keys = Arc::new(vec![DecodingKey::from_secret(secret)]);
        Self { source: None, state: RwLock::new((keys, DateTime::<Utc>::MIN_UTC)), refreshing: Default::default() }
    }

    /// Reads the secret now: missing or short, it refuses to start.
    pub async fn load(
        client: aws_sdk_secretsmanager::Client,
        secret_id: &str,
        refresh: Duration,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, PepperError> {
        let refresh = TimeDelta::from_std(refresh).unwrap_or(TimeDelta::MAX);
        let source = Source { client, secret_id: secret_id.to_owned(), refresh, clock };
        let keys = source.read().await?;
        let state = RwLock::new((Arc::new(keys), source.clock.now()));
        Ok(Self { source: Some(source), state, refreshing: Default::default() })
    }

    /// The keys to try, current first; read again once the interval has passed.
    pub async fn keys(&self) -> Arc<Vec<DecodingKey>> {
        let cached = || self.state.read().expect("secret lock").clone();
        let (keys, read_at) = cached();
        let Some(source) = &self.source else { return keys };
        if source.clock.now() < read_at + source.refresh {
            return keys;
        }
        let _one = self.refreshing.lock().await;
        let (keys, read_at) = cached();
        let now = source.clock.now();
        if now < read_at + source.refresh {
            return keys;
        }
        let keys = match source.read().await {
            Ok(fresh) => Arc::new(fresh),
            Err(error) => {
                tracing::warn!(%error, "session secret refresh failed; keeping the cached one");
                keys
            }
        };
        *self.state.write().expect("secret lock") = (Arc::clone(&keys), now);
        keys
    }
}

impl Source {
    async fn read(&self) -> Result<Vec<DecodingKey>, PepperError> {
        let id = &self.secret_id;
        let (current, previous) =
            tokio::join!(read_secret(&self.client, id, "AWSCURRENT"), read_secret(&self.client, id, "AWSPREVIOUS"));
        let current = current?.ok_or_else(|| PepperError::Missing { secret: id.clone() })?;
        // HS256 wants a key of at least 256 bits, like the pepper.
        let long_enough = |len: usize| match len {
            len if len < MIN_PEPPER_BYTES => Err(PepperError::TooShort { secret: id.clone(), len }),
            _ => Ok(()),
        };
        long_enough(current.bytes.len())?;
        let mut keys = vec![DecodingKey::from_secret(&current.bytes)];
        if let Some(previous) = previous?.filter(|p| long_enough(p.bytes.len()).is_ok()) {
            keys.push(DecodingKey::from_secret(&previous.bytes));
        }
        Ok(keys)
    }
}
