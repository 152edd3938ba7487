//! `template.yaml` as data: the SAM source read with a YAML parser (CloudFormation's short tags
//! become their long forms, `!Ref X` → `{"Ref": "X"}`), and the template CloudFormation will
//! see, made by the SAM transform offline (`infra/template/transform.py`, aws-sam-translator from
//! the local tools).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Map, Value, json};

pub fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The SAM source.
pub fn source() -> Value {
    let text = std::fs::read_to_string(root().join("template.yaml")).unwrap();
    long_form(yaml_serde::from_str(&text).expect("template.yaml is YAML"))
}

/// The transformed template for these parameter values (`Name=Value`; the rest at their defaults).
pub fn transformed(parameters: &[&str]) -> Value {
    let python = root().join(".tools/venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: install the local tools first (`infra/local-aws/install`, or the README's test command)",
        python.display()
    );
    let output = tempfile_path("transformed.json");
    let status = Command::new(python)
        .arg(root().join("infra/template/transform.py"))
        .arg(root().join("template.yaml"))
        .arg(&output)
        .args(parameters)
        .status()
        .unwrap();
    assert!(status.success(), "the SAM transform failed on template.yaml ({parameters:?})");
    let text = std::fs::read_to_string(&output).unwrap();
    let _ = std::fs::remove_file(&output);
    serde_json::from_str(&text).unwrap()
}

fn tempfile_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("latchkey-{}-{name}", uuid::Uuid::now_v7().simple()))
}

/// The resources of `template` of one type, by logical id.
pub fn resources_of<'t>(template: &'t Value, kind: &str) -> Vec<(&'t str, &'t Value)> {
    template["Resources"]
        .as_object()
        .expect("a template has Resources")
        .iter()
        .filter(|(_, resource)| resource["Type"] == kind)
        .map(|(id, resource)| (id.as_str(), resource))
        .collect()
}

/// `value` as text, a `Ref` to a parameter resolved to its value in `parameters` or else its
/// default (what `sam deploy` uses unless told otherwise).
pub fn parameter_value(template: &Value, parameters: &[(&str, &str)], value: &Value) -> String {
    let text = |value: &Value| value.as_str().map_or_else(|| value.to_string(), str::to_owned);
    match value.get("Ref").and_then(Value::as_str) {
        Some(name) => parameters
            .iter()
            .find(|(n, _)| *n == name)
            .map_or_else(|| text(&template["Parameters"][name]["Default"]), |(_, v)| (*v).to_owned()),
        None => text(value),
    }
}

/// YAML with CloudFormation's short tags → the JSON form CloudFormation defines for them.
fn long_form(value: yaml_serde::Value) -> Value {
    use yaml_serde::Value as Yaml;
    match value {
        Yaml::Null => Value::Null,
        Yaml::Bool(b) => Value::Bool(b),
        Yaml::Number(n) => serde_json::to_value(n).unwrap(),
        Yaml::String(s) => Value::String(s),
        Yaml::Sequence(items) => Value::Array(items.into_iter().map(long_form).collect()),
        Yaml::Mapping(map) => Value::Object(
            map.into_iter()
                .map(|(key, value)| (key.as_str().expect("string keys").to_owned(), long_form(value)))
                .collect::<Map<_, _>>(),
        ),
        Yaml::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let tag = tag.trim_start_matches('!');
            let inner = long_form(tagged.value);
            match (tag, inner) {
                ("Ref", inner) => json!({ "Ref": inner }),
                ("GetAtt", Value::String(path)) => {
                    let (resource, attribute) = path.split_once('.').expect("!GetAtt Resource.Attribute");
                    json!({ "Fn::GetAtt": [resource, attribute] })
                }
                (function, inner) => json!({ format!("Fn::{function}"): inner }),
            }
        }
    }
}

