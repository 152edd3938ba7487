//! A stand-in for GitHub's secret scanning: a signing key the test makes, and the list of public
//! keys GitHub publishes, served on a free port (how often it was fetched, counted).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::{EncodePublicKey, LineEnding};
use serde_json::json;

/// Request headers: (name, value).
pub type Headers = Vec<(&'static str, String)>;

pub const KEY_ID: &str = "90a421169f0a406205f1563a953312f0be898d3c7b6c06b681aa86a874555f4a";

pub struct GitHub {
    pub keys_url: String,
    pub signing: SigningKey,
    pub fetches: Arc<AtomicUsize>,
}

impl GitHub {
    pub async fn start() -> Self {
        let signing = SigningKey::from_slice(&[7u8; 32]).unwrap();
        let pem = signing.verifying_key().to_public_key_pem(LineEnding::LF).unwrap();
        let published =
            json!({"public_keys": [{"key_identifier": KEY_ID, "key": pem, "is_current": true}]}).to_string();
        let fetches = Arc::new(AtomicUsize::new(0));
        async fn list(State((body, fetches)): State<(String, Arc<AtomicUsize>)>) -> String {
            fetches.fetch_add(1, Ordering::SeqCst);
            body
        }
        let app = Router::new()
            .route("/meta/public_keys/secret_scanning", get(list))
            .with_state((published, Arc::clone(&fetches)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let keys_url = format!("http://{}/meta/public_keys/secret_scanning", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { keys_url, signing, fetches }
    }

    pub fn sign(&self, body: &str) -> String {
        sign_with(&self.signing, body)
    }

    /// The headers GitHub signs `body` with.
    pub fn signed(&self, body: &str) -> Headers {
        vec![("github-public-key-identifier", KEY_ID.to_owned()), ("github-public-key-signature", self.sign(body))]
    }
}

pub fn sign_with(key: &SigningKey, body: &str) -> String {
    let signature: Signature = key.sign(body.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(signature.to_der().as_bytes())
}
