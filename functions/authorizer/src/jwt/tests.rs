//! Sessions against a JWKS served on a loopback port (counting its requests), and HS256 `nbf`.
//! The ES256 keys are PKCS#8 DER made once with
//! `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 | openssl pkcs8 -topk8 -nocrypt -outform DER`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use chrono::TimeDelta;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{EncodingKey, Header};
use latchkey::ManualClock;
use serde_json::json;

use super::*;

const SECRET: &[u8] = b"unit-test-jwt-secret-0123456789abcdef";
const ISSUER: &str = "https://idp.test/";
const TIMEOUT: Duration = Duration::from_secs(2);

fn claims(now: u64) -> Value {
    json!({"sub": "user-1", "iss": ISSUER, "aud": "latchkey", "tenant_id": "acme", "exp": now + 3600})
}

fn hs256(claims: Value) -> String {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(SECRET)).unwrap()
}

fn config() -> JwtConfig {
    JwtConfig::new(ISSUER, "latchkey")
}

#[tokio::test]
async fn a_token_not_valid_before_tomorrow_is_refused_today() {
    let verifier = JwtVerifier::with_shared_secret(SECRET, config(), Arc::new(latchkey::SystemClock));
    let now = jsonwebtoken::get_current_timestamp();
    let mut tomorrow = claims(now);
    tomorrow["nbf"] = json!(now + 86_400);
    tomorrow["exp"] = json!(now + 2 * 86_400);
    assert_eq!(verifier.verify(&hs256(tomorrow)).await, Err(ApiError::InvalidToken));
    // Within the leeway, and already valid: allowed.
    let mut skewed = claims(now);
    skewed["nbf"] = json!(now + 10);
    assert!(verifier.verify(&hs256(skewed)).await.is_ok());
    assert!(verifier.verify(&hs256(claims(now))).await.is_ok());
}

#[tokio::test]
async fn a_token_expires_by_the_decisions_clock_not_the_machines() {
    let clock = clock();
    let verifier = JwtVerifier::with_shared_secret(SECRET, config(), clock.clone());
    let issued = clock.now().timestamp() as u64;
    let token = hs256(claims(issued));
    assert!(verifier.verify(&token).await.is_ok());
    // Valid for an hour, and the leeway past it; then expired, though the machine's clock (months
    // past this one's) called it expired from the start.
    clock.advance(seconds(3600 + 30));
    assert!(verifier.verify(&token).await.is_ok());
    clock.advance(seconds(1));
    assert_eq!(verifier.verify(&token).await, Err(ApiError::ExpiredToken));
    // A token without `exp` is not a session.
    let mut forever = claims(issued);
    forever.as_object_mut().unwrap().remove("exp");
    assert_eq!(verifier.verify(&hs256(forever)).await, Err(ApiError::InvalidToken));
}

/// One of the fixture ES256 keys: the signing half, and its public JWK under `kid`.
fn es256(name: &str) -> (EncodingKey, Jwk) {
    let path = format!("{}/tests/fixtures/es256-{name}.der", env!("CARGO_MANIFEST_DIR"));
    let key = EncodingKey::from_ec_der(&std::fs::read(path).unwrap());
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::ES256).unwrap();
    jwk.common.key_id = Some(name.to_owned());
    (key, jwk)
}

fn signed(kid: &str, key: &EncodingKey) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, &claims(jsonwebtoken::get_current_timestamp()), key).unwrap()
}

/// A JWKS endpoint on a loopback port: serves `keys` (`None`: answers 503, the IdP is down) and
/// counts requests.
struct Idp {
    url: String,
    keys: Arc<Mutex<Option<Vec<Jwk>>>>,
    requests: Arc<AtomicUsize>,
}

type IdpState = (Arc<Mutex<Option<Vec<Jwk>>>>, Arc<AtomicUsize>);

