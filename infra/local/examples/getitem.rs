//! The floor of the DynamoDB load benchmark (`infra/bench/load dynamodb`): axum answering every
//! request with one consistent `GetItem` of a fixed item, through the same SDK configuration
//! (endpoint from `AWS_ENDPOINT_URL_DYNAMODB`), runtime and release profile as the local API.

use aws_sdk_dynamodb::types::AttributeValue;

#[tokio::main]
async fn main() {
    let addr = std::env::var("LATCHKEY_ADDR").unwrap_or_else(|_| "127.0.0.1:3002".to_owned());
    let table = std::env::var("TABLE").expect("TABLE: the table to read");
    let sdk = latchkey::aws::load_sdk_config(&latchkey::config::AwsTimeouts::default()).await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let app = axum::Router::new().fallback(move || {
        let (client, table) = (client.clone(), table.clone());
        async move {
            let read = client
                .get_item()
                .table_name(table)
                .key("pk", AttributeValue::S("floor".to_owned()))
                .consistent_read(true)
                .send()
                .await;
            let status =
                if read.is_ok() { axum::http::StatusCode::OK } else { axum::http::StatusCode::SERVICE_UNAVAILABLE };
            (status, [("content-type", "application/json")], r#"{"read":true}"#)
        }
    });
    let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
    axum::serve(listener, app).await.unwrap();
}
