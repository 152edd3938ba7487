//! `latchkey-local --store dynamodb`: the same API over HTTP, its data in DynamoDB Local.

use crate::common;

use chrono::TimeDelta;
use common::Running;
use latchkey::store::schema::create_records_table;
use latchkey_tests::unique_name;
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_api_on_dynamodb() {
    let keys = latchkey_tests::fresh_dynamo_store(TimeDelta::days(30)).await;
    let records_table = unique_name("records");
    create_records_table(keys.client(), &records_table).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let api = Running::start_with(dir.path(), Some((keys.table().to_owned(), records_table.clone()))).await;
    let admin = api.admin_key.clone().expect("an empty table gets an admin key");

    let (status, created) = api.json(Some(&admin), Method::POST, "/keys", Some(json!({"name": "ci"}))).await;
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_owned();
    assert_eq!(api.json(Some(&key), Method::GET, "/whoami", None).await.1["id"], created["id"]);
    let (status, datasource) = api.json(Some(&admin), Method::POST, "/datasources", Some(json!({"name": "d"}))).await;
    assert_eq!(status, 201);
    let ingest = datasource["key"].as_str().unwrap();
    let (status, answer) = api.json(Some(ingest), Method::POST, "/ingest", Some(json!({"t": 1}))).await;
    assert_eq!((status, answer["accepted"].as_u64()), (202, Some(1)));
    let path = format!("/datasources/{}/records", datasource["id"].as_str().unwrap());
    assert_eq!(api.json(Some(&admin), Method::GET, &path, None).await.1["records"][0]["data"]["t"], 1);
    // The key is in the DynamoDB table, under its digest: a second instance on the same table
    // and data directory (pepper) knows it, and makes no new admin key.
    api.stop().await;
    let again = Running::start_with(dir.path(), Some((keys.table().to_owned(), records_table))).await;
    assert_eq!(again.admin_key, None);
    assert_eq!(again.call(Some(&key), Method::GET, "/whoami", None).await.0, 200);
    again.stop().await;
}
