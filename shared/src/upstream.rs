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
