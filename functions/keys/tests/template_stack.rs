//! The stack's stateful resources made in the local engines from the *transformed* template's own
//! properties, as CloudFormation would make them, and then used by the code: the tables
//! (DynamoDB Local) have exactly the shape the code creates for itself and carry a key's whole
//! life; the pepper secret's generator (moto) gives a pepper the provider accepts; the usage
//! plans (moto), named and throttled as declared, are the ones the functions find by the name
//! pattern they are given. (moto's CloudFormation is no evidence: it reports this stack created
//! while skipping most of it.)

use crate::common;

use common::Stack;
use latchkey::gateway::GatewayKeys;
use latchkey::gateway::apigateway::{ApiGatewayKeys, PlanNames, UsagePlans};
use latchkey::pepper::{PepperProvider, SecretsManagerPepper};
use latchkey::store::dynamo::DynamoKeyStore;
use latchkey::store::schema::{create_keys_table, create_records_table};
use latchkey::{KeyId, Tiers};
use latchkey_tests::template::{create_table_as_declared, parameter_value, resources_of, table_shape, transformed};
use latchkey_tests::{sdk_config, unique_name};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_declared_resources_are_the_ones_the_code_uses() {
    let template = transformed(&[]);
    let resources = &template["Resources"];
    let sdk = sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);

    // Tables: as declared, shaped exactly as the code makes them for itself.
    let (keys_table, records_table) = (unique_name("declared-keys"), unique_name("declared-records"));
    create_table_as_declared(&dynamodb, &keys_table, &resources["KeysTable"]["Properties"]).await;
    create_table_as_declared(&dynamodb, &records_table, &resources["RecordsTable"]["Properties"]).await;
    let (code_keys, code_records) = (unique_name("keys"), unique_name("records"));
    create_keys_table(&dynamodb, &code_keys).await.unwrap();
    create_records_table(&dynamodb, &code_records).await.unwrap();
    assert_eq!(table_shape(&dynamodb, &keys_table).await, table_shape(&dynamodb, &code_keys).await);
    assert_eq!(table_shape(&dynamodb, &records_table).await, table_shape(&dynamodb, &code_records).await);

    // The pepper: moto generates it from the declared settings; the provider takes it as is.
    let generate = &resources["PepperSecret"]["Properties"]["GenerateSecretString"];
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let password = secrets
        .get_random_password()
        .password_length(generate["PasswordLength"].as_i64().unwrap())
        .exclude_punctuation(generate["ExcludePunctuation"] == true)
        .send()
        .await
        .unwrap()
        .random_password
        .unwrap();
    let secret = latchkey_tests::create_secret(&secrets, &password).await;
    let peppers = SecretsManagerPepper::new(secrets, &secret).load().await.expect("the generated pepper is accepted");
    assert!(peppers.previous.is_none());

    // Usage plans: named and throttled as declared for a stack; the functions' name pattern,
    // resolved for the same stack, finds each tier's.
    let stack_name = unique_name("latchkey");
    let apigateway = aws_sdk_apigateway::Client::new(&sdk);
    let mut declared = std::collections::BTreeMap::new();
    for (_, plan) in resources_of(&template, "AWS::ApiGateway::UsagePlan") {
        let properties = &plan["Properties"];
        let name = properties["UsagePlanName"]["Fn::Sub"].as_str().unwrap().replace("${AWS::StackName}", &stack_name);
        let rate: f64 = parameter_value(&template, &[], &properties["Throttle"]["RateLimit"]).parse().unwrap();
        let burst: i32 = parameter_value(&template, &[], &properties["Throttle"]["BurstLimit"]).parse().unwrap();
        let throttle = aws_sdk_apigateway::types::ThrottleSettings::builder().rate_limit(rate).burst_limit(burst);
        let id =
            apigateway.create_usage_plan().name(&name).throttle(throttle.build()).send().await.unwrap().id.unwrap();
        declared.insert(name, (id, rate));
    }
    let pattern = resources["KeysIssueFunction"]["Properties"]["Environment"]["Variables"]["LATCHKEY_USAGE_PLAN_NAMES"]
        ["Fn::Sub"]
        .as_str()
        .unwrap()
        .replace("${AWS::StackName}", &stack_name);
    let names = PlanNames::parse(&pattern).unwrap();
    let gateway = ApiGatewayKeys::new(apigateway.clone(), UsagePlans::Named(names.clone()));
    for tier in Tiers::default().iter() {
        let (plan, rate) = declared.get(&names.name_of(&tier.name)).expect("a declared plan for every tier");
        let expected = tier.throttle.as_ref().map_or(10_000.0, |t| t.rate_per_second);
        assert_eq!(*rate, expected, "tier {}'s plan rate", tier.name);
        let key = gateway.issue(KeyId::generate().as_str(), &tier.name).await.unwrap().unwrap();
        let members = apigateway.get_usage_plan_keys().usage_plan_id(plan).send().await.unwrap();
        let members: Vec<&str> = members.items().iter().filter_map(|member| member.id()).collect();
        assert_eq!(members, [key.id.as_str()], "tier {}", tier.name);
    }

    // A key's whole life on the declared tables.
    let store = DynamoKeyStore::new(dynamodb, keys_table, chrono::TimeDelta::days(30));
    let stack = Stack::with_tables(store, records_table).await;
    let admin = stack.bootstrap("acme").await;
    let created =
        stack.call(&admin, "POST", "/keys", Some(json!({"name": "declared", "tier": "starter"}))).await.expect(201);
    let (id, key) = (created["id"].as_str().unwrap(), created["key"].as_str().unwrap());
    assert_eq!(stack.call(key, "GET", "/whoami", None).await.expect(200)["id"], id);
    let listed = stack.call(&admin, "GET", "/keys", None).await.expect(200);
    assert_eq!(listed["keys"].as_array().unwrap().len(), 2, "{listed}");
    let rotated = stack.call(&admin, "POST", &format!("/keys/{id}/rotate"), None).await.expect(201);
    stack.let_cached_decisions_expire();
    assert_eq!(stack.call(key, "GET", "/whoami", None).await.status, 401);
    let datasource = stack.call(&admin, "POST", "/datasources", Some(json!({"name": "meters"}))).await.expect(201);
    let ingest_key = datasource["key"].as_str().unwrap();
    let ingested = stack.call(ingest_key, "POST", "/ingest", Some(json!({"id": "m-1", "kwh": 3}))).await;
    assert_eq!(ingested.status, 202);
    let records = stack
        .call(&admin, "GET", &format!("/datasources/{}/records", datasource["id"].as_str().unwrap()), None)
        .await
        .expect(200);
    assert_eq!(records["records"].as_array().unwrap().len(), 1, "{records}");
    let new_id = rotated["id"].as_str().unwrap();
    assert_eq!(stack.call(&admin, "DELETE", &format!("/keys/{new_id}"), None).await.status, 204);
    assert_eq!(stack.call(rotated["key"].as_str().unwrap(), "GET", "/whoami", None).await.status, 401);
}
