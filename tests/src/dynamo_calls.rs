//! The DynamoDB requests a client sends, counted by operation (`GetItem`, `UpdateItem`,
//! `TransactWriteItems`, ...) at the SDK, as they leave: what BENCHMARKS.md's table of reads and
//! writes per request type is measured with (`functions/keys/tests/costs.rs`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};

#[derive(Debug, Clone, Default)]
pub struct DynamoCalls(Arc<Mutex<BTreeMap<String, u64>>>);

impl DynamoCalls {
    /// The requests sent since the last take, by operation.
    pub fn take(&self) -> BTreeMap<String, u64> {
        std::mem::take(&mut *self.0.lock().expect("calls lock"))
    }

    /// A client of the test engines whose requests are counted here.
    pub async fn client(&self) -> aws_sdk_dynamodb::Client {
        let sdk = crate::sdk_config().await;
        let config = aws_sdk_dynamodb::config::Builder::from(&sdk).interceptor(self.clone()).build();
        aws_sdk_dynamodb::Client::from_conf(config)
    }
}

impl Intercept for DynamoCalls {
    fn name(&self) -> &'static str {
        "DynamoCalls"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        // DynamoDB's JSON protocol names the operation in a header: `DynamoDB_20120810.GetItem`.
        if let Some(target) = context.request().headers().get("x-amz-target") {
            let operation = target.rsplit('.').next().unwrap_or(target).to_owned();
            *self.0.lock().expect("calls lock").entry(operation).or_default() += 1;
        }
        Ok(())
    }
}
