//! Which API Gateway key a session is throttled under.
//!
//! API Gateway throttles per API key value (`usageIdentifierKey`), and an authorizer cannot
//! answer 429 itself: its denials all render as `ACCESS_DENIED`, one fixed status. So a session
//! limit the gateway enforces, with the real `429 RATE_LIMITED`, has to be a gateway key. A
//! limiter inside the authorizer would also be per instance (N warm instances, N× the limit).
//! Sessions have no gateway key of their own, so each tenant may be given one
//! (`LATCHKEY_SESSION_USAGE_KEYS`: `tenant=value,...`, each key in a throttled usage plan), and
//! every other tenant's sessions share `LATCHKEY_SESSION_USAGE_KEY`: they can throttle each
//! other, but never a tenant listed with a key of its own. A key per subject would need a
//! gateway key per user, created on the fly (`CreateApiKey` allows 5 a second and 10,000 keys
//! per account): not worth it for dashboards.

use std::collections::HashMap;

use latchkey::TenantId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUsageKeys {
    shared: String,
    by_tenant: HashMap<TenantId, String>,
}

impl SessionUsageKeys {
    /// `shared` for every tenant not in `by_tenant`.
    pub fn new(shared: String, by_tenant: HashMap<TenantId, String>) -> Self {
        Self { shared, by_tenant }
    }

    /// `LATCHKEY_SESSION_USAGE_KEYS`: `tenant=value` pairs, comma-separated.
    pub fn parse_by_tenant(text: &str) -> Result<HashMap<TenantId, String>, String> {
        let mut keys = HashMap::new();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (tenant, value) = pair.split_once('=').ok_or("expected tenant=key pairs, comma-separated")?;
            let tenant: TenantId = tenant.trim().parse().map_err(|e| format!("`{}`: {e}", tenant.trim()))?;
            let value = value.trim();
            if value.is_empty() {
                return Err(format!("tenant `{tenant}` has an empty key"));
            }
            if keys.insert(tenant.clone(), value.to_owned()).is_some() {
                return Err(format!("tenant `{tenant}` is listed twice"));
            }
        }
        Ok(keys)
    }

    /// The gateway key a session of `tenant` is throttled under.
    pub fn for_tenant(&self, tenant: &TenantId) -> &str {
        self.by_tenant.get(tenant).unwrap_or(&self.shared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_with_a_key_of_its_own_is_throttled_apart() {
        let by_tenant = SessionUsageKeys::parse_by_tenant("acme=gw-acme, globex = gw-globex").unwrap();
        let keys = SessionUsageKeys::new("gw-shared".into(), by_tenant);
        assert_eq!(keys.for_tenant(&"acme".parse().unwrap()), "gw-acme");
        assert_eq!(keys.for_tenant(&"globex".parse().unwrap()), "gw-globex");
        assert_eq!(keys.for_tenant(&"initech".parse().unwrap()), "gw-shared");
        for bad in ["acme", "acme=", "acme=a,acme=b", "not a tenant!=x"] {
            assert!(SessionUsageKeys::parse_by_tenant(bad).is_err(), "{bad}");
        }
    }
}
