//! Who is calling a management route, as the authorizer established it.

use crate::{ApiError, DatasourceId, KeyId, Permission, Permissions, TenantId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A Latchkey key.
    Key(KeyId),
    /// A dashboard session: the JWT's subject.
    Session { subject: String },
    /// The operator, from the command line (bootstrap).
    Operator,
    /// GitHub's secret scanning, reporting a key it found in public (`POST /leaks/github`).
    SecretScanning,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub actor: Actor,
    pub tenant: TenantId,
    pub permissions: Permissions,
    /// The datasource an ingest key is scoped to.
    pub datasource: Option<DatasourceId>,
    /// The API Gateway request id, carried into audit events.
    pub request_id: Option<String>,
    /// A key's view as the authorizer's decision read it (`key_view` in its context, JSON):
    /// what `GET /whoami` answers, without a read of its own.
    pub key_view: Option<String>,
    /// The balance of credits a key spends (`meter` in the context; [`crate::credits`]), which
    /// `GET /whoami` reads to show what is left.
    pub meter: Option<KeyId>,
}

impl Caller {
    /// Reads the authorizer's context (`auth_type`, `principal`, `tenant_id`, `permissions`).
    /// A missing or unreadable context means the route is deployed without the authorizer: a
    /// misconfiguration, answered as an internal error and never as access.
    pub fn from_authorizer_context<'a>(
        field: impl Fn(&str) -> Option<&'a str>,
        request_id: Option<String>,
    ) -> Result<Self, ApiError> {
        let required = |name: &'static str| {
            field(name).ok_or_else(|| {
                tracing::error!(
                    field = name,
                    "the authorizer context lacks a field: is the route behind the authorizer?"
                );
                ApiError::Internal
            })
        };
        let unreadable = |name: &'static str| {
            tracing::error!(field = name, "the authorizer context has an unreadable field");
            ApiError::Internal
        };
        let principal = required("principal")?;
        let actor = match required("auth_type")? {
            "api_key" => Actor::Key(principal.parse().map_err(|_| unreadable("principal"))?),
            "jwt" => Actor::Session { subject: principal.to_owned() },
            _ => return Err(unreadable("auth_type")),
        };
        Ok(Self {
            actor,
            tenant: required("tenant_id")?.parse().map_err(|_| unreadable("tenant_id"))?,
            permissions: Permissions::from_csv(required("permissions")?).map_err(|_| unreadable("permissions"))?,
            // Empty when the key is not scoped (the field is always there: see the authorizer).
            datasource: field("datasource_id")
                .filter(|id| !id.is_empty())
                .map(str::parse)
                .transpose()
                .map_err(|_| unreadable("datasource_id"))?,
            request_id,
            key_view: field("key_view").filter(|view| !view.is_empty()).map(str::to_owned),
            meter: field("meter")
                .filter(|id| !id.is_empty())
                .map(str::parse)
                .transpose()
                .map_err(|_| unreadable("meter"))?,
        })
    }

    /// GitHub's secret scanning, reporting a key of `tenant` (it may act on any tenant's key).
    pub fn secret_scanning(tenant: TenantId) -> Self {
        Self { actor: Actor::SecretScanning, ..Self::operator(tenant) }
    }

    /// The operator acting on `tenant` from the command line.
    pub fn operator(tenant: TenantId) -> Self {
        Self {
            actor: Actor::Operator,
            tenant,
            permissions: [Permission::Admin].into_iter().collect(),
            datasource: None,
            request_id: None,
            key_view: None,
            meter: None,
        }
    }

    /// `INSUFFICIENT_PERMISSIONS` unless the caller holds `permission`.
    pub fn require(&self, permission: Permission) -> Result<(), ApiError> {
        if self.permissions.contains(permission) {
            Ok(())
        } else {
            Err(ApiError::InsufficientPermissions { required: permission })
        }
    }

    /// The actor as audit events name it: a key id, `jwt:<subject>`, or `operator`.
    pub fn actor_label(&self) -> String {
        match &self.actor {
            Actor::Key(id) => id.to_string(),
            Actor::Session { subject } => format!("jwt:{subject}"),
            Actor::Operator => "operator".to_owned(),
            Actor::SecretScanning => "github:secret-scanning".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn caller(fields: &[(&str, &str)]) -> Result<Caller, ApiError> {
        let map: HashMap<&str, &str> = fields.iter().copied().collect();
        Caller::from_authorizer_context(|name| map.get(name).copied(), Some("req-1".into()))
    }

    #[test]
    fn reads_keys_and_sessions_and_fails_closed_on_anything_else() {
        let id = KeyId::generate();
        let key = caller(&[
            ("auth_type", "api_key"),
            ("principal", id.as_str()),
            ("tenant_id", "acme"),
            ("permissions", "read,admin"),
        ])
        .unwrap();
        assert_eq!(key.actor, Actor::Key(id.clone()));
        assert!(key.require(Permission::Admin).is_ok());
        assert_eq!(
            key.require(Permission::Write),
            Err(ApiError::InsufficientPermissions { required: Permission::Write })
        );
        assert_eq!(key.actor_label(), id.to_string());

        let session =
            caller(&[("auth_type", "jwt"), ("principal", "user-7"), ("tenant_id", "acme"), ("permissions", "admin")])
                .unwrap();
        assert_eq!(session.actor_label(), "jwt:user-7");

        assert_eq!(caller(&[]), Err(ApiError::Internal));
        let forged = [("auth_type", "root"), ("principal", "x"), ("tenant_id", "acme"), ("permissions", "admin")];
        assert_eq!(caller(&forged), Err(ApiError::Internal));
        let bad_permission = [("auth_type", "jwt"), ("principal", "x"), ("tenant_id", "acme"), ("permissions", "God!")];
        assert_eq!(caller(&bad_permission), Err(ApiError::Internal));
    }
}