impl Idp {
    async fn serving(keys: Vec<Jwk>) -> Self {
        let keys = Arc::new(Mutex::new(Some(keys)));
        let requests = Arc::new(AtomicUsize::new(0));
        let app = Router::new()
            .route(
                "/jwks",
                get(|State((keys, requests)): State<IdpState>| async move {
                    requests.fetch_add(1, Ordering::SeqCst);
                    // Slow enough that concurrent verifications overlap the fetch.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    match keys.lock().unwrap().clone() {
                        Some(keys) => Ok(serde_json::to_string(&JwkSet { keys }).unwrap()),
                        None => Err(StatusCode::SERVICE_UNAVAILABLE),
                    }
                }),
            )
            .with_state((Arc::clone(&keys), Arc::clone(&requests)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, keys, requests }
    }

    fn serve(&self, keys: Option<Vec<Jwk>>) {
        *self.keys.lock().unwrap() = keys;
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    async fn verifier(&self, clock: &Arc<ManualClock>) -> Arc<JwtVerifier> {
        let clock: Arc<dyn Clock> = clock.clone();
        Arc::new(JwtVerifier::with_jwks(&self.url, TIMEOUT, config(), clock).await.unwrap())
    }
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new("2026-06-01T00:00:00Z".parse().unwrap()))
}

fn seconds(n: u64) -> TimeDelta {
    TimeDelta::seconds(n as i64)
}

/// `n` tokens at once, each naming a key id the JWKS never had.
async fn random_kids(verifier: &Arc<JwtVerifier>, round: usize, n: usize) -> Vec<Result<Session, ApiError>> {
    let (signing, _) = es256("a");
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let token = signed(&format!("random-{round}-{i}"), &signing);
            let verifier = Arc::clone(verifier);
            tokio::spawn(async move { verifier.verify(&token).await })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}

#[tokio::test]
async fn a_kid_withdrawn_from_the_jwks_stops_verifying_within_the_refresh_interval() {
    let ((key_a, jwk_a), (key_b, jwk_b)) = (es256("a"), es256("b"));
    let idp = Idp::serving(vec![jwk_a, jwk_b.clone()]).await;
    let clock = clock();
    let verifier = idp.verifier(&clock).await;
    assert_eq!(verifier.verify(&signed("a", &key_a)).await.unwrap().subject, "user-1");

    // The identity provider withdraws `a`. Within the interval the cached set still holds it:
    // that is the documented bound.
    idp.serve(Some(vec![jwk_b]));
    clock.advance(DEFAULT_REFRESH_DELTA - seconds(1));
    assert!(verifier.verify(&signed("a", &key_a)).await.is_ok());
    clock.advance(seconds(1));
    assert_eq!(verifier.verify(&signed("a", &key_a)).await, Err(ApiError::InvalidToken));
    assert!(verifier.verify(&signed("b", &key_b)).await.is_ok());
    assert_eq!(idp.requests(), 2, "one fetch at start, one refresh");
}

