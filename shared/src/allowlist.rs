//! Where a key may be used from: up to 32 networks (IPv4 and IPv6, CIDR notation; a bare
//! address is its own /32 or /128). An empty list allows every address. Parsed and matched by
//! the `ipnet` crate.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IpAllowlist(Vec<IpNet>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidAllowlist {
    #[error("at most 32 networks")]
    TooMany,
    /// The position of the entry that is not a network, for the error's field.
    #[error("`{1}` is not an IPv4 or IPv6 network in CIDR notation (e.g. 203.0.113.0/24) or an address")]
    NotANetwork(usize, String),
}

impl IpAllowlist {
    pub const MAX_NETWORKS: usize = 32;

    /// Networks as given, each stored as its network address (`10.1.2.3/8` is `10.0.0.0/8`),
    /// duplicates once, in the order first given.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, InvalidAllowlist> {
        if entries.len() > Self::MAX_NETWORKS {
            return Err(InvalidAllowlist::TooMany);
        }
        let mut networks: Vec<IpNet> = Vec::with_capacity(entries.len());
        for (index, entry) in entries.iter().enumerate() {
            let text = entry.as_ref().trim();
            let network = text
                .parse::<IpNet>()
                .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| InvalidAllowlist::NotANetwork(index, entry.as_ref().to_owned()))?
                .trunc();
            if !networks.contains(&network) {
                networks.push(network);
            }
        }
        Ok(Self(networks))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn networks(&self) -> &[IpNet] {
        &self.0
    }

    /// Whether a request from `source` may use the key: always with an empty list; never from an
    /// unknown source when the list is not empty (fail closed). An IPv4 address seen as IPv6
    /// (`::ffff:203.0.113.7`, a dual-stack listener) is matched as the IPv4 it is.
    pub fn allows(&self, source: Option<IpAddr>) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let Some(source) = source else { return false };
        let source = source.to_canonical();
        self.0.iter().any(|network| network.contains(&source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn networks_match_their_addresses_and_nothing_else() {
        let list = IpAllowlist::parse(&["203.0.113.0/24", "2001:db8::/32", "198.51.100.7", " 10.1.2.3/8 "]).unwrap();
        let shown: Vec<String> = list.networks().iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["203.0.113.0/24", "2001:db8::/32", "198.51.100.7/32", "10.0.0.0/8"]);
        for inside in ["203.0.113.7", "2001:db8::1", "198.51.100.7", "10.200.0.1", "::ffff:203.0.113.9"] {
            assert!(list.allows(ip(inside)), "{inside}");
        }
        for outside in ["203.0.114.1", "2001:db9::1", "198.51.100.8", "11.0.0.1", "::1"] {
            assert!(!list.allows(ip(outside)), "{outside}");
        }
        assert!(!list.allows(None), "an unknown source is refused by a list");
        assert!(IpAllowlist::default().allows(None), "no list allows everyone");
    }

    #[test]
    fn bad_entries_are_named_and_the_list_is_bounded() {
        assert_eq!(
            IpAllowlist::parse(&["10.0.0.0/8", "10.0.0.0/33"]),
            Err(InvalidAllowlist::NotANetwork(1, "10.0.0.0/33".into()))
        );
        assert!(matches!(IpAllowlist::parse(&["localhost"]), Err(InvalidAllowlist::NotANetwork(0, _))));
        let many: Vec<String> = (0..33).map(|n| format!("10.0.{n}.0/24")).collect();
        assert_eq!(IpAllowlist::parse(&many), Err(InvalidAllowlist::TooMany));
        assert_eq!(IpAllowlist::parse(&["10.0.0.1", "10.0.0.1/32"]).unwrap().networks().len(), 1);
    }
}
