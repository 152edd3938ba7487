//! The AWS SDK configuration every Latchkey process shares: one TLS stack (rustls on ring), and
//! timeouts and retries on every call so that a slow dependency fails instead of hanging.

use aws_config::BehaviorVersion;
pub use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

use crate::config::AwsTimeouts;

/// Loads region, credentials and endpoints the standard way (environment, including
/// `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>`), with Latchkey's HTTP client and timeouts.
pub async fn load_sdk_config(timeouts: &AwsTimeouts) -> SdkConfig {
    let http_client =
        aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(CryptoMode::Ring)).build_https();
    let timeout_config = TimeoutConfig::builder()
        .connect_timeout(timeouts.connect)
        .operation_attempt_timeout(timeouts.attempt)
        .operation_timeout(timeouts.operation)
        .build();
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client)
        .timeout_config(timeout_config)
        .retry_config(RetryConfig::standard().with_max_attempts(timeouts.max_attempts))
        .load()
        .await
}

/// JSON logs, one object per line, for CloudWatch. `RUST_LOG` filters (default `info`).
pub fn init_logging() {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_current_span(false)
        .with_ansi(false)
        .without_time()
        .init();
}
