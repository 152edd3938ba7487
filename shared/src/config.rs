//! Configuration, typed from environment variables. Every missing or bad value is an error that
//! names its variable, so a misconfigured function refuses to start with a useful message.

use std::time::Duration;

use chrono::TimeDelta;

use crate::ingest::DEFAULT_RECORD_TTL_DAYS;
use crate::{KeyProfile, TierName, Tiers};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{var} is required but not set")]
    Missing { var: &'static str },
    #[error("{var} is invalid: {reason}")]
    Invalid { var: &'static str, reason: String },
}

/// A source of variables: the process environment, or a map in tests.
pub struct Env<F>(F);

impl Env<fn(&str) -> Option<String>> {
    pub fn process() -> Self {
        Env(|name| std::env::var(name).ok())
    }
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    pub fn from_fn(lookup: F) -> Self {
        Env(lookup)
    }

    /// The value, if set to something other than blank.
    pub fn get(&self, var: &'static str) -> Option<String> {
        (self.0)(var).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
    }

    pub fn required(&self, var: &'static str) -> Result<String, ConfigError> {
        self.get(var).ok_or(ConfigError::Missing { var })
    }

    /// Parses the value with `parse`, or gives `default` when unset.
    pub fn parse_or<T, E: std::fmt::Display>(
        &self,
        var: &'static str,
        default: T,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<T, ConfigError> {
        match self.get(var) {
            None => Ok(default),
            Some(value) => parse(&value).map_err(|e| ConfigError::Invalid { var, reason: e.to_string() }),
        }
    }

    /// A whole number within `range`, or `default`.
    pub fn number_or(
        &self,
        var: &'static str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<u64, ConfigError> {
        self.parse_or(var, default, |text| {
            let n: u64 = text.parse().map_err(|_| format!("`{text}` is not a whole number"))?;
            if range.contains(&n) { Ok(n) } else { Err(format!("{n} is outside {}..={}", range.start(), range.end())) }
        })
    }
}

/// Timeouts and retries for every AWS call: a slow dependency becomes an error (and a 503),
/// never a hang.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AwsTimeouts {
    pub connect: Duration,
    pub attempt: Duration,
    pub operation: Duration,
    pub max_attempts: u32,
}

impl Default for AwsTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_millis(1_000),
            attempt: Duration::from_millis(1_500),
            operation: Duration::from_millis(4_000),
            max_attempts: 3,
        }
    }
}

/// What every Latchkey process needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `LATCHKEY_KEY_PROFILE`: `ctw`, `orch`, `latchkey` (default) or `custom:PREFIX:LEN[:crc32]`.
    pub key_profile: KeyProfile,
    /// `LATCHKEY_CACHE_TTL_SECONDS` (default 5, at most 300): how long a verification result is
    /// cached in process, and so how late a revocation can take effect.
    pub cache_ttl: Duration,
    /// `LATCHKEY_SESSION_TTL_SECONDS` (default 900, 60 to 3600): how long a dashboard session
    /// Latchkey signs is valid (`POST /sessions`).
    pub session_ttl: chrono::TimeDelta,
    /// `LATCHKEY_PEPPER_REFRESH_SECONDS` (default 300): how often the pepper is fetched again.
    pub pepper_refresh: Duration,
    /// `LATCHKEY_RECORD_RETENTION_DAYS` (default 30): how long dead keys are kept.
    pub record_retention: TimeDelta,
    /// `LATCHKEY_RECORD_TTL_DAYS` (default 90, 1 to 3650): how long an ingested record is kept
    /// before DynamoDB's TTL may delete it.
    pub record_ttl: TimeDelta,
    /// `LATCHKEY_INGEST_MAX_RECORDS_PER_DAY` (default 1,000,000): the records one datasource may
    /// send per UTC day, so one leaked ingest key cannot fill the table at will.
    pub ingest_daily_cap: u64,
    /// `LATCHKEY_TIERS` (JSON list) and `LATCHKEY_DEFAULT_TIER` (default `free`).
    pub tiers: Tiers,
    /// `LATCHKEY_AWS_CONNECT_TIMEOUT_MS`, `LATCHKEY_AWS_ATTEMPT_TIMEOUT_MS`,
    /// `LATCHKEY_AWS_OPERATION_TIMEOUT_MS`, `LATCHKEY_AWS_MAX_ATTEMPTS`.
    pub aws_timeouts: AwsTimeouts,
    /// `LATCHKEY_MAX_KEYS_PER_TENANT` (default 1,000, 1 to 1,000,000): how many keys that still
    /// verify one tenant may have. Keys hold no API Gateway key of their own (they lease one from
    /// their tier's pool), so API Gateway's 10,000 keys per account do not bound it.
    pub max_keys_per_tenant: u32,
    /// `LATCHKEY_EXPIRY_WARNING_DAYS` (default 7, 0 to 365; 0: none): how long before a key's
    /// `expires_at` the sweep sends `key.expiring`.
    pub expiry_notice: Option<TimeDelta>,
    /// `LATCHKEY_LEAK_ACTION` (`revoke`, the default; `disable`; `notify`): what a report of a
    /// leaked key does to it ([`crate::leaks`]).
    pub leak_action: crate::leaks::LeakAction,
    /// `LATCHKEY_GITHUB_KEYS_URL` (default GitHub's): where GitHub's secret scanning publishes
    /// the keys its reports are signed with.
    pub github_keys_url: String,
}

