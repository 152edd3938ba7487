//! What a key may do. `read`, `write`, `admin` and `webhook` are the seed vocabulary; `ingest`
//! is scoped to one datasource.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    Read,
    Write,
    Admin,
    Webhook,
    Ingest,
}

impl Permission {
    pub const ALL: [Permission; 5] =
        [Permission::Read, Permission::Write, Permission::Admin, Permission::Webhook, Permission::Ingest];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "read",
            Permission::Write => "write",
            Permission::Admin => "admin",
            Permission::Webhook => "webhook",
            Permission::Ingest => "ingest",
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown permission `{0}` (expected read, write, admin, webhook or ingest)")]
pub struct UnknownPermission(pub String);

impl FromStr for Permission {
    type Err = UnknownPermission;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Permission::ALL.into_iter().find(|p| p.as_str() == value).ok_or_else(|| UnknownPermission(value.to_owned()))
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of permissions. Serialized as a sorted list of names; rendered comma-separated for the
/// authorizer context, whose values must be strings.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "Vec<Permission>", into = "Vec<Permission>")]
pub struct Permissions(u8);

impl Permissions {
    pub fn contains(self, permission: Permission) -> bool {
        self.0 & permission.bit() != 0
    }

    pub fn insert(&mut self, permission: Permission) {
        self.0 |= permission.bit();
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL.into_iter().filter(move |p| self.contains(*p))
    }

    /// `read,write`: the authorizer context form.
    pub fn to_csv(self) -> String {
        self.iter().map(Permission::as_str).collect::<Vec<_>>().join(",")
    }

    /// Reads the context form back; an empty string is the empty set.
    pub fn from_csv(csv: &str) -> Result<Self, UnknownPermission> {
        csv.split(',').filter(|p| !p.is_empty()).map(str::parse).collect()
    }
}

impl FromIterator<Permission> for Permissions {
    fn from_iter<T: IntoIterator<Item = Permission>>(iter: T) -> Self {
        let mut set = Permissions::default();
        iter.into_iter().for_each(|p| set.insert(p));
        set
    }
}

impl From<Vec<Permission>> for Permissions {
    fn from(list: Vec<Permission>) -> Self {
        list.into_iter().collect()
    }
}

impl From<Permissions> for Vec<Permission> {
    fn from(set: Permissions) -> Self {
        set.iter().collect()
    }
}

impl fmt::Debug for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_and_json_round_trip() {
        let set: Permissions = [Permission::Write, Permission::Read].into_iter().collect();
        assert_eq!(set.to_csv(), "read,write");
        assert_eq!(Permissions::from_csv("read,write").unwrap(), set);
        assert_eq!(Permissions::from_csv("").unwrap(), Permissions::default());
        assert!(Permissions::from_csv("read,root").is_err());
        assert_eq!(serde_json::to_string(&set).unwrap(), r#"["read","write"]"#);
        assert!(serde_json::from_str::<Permissions>(r#"["sudo"]"#).is_err());
    }
}
