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
