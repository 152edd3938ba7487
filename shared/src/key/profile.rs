use std::fmt;

use rand::TryRngCore;
use rand::rngs::OsRng;

use super::ApiKey;

/// Hex digits of the CRC32 checksum that ends a checksummed key.
const CHECKSUM_HEX_LEN: usize = 8;
/// The floor on the random part of any key: 128 bits, 32 hex digits.
const MIN_RANDOM_HEX_LEN: usize = 32;
/// The longest body a custom profile may ask for; keeps headers and items small.
const MAX_BODY_LEN: usize = 128;
const MAX_PREFIX_LEN: usize = 16;

/// A deployment's key format: `{prefix}_{body}`, the body lowercase hex from the OS CSPRNG,
/// optionally ending in a CRC32 of everything before it so a mistyped or truncated key is
/// rejected without a database read.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyProfile {
    name: String,
    prefix: String,
    body_len: usize,
    checksum: bool,
}

/// Why a candidate is not a key of the profile. Never carries the candidate itself; every
/// variant is answered the same way (`INVALID_API_KEY_FORMAT`), the detail is for tests and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    #[error("the key has the wrong length")]
    Length,
    #[error("the key does not start with the deployment's prefix")]
    Prefix,
    #[error("the key body is not lowercase hex")]
    Body,
    #[error("the key's checksum does not match")]
    Checksum,
    /// Not a key another system could have issued either: an imported key is 20 to 256 visible
    /// ASCII characters, and does not start with this deployment's prefix.
    #[error("the key is not 20 to 256 visible ASCII characters, or starts with this deployment's prefix")]
    NotImportable,
}

/// The shortest key another system's may be (API Gateway's own are 20 to 128 alphanumerics).
pub const IMPORTED_MIN_LEN: usize = 20;
/// The longest.
pub const IMPORTED_MAX_LEN: usize = 256;

/// A profile definition that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    #[error("unknown key profile `{0}` (expected ctw, orch, latchkey or custom:PREFIX:BODY_LEN[:crc32])")]
    Unknown(String),
    #[error("key prefix `{0}` must be 1 to {MAX_PREFIX_LEN} characters of a-z and 0-9, starting with a letter")]
    Prefix(String),
    #[error(
        "key body length {body_len} leaves {random_hex} random hex digits; at least {MIN_RANDOM_HEX_LEN} (128 bits) and a body of at most {MAX_BODY_LEN} are required"
    )]
    BodyLength { body_len: usize, random_hex: usize },
}

impl KeyProfile {
    /// `ctw_` + 32 lowercase hex: 128 random bits, no checksum.
    pub fn ctw() -> Self {
        Self::build("ctw", "ctw", 32, false)
    }

    /// `orch_` + 40 lowercase hex, exactly 45 characters: 160 random bits, no checksum.
    pub fn orch() -> Self {
        Self::build("orch", "orch", 40, false)
    }

    /// Latchkey's default: `lk_` + 32 random hex + an 8-hex CRC32, 128 random bits.
    pub fn latchkey() -> Self {
        Self::build("latchkey", "lk", 40, true)
    }

    /// A profile from configuration; the prefix and the body length are validated.
    pub fn custom(prefix: &str, body_len: usize, checksum: bool) -> Result<Self, ProfileError> {
        let valid_prefix = !prefix.is_empty()
            && prefix.len() <= MAX_PREFIX_LEN
            && prefix.starts_with(|c: char| c.is_ascii_lowercase())
            && prefix.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !valid_prefix {
            return Err(ProfileError::Prefix(prefix.to_owned()));
        }
        let random_hex = body_len.saturating_sub(if checksum { CHECKSUM_HEX_LEN } else { 0 });
        if random_hex < MIN_RANDOM_HEX_LEN || body_len > MAX_BODY_LEN {
            return Err(ProfileError::BodyLength { body_len, random_hex });
        }
        Ok(Self::build("custom", prefix, body_len, checksum))
    }

    /// Reads a profile spec: `ctw`, `orch`, `latchkey`, or `custom:PREFIX:BODY_LEN[:crc32]`.
    pub fn from_spec(spec: &str) -> Result<Self, ProfileError> {
        match spec {
            "ctw" => return Ok(Self::ctw()),
            "orch" => return Ok(Self::orch()),
            "latchkey" => return Ok(Self::latchkey()),
            _ => {}
        }
        let unknown = || ProfileError::Unknown(spec.to_owned());
        let mut parts = spec.split(':');
        if parts.next() != Some("custom") {
            return Err(unknown());
        }
        let prefix = parts.next().ok_or_else(unknown)?;
        let body_len = parts.next().and_then(|n| n.parse().ok()).ok_or_else(unknown)?;
        let checksum = match parts.next() {
            None => false,
            Some("crc32") => true,
            Some(_) => return Err(unknown()),
        };
        if parts.next().is_some() {
            return Err(unknown());
        }
        Self::custom(prefix, body_len, checksum)
    }

