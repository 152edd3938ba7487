//! GitHub's secret scanning partner contract: GitHub `POST`s the keys it found in public code as a
//! JSON array of `{token, type, url, source}`, signed with ECDSA P-256 over SHA-256 of the raw
//! body (`Github-Public-Key-Signature`: base64 of the DER signature) by the key its
//! `Github-Public-Key-Identifier` names among the keys GitHub publishes; it reads back, for each
//! token, `{token_hash, token_type, label}` (`true_positive` or `false_positive`).

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{DerSignature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{LeakAction, MAX_FOUND_AT_CHARS, Reporter};
use crate::ApiError;
use crate::audit::AuditLog;
use crate::gateway::GatewayKeys;
use crate::gateway::pool::GatewaySlots;
use crate::manage::{Issuance, KeyService};
use crate::pepper::PepperProvider;
use crate::store::KeyStore;

pub const IDENTIFIER_HEADER: &str = "github-public-key-identifier";
pub const SIGNATURE_HEADER: &str = "github-public-key-signature";
/// The largest report read: GitHub batches matches, and 1 MiB holds thousands of them.
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// The most matches one report may carry (each costs up to three reads and a write).
pub const MAX_MATCHES: usize = 1_000;
/// An unknown key identifier fetches GitHub's keys again, at most this often: a request naming
/// a made-up identifier must not make every request a fetch.
const REFETCH_INTERVAL: Duration = Duration::from_secs(60);
/// How long a fetch of GitHub's keys may take: a report waits for it (GitHub gives a partner
/// endpoint 30 s in all).
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// One match GitHub reports.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Match {
    pub token: String,
    #[serde(rename = "type")]
    pub token_type: String,
    /// The public URL where it was found (may be empty).
    #[serde(default)]
    pub url: String,
    /// Where on GitHub (`content`, `commit`, `issue_comment`, …; older reports have none).
    #[serde(default)]
    pub source: String,
}

/// What GitHub reads back for one match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Feedback {
    /// SHA-256 of the token, lowercase hex: never the token itself.
    pub token_hash: String,
    pub token_type: String,
    pub label: Label,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    /// A key of this deployment.
    TruePositive,
    /// Not one: not a key of this profile, or no such key.
    FalsePositive,
}

impl Feedback {
    pub fn new(found: &Match, label: Label) -> Self {
        Self {
            token_hash: hex::encode(Sha256::digest(found.token.as_bytes())),
            token_type: found.token_type.clone(),
            label,
        }
    }
}

/// The body of a report, read only after its signature verified.
pub fn parse_matches(body: &[u8]) -> Result<Vec<Match>, ApiError> {
    let matches: Vec<Match> = serde_json::from_slice(body)
        .map_err(|_| ApiError::validation("body", "a JSON array of {token, type, url, source}"))?;
    if matches.len() > MAX_MATCHES {
        return Err(ApiError::validation("body", format!("at most {MAX_MATCHES} matches per report")));
    }
    Ok(matches)
}

#[derive(Deserialize)]
struct Published {
    public_keys: Vec<PublishedKey>,
}

#[derive(Deserialize)]
struct PublishedKey {
    key_identifier: String,
    key: String,
}

/// GitHub's signing keys by identifier, fetched from `url` when an identifier is not known yet.
pub struct SigningKeys {
    url: String,
    client: reqwest::Client,
    keys: RwLock<HashMap<String, VerifyingKey>>,
    fetching: tokio::sync::Mutex<Option<Instant>>,
}

impl SigningKeys {
    /// Fetching from `url` when needed, each fetch given [`FETCH_TIMEOUT`].
    pub fn new(url: impl Into<String>) -> Self {
        let client = reqwest::Client::builder().timeout(FETCH_TIMEOUT).build().unwrap_or_default();
        Self { url: url.into(), client, keys: Default::default(), fetching: Default::default() }
    }

    /// Checks a report's signature over its raw `body`: a missing header, a signature that is not
    /// base64 DER, a key GitHub does not publish or a signature that does not verify is
    /// `INVALID_SIGNATURE`; GitHub's key list out of reach is `SERVICE_UNAVAILABLE`.
    pub async fn verify(&self, identifier: Option<&str>, signature: Option<&str>, body: &[u8]) -> Result<(), ApiError> {
        let identifier = identifier.map(str::trim).filter(|id| !id.is_empty());
        let identifier = identifier.ok_or(ApiError::InvalidSignature { header: IDENTIFIER_HEADER })?;
        let invalid = ApiError::InvalidSignature { header: SIGNATURE_HEADER };
        let der = signature.and_then(|s| BASE64.decode(s.trim()).ok()).ok_or(invalid.clone())?;
        let signature = DerSignature::try_from(der.as_slice()).map_err(|_| invalid.clone())?;
        let key = match self.known(identifier) {
            Some(key) => key,
            None => {
                self.refetch().await?;
                self.known(identifier).ok_or(ApiError::InvalidSignature { header: IDENTIFIER_HEADER })?
            }
        };
        key.verify(body, &signature).map_err(|_| invalid)
    }