/// Creates a DynamoDB table from an `AWS::DynamoDB::Table`'s properties in `template` (key
/// schema, attributes, indexes, billing, TTL), as CloudFormation would, and waits until it is
/// active. Intrinsics are not resolved: the tables' shape properties are literal.
pub async fn create_table_as_declared(client: &aws_sdk_dynamodb::Client, name: &str, properties: &Value) {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, LocalSecondaryIndex,
        Projection, ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
    };
    let text = |value: &Value| value.as_str().unwrap_or_else(|| panic!("a literal string, not {value}")).to_owned();
    let list = |value: &Value| value.as_array().cloned().unwrap_or_default();
    let key_schema = |schema: &Value| -> Vec<KeySchemaElement> {
        list(schema)
            .iter()
            .map(|element| {
                KeySchemaElement::builder()
                    .attribute_name(text(&element["AttributeName"]))
                    .key_type(KeyType::from(text(&element["KeyType"]).as_str()))
                    .build()
                    .unwrap()
            })
            .collect()
    };
    let projection = |index: &Value| {
        Projection::builder()
            .projection_type(ProjectionType::from(text(&index["Projection"]["ProjectionType"]).as_str()))
            .build()
    };
    assert_eq!(properties["BillingMode"], "PAY_PER_REQUEST");
    let mut request = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_key_schema(Some(key_schema(&properties["KeySchema"])));
    for attribute in list(&properties["AttributeDefinitions"]) {
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(text(&attribute["AttributeName"]))
                .attribute_type(ScalarAttributeType::from(text(&attribute["AttributeType"]).as_str()))
                .build()
                .unwrap(),
        );
    }
    for index in list(&properties["GlobalSecondaryIndexes"]) {
        request = request.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(text(&index["IndexName"]))
                .set_key_schema(Some(key_schema(&index["KeySchema"])))
                .projection(projection(&index))
                .build()
                .unwrap(),
        );
    }
    for index in list(&properties["LocalSecondaryIndexes"]) {
        request = request.local_secondary_indexes(
            LocalSecondaryIndex::builder()
                .index_name(text(&index["IndexName"]))
                .set_key_schema(Some(key_schema(&index["KeySchema"])))
                .projection(projection(&index))
                .build()
                .unwrap(),
        );
    }
    request
        .send()
        .await
        .unwrap_or_else(|e| panic!("creating {name}: {}", aws_sdk_dynamodb::error::DisplayErrorContext(e)));
    use aws_sdk_dynamodb::client::Waiters;
    client.wait_until_table_exists().table_name(name).wait(std::time::Duration::from_secs(30)).await.unwrap();
    let ttl = &properties["TimeToLiveSpecification"];
    if ttl["Enabled"] == true {
        let specification = TimeToLiveSpecification::builder()
            .attribute_name(text(&ttl["AttributeName"]))
            .enabled(true)
            .build()
            .unwrap();
        client.update_time_to_live().table_name(name).time_to_live_specification(specification).send().await.unwrap();
    }
}

/// A table's shape as DynamoDB describes it (keys, attributes, indexes, TTL attribute), with
/// names and ids left out, so two tables can be compared.
pub async fn table_shape(client: &aws_sdk_dynamodb::Client, name: &str) -> String {
    let table = client.describe_table().table_name(name).send().await.unwrap().table.unwrap();
    let keys = |schema: &[aws_sdk_dynamodb::types::KeySchemaElement]| -> Vec<String> {
        schema.iter().map(|k| format!("{}:{}", k.attribute_name(), k.key_type())).collect()
    };
    let mut attributes: Vec<String> = table
        .attribute_definitions()
        .iter()
        .map(|a| format!("{}:{}", a.attribute_name(), a.attribute_type()))
        .collect();
    attributes.sort();
    let mut global: Vec<String> = table
        .global_secondary_indexes()
        .iter()
        .map(|i| format!("{:?} {:?} {:?}", i.index_name(), keys(i.key_schema()), i.projection()))
        .collect();
    global.sort();
    let mut local: Vec<String> = table
        .local_secondary_indexes()
        .iter()
        .map(|i| format!("{:?} {:?} {:?}", i.index_name(), keys(i.key_schema()), i.projection()))
        .collect();
    local.sort();
    let ttl = client.describe_time_to_live().table_name(name).send().await.unwrap();
    let ttl = ttl.time_to_live_description.and_then(|d| d.attribute_name);
    format!(
        "keys {:?}\nattributes {attributes:?}\nglobal {global:?}\nlocal {local:?}\nttl {ttl:?}\nbilling {:?}",
        keys(table.key_schema()),
        table.billing_mode_summary.and_then(|b| b.billing_mode)
    )
}
