//! Public identifiers. Unlike keys, these may appear in responses, logs and error details.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a valid {kind}")]
pub struct IdError {
    pub kind: &'static str,
    pub value: String,
}

/// Generates a prefixed, time-ordered random id type (`{prefix}` + UUIDv7 as 32 lowercase hex),
/// so ids sort by creation time and listing in id order is listing in creation order.
macro_rules! random_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            pub fn generate() -> Self {
                Self(format!("{}{}", $prefix, uuid::Uuid::now_v7().simple()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(value: &str) -> Result<Self, IdError> {
                let valid = value
                    .strip_prefix($prefix)
                    .is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
                if valid { Ok(Self(value.to_owned())) } else { Err(IdError { kind: $kind, value: value.to_owned() }) }
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;

            fn try_from(value: String) -> Result<Self, IdError> {
                value.parse()
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

random_id!(
    /// A key's public id, e.g. `key_0193...`: what responses, logs and error details show.
    KeyId, "key_", "key id"
);
random_id!(
    /// An audit event's id, e.g. `evt_0193...`: time-ordered, so the log reads in order.
    AuditId, "evt_", "audit event id"
);
random_id!(
    /// A datasource's id, e.g. `ds_0193...`.
    DatasourceId, "ds_", "datasource id"
);

/// The account a key belongs to. Chosen by the operator (bootstrap) or taken from a JWT claim,
/// so it is any printable ASCII without whitespace, up to 128 characters; `#` is excluded
/// because the stores use it as a separator.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

impl TenantId {
    pub const MAX_LEN: usize = 128;

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for TenantId {
    type Err = IdError;

    fn from_str(value: &str) -> Result<Self, IdError> {
        let valid = !value.is_empty()
            && value.len() <= Self::MAX_LEN
            && value.bytes().all(|b| b.is_ascii_graphic() && b != b'#');
        if valid { Ok(Self(value.to_owned())) } else { Err(IdError { kind: "tenant id", value: value.to_owned() }) }
    }
}

impl TryFrom<String> for TenantId {
    type Error = IdError;

    fn try_from(value: String) -> Result<Self, IdError> {
        value.parse()
    }
}

impl From<TenantId> for String {
    fn from(id: TenantId) -> String {
        id.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_sort_by_time() {
        let first = KeyId::generate();
        let second = KeyId::generate();
        assert!(first.as_str().starts_with("key_") && first.as_str().len() == 36);
        assert_eq!(first.as_str().parse::<KeyId>().unwrap(), first);
        assert!(first < second);
        assert!("key_xyz".parse::<KeyId>().is_err());
        assert!(first.as_str().to_uppercase().parse::<KeyId>().is_err());
        assert!(DatasourceId::generate().as_str().starts_with("ds_"));
        assert!(first.as_str().parse::<DatasourceId>().is_err());
    }

    #[test]
    fn tenant_ids() {
        assert!("acme".parse::<TenantId>().is_ok());
        assert!("auth0|5f7c8ec7c33c6c004bbafe82".parse::<TenantId>().is_ok());
        for bad in ["", "a b", "a#b", "tab\t", &"x".repeat(129)] {
            assert!(bad.parse::<TenantId>().is_err(), "{bad:?}");
        }
    }
}
