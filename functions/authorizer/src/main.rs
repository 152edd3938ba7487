//! Wires the Lambda runtime to the authorizer; everything else is in the library.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::value::RawValue;

#[tokio::main]
async fn main() -> Result<(), Error> {
    latchkey::aws::init_logging();
    let authorizer = latchkey_authorizer::setup::from_env().await?;
    let authorizer = &authorizer;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Box<RawValue>>| async move {
        let response = authorizer.handle_event(event.payload.get().as_bytes()).await?;
        let response = String::from_utf8(response).expect("serde_json writes UTF-8");
        Ok::<_, Error>(RawValue::from_string(response)?)
    }))
    .await
}
