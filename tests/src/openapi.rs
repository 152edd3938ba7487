//! `openapi.yaml` as a test oracle: which operations it describes, and whether a response the
//! API gave (method, concrete path, status, body) is one the document allows. Schemas are
//! JSON Schema 2020-12 (OpenAPI 3.1), checked with formats (`date-time`, `date`) enforced.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{Value, json};

pub struct OpenApi {
    document: Value,
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

impl OpenApi {
    /// The repository's `openapi.yaml`.
    pub fn load() -> Self {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi.yaml"));
        let text = std::fs::read_to_string(path).unwrap();
        Self { document: yaml_serde::from_str(&text).expect("openapi.yaml is YAML") }
    }

    /// (METHOD, path template) of every operation.
    pub fn operations(&self) -> BTreeSet<(String, String)> {
        let paths = self.document["paths"].as_object().expect("openapi.yaml has paths");
        paths
            .iter()
            .flat_map(|(path, item)| {
                METHODS
                    .iter()
                    .filter(|method| item.get(**method).is_some())
                    .map(|method| (method.to_uppercase(), path.clone()))
            })
            .collect()
    }

    /// The path template a concrete path (without query) matches: `{name}` matches one segment.
    pub fn template_of(&self, path: &str) -> Option<String> {
        let concrete: Vec<&str> = path.split('/').collect();
        self.document["paths"]
            .as_object()?
            .keys()
            .find(|template| {
                let parts: Vec<&str> = template.split('/').collect();
                parts.len() == concrete.len()
                    && parts
                        .iter()
                        .zip(&concrete)
                        .all(|(part, segment)| (part.starts_with('{') && !segment.is_empty()) || part == segment)
            })
            .cloned()
    }

    /// Whether the document allows this response; the error says which rule it broke.
    pub fn check(&self, method: &str, path: &str, status: u16, body: &str) -> Result<(), String> {
        let path = path.split('?').next().unwrap_or(path);
        let template = self.template_of(path).ok_or_else(|| format!("{path} is not in openapi.yaml"))?;
        let operation = &self.document["paths"][&template][method.to_lowercase()];
        if operation.is_null() {
            return Err(format!("{method} {template} is not in openapi.yaml"));
        }
        let responses = &operation["responses"];
        let response = responses
            .get(status.to_string())
            .or_else(|| responses.get("default"))
            .ok_or_else(|| format!("{method} {template} does not document status {status}"))?;
        let response = self.resolve(response);
        let Some(schema) = response.pointer("/content/application~1json/schema") else {
            return if body.is_empty() {
                Ok(())
            } else {
                Err(format!("{method} {template} {status} documents no body, got {body}"))
            };
        };
        let instance: Value =
            serde_json::from_str(body).map_err(|e| format!("{method} {template} {status}: not JSON ({e}): {body}"))?;
        self.validate(schema, &instance).map_err(|errors| format!("{method} {template} {status}: {errors}\n{body}"))
    }

    /// Validates against a schema of the document (its `$ref`s resolved against the document).
    pub fn validate(&self, schema: &Value, instance: &Value) -> Result<(), String> {
        let mut root = self.document.clone();
        root["$defs"] = json!({ "checked": schema });
        root["$ref"] = json!("#/$defs/checked");
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&root)
            .map_err(|e| format!("the schema does not compile: {e}"))?;
        let errors: Vec<String> =
            validator.iter_errors(instance).map(|e| format!("{} at {}", e, e.instance_path())).collect();
        if errors.is_empty() { Ok(()) } else { Err(errors.join("; ")) }
    }

    /// The named schema of `components/schemas`.
    pub fn schema(&self, name: &str) -> Value {
        json!({ "$ref": format!("#/components/schemas/{name}") })
    }

    fn resolve<'a>(&'a self, value: &'a Value) -> &'a Value {
        match value.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix('#')) {
            Some(pointer) => self.document.pointer(pointer).expect("a $ref into the document"),
            None => value,
        }
    }
}
