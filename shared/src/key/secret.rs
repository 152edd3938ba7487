use std::fmt;

use secrecy::{ExposeSecret, SecretString};

/// A plaintext API key that passed its profile's format check.
///
/// It cannot be printed (`Debug` is redacted, there is no `Display`), serialized (no `Serialize`)
/// or cloned by accident, and its memory is zeroized on drop. The only way to the characters is
/// [`ApiKey::expose_secret`], which makes every use visible in review.
pub struct ApiKey {
    secret: SecretString,
    /// `None` for a key imported from another system ([`crate::KeyProfile::parse_imported`]).
    prefix_len: Option<usize>,
}

impl ApiKey {
    /// Wraps a string the caller has already checked against a profile.
    pub(crate) fn from_checked(value: String, prefix_len: usize) -> Self {
        Self { secret: SecretString::from(value), prefix_len: Some(prefix_len) }
    }

    /// Wraps a string the caller has checked has the shape of an imported key.
    pub(crate) fn from_imported(value: String) -> Self {
        Self { secret: SecretString::from(value), prefix_len: None }
    }

    /// Whether it is a key of another system rather than of this deployment's profile.
    pub fn is_imported(&self) -> bool {
        self.prefix_len.is_none()
    }

    /// The SHA-256 of the key, hex: what another system may have stored instead of the key
    /// (`POST /keys/import` with `sha256`).
    pub fn sha256_hex(&self) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(self.expose_secret().as_bytes()))
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
        match self.prefix_len {
            Some(prefix_len) => format!("{}...{last4}", &key[..=prefix_len]),
            // Another system's key has no prefix of ours to show.
            None => format!("...{last4}"),
        }
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey([REDACTED])")
    }
}
