//! `template.yaml` and `openapi.yaml` against the code: every function binary is deployed and
//! every deployed binary exists; every route is wired to the function of its role (and the ingest
//! route to `ingest`); the reading function has no write action; the authorizer has no identity
//! source and no caching; the OpenAPI document has exactly the routes the router serves.
//! (cfn-lint and `sam validate --lint` check the template itself, in `infra/test`.)

use std::collections::BTreeSet;
use std::path::Path;

use latchkey::manage::{ROUTES, Role};

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn template() -> String {
    std::fs::read_to_string(root().join("template.yaml")).unwrap()
}

/// The lines of the resource whose `Binary:` is `binary`, up to the next top-level resource.
fn function_block(template: &str, binary: &str) -> String {
    let lines: Vec<&str> = template.lines().collect();
    let at = lines
        .iter()
        .position(|line| line.trim() == format!("Binary: {binary}"))
        .unwrap_or_else(|| panic!("no function with `Binary: {binary}` in template.yaml"));
    let start = (0..at).rev().find(|&i| is_resource(lines[i])).unwrap();
    let end = (at..lines.len()).find(|&i| is_resource(lines[i])).unwrap_or(lines.len());
    lines[start..end].join("\n")
}

fn is_resource(line: &str) -> bool {
    line.starts_with("  ")
        && !line.starts_with("   ")
        && line.trim_end().ends_with(':')
        && !line.trim().starts_with('#')
}

/// The `[[bin]]` names of the crates under `functions/`.
fn function_binaries() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(root().join("functions")).unwrap() {
        let manifest = std::fs::read_to_string(entry.unwrap().path().join("Cargo.toml")).unwrap();
        let mut in_bin = false;
        for line in manifest.lines() {
            if line.starts_with('[') {
                in_bin = line.trim() == "[[bin]]";
            } else if in_bin && let Some(name) = line.strip_prefix("name = ") {
                names.insert(name.trim_matches('"').to_owned());
            }
        }
    }
    names
}

#[test]
fn every_function_is_deployed_and_every_deployed_function_exists() {
    let template = template();
    let deployed: BTreeSet<String> =
        template.lines().filter_map(|line| line.trim().strip_prefix("Binary: ")).map(str::to_owned).collect();
    assert_eq!(deployed, function_binaries());
    assert_eq!(template.matches("BuildMethod: rust-cargolambda").count(), deployed.len());
    assert!(template.contains("Runtime: provided.al2023") && template.contains("Architectures: [arm64]"));
}

#[test]
fn every_route_goes_to_the_function_of_its_role_behind_the_authorizer() {
    let template = template();
    let binary = |role: Role| match role {
        Role::Read => "keys-read",
        Role::Issue => "keys-issue",
        Role::Change => "keys-change",
    };
    let event = |method: &str, path: &str| -> Vec<String> {
        vec![format!("Path: {path}, Method: {method} }}"), format!("Path: \"{path}\", Method: {method} }}")]
    };
    let mut wired = 0;
    for (method, path, role) in ROUTES.iter().copied().chain([("POST", "/ingest", Role::Issue)]) {
        let function = if path == "/ingest" { "ingest" } else { binary(role) };
        let block = function_block(&template, function);
        assert!(
            event(method, path).iter().any(|e| block.contains(e.as_str())),
            "{method} {path} is not wired to {function}"
        );
        wired += 1;
    }
    // No route besides these, and none twice.
    assert_eq!(template.matches("Type: Api, Properties: { RestApiId: !Ref Api").count(), wired);
    // Every route is behind the authorizer (the API's default) and needs its usage plan key.
    assert!(template.contains("DefaultAuthorizer: LatchkeyAuthorizer"));
    assert!(template.contains("ApiKeySourceType: AUTHORIZER") && template.contains("ApiKeyRequired: true"));
    assert!(!template.contains("Authorizer: NONE"));
}

#[test]
fn the_reading_function_cannot_write_and_only_the_issuer_reads_the_pepper() {
    let template = template();
    let read = function_block(&template, "keys-read");
    for write in [
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "BatchWriteItem",
        "apigateway:POST",
        "apigateway:PATCH",
        "apigateway:DELETE",
        "secretsmanager",
    ] {
        assert!(!read.contains(write), "keys-read may {write}");
    }
    for function in ["keys-change", "ingest"] {
        assert!(!function_block(&template, function).contains("secretsmanager"), "{function} reads the pepper");
    }
    assert!(!function_block(&template, "ingest").contains("apigateway"));
}

#[test]
fn the_authorizer_has_no_identity_source_and_no_caching() {
    let template = template();
    let authorizer =
        &template[template.find("LatchkeyAuthorizer:").unwrap()..template.find("GatewayResponses:").unwrap()];
    assert!(authorizer.contains("ReauthorizeEvery: 0"));
    for source in ["Headers:", "QueryStrings:", "StageVariables:", "Context:"] {
        assert!(!authorizer.contains(source), "an identity source: {source}");
    }
    // Every usage plan the key functions are told about exists, one per default tier.
    for tier in latchkey::Tiers::default().iter() {
        let plan = format!("{}=${{", tier.name);
        assert!(template.contains(&plan), "tier {} has no usage plan in LATCHKEY_USAGE_PLANS", tier.name);
    }
}

#[test]
fn openapi_describes_exactly_the_routes() {
    let routes: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(method, path, _)| (method.to_string(), path.to_string()))
        .chain([("POST".to_owned(), "/ingest".to_owned())])
        .collect();
    assert_eq!(latchkey_tests::openapi::OpenApi::load().operations(), routes);
}
