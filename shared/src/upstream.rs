//! What the team's backend learns about the caller: one request header per authorizer context
//! field, the same deployed (the template's integration request parameters) and locally (the
//! local gateway). A client's own header of one of these names never reaches the backend.

/// `(header, authorizer context field)`, in the order they are documented.
pub const CALLER_HEADERS: &[(&str, &str)] = &[
    ("x-latchkey-auth-type", "auth_type"),
    ("x-latchkey-principal", "principal"),
    ("x-latchkey-tenant-id", "tenant_id"),
    ("x-latchkey-key-id", "key_id"),
    ("x-latchkey-permissions", "permissions"),
    ("x-latchkey-tier", "tier"),
    ("x-latchkey-datasource-id", "datasource_id"),
    ("x-latchkey-meta", "meta"),
];

/// Every header with this prefix is Latchkey's to set: a client's is dropped.
pub const RESERVED_PREFIX: &str = "x-latchkey-";

/// The headers that carry a credential: the backend never sees the key.
pub const CREDENTIAL_HEADERS: &[&str] = &["x-api-key", "authorization"];

/// Whether the backend must never receive a client's header of this name: Latchkey's own
/// (`x-latchkey-*`) and the credential headers, with `_` read as `-` and in any case. CGI and
/// WSGI servers (gunicorn before 22 among them) turn `-` and `_` alike into `_`, so a client's
/// `X_Latchkey_Tenant_Id` would reach such a backend as the very variable the real header sets.
pub fn is_reserved_header(name: &str) -> bool {
    let name = name.as_bytes();
    let same = |sent: &[u8], reserved: &str| {
        sent.len() == reserved.len()
            && sent
                .iter()
                .zip(reserved.bytes())
                .all(|(&b, r)| if b == b'_' { r == b'-' } else { b.to_ascii_lowercase() == r })
    };
    name.get(..RESERVED_PREFIX.len()).is_some_and(|prefix| same(prefix, RESERVED_PREFIX))
        || CREDENTIAL_HEADERS.iter().any(|credential| same(name, credential))
}

#[cfg(test)]
mod tests {
    use super::is_reserved_header;

    #[test]
    fn reserved_names_are_recognised_in_every_spelling_a_cgi_server_would_merge() {
        for reserved in [
            "x-latchkey-tenant-id",
            "X-Latchkey-Tenant-Id",
            "X_Latchkey_Tenant_Id",
            "x_latchkey-tenant_id",
            "x-latchkey-anything",
            "x_api_key",
            "X-API-KEY",
            "Authorization",
        ] {
            assert!(is_reserved_header(reserved), "{reserved}");
        }
        for other in ["x-latchkeys", "x-latch-key-id", "x-api-keys", "authorization2", "accept", "x_request_id", ""] {
            assert!(!is_reserved_header(other), "{other}");
        }
    }
}
