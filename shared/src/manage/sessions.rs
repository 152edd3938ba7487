//! `POST /sessions`: a dashboard session for an admin key, or a fresh one for a session Latchkey
//! signed ([`crate::session`]).

use super::{Actor, Caller, KeyService};
use crate::audit::AuditLog;
use crate::gateway::GatewayKeys;
use crate::gateway::pool::GatewaySlots;
use crate::session::{SessionSigner, SessionToken};
use crate::store::KeyStore;
use crate::{ApiError, KeyId, Permission};

impl<S: KeyStore + GatewaySlots + AuditLog + crate::credits::CreditStore, G: GatewayKeys> KeyService<S, G> {
    /// The caller's key is as stored now (the route re-reads it, as every route that issues
    /// does); a session is refreshed from the key it names, which must still verify and still be
    /// an admin key (the authorizer has already held the session to that key, its allowlist
    /// included). A session from an identity provider is used as it is, never exchanged (its
    /// lifetime is the provider's).
    pub async fn start_session(&self, signer: &SessionSigner, caller: &Caller) -> Result<SessionToken, ApiError> {
        caller.require(Permission::Admin)?;
        let now = self.clock.now();
        let not_exchanged = ApiError::InsufficientPermissions { required: Permission::Admin };
        let (key, permissions) = match &caller.actor {
            Actor::Key(id) => (id.clone(), caller.permissions.clone()),
            Actor::Session { subject } => {
                let id: KeyId = subject.parse().map_err(|_| not_exchanged)?;
                let record = self.store.get(&caller.tenant, &id).await?.ok_or(ApiError::InvalidToken)?;
                if record.refusal(now).is_some() || !record.permissions.contains(Permission::Admin) {
                    return Err(ApiError::InvalidToken);
                }
                (id, record.permissions)
            }
            Actor::Operator | Actor::SecretScanning => return Err(not_exchanged),
        };
        Ok(signer.sign(&key, &caller.tenant, &permissions, now).await)
    }
}
