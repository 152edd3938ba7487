//! The key parser: `KeyProfile::parse` / `check` of arbitrary text against every built-in profile,
//! a few custom ones, and (when the input is `SPEC\nCANDIDATE`) a profile read by
//! `KeyProfile::from_spec` from the input itself.
//!
//! Beyond "no panic": the parser agrees with an independent reading of the documented format
//! (`{prefix}_{lowercase hex body}`, the last 8 hex digits the CRC32 of everything before them
//! when checksummed), a parsed key re-renders to exactly the input, and its hint shows only the
//! prefix and the last four characters. A profile read from a spec is valid (prefix, 128 random
//! bits at least, body at most 128) and the keys it generates parse.
#![no_main]

use std::sync::LazyLock;

use latchkey::{KeyFormatError, KeyProfile};
use libfuzzer_sys::fuzz_target;

/// The built-in profiles and custom ones at the edges: shortest and longest prefix and body, an
/// odd body length, with and without a checksum.
static PROFILES: LazyLock<Vec<KeyProfile>> = LazyLock::new(|| {
    let mut profiles = vec![KeyProfile::ctw(), KeyProfile::orch(), KeyProfile::latchkey()];
    for spec in ["custom:acme:40:crc32", "custom:x:32", "custom:odd:33", "custom:abcdefghijklmnop:128:crc32"] {
        profiles.push(KeyProfile::from_spec(spec).expect("a valid spec"));
    }
    profiles
});

/// The format as documented, written independently of the parser: `Ok` exactly when `candidate`
/// is a key of (prefix, body_len, checksum).
fn reference(prefix: &str, body_len: usize, checksum: bool, candidate: &str) -> Result<(), KeyFormatError> {
    if candidate.len() != prefix.len() + 1 + body_len {
        return Err(KeyFormatError::Length);
    }
    let Some(body) = candidate.strip_prefix(prefix).and_then(|rest| rest.strip_prefix('_')) else {
        return Err(KeyFormatError::Prefix);
    };
    if !body.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)) {
        return Err(KeyFormatError::Body);
    }
    if checksum {
        let (covered, stated) = candidate.split_at(candidate.len() - 8);
        if format!("{:08x}", crc32fast::hash(covered.as_bytes())) != stated {
            return Err(KeyFormatError::Checksum);
        }
    }
    Ok(())
}

fn check_against(profile: &KeyProfile, candidate: &str) {
    let body_len = profile.key_len() - profile.prefix().len() - 1;
    let expected = reference(profile.prefix(), body_len, profile.has_checksum(), candidate);
    let checked = profile.check(candidate);
    // The verdict and the reason both match the format.
    assert_eq!(checked, expected, "{profile:?} on {candidate:?}");
    match profile.parse(candidate) {
        Ok(key) => {
            assert!(checked.is_ok());
            // Re-renders to exactly the input.
            assert_eq!(key.expose_secret(), candidate);
            let hint = key.hint();
            assert_eq!(hint, format!("{}_...{}", profile.prefix(), &candidate[candidate.len() - 4..]));
            // Nothing of the key leaks through Debug.
            assert_eq!(format!("{key:?}"), "ApiKey([REDACTED])");
        }
        Err(error) => assert_eq!(Err(error), checked),
    }
}

fn check_profile(spec: &str, profile: &KeyProfile) {
    let prefix = profile.prefix();
    if profile.name() == "custom" {
        let rest = spec.strip_prefix("custom:").and_then(|rest| rest.strip_prefix(prefix));
        assert!(rest.is_some_and(|rest| rest.starts_with(':')), "{spec:?} read as {profile:?}");
        assert_eq!(spec.ends_with(":crc32"), profile.has_checksum(), "{spec:?} read as {profile:?}");
    } else {
        assert_eq!(profile.name(), spec);
    }
    assert!((1..=16).contains(&prefix.len()), "{profile:?}");
    assert!(prefix.starts_with(|c: char| c.is_ascii_lowercase()), "{profile:?}");
    assert!(prefix.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()), "{profile:?}");
    let body_len = profile.key_len() - prefix.len() - 1;
    assert!(body_len <= 128 && profile.random_bits() >= 128, "{profile:?}");
    assert_eq!(profile.random_bits(), 4 * (body_len - if profile.has_checksum() { 8 } else { 0 }));
    let key = profile.generate();
    check_against(profile, key.expose_secret());
    assert!(profile.parse(key.expose_secret()).is_ok());
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let candidate = match text.split_once('\n') {
        Some((spec, candidate)) => {
            if let Ok(profile) = KeyProfile::from_spec(spec) {
                check_profile(spec, &profile);
                check_against(&profile, candidate);
            }
            candidate
        }
        None => text,
    };
    for profile in PROFILES.iter() {
        check_against(profile, candidate);
    }
});