const DEFAULT_REFRESH_DELTA: TimeDelta = TimeDelta::seconds(DEFAULT_REFRESH.as_secs() as i64);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_unknown_kids_cost_at_most_one_fetch_a_minute() {
    let (key_a, jwk_a) = es256("a");
    let idp = Idp::serving(vec![jwk_a]).await;
    let clock = clock();
    let verifier = idp.verifier(&clock).await;
    assert_eq!(idp.requests(), 1);

    for round in 0..3 {
        let answers = random_kids(&verifier, round, 50).await;
        assert!(answers.iter().all(|a| *a == Err(ApiError::InvalidToken)), "{answers:?}");
        assert_eq!(idp.requests(), 1 + round, "round {round}: fifty unknown kids, at most one fetch");
        clock.advance(seconds(61));
    }
    // The same unknown kid again later costs nothing either: it is remembered as unknown.
    let answers = random_kids(&verifier, 0, 50).await;
    assert!(answers.iter().all(|a| *a == Err(ApiError::InvalidToken)));
    assert_eq!(idp.requests(), 3);
    assert!(verifier.verify(&signed("a", &key_a)).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_identity_provider_causes_no_fetch_storm() {
    let (key_a, jwk_a) = es256("a");
    let idp = Idp::serving(vec![jwk_a.clone()]).await;
    let clock = clock();
    let verifier = idp.verifier(&clock).await;

    idp.serve(None);
    clock.advance(seconds(61));
    // An unknown kid while the IdP is down cannot be decided: 503, never an allow. One fetch.
    let answers = random_kids(&verifier, 0, 50).await;
    assert!(answers.iter().all(|a| *a == Err(ApiError::ServiceUnavailable)), "{answers:?}");
    assert_eq!(idp.requests(), 2);
    // Backing off: more unknown kids right away cost no fetch; known keys still verify.
    let answers = random_kids(&verifier, 1, 50).await;
    assert!(answers.iter().all(|a| *a == Err(ApiError::ServiceUnavailable)));
    assert_eq!(idp.requests(), 2);
    assert!(verifier.verify(&signed("a", &key_a)).await.is_ok());

    // Once the backoff has passed, one fetch again; the IdP is back and unknown kids are 401s.
    idp.serve(Some(vec![jwk_a]));
    clock.advance(seconds(10));
    let answers = random_kids(&verifier, 2, 50).await;
    assert!(answers.iter().all(|a| *a == Err(ApiError::InvalidToken)), "{answers:?}");
    assert_eq!(idp.requests(), 3);
}

#[tokio::test]
async fn an_oversized_jwks_is_refused() {
    let app = Router::new().route("/jwks", get(|| async { " ".repeat(jwks::MAX_JWKS_BYTES + 1) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let clock: Arc<dyn Clock> = clock();
    let error = JwtVerifier::with_jwks(&url, TIMEOUT, config(), clock).await.err().expect("refused");
    assert!(error.cause.contains("larger than"), "{error}");
}

/// What the API's handlers see as a session's permissions, for a token carrying `claim`.
async fn session_permissions(claim: Option<Value>) -> String {
    let verifier = JwtVerifier::with_shared_secret(SECRET, config(), Arc::new(latchkey::SystemClock));
    let mut claims = claims(jsonwebtoken::get_current_timestamp());
    if let Some(claim) = claim {
        claims["permissions"] = claim;
    }
    let session = verifier.verify(&hs256(claims)).await.unwrap();
    let principal = crate::Principal::Session(session);
    crate::policy::AllowContext::of(&principal, chrono::Utc::now()).field("permissions").unwrap().to_owned()
}

#[tokio::test]
async fn a_session_has_the_permissions_its_claim_names_and_none_without_it() {
    assert_eq!(session_permissions(Some(json!(["read"]))).await, "read");
    assert_eq!(session_permissions(Some(json!("read write"))).await, "read,write");
    assert_eq!(session_permissions(Some(json!("admin,read"))).await, "read,admin");
    // Names that are no permission name (an IdP's other scopes: `https://api/x`, `Profile`) are
    // ignored; valid custom names are carried like a key's; `ingest` is scoped to a datasource,
    // which a session never is.
    let claim = json!(["https://api.example.com/x", "Profile", "documents.read", "admin", "ingest"]);
    assert_eq!(session_permissions(Some(claim)).await, "admin,documents.read");
    // Past 64 names the IdP's further custom names are dropped, never the vocabulary.
    let mut many: Vec<String> = (0..70).map(|i| format!("scope.{i:02}")).collect();
    many.push("admin".to_owned());
    let carried = session_permissions(Some(json!(many))).await;
    assert!(carried.starts_with("admin,scope.00,") && carried.split(',').count() == 65, "{carried}");
    // No claim, or one of another shape: no permissions at all (every management route is 403).
    assert_eq!(session_permissions(None).await, "");
    assert_eq!(session_permissions(Some(json!({"admin": true}))).await, "");
}
