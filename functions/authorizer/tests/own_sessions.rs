//! Latchkey's own dashboard sessions (`POST /sessions`) beside an identity provider's: the
//! authorizer verifies each with its own secret, issuer and audience; a token of neither is
//! refused, and an expired session of Latchkey's says so. One of Latchkey's answers to the key it
//! names as stored now (the local API's tests drive the refusals over HTTP).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use latchkey::pepper::CachedPepper;
use latchkey::session::{self, SessionSigner};
use latchkey::store::KeyStore;
use latchkey::store::embedded::EmbeddedKeyStore;
use latchkey::{ApiError, KeyHasher, KeyId, KeyProfile, KeyRecord, KeySpec, ManualClock, PepperVersion, Permission};
use latchkey_authorizer::jwt::{JwtConfig, JwtVerifier};
use latchkey_authorizer::sessions::SessionUsageKeys;
use latchkey_authorizer::{Authorizer, Dependencies, Principal};
use latchkey_tests::StaticPepper;
use serde_json::json;

const OWN_SECRET: &[u8] = b"latchkey-session-secret-0123456789abcdef";
const IDP_SECRET: &[u8] = b"identity-provider-secret-0123456789abcdef";

fn now() -> DateTime<Utc> {
    "2100-01-01T00:00:00Z".parse().unwrap()
}

async fn authorizer(
    dir: &std::path::Path,
) -> (Authorizer<EmbeddedKeyStore, StaticPepper>, Arc<ManualClock>, Arc<EmbeddedKeyStore>) {
    let clock = Arc::new(ManualClock::new(now()));
    let store = Arc::new(EmbeddedKeyStore::open(&dir.join("keys.redb")).unwrap());
    let authorizer = Authorizer::new(Dependencies {
        store: Arc::clone(&store),
        peppers: CachedPepper::load(StaticPepper::new(&[7; 32], "v1"), Duration::from_secs(300)).await.unwrap(),
        clock: clock.clone(),
        profile: KeyProfile::latchkey(),
        cache_ttl: Duration::from_secs(5),
        cache_capacity: 100,
        jwt: Some(JwtVerifier::with_shared_secret(
            IDP_SECRET,
            JwtConfig::new("https://idp.example.com/", "dashboard"),
            clock.clone(),
        )),
        sessions: Some(JwtVerifier::with_shared_secret(
            OWN_SECRET,
            JwtConfig::new(session::ISSUER, session::AUDIENCE),
            clock.clone(),
        )),
        session_usage_keys: Some(SessionUsageKeys::new("sessions-usage-key".into(), HashMap::new())),
        gateway_pool: false,
    });
    (authorizer, clock, store)
}

/// A stored key of tenant `acme` with `permissions`: what a session of Latchkey's names.
async fn stored_key(store: &EmbeddedKeyStore, permissions: &latchkey::Permissions) -> KeyId {
    let key = KeyProfile::latchkey().generate();
    let hasher = KeyHasher::new(&[7; 32], PepperVersion::new("v1"));
    let spec =
        KeySpec::new("acme".parse().unwrap(), "dashboard".into(), permissions.clone(), "internal".parse().unwrap());
    let record = KeyRecord::new(&key, &hasher, spec, now());
    store.insert(&record).await.unwrap();
    record.id
}

async fn bearer(authorizer: &Authorizer<EmbeddedKeyStore, StaticPepper>, token: &str) -> Result<Principal, ApiError> {
    let header = format!("Bearer {token}");
    authorizer.authenticate([("authorization", header.as_str())]).await
}

#[tokio::test]
async fn own_sessions_and_the_identity_providers_verify_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let (authorizer, clock, store) = authorizer(dir.path()).await;
    let admin: latchkey::Permissions = [Permission::Read, Permission::Admin].into_iter().collect();
    let key = stored_key(&store, &admin).await;
    let own = SessionSigner::new(OWN_SECRET, session::DEFAULT_TTL).unwrap();
    let token = own.sign(&key, &"acme".parse().unwrap(), &admin, now()).await.token;
    let Ok(Principal::Session(session)) = bearer(&authorizer, &token).await else { panic!("own session refused") };
    assert_eq!((session.subject.as_str(), session.tenant_id.as_str()), (key.as_str(), "acme"));
    assert_eq!(session.permissions, admin);

    let exp = (now() + TimeDelta::minutes(5)).timestamp();
    let claims = json!({"iss": "https://idp.example.com/", "aud": "dashboard", "sub": "user-7", "tenant_id": "globex",
        "permissions": ["read"], "exp": exp});
    let idp =
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(IDP_SECRET)).unwrap();
    let Ok(Principal::Session(session)) = bearer(&authorizer, &idp).await else { panic!("IdP session refused") };
    assert_eq!((session.subject.as_str(), session.tenant_id.as_str()), ("user-7", "globex"));

    // Latchkey's claims under a secret of neither, and the IdP's claims under Latchkey's secret.
    let stranger = SessionSigner::new(b"someone-elses-secret-0123456789abcdef", session::DEFAULT_TTL).unwrap();
    let forged = stranger.sign(&key, &"acme".parse().unwrap(), &admin, now()).await.token;
    assert_eq!(bearer(&authorizer, &forged).await.err(), Some(ApiError::InvalidToken));
    let crossed =
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(OWN_SECRET)).unwrap();
    assert_eq!(bearer(&authorizer, &crossed).await.err(), Some(ApiError::InvalidToken));
    // Well signed, but naming a key that is not stored: refused as that key would be.
    let orphan = own.sign(&KeyId::generate(), &"acme".parse().unwrap(), &admin, now()).await.token;
    assert_eq!(bearer(&authorizer, &orphan).await.err(), Some(ApiError::InvalidApiKey));

    // `exp` is judged by the decision's clock (the local API's offset moves it too): a session
    // of 15 minutes passes within the 30 s leeway past them, and is expired after it.
    clock.advance(TimeDelta::minutes(15) + TimeDelta::seconds(30));
    assert!(bearer(&authorizer, &token).await.is_ok());
    clock.advance(TimeDelta::seconds(1));
    assert_eq!(bearer(&authorizer, &token).await.err(), Some(ApiError::ExpiredToken));
}