/// [`Settings::max_keys_per_tenant`] unless configured.
pub const DEFAULT_MAX_KEYS_PER_TENANT: u32 = 1_000;
/// Where GitHub publishes its secret scanning keys ([`Settings::github_keys_url`]).
pub const DEFAULT_GITHUB_KEYS_URL: &str = "https://api.github.com/meta/public_keys/secret_scanning";
/// The largest [`Settings::max_keys_per_tenant`]: the deployment's design size (issue 17's goal).
pub const MAX_KEYS_PER_TENANT: u64 = 1_000_000;

impl Settings {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let key_profile = env.parse_or("LATCHKEY_KEY_PROFILE", KeyProfile::latchkey(), KeyProfile::from_spec)?;
        let default_tier: TierName =
            env.parse_or("LATCHKEY_DEFAULT_TIER", "free".parse().expect("valid"), str::parse)?;
        let tiers = match env.get("LATCHKEY_TIERS") {
            None => {
                let defaults = Tiers::default();
                Tiers::new(defaults.iter().cloned().collect(), default_tier)
                    .map_err(|e| ConfigError::Invalid { var: "LATCHKEY_DEFAULT_TIER", reason: e.to_string() })?
            }
            Some(json) => Tiers::from_json(&json, default_tier)
                .map_err(|e| ConfigError::Invalid { var: "LATCHKEY_TIERS", reason: e.to_string() })?,
        };
        let ms = |var, default, max| env.number_or(var, default, 1..=max).map(Duration::from_millis);
        let defaults = AwsTimeouts::default();
        let aws_timeouts = AwsTimeouts {
            connect: ms("LATCHKEY_AWS_CONNECT_TIMEOUT_MS", defaults.connect.as_millis() as u64, 60_000)?,
            attempt: ms("LATCHKEY_AWS_ATTEMPT_TIMEOUT_MS", defaults.attempt.as_millis() as u64, 60_000)?,
            operation: ms("LATCHKEY_AWS_OPERATION_TIMEOUT_MS", defaults.operation.as_millis() as u64, 120_000)?,
            max_attempts: env.number_or("LATCHKEY_AWS_MAX_ATTEMPTS", defaults.max_attempts.into(), 1..=10)? as u32,
        };
        Ok(Self {
            key_profile,
            cache_ttl: Duration::from_secs(env.number_or("LATCHKEY_CACHE_TTL_SECONDS", 5, 0..=300)?),
            session_ttl: chrono::TimeDelta::seconds(env.number_or(
                "LATCHKEY_SESSION_TTL_SECONDS",
                crate::session::DEFAULT_TTL.num_seconds() as u64,
                60..=3600,
            )? as i64),
            pepper_refresh: Duration::from_secs(env.number_or("LATCHKEY_PEPPER_REFRESH_SECONDS", 300, 1..=86_400)?),
            record_retention: TimeDelta::days(env.number_or("LATCHKEY_RECORD_RETENTION_DAYS", 30, 0..=3650)? as i64),
            record_ttl: TimeDelta::days(
                env.number_or("LATCHKEY_RECORD_TTL_DAYS", DEFAULT_RECORD_TTL_DAYS, 1..=3650)? as i64
            ),
            ingest_daily_cap: env.number_or(
                "LATCHKEY_INGEST_MAX_RECORDS_PER_DAY",
                crate::ingest::DEFAULT_DAILY_CAP,
                1..=1_000_000_000,
            )?,
            tiers,
            aws_timeouts,
            max_keys_per_tenant: env.number_or(
                "LATCHKEY_MAX_KEYS_PER_TENANT",
                DEFAULT_MAX_KEYS_PER_TENANT.into(),
                1..=MAX_KEYS_PER_TENANT,
            )? as u32,
            expiry_notice: match env.number_or("LATCHKEY_EXPIRY_WARNING_DAYS", 7, 0..=365)? {
                0 => None,
                days => Some(TimeDelta::days(days as i64)),
            },
            leak_action: env.parse_or("LATCHKEY_LEAK_ACTION", Default::default(), str::parse)?,
            github_keys_url: env.get("LATCHKEY_GITHUB_KEYS_URL").unwrap_or_else(|| DEFAULT_GITHUB_KEYS_URL.to_owned()),
        })
    }
}

