use std::fmt;

use secrecy::{ExposeSecret, SecretString};

/// A plaintext API key that passed its profile's format check.
///
/// It cannot be printed (`Debug` is redacted, there is no `Display`), serialized (no `Serialize`)
/// or cloned by accident, and its memory is zeroized on drop. The only way to the characters is
/// [`ApiKey::expose_secret`], which makes every use visible in review.
pub struct ApiKey {
    secret: SecretString,
    prefix_len: usize,
}

impl ApiKey {
    /// Wraps a string the caller has already checked against a profile.
    pub(crate) fn from_checked(value: String, prefix_len: usize) -> Self {
        Self { secret: SecretString::from(value), prefix_len }
    }

    /// The plaintext. Only for hashing and for the one response that shows a new key.
    pub fn expose_secret(&self) -> &str {
        self.secret.expose_secret()
    }

    /// What humans see instead of the key: the prefix and the last four characters,
    /// e.g. `ctw_...31e3`. Enough to recognise a key, far too little to use it.
    pub fn hint(&self) -> String {
        let key = self.expose_secret();
        let last4 = &key[key.len() - 4..];
        format!("{}...{last4}", &key[..=self.prefix_len])
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey([REDACTED])")
    }
}