    fn build(name: &str, prefix: &str, body_len: usize, checksum: bool) -> Self {
        Self { name: name.to_owned(), prefix: prefix.to_owned(), body_len, checksum }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn has_checksum(&self) -> bool {
        self.checksum
    }

    /// Total length of a key: prefix, underscore, body.
    pub fn key_len(&self) -> usize {
        self.prefix.len() + 1 + self.body_len
    }

    fn random_hex_len(&self) -> usize {
        self.body_len - if self.checksum { CHECKSUM_HEX_LEN } else { 0 }
    }

    /// Bits of OS randomness in every key of this profile.
    pub fn random_bits(&self) -> usize {
        self.random_hex_len() * 4
    }

    /// A new key from the OS CSPRNG.
    ///
    /// # Panics
    /// If the operating system cannot supply randomness: no key is better than a weak one.
    pub fn generate(&self) -> ApiKey {
        // On the stack and wiped after: the random bytes and their hex are the key.
        let mut bytes = zeroize::Zeroizing::new([0u8; MAX_BODY_LEN / 2]);
        let mut random_hex = zeroize::Zeroizing::new([0u8; MAX_BODY_LEN]);
        let hex_len = self.random_hex_len();
        let bytes = &mut bytes[..hex_len.div_ceil(2)];
        OsRng.try_fill_bytes(bytes).expect("the OS random number generator failed");
        let random_hex = &mut random_hex[..bytes.len() * 2];
        hex::encode_to_slice(&*bytes, random_hex).expect("twice as many hex digits as bytes");
        let mut key = String::with_capacity(self.key_len());
        key.push_str(&self.prefix);
        key.push('_');
        key.push_str(std::str::from_utf8(&random_hex[..hex_len]).expect("hex is ASCII"));
        if self.checksum {
            let crc = crc32fast::hash(key.as_bytes());
            let mut crc_hex = [0u8; CHECKSUM_HEX_LEN];
            hex::encode_to_slice(crc.to_be_bytes(), &mut crc_hex).expect("8 hex digits for 4 bytes");
            key.push_str(std::str::from_utf8(&crc_hex).expect("hex is ASCII"));
        }
        debug_assert!(self.check(&key).is_ok());
        ApiKey::from_checked(key, self.prefix.len())
    }

    /// The format check: length, prefix, lowercase hex body, checksum. No allocation, no I/O.
    pub fn check(&self, candidate: &str) -> Result<(), KeyFormatError> {
        let bytes = candidate.as_bytes();
        if bytes.len() != self.key_len() {
            return Err(KeyFormatError::Length);
        }
        let prefix_len = self.prefix.len();
        if &bytes[..prefix_len] != self.prefix.as_bytes() || bytes[prefix_len] != b'_' {
            return Err(KeyFormatError::Prefix);
        }
        let body = &bytes[prefix_len + 1..];
        if !body.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(KeyFormatError::Body);
        }
        if self.checksum {
            let (covered, stated) = bytes.split_at(bytes.len() - CHECKSUM_HEX_LEN);
            // The body is known to be hex, so this parse cannot fail.
            let stated = std::str::from_utf8(stated)
                .ok()
                .and_then(|s| u32::from_str_radix(s, 16).ok())
                .ok_or(KeyFormatError::Checksum)?;
            if crc32fast::hash(covered) != stated {
                return Err(KeyFormatError::Checksum);
            }
        }
        Ok(())
    }

    /// A key imported from another system (`POST /keys/import`): 20 to 256 visible ASCII
    /// characters that do not start with this profile's prefix and `_` (a string that does is a
    /// mistyped key of ours, refused without I/O as before). No allocation unless it is one.
    pub fn parse_imported(&self, candidate: &str) -> Result<ApiKey, KeyFormatError> {
        let bytes = candidate.as_bytes();
        let ours = bytes.len() > self.prefix.len()
            && bytes.starts_with(self.prefix.as_bytes())
            && bytes[self.prefix.len()] == b'_';
        let visible = bytes.iter().all(|b| (0x21..=0x7e).contains(b));
        if ours || !visible || !(IMPORTED_MIN_LEN..=IMPORTED_MAX_LEN).contains(&bytes.len()) {
            return Err(KeyFormatError::NotImportable);
        }
        Ok(ApiKey::from_imported(candidate.to_owned()))
    }