/// What a process that talks to AWS needs on top of [`Settings`]. Endpoints come from the SDK's
/// own `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>` variables, as in production.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsResources {
    /// `LATCHKEY_KEYS_TABLE`
    pub keys_table: String,
    /// `LATCHKEY_PEPPER_SECRET_ID`: name or ARN of the pepper secret.
    pub pepper_secret_id: String,
}

impl AwsResources {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Self {
            keys_table: env.required("LATCHKEY_KEYS_TABLE")?,
            pepper_secret_id: env.required("LATCHKEY_PEPPER_SECRET_ID")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(vars: &[(&str, &str)]) -> Env<impl Fn(&str) -> Option<String>> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Env::from_fn(move |k| map.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let settings = Settings::from_env(&env(&[])).unwrap();
        assert_eq!(settings.key_profile, KeyProfile::latchkey());
        assert_eq!(settings.cache_ttl, Duration::from_secs(5));
        assert_eq!(settings.tiers.default_tier().as_str(), "free");
        assert_eq!(settings.aws_timeouts, AwsTimeouts::default());
        assert_eq!(settings.record_ttl, TimeDelta::days(90));
        let kept = Settings::from_env(&env(&[("LATCHKEY_RECORD_TTL_DAYS", "7")])).unwrap();
        assert_eq!(kept.record_ttl, TimeDelta::days(7));
        // Keys lease pooled gateway keys, so a tenant may hold far more than API Gateway's 10,000.
        let million = Settings::from_env(&env(&[("LATCHKEY_MAX_KEYS_PER_TENANT", "1000000")])).unwrap();
        assert_eq!(million.max_keys_per_tenant, 1_000_000);
    }

    #[test]
    fn every_error_names_its_variable() {
        let cases: &[(&str, &str, &str)] = &[
            ("LATCHKEY_KEY_PROFILE", "custom:UP:40", "LATCHKEY_KEY_PROFILE"),
            ("LATCHKEY_CACHE_TTL_SECONDS", "five", "LATCHKEY_CACHE_TTL_SECONDS"),
            ("LATCHKEY_CACHE_TTL_SECONDS", "301", "LATCHKEY_CACHE_TTL_SECONDS"),
            ("LATCHKEY_TIERS", "[", "LATCHKEY_TIERS"),
            ("LATCHKEY_DEFAULT_TIER", "gold", "LATCHKEY_DEFAULT_TIER"),
            ("LATCHKEY_AWS_MAX_ATTEMPTS", "0", "LATCHKEY_AWS_MAX_ATTEMPTS"),
            ("LATCHKEY_AWS_ATTEMPT_TIMEOUT_MS", "-1", "LATCHKEY_AWS_ATTEMPT_TIMEOUT_MS"),
            ("LATCHKEY_RECORD_TTL_DAYS", "0", "LATCHKEY_RECORD_TTL_DAYS"),
            ("LATCHKEY_RECORD_TTL_DAYS", "a month", "LATCHKEY_RECORD_TTL_DAYS"),
            ("LATCHKEY_MAX_KEYS_PER_TENANT", "1000001", "LATCHKEY_MAX_KEYS_PER_TENANT"),
            ("LATCHKEY_MAX_KEYS_PER_TENANT", "0", "LATCHKEY_MAX_KEYS_PER_TENANT"),
            ("LATCHKEY_LEAK_ACTION", "delete", "LATCHKEY_LEAK_ACTION"),
        ];
        for (var, value, named) in cases {
            let error = Settings::from_env(&env(&[(var, value)])).unwrap_err().to_string();
            assert!(error.starts_with(named), "{var}={value}: {error}");
        }
        let missing = AwsResources::from_env(&env(&[("LATCHKEY_KEYS_TABLE", "keys")])).unwrap_err();
        assert_eq!(missing, ConfigError::Missing { var: "LATCHKEY_PEPPER_SECRET_ID" });
        let blank = AwsResources::from_env(&env(&[("LATCHKEY_KEYS_TABLE", " "), ("LATCHKEY_PEPPER_SECRET_ID", "s")]));
        assert_eq!(blank.unwrap_err(), ConfigError::Missing { var: "LATCHKEY_KEYS_TABLE" });
    }
}
