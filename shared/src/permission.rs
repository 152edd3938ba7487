//! What a key may do. `read`, `write`, `admin` and `webhook` are the seed vocabulary; `ingest`
//! is scoped to one datasource. Beside them a key carries the tenant's own names
//! (`documents.read`, `billing:*`): Latchkey gives them no meaning and hands them to the backend
//! unchanged, so the backend can decide with them.

use std::collections::BTreeSet;
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

/// A tenant's own permission name: 1 to [`CustomPermission::MAX_CHARS`] characters of
/// `a-z 0-9 . _ : * -`. No comma, so the comma-separated context and header forms stay
/// unambiguous; lower case only, so `Billing:*` and `billing:*` cannot be two permissions.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CustomPermission(Box<str>);

impl CustomPermission {
    pub const MAX_CHARS: usize = 64;

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn allowed(c: char) -> bool {
        matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | ':' | '*' | '-')
    }
}

/// A name that is neither the seed vocabulary nor a valid custom name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a permission: read, write, admin, webhook, ingest, or a name of 1 to 64 characters of a-z 0-9 . _ : * -"
)]
pub struct InvalidPermission(pub String);

impl FromStr for CustomPermission {
    type Err = InvalidPermission;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let valid = !value.is_empty() && value.len() <= Self::MAX_CHARS && value.chars().all(Self::allowed);
        if valid && value.parse::<Permission>().is_err() {
            Ok(Self(value.into()))
        } else {
            Err(InvalidPermission(value.to_owned()))
        }
    }
}

/// A set of permissions: the seed vocabulary as a bit set (what Latchkey itself checks, on every
/// request), the tenant's names beside it. Serialized as a list of names, the seed vocabulary
/// first in its fixed order, then the tenant's names sorted; rendered comma-separated for the
/// authorizer context, whose values must be strings.
#[derive(Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct Permissions {
    builtin: u8,
    custom: BTreeSet<CustomPermission>,
}

impl Permissions {
    /// At most this many names on one key.
    pub const MAX: usize = 64;

    pub fn contains(&self, permission: Permission) -> bool {
        self.builtin & permission.bit() != 0
    }

    pub fn insert(&mut self, permission: Permission) {
        self.builtin |= permission.bit();
    }

    /// Adds a name of either kind.
    pub fn insert_name(&mut self, name: &str) -> Result<(), InvalidPermission> {
        match name.parse::<Permission>() {
            Ok(permission) => self.insert(permission),
            Err(_) => {
                self.custom.insert(name.parse()?);
            }
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.builtin == 0 && self.custom.is_empty()
    }

    /// How many names, of both kinds.
    pub fn len(&self) -> usize {
        self.builtin.count_ones() as usize + self.custom.len()
    }

    /// The seed vocabulary this set holds.
    pub fn iter(&self) -> impl Iterator<Item = Permission> + '_ {
        Permission::ALL.into_iter().filter(move |p| self.contains(*p))
    }

    /// The tenant's own names this set holds.
    pub fn custom(&self) -> impl Iterator<Item = &CustomPermission> {
        self.custom.iter()
    }

    /// Every name, in the serialized order.
    pub fn names(&self) -> impl Iterator<Item = &str> + '_ {
        let builtin = self.iter().map(|p| -> &str { p.as_str() });
        builtin.chain(self.custom.iter().map(CustomPermission::as_str))
    }

    /// `read,write,documents.read`: the authorizer context and upstream header form.
    pub fn to_csv(&self) -> String {
        self.names().collect::<Vec<_>>().join(",")
    }

    /// Reads the context form back; an empty string is the empty set.
    pub fn from_csv(csv: &str) -> Result<Self, InvalidPermission> {
        let mut set = Permissions::default();
        csv.split(',').filter(|p| !p.is_empty()).try_for_each(|name| set.insert_name(name))?;
        Ok(set)
    }
}

impl FromIterator<Permission> for Permissions {
    fn from_iter<T: IntoIterator<Item = Permission>>(iter: T) -> Self {
        let mut set = Permissions::default();
        iter.into_iter().for_each(|p| set.insert(p));
        set
    }
}

impl TryFrom<Vec<String>> for Permissions {
    type Error = InvalidPermission;

    fn try_from(list: Vec<String>) -> Result<Self, Self::Error> {
        let mut set = Permissions::default();
        list.iter().try_for_each(|name| set.insert_name(name))?;
        Ok(set)
    }
}

impl From<Permissions> for Vec<String> {
    fn from(set: Permissions) -> Self {
        set.names().map(str::to_owned).collect()
    }
}

impl fmt::Debug for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.names()).finish()
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
        assert!(Permissions::from_csv("read,Root").is_err());
        assert_eq!(serde_json::to_string(&set).unwrap(), r#"["read","write"]"#);
        assert!(serde_json::from_str::<Permissions>(r#"["sudo!"]"#).is_err());
    }

    #[test]
    fn custom_names_follow_the_seed_vocabulary_sorted() {
        let set: Permissions =
            serde_json::from_str(r#"["billing:*","admin","documents.read","read","documents.read"]"#).unwrap();
        assert_eq!(set.to_csv(), "read,admin,billing:*,documents.read");
        assert_eq!(set.len(), 4);
        assert!(set.contains(Permission::Admin) && !set.contains(Permission::Write));
        assert_eq!(Permissions::from_csv(&set.to_csv()).unwrap(), set);
        assert_eq!(serde_json::to_string(&set).unwrap(), r#"["read","admin","billing:*","documents.read"]"#);
    }

    #[test]
    fn custom_names_are_the_documented_alphabet_and_length() {
        for good in ["documents.read", "billing:*", "a", "x-y_z.0:9*", &"a".repeat(64)] {
            assert!(good.parse::<CustomPermission>().is_ok(), "{good}");
        }
        for bad in ["", "Documents", "a,b", "a b", "é", "read", "ingest", &"a".repeat(65), "a/b"] {
            assert!(bad.parse::<CustomPermission>().is_err(), "{bad}");
        }
    }
}
