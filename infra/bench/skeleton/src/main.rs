//! One `GetItem` per event, by the event's `x-api-key` header (or a fixed key), in table `TABLE`.

use aws_sdk_dynamodb::types::AttributeValue;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let config = aws_config::load_from_env().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let table = std::env::var("TABLE")?;
    let (client, table) = (&client, &table);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let key = event.payload["headers"]["x-api-key"].as_str().unwrap_or("probe").to_owned();
        let item = client.get_item().table_name(table).key("pk", AttributeValue::S(key)).send().await?;
        Ok::<Value, Error>(json!({"found": item.item.is_some()}))
    }))
    .await
}
