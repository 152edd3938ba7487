//! Finding the caller's credential in request headers.
//!
//! Three styles are accepted, because real clients use all three: `x-api-key: KEY`,
//! `Authorization: Bearer KEY` and a bare `Authorization: KEY`. Header names and the `Bearer`
//! scheme are case-insensitive; surrounding whitespace is ignored. A bearer token shaped like a
//! JWT (three base64url segments) is handed on as a JWT.
//!
//! When more than one header carries a credential they must agree: the same key in
//! `x-api-key` and `Authorization` is fine, two different ones are refused with
//! `CONFLICTING_CREDENTIALS`, because silently picking one would let a proxy or a client library
//! authenticate a request as someone the caller did not mean.

/// A credential as found, still unverified. Borrowed from the request: extraction allocates
/// nothing.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Credential<'a> {
    ApiKey(&'a str),
    Jwt(&'a str),
}

impl std::fmt::Debug for Credential<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::ApiKey(_) => f.write_str("ApiKey([REDACTED])"),
            Credential::Jwt(_) => f.write_str("Jwt([REDACTED])"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// No credential, or only empty headers. `header` names the header to use (or the empty
    /// one that was sent).
    #[error("an API key is required in the {header} header")]
    Missing { header: &'static str },
    /// Two headers carry different credentials.
    #[error("the x-api-key and Authorization headers carry different credentials")]
    Conflicting,
}

pub const X_API_KEY: &str = "x-api-key";
pub const AUTHORIZATION: &str = "authorization";

/// Extracts the one credential of a request from its headers (every value of every header, so
/// repeated headers are seen too).
pub fn extract_credential<'a, I>(headers: I) -> Result<Credential<'a>, CredentialError>
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut found: Option<Credential<'a>> = None;
    let mut empty_header: Option<&'static str> = None;
    for (name, value) in headers {
        let (header, credential) = if name.eq_ignore_ascii_case(X_API_KEY) {
            (X_API_KEY, non_empty(value.trim()).map(Credential::ApiKey))
        } else if name.eq_ignore_ascii_case(AUTHORIZATION) {
            (AUTHORIZATION, from_authorization(value))
        } else {
            continue;
        };
        match (credential, found) {
            (None, _) => {
                empty_header.get_or_insert(header);
            }
            (Some(new), None) => found = Some(new),
            (Some(new), Some(old)) if new == old => {}
            (Some(_), Some(_)) => return Err(CredentialError::Conflicting),
        }
    }
    found.ok_or(CredentialError::Missing { header: empty_header.unwrap_or(X_API_KEY) })
}

fn from_authorization(value: &str) -> Option<Credential<'_>> {
    let value = value.trim();
    let token = match value.get(..6) {
        Some(scheme) if scheme.eq_ignore_ascii_case("bearer") => {
            let rest = &value[6..];
            if rest.is_empty() {
                return None;
            }
            // `BearerKEY` is not the Bearer scheme; treat it as a bare value.
            if rest.starts_with([' ', '\t']) { rest.trim() } else { value }
        }
        _ => value,
    };
    let token = non_empty(token)?;
    Some(if looks_like_jwt(token) { Credential::Jwt(token) } else { Credential::ApiKey(token) })
}

fn non_empty(value: &str) -> Option<&str> {
    (!value.is_empty()).then_some(value)
}

/// Three non-empty base64url segments separated by dots. API keys never contain a dot.
fn looks_like_jwt(token: &str) -> bool {
    let mut segments = 0;
    for segment in token.split('.') {
        segments += 1;
        let base64url = segment.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if segments > 3 || segment.is_empty() || !base64url {
            return false;
        }
    }
    segments == 3
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "ctw_3f8da4f058e8992f91c42ccfd00b31e3";
    const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2lnbmF0dXJl";

    fn extract(headers: &[(&'static str, &'static str)]) -> Result<Credential<'static>, CredentialError> {
        extract_credential(headers.iter().copied())
    }

    #[test]
    fn three_styles() {
        assert_eq!(extract(&[("x-api-key", KEY)]), Ok(Credential::ApiKey(KEY)));
        assert_eq!(
            extract(&[("Authorization", "Bearer ctw_3f8da4f058e8992f91c42ccfd00b31e3")]),
            Ok(Credential::ApiKey(KEY))
        );
        assert_eq!(extract(&[("authorization", KEY)]), Ok(Credential::ApiKey(KEY)));
    }

    #[test]
    fn case_and_whitespace_tolerated() {
        assert_eq!(extract(&[("X-API-KEY", "  ctw_3f8da4f058e8992f91c42ccfd00b31e3\t")]), Ok(Credential::ApiKey(KEY)));
        assert_eq!(
            extract(&[("AUTHORIZATION", " bEaReR   ctw_3f8da4f058e8992f91c42ccfd00b31e3 ")]),
            Ok(Credential::ApiKey(KEY))
        );
    }

    #[test]
    fn jwt_is_recognised() {
        let bearer = "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2lnbmF0dXJl";
        assert_eq!(extract(&[("Authorization", bearer)]), Ok(Credential::Jwt(JWT)));
        assert_eq!(extract(&[("Authorization", "Bearer a.b")]), Ok(Credential::ApiKey("a.b")));
    }

    #[test]
    fn missing_and_empty() {
        assert_eq!(extract(&[]), Err(CredentialError::Missing { header: "x-api-key" }));
        assert_eq!(extract(&[("accept", "*/*")]), Err(CredentialError::Missing { header: "x-api-key" }));
        assert_eq!(extract(&[("x-api-key", "  ")]), Err(CredentialError::Missing { header: "x-api-key" }));
        assert_eq!(extract(&[("Authorization", "Bearer")]), Err(CredentialError::Missing { header: "authorization" }));
        assert_eq!(
            extract(&[("Authorization", "Bearer   ")]),
            Err(CredentialError::Missing { header: "authorization" })
        );
        // An empty header next to a real one is ignored.
        assert_eq!(extract(&[("x-api-key", ""), ("authorization", KEY)]), Ok(Credential::ApiKey(KEY)));
    }

    #[test]
    fn two_styles_must_agree() {
        assert_eq!(
            extract(&[("x-api-key", KEY), ("authorization", "Bearer ctw_3f8da4f058e8992f91c42ccfd00b31e3")]),
            Ok(Credential::ApiKey(KEY))
        );
        assert_eq!(
            extract(&[("x-api-key", KEY), ("authorization", "Bearer ctw_00000000000000000000000000000000")]),
            Err(CredentialError::Conflicting)
        );
        assert_eq!(extract(&[("x-api-key", KEY), ("x-api-key", "other")]), Err(CredentialError::Conflicting));
        let bearer_jwt = "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2lnbmF0dXJl";
        assert_eq!(extract(&[("x-api-key", KEY), ("authorization", bearer_jwt)]), Err(CredentialError::Conflicting));
    }

    #[test]
    fn debug_never_shows_the_credential() {
        let shown = format!("{:?}", extract(&[("x-api-key", KEY)]));
        assert!(!shown.contains(KEY), "{shown}");
    }
}
