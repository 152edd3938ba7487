//! The built `ingest` binary run as Lambda runs it (`cargo lambda watch`, `cargo lambda
//! invoke`), storing into DynamoDB Local, with proxy events as API Gateway sends them behind the
//! authorizer.

use std::collections::HashMap;

use latchkey::DatasourceId;
use latchkey::datasource::{Datasource, DatasourceStore};
use latchkey::ingest::RecordStore;
use latchkey::ingest::dynamo::DynamoRecordStore;
use latchkey::store::schema::create_records_table;
use latchkey_tests::api_gateway::proxy_event;
use latchkey_tests::cargo_lambda::Watch;
use latchkey_tests::{sdk_config, unique_name};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_stores_through_the_lambda_runtime() {
    let client = aws_sdk_dynamodb::Client::new(&sdk_config().await);
    let table = unique_name("records");
    create_records_table(&client, &table).await.unwrap();
    let records = DynamoRecordStore::new(client, table.clone());
    let datasource = DatasourceId::generate();
    let key_id = latchkey::KeyId::generate();
    // The function reads whether the calling key's datasource still exists.
    let keys = latchkey_tests::fresh_dynamo_store(chrono::TimeDelta::days(30)).await;
    let created = chrono::Utc::now();
    let stored = Datasource {
        id: datasource.clone(),
        tenant_id: "acme".parse().unwrap(),
        name: "meters".into(),
        created_at: created,
        key_id: key_id.clone(),
    };
    keys.insert_datasource(&stored).await.unwrap();

    let watch = Watch::start(&[
        ("LATCHKEY_RECORDS_TABLE", table),
        ("LATCHKEY_KEYS_TABLE", keys.table().to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ])
    .await;
    let context = |permissions: &str| {
        json!({
            "auth_type": "api_key", "principal": key_id.as_str(), "key_id": key_id.as_str(), "tenant_id": "acme",
            "permissions": permissions, "tier": "free", "datasource_id": datasource.as_str(), "principalId": key_id.as_str(),
        })
    };
    let headers = HashMap::from([("Idempotency-Key", "lambda-1")]);
    let body = json!({"records": [{"t": 1}, {"t": 2}, "not an object"]}).to_string();
    let event = proxy_event("POST", "/ingest", &headers, Some(&body), context("ingest")).to_string();

    let stored = watch.invoke("ingest", &event).await;
    assert_eq!(stored["statusCode"], 202, "{stored}");
    let answer: Value = serde_json::from_str(stored["body"].as_str().unwrap()).unwrap();
    assert_eq!((answer["accepted"].as_u64(), answer["rejected"][0]["index"].as_u64()), (Some(2), Some(2)));
    let again: Value = serde_json::from_str(watch.invoke("ingest", &event).await["body"].as_str().unwrap()).unwrap();
    assert_eq!(again["duplicates"], 2);

    let read_only = proxy_event("POST", "/ingest", &headers, Some(&body), context("read")).to_string();
    assert_eq!(watch.invoke("ingest", &read_only).await["statusCode"], 403);
    let page = records.list(&datasource, None, 10, None).await.unwrap();
    assert_eq!(page.items.len(), 2);
}
