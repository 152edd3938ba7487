//! Tiers are configuration, not code: each is a name with a per-key throttle and an optional
//! quota, mirrored by one API Gateway usage plan in the deployed stack.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TierName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TierError {
    #[error("tier name `{0}` must be 1 to 32 characters of a-z, 0-9, - and _")]
    Name(String),
    #[error("tier `{0}` is defined twice")]
    Duplicate(String),
    #[error("tier `{name}`: {reason}")]
    Invalid { name: String, reason: &'static str },
    #[error("the default tier `{0}` is not defined")]
    UnknownDefault(String),
    #[error("tiers are not valid JSON: {0}")]
    Json(String),
}

impl TierName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for TierName {
    type Err = TierError;

    fn from_str(value: &str) -> Result<Self, TierError> {
        let valid = (1..=32).contains(&value.len())
            && value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if valid { Ok(Self(value.to_owned())) } else { Err(TierError::Name(value.to_owned())) }
    }
}

impl TryFrom<String> for TierName {
    type Error = TierError;

    fn try_from(value: String) -> Result<Self, TierError> {
        value.parse()
    }
}

impl From<TierName> for String {
    fn from(name: TierName) -> String {
        name.0
    }
}

impl fmt::Display for TierName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Steady rate and burst, per key, as API Gateway usage plans express them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Throttle {
    pub rate_per_second: f64,
    pub burst: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuotaPeriod {
    Day,
    Week,
    Month,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    pub limit: u64,
    pub period: QuotaPeriod,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    pub name: TierName,
    /// `None`: not throttled (operator and service keys).
    #[serde(default)]
    pub throttle: Option<Throttle>,
    #[serde(default)]
    pub quota: Option<Quota>,
    /// Whether a tenant's admin may give keys this tier. `false` reserves it for keys the
    /// operator issues (bootstrap), e.g. the unthrottled `internal` tier.
    #[serde(default = "assignable_by_default")]
    pub assignable: bool,
}

fn assignable_by_default() -> bool {
    true
}

/// The deployment's tiers and the one new keys get when none is asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct Tiers {
    tiers: Vec<Tier>,
    default: TierName,
}

impl Tiers {
    pub fn new(tiers: Vec<Tier>, default: TierName) -> Result<Self, TierError> {
        for (i, tier) in tiers.iter().enumerate() {
            if tiers[..i].iter().any(|t| t.name == tier.name) {
                return Err(TierError::Duplicate(tier.name.to_string()));
            }
            if let Some(throttle) = tier.throttle {
                let rate_ok = throttle.rate_per_second.is_finite() && throttle.rate_per_second > 0.0;
                if !rate_ok || throttle.burst == 0 {
                    let reason = "rate_per_second and burst must be positive";
                    return Err(TierError::Invalid { name: tier.name.to_string(), reason });
                }
            }
            if tier.quota.is_some_and(|q| q.limit == 0) {
                return Err(TierError::Invalid {
                    name: tier.name.to_string(),
                    reason: "a quota limit must be positive",
                });
            }
        }
        if !tiers.iter().any(|t| t.name == default) {
            return Err(TierError::UnknownDefault(default.to_string()));
        }
        Ok(Self { tiers, default })
    }

    /// `[{"name": "free", "throttle": {"rate_per_second": 2, "burst": 4}}, ...]`
    pub fn from_json(json: &str, default: TierName) -> Result<Self, TierError> {
        let tiers: Vec<Tier> = serde_json::from_str(json).map_err(|e| TierError::Json(e.to_string()))?;
        Self::new(tiers, default)
    }

    pub fn get(&self, name: &TierName) -> Option<&Tier> {
        self.tiers.iter().find(|t| &t.name == name)
    }

    pub fn default_tier(&self) -> &TierName {
        &self.default
    }

    pub fn iter(&self) -> impl Iterator<Item = &Tier> {
        self.tiers.iter()
    }
}

impl Default for Tiers {
    /// Seed 000's tiers: `free` 2 req/s and `starter` 10 req/s, each key throttled on its own,
    /// and `internal`, unthrottled, for operator and service keys. New keys default to `free`.
    fn default() -> Self {
        let tier = |name: &str, throttle: Option<Throttle>| Tier {
            name: name.parse().expect("valid"),
            throttle,
            quota: None,
            assignable: throttle.is_some(),
        };
        Self::new(
            vec![
                tier("free", Some(Throttle { rate_per_second: 2.0, burst: 4 })),
                tier("starter", Some(Throttle { rate_per_second: 10.0, burst: 20 })),
                tier("internal", None),
            ],
            "free".parse().expect("valid"),
        )
        .expect("the default tiers are valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_seed_000() {
        let tiers = Tiers::default();
        let free = tiers.get(&"free".parse().unwrap()).unwrap();
        assert_eq!(free.throttle.unwrap().rate_per_second, 2.0);
        let starter = tiers.get(&"starter".parse().unwrap()).unwrap();
        assert_eq!(starter.throttle.unwrap().rate_per_second, 10.0);
        let internal = tiers.get(&"internal".parse().unwrap()).unwrap();
        assert!(internal.throttle.is_none() && !internal.assignable, "internal is the operator's");
        assert!(free.assignable && starter.assignable);
        assert_eq!(tiers.default_tier().as_str(), "free");
    }

    #[test]
    fn from_json_validates() {
        let gold = r#"[{"name":"gold","throttle":{"rate_per_second":50,"burst":100},"quota":{"limit":100000,"period":"month"}}]"#;
        let tiers = Tiers::from_json(gold, "gold".parse().unwrap()).unwrap();
        assert_eq!(tiers.get(&"gold".parse().unwrap()).unwrap().quota.unwrap().limit, 100_000);
        let dup = r#"[{"name":"a"},{"name":"a"}]"#;
        assert_eq!(Tiers::from_json(dup, "a".parse().unwrap()), Err(TierError::Duplicate("a".into())));
        let zero = r#"[{"name":"a","throttle":{"rate_per_second":0,"burst":1}}]"#;
        assert!(matches!(Tiers::from_json(zero, "a".parse().unwrap()), Err(TierError::Invalid { .. })));
        assert!(matches!(
            Tiers::from_json(r#"[{"name":"a"}]"#, "b".parse().unwrap()),
            Err(TierError::UnknownDefault(_))
        ));
        assert!(matches!(Tiers::from_json(r#"[{"name":"A"}]"#, "a".parse().unwrap()), Err(TierError::Json(_))));
        assert!(matches!(
            Tiers::from_json(r#"[{"name":"a","rate":1}]"#, "a".parse().unwrap()),
            Err(TierError::Json(_))
        ));
    }
}
