//! Header extraction: `extract_credential` over headers read from the input, one `name: value` a
//! line (split at the first `:`; a line without one is a header with an empty value).
//!
//! Beyond "no panic":
//! - a credential is never made up: it is a slice of the value of an `x-api-key` or
//!   `Authorization` header of the input, non-empty and without surrounding whitespace;
//! - a JWT is three non-empty base64url segments;
//! - several headers agree or are refused: the result is what the credential headers give one by
//!   one (one credential → it; two different → `Conflicting`; none → `Missing`), so it depends
//!   neither on the headers' order nor on the case of their names.
#![no_main]

use latchkey::{Credential, CredentialError, extract_credential};
use libfuzzer_sys::fuzz_target;

fn parse_headers(text: &str) -> Vec<(&str, &str)> {
    text.split('\n').map(|line| line.split_once(':').unwrap_or((line, ""))).collect()
}

fn token(credential: Credential<'_>) -> &str {
    match credential {
        Credential::ApiKey(token) | Credential::Jwt(token) => token,
    }
}

fn is_credential_header(name: &str) -> bool {
    name.eq_ignore_ascii_case("x-api-key") || name.eq_ignore_ascii_case("authorization")
}

/// `inner` lies within `outer` (the same memory, not only equal text).
fn is_slice_of(inner: &str, outer: &str) -> bool {
    let (start, end) = (inner.as_ptr() as usize, inner.as_ptr() as usize + inner.len());
    let (outer_start, outer_end) = (outer.as_ptr() as usize, outer.as_ptr() as usize + outer.len());
    outer_start <= start && end <= outer_end
}

/// Outcome without the `Missing` header name (which names the first empty header, so depends on
/// order).
fn verdict(result: Result<Credential<'_>, CredentialError>) -> Result<Credential<'_>, bool> {
    result.map_err(|error| matches!(error, CredentialError::Conflicting))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let headers = parse_headers(text);
    let result = extract_credential(headers.iter().copied());

    // One header at a time: the credentials the request carries.
    let mut seen: Vec<Credential<'_>> = Vec::new();
    for &header in &headers {
        match extract_credential(std::iter::once(header)) {
            Ok(credential) => {
                assert!(is_credential_header(header.0), "{header:?} gave a credential");
                let token = token(credential);
                assert!(is_slice_of(token, header.1), "{token:?} is not from {header:?}");
                assert!(!token.is_empty() && token.trim() == token, "{token:?}");
                if let Credential::Jwt(jwt) = credential {
                    let segments: Vec<&str> = jwt.split('.').collect();
                    assert_eq!(segments.len(), 3, "{jwt:?}");
                    assert!(segments.iter().all(|s| {
                        !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                    }));
                }
                if !seen.contains(&credential) {
                    seen.push(credential);
                }
            }
            Err(CredentialError::Missing { header: named }) => {
                if is_credential_header(header.0) {
                    assert!(named.eq_ignore_ascii_case(header.0), "{header:?} reported as {named}");
                } else {
                    assert_eq!(named, "x-api-key");
                }
            }
            Err(CredentialError::Conflicting) => panic!("one header conflicted with itself: {header:?}"),
        }
    }
    match (&seen[..], result) {
        ([only], Ok(found)) => assert_eq!(*only, found),
        ([_, _, ..], Err(CredentialError::Conflicting)) => {}
        ([], Err(CredentialError::Missing { header })) => {
            let first_named = headers.iter().find(|(name, _)| is_credential_header(name));
            match first_named {
                Some((name, _)) => assert!(header.eq_ignore_ascii_case(name)),
                None => assert_eq!(header, "x-api-key"),
            }
        }
        (seen, result) => panic!("{} distinct credentials, but {:?}", seen.len(), result),
    }

    // Neither the order of the headers nor the case of their names matters.
    let reversed: Vec<(&str, &str)> = headers.iter().rev().copied().collect();
    assert_eq!(verdict(extract_credential(reversed.iter().copied())), verdict(result));
    let upper: Vec<(String, &str)> = headers.iter().map(|(name, value)| (name.to_ascii_uppercase(), *value)).collect();
    let upper_result = extract_credential(upper.iter().map(|(name, value)| (name.as_str(), *value)));
    assert_eq!(upper_result, result);
});
