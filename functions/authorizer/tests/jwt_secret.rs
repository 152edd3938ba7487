//! The HS256 session secret in Secrets Manager (moto) rotating under a warm verifier: the new
//! secret verifies within the refresh interval, the previous one keeps verifying until the next
//! rotation (sessions signed before it survive), and a secret two rotations old stops. What
//! signs Latchkey's own sessions (`keys-issue`) reads the secret again as the verifier does.

use std::sync::Arc;

use chrono::TimeDelta;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use latchkey::pepper::SecretsManagerSigningSecret;
use latchkey::session::{self, SessionSigner};
use latchkey::{ApiError, Clock, KeyId, ManualClock, Permissions};
use latchkey_authorizer::jwt::{DEFAULT_REFRESH, JwtConfig, JwtVerifier};
use latchkey_tests::{create_secret, sdk_config};
use serde_json::json;

const ONE: &str = "session-secret-one-0123456789abcdef0123";
const TWO: &str = "session-secret-two-0123456789abcdef0123";
const THREE: &str = "session-secret-three-0123456789abcdef01";

fn token(secret: &str) -> String {
    let exp = jsonwebtoken::get_current_timestamp() + 3600;
    let claims =
        json!({"sub": "user-1", "iss": "https://idp.test/", "aud": "latchkey", "tenant_id": "acme", "exp": exp});
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

#[tokio::test]
async fn a_rotated_session_secret_reaches_a_warm_verifier_within_the_refresh_interval() {
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk_config().await);
    let secret = create_secret(&secrets, ONE).await;
    let clock = Arc::new(ManualClock::new("2026-06-01T00:00:00Z".parse().unwrap()));
    let config = JwtConfig::new("https://idp.test/", "latchkey");
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let verifier = JwtVerifier::with_secrets_manager(secrets.clone(), &secret, config, dyn_clock).await.unwrap();
    let interval = TimeDelta::from_std(DEFAULT_REFRESH).unwrap();
    assert!(verifier.verify(&token(ONE)).await.is_ok());
    assert_eq!(verifier.verify(&token(TWO)).await, Err(ApiError::InvalidToken));

    let rotate = |value: &'static str| {
        let (secrets, secret) = (secrets.clone(), secret.clone());
        async move { secrets.put_secret_value().secret_id(secret).secret_string(value).send().await.unwrap() }
    };
    rotate(TWO).await;
    // Within the interval the cached secret stands (the documented bound).
    clock.advance(interval - TimeDelta::seconds(1));
    assert_eq!(verifier.verify(&token(TWO)).await, Err(ApiError::InvalidToken));
    clock.advance(TimeDelta::seconds(1));
    assert!(verifier.verify(&token(TWO)).await.is_ok(), "AWSCURRENT after the refresh");
    assert!(verifier.verify(&token(ONE)).await.is_ok(), "AWSPREVIOUS: sessions from before the rotation");

    rotate(THREE).await;
    clock.advance(interval);
    assert!(verifier.verify(&token(THREE)).await.is_ok());
    assert!(verifier.verify(&token(TWO)).await.is_ok());
    assert_eq!(verifier.verify(&token(ONE)).await, Err(ApiError::InvalidToken), "two rotations old");
}

#[tokio::test]
async fn after_the_emergency_rotation_a_warm_signer_signs_sessions_the_authorizer_accepts() {
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk_config().await);
    let secret = create_secret(&secrets, ONE).await;
    let clock = Arc::new(ManualClock::new("2026-06-01T00:00:00Z".parse().unwrap()));
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let config = JwtConfig::new(session::ISSUER, session::AUDIENCE);
    let verifier =
        JwtVerifier::with_secrets_manager(secrets.clone(), &secret, config, dyn_clock.clone()).await.unwrap();
    let source = SecretsManagerSigningSecret::new(secrets.clone(), secret.clone());
    let signer = SessionSigner::refreshing(source, session::DEFAULT_TTL, dyn_clock).await.unwrap();
    let (key, tenant) = (KeyId::generate(), "acme".parse().unwrap());
    let token = signer.sign(&key, &tenant, &Permissions::default(), clock.now()).await.token;
    assert!(verifier.verify(&token).await.is_ok());

    // The guide's procedure for a leaked secret (Operations): a new version, then AWSPREVIOUS taken off the old one.
    secrets.put_secret_value().secret_id(&secret).secret_string(TWO).send().await.unwrap();
    let described = secrets.describe_secret().secret_id(&secret).send().await.unwrap();
    let previous = described
        .version_ids_to_stages()
        .unwrap()
        .iter()
        .find(|(_, stages)| stages.iter().any(|stage| stage == "AWSPREVIOUS"))
        .map(|(version, _)| version.clone())
        .expect("the old version is AWSPREVIOUS");
    secrets
        .update_secret_version_stage()
        .secret_id(&secret)
        .version_stage("AWSPREVIOUS")
        .remove_from_version_id(previous)
        .send()
        .await
        .unwrap();
    // One refresh interval later both have read the secret again.
    clock.advance(TimeDelta::from_std(DEFAULT_REFRESH).unwrap());
    assert_eq!(verifier.verify(&token).await, Err(ApiError::InvalidToken), "the withdrawn secret's session");
    let token = signer.sign(&key, &tenant, &Permissions::default(), clock.now()).await.token;
    assert!(verifier.verify(&token).await.is_ok(), "refused: signed with the withdrawn secret");
    assert_eq!(session::SECRET_REFRESH, TimeDelta::from_std(DEFAULT_REFRESH).unwrap(), "one interval for both");
}