    fn known(&self, identifier: &str) -> Option<VerifyingKey> {
        self.keys.read().expect("signing keys lock").get(identifier).copied()
    }

    /// Fetches the published keys again unless that was done within [`REFETCH_INTERVAL`].
    async fn refetch(&self) -> Result<(), ApiError> {
        let mut last = self.fetching.lock().await;
        if last.is_some_and(|at| at.elapsed() < REFETCH_INTERVAL) {
            return Ok(());
        }
        *last = Some(Instant::now());
        let unavailable = |error: &dyn std::fmt::Display| {
            tracing::error!(url = %self.url, %error, "GitHub's secret scanning keys not fetched");
            ApiError::ServiceUnavailable
        };
        let response = self.client.get(&self.url).header("accept", "application/json").send().await;
        let response = response.and_then(reqwest::Response::error_for_status).map_err(|e| unavailable(&e))?;
        let published: Published = response.json().await.map_err(|e| unavailable(&e))?;
        let mut keys = HashMap::new();
        for published in published.public_keys {
            match VerifyingKey::from_public_key_pem(&published.key) {
                Ok(key) => {
                    keys.insert(published.key_identifier, key);
                }
                Err(error) => {
                    tracing::warn!(key_identifier = %published.key_identifier, %error, "a published key is not a P-256 key")
                }
            }
        }
        *self.keys.write().expect("signing keys lock") = keys;
        Ok(())
    }
}

impl<S: KeyStore + GatewaySlots + AuditLog + crate::credits::CreditStore, G: GatewayKeys> KeyService<S, G> {
    /// `POST /leaks/github`: a report's signature is checked over its raw body before anything
    /// in it is read; then each match is acted on ([`KeyService::leaked`]) and labelled. `header`
    /// looks a request header up by its lowercase name. A store that fails mid-report fails the
    /// report (`503`): GitHub sends it again, and acting on a key twice changes nothing.
    pub async fn github_report<'h, P: PepperProvider>(
        &self,
        issuance: &Issuance<P>,
        keys: &SigningKeys,
        action: LeakAction,
        header: impl Fn(&str) -> Option<&'h str>,
        body: &[u8],
    ) -> Result<Vec<Feedback>, ApiError> {
        if body.len() > MAX_BODY_BYTES {
            return Err(ApiError::PayloadTooLarge { limit_bytes: MAX_BODY_BYTES });
        }
        keys.verify(header(IDENTIFIER_HEADER), header(SIGNATURE_HEADER), body).await?;
        let matches = parse_matches(body)?;
        let mut feedback = Vec::with_capacity(matches.len());
        for found in &matches {
            let at = if found.url.is_empty() { format!("github:{}", found.source) } else { found.url.clone() };
            let at: String = at.chars().take(MAX_FOUND_AT_CHARS).collect();
            let label = match self.leaked(issuance, &found.token, &at, action, &Reporter::GitHub).await? {
                Some(_) => Label::TruePositive,
                None => Label::FalsePositive,
            };
            feedback.push(Feedback::new(found, label));
        }
        Ok(feedback)
    }
}

impl<S, G, P, R> crate::manage::Management<S, G, P, R>
where
    S: KeyStore + GatewaySlots + AuditLog + crate::credits::CreditStore,
    G: GatewayKeys,
    P: PepperProvider,
{
    /// `POST /leaks/github` as an HTTP answer, for the function that reads the pepper and for the
    /// local API alike: another method is 405; a function without the pepper is a deployment
    /// mistake (500).
    pub async fn github_leaks<'h>(
        &self,
        keys: &SigningKeys,
        method: &str,
        header: impl Fn(&str) -> Option<&'h str>,
        body: &[u8],
    ) -> crate::manage::Reply {
        use crate::manage::Reply;
        if method != "POST" {
            return Reply::error(&ApiError::MethodNotAllowed { allowed: &["POST"] });
        }
        let Some(issuance) = self.issuance.as_ref() else { return Reply::error(&ApiError::Internal) };
        match self.service.github_report(issuance, keys, self.leak_action, header, body).await {
            Ok(feedback) => Reply::json(200, &feedback),
            Err(error) => Reply::error(&error),
        }
    }
}

#[cfg(test)]
mod tests {
    use p256::ecdsa::signature::Signer;
    use p256::ecdsa::{Signature, SigningKey};
    use p256::pkcs8::{EncodePublicKey, LineEnding};