    /// What verification looks up: a key of this profile, or else of an imported key's shape.
    pub fn parse_verifiable(&self, candidate: &str) -> Result<ApiKey, KeyFormatError> {
        self.parse(candidate).or_else(|_| self.parse_imported(candidate))
    }

    /// Parses a candidate into a typed key: exactly a key of this profile, or an error.
    pub fn parse(&self, candidate: &str) -> Result<ApiKey, KeyFormatError> {
        self.check(candidate)?;
        Ok(ApiKey::from_checked(candidate.to_owned(), self.prefix.len()))
    }
}

impl fmt::Debug for KeyProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyProfile")
            .field("name", &self.name)
            .field("prefix", &self.prefix)
            .field("body_len", &self.body_len)
            .field("checksum", &self.checksum)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn design_examples_reproduce_exactly() {
        assert!(KeyProfile::ctw().check("ctw_3f8da4f058e8992f91c42ccfd00b31e3").is_ok());
        let orch = KeyProfile::orch();
        let key = orch.generate();
        assert_eq!(key.expose_secret().len(), 45);
        assert!(key.expose_secret().starts_with("orch_"));
        assert_eq!(orch.random_bits(), 160);
        assert_eq!(KeyProfile::ctw().random_bits(), 128);
        assert_eq!(KeyProfile::latchkey().random_bits(), 128);
    }

    #[test]
    fn rejects_wrong_case_prefix_and_length() {
        let ctw = KeyProfile::ctw();
        assert_eq!(ctw.check("ctw_3F8DA4F058E8992F91C42CCFD00B31E3"), Err(KeyFormatError::Body));
        assert_eq!(ctw.check("CTW_3f8da4f058e8992f91c42ccfd00b31e3"), Err(KeyFormatError::Prefix));
        assert_eq!(ctw.check("ctx_3f8da4f058e8992f91c42ccfd00b31e3"), Err(KeyFormatError::Prefix));
        assert_eq!(ctw.check("ctw-3f8da4f058e8992f91c42ccfd00b31e3"), Err(KeyFormatError::Prefix));
        assert_eq!(ctw.check("ctw_3f8da4f058e8992f91c42ccfd00b31e"), Err(KeyFormatError::Length));
        assert_eq!(ctw.check("ctw_3f8da4f058e8992f91c42ccfd00b31e3a"), Err(KeyFormatError::Length));
        assert_eq!(ctw.check(""), Err(KeyFormatError::Length));
        // A multi-byte character of the right byte length is not hex.
        assert_eq!(ctw.check("ctw_3f8da4f058e8992f91c42ccfd00b31é"), Err(KeyFormatError::Body));
    }

    #[test]
    fn checksum_catches_a_typo() {
        let profile = KeyProfile::latchkey();
        let key = profile.generate();
        let text = key.expose_secret();
        assert!(profile.check(text).is_ok());
        let mut typo = text.as_bytes().to_vec();
        typo[5] = if typo[5] == b'0' { b'1' } else { b'0' };
        assert_eq!(profile.check(std::str::from_utf8(&typo).unwrap()), Err(KeyFormatError::Checksum));
    }

    #[test]
    fn hint_is_prefix_and_last_four() {
        let key = KeyProfile::ctw().parse("ctw_3f8da4f058e8992f91c42ccfd00b31e3").unwrap();
        assert_eq!(key.hint(), "ctw_...31e3");
    }

    #[test]
    fn specs() {
        assert_eq!(KeyProfile::from_spec("orch").unwrap(), KeyProfile::orch());
        let custom = KeyProfile::from_spec("custom:acme:40:crc32").unwrap();
        assert_eq!(custom.key_len(), 45);
        assert!(custom.has_checksum());
        assert!(custom.check(custom.generate().expose_secret()).is_ok());
        assert!(matches!(KeyProfile::from_spec("custom:Acme:40"), Err(ProfileError::Prefix(_))));
        assert!(matches!(KeyProfile::from_spec("custom:acme:39:crc32"), Err(ProfileError::BodyLength { .. })));
        assert!(matches!(KeyProfile::from_spec("custom:acme:200"), Err(ProfileError::BodyLength { .. })));
        assert!(matches!(KeyProfile::from_spec("custom:acme"), Err(ProfileError::Unknown(_))));
        assert!(matches!(KeyProfile::from_spec("custom:acme:40:md5"), Err(ProfileError::Unknown(_))));
        assert!(matches!(KeyProfile::from_spec("stripe"), Err(ProfileError::Unknown(_))));
        // An odd custom body length still yields exactly that many hex digits.
        let odd = KeyProfile::custom("odd", 33, false).unwrap();
        assert_eq!(odd.generate().expose_secret().len(), odd.key_len());
    }
}
