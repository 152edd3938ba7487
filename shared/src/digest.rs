//! Peppered hashing: `HMAC-SHA256(pepper, key)` is the only form in which a key is stored, and
//! the store's lookup key.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::ApiKey;

/// The digest of a key under one pepper. Compared in constant time; never printed.
#[derive(Clone, Copy)]
pub struct KeyDigest([u8; 32]);

impl KeyDigest {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex, as stored.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(text: &str) -> Option<Self> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(Self(bytes))
    }
}

impl PartialEq for KeyDigest {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for KeyDigest {}

impl std::hash::Hash for KeyDigest {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyDigest([REDACTED])")
    }
}

/// Which pepper a digest was made with: Secrets Manager's version id, or the local file's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct PepperVersion(String);

impl PepperVersion {
    /// The "version" of a record imported as another system's SHA-256 digest of its key
    /// (`POST /keys/import` with `sha256`): no pepper at all, until the key's first use moves it
    /// under the current pepper, as a pepper rotation's keys are moved.
    pub const LEGACY_SHA256: &'static str = "legacy-sha256";

    pub fn legacy_sha256() -> Self {
        Self(Self::LEGACY_SHA256.to_owned())
    }

    pub fn is_legacy_sha256(&self) -> bool {
        self.0 == Self::LEGACY_SHA256
    }

    pub fn new(version: impl Into<String>) -> Self {
        Self(version.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PepperVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An HMAC keyed once with a pepper. Each digest clones the keyed state, so the pepper's key
/// schedule is not recomputed per request.
#[derive(Clone)]
pub struct KeyHasher {
    keyed: Hmac<Sha256>,
    version: PepperVersion,
}

impl KeyHasher {
    pub fn new(pepper: &[u8], version: PepperVersion) -> Self {
        let keyed = Hmac::<Sha256>::new_from_slice(pepper).expect("HMAC accepts keys of any length");
        Self { keyed, version }
    }

    pub fn version(&self) -> &PepperVersion {
        &self.version
    }

    pub fn digest(&self, key: &ApiKey) -> KeyDigest {
        let mut mac = self.keyed.clone();
        mac.update(key.expose_secret().as_bytes());
        KeyDigest(mac.finalize().into_bytes().into())
    }
}

impl fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyHasher").field("version", &self.version).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyProfile;

    #[test]
    fn matches_a_plain_hmac_and_depends_on_the_pepper() {
        let key = KeyProfile::ctw().parse("ctw_3f8da4f058e8992f91c42ccfd00b31e3").unwrap();
        let pepper = [7u8; 32];
        let hasher = KeyHasher::new(&pepper, PepperVersion::new("v1"));
        let mut plain = Hmac::<Sha256>::new_from_slice(&pepper).unwrap();
        plain.update(key.expose_secret().as_bytes());
        let expected: [u8; 32] = plain.finalize().into_bytes().into();
        assert_eq!(hasher.digest(&key).as_bytes(), &expected);
        assert_eq!(hasher.digest(&key), hasher.digest(&key));
        let other = KeyHasher::new(&[8u8; 32], PepperVersion::new("v2"));
        assert_ne!(other.digest(&key), hasher.digest(&key));
        let digest = hasher.digest(&key);
        assert_eq!(KeyDigest::from_hex(&digest.to_hex()), Some(digest));
        assert!(!format!("{digest:?}{hasher:?}").contains(&digest.to_hex()));
    }
}