    use super::*;
    use crate::scripted_http::scripted;

    fn github_key() -> SigningKey {
        SigningKey::from_slice(&[7u8; 32]).unwrap()
    }

    fn signature(key: &SigningKey, body: &[u8]) -> String {
        let signature: Signature = key.sign(body);
        BASE64.encode(signature.to_der().as_bytes())
    }

    /// GitHub's key list, as its endpoint answers it, holding `key` as `id`.
    fn published(id: &str, key: &SigningKey) -> (u16, &'static str) {
        let pem = key.verifying_key().to_public_key_pem(LineEnding::LF).unwrap();
        let body = serde_json::json!({"public_keys": [{"key_identifier": id, "key": pem, "is_current": true}]});
        (200, Box::leak(body.to_string().into_boxed_str()))
    }

    /// A signature over the raw body verifies; a body changed by one byte, another key's
    /// signature, a missing header or a garbled signature does not; an unknown identifier is
    /// refused without fetching the list again within the minute.
    #[tokio::test]
    async fn only_the_raw_body_github_signed_verifies() {
        let key = github_key();
        let (endpoint, requests) = scripted(vec![published("k1", &key)]).await;
        let keys = SigningKeys::new(format!("{endpoint}/meta/public_keys/secret_scanning"));
        let body = br#"[{"token":"lk_x","type":"latchkey_api_key","url":"","source":"content"}]"#;
        let signed = signature(&key, body);
        keys.verify(Some("k1"), Some(&signed), body).await.unwrap();

        let refused = |error: ApiError| matches!(error, ApiError::InvalidSignature { .. });
        let mut changed = body.to_vec();
        changed[3] = b'T';
        assert!(refused(keys.verify(Some("k1"), Some(&signed), &changed).await.unwrap_err()));
        let stranger = signature(&SigningKey::from_slice(&[9u8; 32]).unwrap(), body);
        assert!(refused(keys.verify(Some("k1"), Some(&stranger), body).await.unwrap_err()));
        assert!(refused(keys.verify(None, Some(&signed), body).await.unwrap_err()));
        assert!(refused(keys.verify(Some("k1"), None, body).await.unwrap_err()));
        assert!(refused(keys.verify(Some("k1"), Some("bm90IGEgc2lnbmF0dXJl"), body).await.unwrap_err()));
        assert!(refused(keys.verify(Some("k2"), Some(&signed), body).await.unwrap_err()));
        assert_eq!(requests.lock().unwrap().len(), 1, "the list fetched once");
        let error = ApiError::InvalidSignature { header: SIGNATURE_HEADER };
        assert_eq!((error.status(), error.code()), (401, "INVALID_SIGNATURE"));
    }

    /// GitHub's key list out of reach: the report cannot be checked, and is not acted on (503).
    #[tokio::test]
    async fn an_unreachable_key_list_is_unavailable_not_a_pass() {
        let (endpoint, _) = scripted(vec![(500, "{}")]).await;
        let keys = SigningKeys::new(format!("{endpoint}/keys"));
        let body = b"[]";
        let error = keys.verify(Some("k1"), Some(&signature(&github_key(), body)), body).await.unwrap_err();
        assert_eq!(error, ApiError::ServiceUnavailable);
    }

    #[test]
    fn reports_are_read_within_their_bounds_and_answered_by_hash() {
        let one = parse_matches(br#"[{"token":"some_token","type":"t","url":"https://x","source":"commit"}]"#).unwrap();
        assert_eq!((one[0].token.as_str(), one[0].source.as_str()), ("some_token", "commit"));
        // GitHub's older reports carry no `source`.
        assert_eq!(parse_matches(br#"[{"token":"a","type":"t","url":""}]"#).unwrap()[0].source, "");
        for malformed in
            [&b"{}"[..], b"[{\"token\":1}]", b"[{\"token\":\"a\",\"type\":\"t\",\"extra\":1}]", b"not json"]
        {
            assert!(matches!(parse_matches(malformed), Err(ApiError::Validation { .. })), "{malformed:?}");
        }
        let many = format!("[{}]", vec![r#"{"token":"a","type":"t"}"#; MAX_MATCHES + 1].join(","));
        assert!(matches!(parse_matches(many.as_bytes()), Err(ApiError::Validation { .. })));
        let feedback = Feedback::new(&one[0], Label::FalsePositive);
        let json = serde_json::to_value(&feedback).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                // sha256("some_token")
                "token_hash": "9a45520a1213f15016d2d768b5fb3d904492a44ee274b44d4de8803e00fb536a",
                "token_type": "t",
                "label": "false_positive",
            })
        );
    }
}
