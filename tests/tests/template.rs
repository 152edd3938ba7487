//! `template.yaml` against the code and against what CloudFormation will see: the SAM source read
//! with a YAML parser, and the template after the SAM transform (made offline with the pinned
//! aws-sam-translator; `cfn-lint` and checkov lint both in `infra/template/check`).
//!
//! Every function binary is deployed and every deployed binary exists, built from
//! `Metadata.BuildProperties.Binary`; every route reaches the function of its role behind the
//! authorizer and its usage plan; the reading function cannot write; only the issuing functions
//! read the pepper; the authorizer has no identity source and no caching and one invoke
//! permission; there is one stage; what must outlive the stack does; the access log cannot carry
//! a key; the functions find their tier's usage plan by the name the plan has.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use latchkey::manage::{ROUTES, Role};
use latchkey_tests::template::{parameter_value, resources_of, root, source, transformed};
use serde_json::{Value, json};

/// The binaries of the crates under `functions/`, as cargo reads their manifests.
fn function_binaries() -> BTreeSet<String> {
    let output = Command::new(env!("CARGO"))
        .args(["metadata", "--no-deps", "--offline", "--format-version", "1", "--manifest-path"])
        .arg(root().join("Cargo.toml"))
        .output()
        .unwrap();
    assert!(output.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&output.stderr));
    let metadata: Value = serde_json::from_slice(&output.stdout).unwrap();
    let functions = root().join("functions").canonicalize().unwrap();
    metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|package| Path::new(package["manifest_path"].as_str().unwrap()).starts_with(&functions))
        .flat_map(|package| package["targets"].as_array().unwrap())
        .filter(|target| target["kind"] == json!(["bin"]))
        .map(|target| target["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Logical id → the binary each SAM function is built from.
fn deployed_binaries(source: &Value) -> BTreeMap<String, String> {
    resources_of(source, "AWS::Serverless::Function")
        .into_iter()
        .map(|(id, function)| {
            assert_eq!(function["Metadata"]["BuildMethod"], "rust-cargolambda", "{id}");
            let binary = function["Metadata"]["BuildProperties"]["Binary"]
                .as_str()
                .unwrap_or_else(|| panic!("{id} names no Metadata.BuildProperties.Binary (sam build needs it there)"));
            (id.to_owned(), binary.to_owned())
        })
        .collect()
}

fn default_transform() -> &'static Value {
    static TRANSFORMED: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    TRANSFORMED.get_or_init(|| transformed(&[]))
}

#[test]
fn every_function_is_deployed_and_every_deployed_function_exists() {
    let source = source();
    let deployed: BTreeSet<String> = deployed_binaries(&source).into_values().collect();
    assert_eq!(deployed, function_binaries());
    let globals = &source["Globals"]["Function"];
    assert_eq!(globals["Runtime"], "provided.al2023");
    assert_eq!(globals["Architectures"], json!([{"Ref": "Architecture"}]));
    assert_eq!(source["Parameters"]["Architecture"]["Default"], "arm64");
}

/// `{"Fn::Sub": "...${KeysReadFunction.Arn}..."}` → `KeysReadFunction`.
fn integrated_function(operation: &Value) -> String {
    let uri = operation["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"].as_str().expect("a Lambda integration");
    let start = uri.find("functions/${").expect("a function ARN") + "functions/${".len();
    uri[start..].split('.').next().unwrap().to_owned()
}

#[test]
fn every_route_goes_to_the_function_of_its_role_behind_the_authorizer() {
    let binaries = deployed_binaries(&source());
    let template = default_transform();
    let paths = template["Resources"]["Api"]["Properties"]["Body"]["paths"].as_object().unwrap();
    let binary = |role: Role| match role {
        Role::Read => "keys-read",
        Role::Issue => "keys-issue",
        Role::Change => "keys-change",
    };
    let mut expected = BTreeMap::new();
    for (method, path, role) in ROUTES.iter().copied() {
        expected.insert((method.to_lowercase(), path.to_owned()), binary(role).to_owned());
    }
    expected.insert(("post".to_owned(), "/ingest".to_owned()), "ingest".to_owned());
    let mut deployed = BTreeMap::new();
    for (path, item) in paths {
        if FORWARDED.contains(&path.as_str()) {
            continue;
        }
        for (method, operation) in item.as_object().unwrap() {
            let function = integrated_function(operation);
            deployed.insert((method.clone(), path.clone()), binaries[&function].clone());
            // Behind the authorizer, and metered: the usage plan key comes from the authorizer.
            assert_eq!(
                operation["security"],
                json!([{"LatchkeyAuthorizer": []}, {"api_key": []}]),
                "{method} {path} is not behind the authorizer and its usage plan"
            );
        }
    }
    assert_eq!(deployed, expected);
    assert_eq!(template["Resources"]["Api"]["Properties"]["ApiKeySourceType"], "AUTHORIZER");
}

/// Every action each function's role allows (conditional statements included), by binary.
fn allowed_actions(template: &Value) -> BTreeMap<String, Vec<(String, Value)>> {
    let binaries = deployed_binaries(&source());
    let mut allowed = BTreeMap::new();
    for (function, binary) in binaries {
        let role = &template["Resources"][format!("{function}Role")];
        assert_eq!(role["Type"], "AWS::IAM::Role", "{function} has its own role");
        let mut actions = Vec::new();
        for policy in role["Properties"]["Policies"].as_array().unwrap() {
            let document = &policy["PolicyDocument"];
            assert_eq!(document["Version"], "2012-10-17", "{function}'s policy has no Version");
            for statement in document["Statement"].as_array().unwrap() {
                // `!If [condition, statement, AWS::NoValue]`: the statement, where it applies.
                let statement = statement.get("Fn::If").map_or(statement, |branches| &branches[1]);
                assert_eq!(statement["Effect"], "Allow");
                let listed = match &statement["Action"] {
                    Value::String(one) => vec![one.clone()],
                    many => many.as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_owned()).collect(),
                };
                actions.extend(listed.into_iter().map(|action| (action, statement["Resource"].clone())));
            }
        }
        allowed.insert(binary, actions);
    }
    allowed
}

#[test]
fn the_reading_function_cannot_write_and_only_the_issuers_read_the_pepper() {
    let allowed = allowed_actions(default_transform());
    let writes = ["Put", "Update", "Delete", "BatchWrite", "apigateway:POST", "apigateway:PATCH", "apigateway:DELETE"];
    for (action, _) in &allowed["keys-read"] {
        assert!(!writes.iter().any(|w| action.contains(w)), "keys-read may {action}");
    }
    for (binary, actions) in &allowed {
        let reads_pepper = actions.iter().any(|(action, _)| action.starts_with("secretsmanager:"));
        assert_eq!(reads_pepper, ["authorizer", "keys-issue"].contains(&binary.as_str()), "{binary} and the pepper");
        for (action, resource) in actions {
            assert_ne!(resource, &json!("*"), "{binary} may {action} on every resource");
        }
    }
    assert!(!allowed["ingest"].iter().any(|(action, _)| action.starts_with("apigateway:")));
}

#[test]
fn the_authorizer_has_no_identity_source_no_caching_and_one_invoke_permission() {
    let template = default_transform();
    let scheme = &template["Resources"]["Api"]["Properties"]["Body"]["components"]["securitySchemes"]["LatchkeyAuthorizer"]
        ["x-amazon-apigateway-authorizer"];
    assert_eq!(scheme["type"], "request");
    assert_eq!(scheme["authorizerResultTtlInSeconds"], 0);
    assert!(scheme.get("identitySource").is_none(), "an identity source: {scheme}");
    let invokes_authorizer: Vec<&str> = resources_of(template, "AWS::Lambda::Permission")
        .into_iter()
        .filter(|(_, permission)| {
            permission["Properties"]["FunctionName"] == json!({"Fn::GetAtt": ["AuthorizerFunction", "Arn"]})
        })
        .map(|(id, _)| id)
        .collect();
    assert_eq!(invokes_authorizer, ["ApiLatchkeyAuthorizerAuthorizerPermission"]);
    let concurrency = &source()["Resources"]["AuthorizerFunction"]["Properties"]["ReservedConcurrentExecutions"];
    assert_eq!(concurrency["Fn::If"][1], json!({"Ref": "AuthorizerReservedConcurrency"}));
}

#[test]
fn the_api_has_one_stage() {
    let template = default_transform();
    assert_eq!(resources_of(template, "AWS::ApiGateway::Stage").len(), 1);
    for (id, deployment) in resources_of(template, "AWS::ApiGateway::Deployment") {
        assert!(deployment["Properties"].get("StageName").is_none(), "{id} makes a stage of its own");
    }
}

#[test]
fn what_holds_data_outlives_the_stack() {
    let source = source();
    for id in ["KeysTable", "RecordsTable", "PepperSecret", "DataKey"] {
        let resource = &source["Resources"][id];
        assert_eq!(resource["DeletionPolicy"], "Retain", "{id}");
        assert_eq!(resource["UpdateReplacePolicy"], "Retain", "{id}");
    }
}

/// `$context` variables the access log may use: none can carry a key or a header.
const LOGGABLE: &[&str] = &[
    "requestId",
    "requestTime",
    "identity.sourceIp",
    "httpMethod",
    "resourcePath",
    "status",
    "responseLength",
    "responseLatency",
    "integrationLatency",
    "error.responseType",
    "authorizer.principalId",
    "authorizer.keyId",
    "authorizer.tenantId",
];

#[test]
fn the_access_log_cannot_carry_a_key() {
    let template = default_transform();
    let (_, stage) = resources_of(template, "AWS::ApiGateway::Stage").pop().unwrap();
    let format = stage["Properties"]["AccessLogSetting"]["Format"].as_str().expect("access logging is on");
    let variables: Vec<&str> = format.split('$').skip(1).map(|v| v.split('"').next().unwrap()).collect();
    assert!(!variables.is_empty());
    for variable in variables {
        let name = variable.strip_prefix("context.").unwrap_or_else(|| panic!("${variable} in the access log"));
        assert!(LOGGABLE.contains(&name), "$context.{name} in the access log may carry a key or a header");
    }
    assert_eq!(stage["Properties"]["TracingEnabled"], true);
}

#[test]
fn the_functions_find_each_tiers_usage_plan_by_its_name() {
    let source = source();
    let plan_names: BTreeSet<String> = resources_of(&source, "AWS::ApiGateway::UsagePlan")
        .into_iter()
        .map(|(_, plan)| plan["Properties"]["UsagePlanName"]["Fn::Sub"].as_str().unwrap().to_owned())
        .collect();
    let expected: BTreeSet<String> =
        latchkey::Tiers::default().iter().map(|tier| format!("${{AWS::StackName}}-{}", tier.name)).collect();
    assert_eq!(plan_names, expected);
    for (id, function) in resources_of(&source, "AWS::Serverless::Function") {
        let variables = &function["Properties"]["Environment"]["Variables"];
        assert!(variables.get("LATCHKEY_USAGE_PLANS").is_none(), "{id} is handed plan ids (a dependency cycle)");
        if let Some(pattern) = variables.get("LATCHKEY_USAGE_PLAN_NAMES") {
            assert_eq!(pattern, &json!({"Fn::Sub": "${AWS::StackName}-{tier}"}), "{id}");
        }
    }
}

/// The paths that go to the team's backend (when one is configured).
const FORWARDED: [&str; 2] = ["/", "/{proxy+}"];

/// The template's conditions evaluated for these parameter values (the rest at their defaults).
fn conditions(template: &Value, parameters: &[(&str, &str)]) -> BTreeMap<String, bool> {
    fn holds(template: &Value, parameters: &[(&str, &str)], condition: &Value) -> bool {
        let (function, args) = condition.as_object().unwrap().iter().next().unwrap();
        let args = args.as_array().map(Vec::as_slice).unwrap_or_default();
        match function.as_str() {
            "Fn::Equals" => {
                parameter_value(template, parameters, &args[0]) == parameter_value(template, parameters, &args[1])
            }
            "Fn::Not" => !holds(template, parameters, &args[0]),
            "Fn::Or" => args.iter().any(|a| holds(template, parameters, a)),
            "Fn::And" => args.iter().all(|a| holds(template, parameters, a)),
            "Condition" => {
                holds(template, parameters, &template["Conditions"][condition["Condition"].as_str().unwrap()])
            }
            other => panic!("condition function {other}"),
        }
    }
    template["Conditions"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, condition)| (name.clone(), holds(template, parameters, condition)))
        .collect()
}

/// `value` as CloudFormation resolves it under `conditions`: each `Fn::If` becomes its branch,
/// `AWS::NoValue` disappears.
fn resolved(value: &Value, conditions: &BTreeMap<String, bool>) -> Option<Value> {
    if value == &json!({"Ref": "AWS::NoValue"}) {
        return None;
    }
    if let Some([condition, then, otherwise]) = value.get("Fn::If").and_then(Value::as_array).map(Vec::as_slice) {
        let branch = if conditions[condition.as_str().unwrap()] { then } else { otherwise };
        return resolved(branch, conditions);
    }
    Some(match value {
        Value::Object(map) => {
            Value::Object(map.iter().filter_map(|(k, v)| Some((k.clone(), resolved(v, conditions)?))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().filter_map(|v| resolved(v, conditions)).collect()),
        other => other.clone(),
    })
}

/// The forwarding operation of each forwarded path, as deployed with `parameters`.
fn forwarding(parameters: &[(&str, &str)]) -> (Value, BTreeMap<String, Value>) {
    let arguments: Vec<String> = parameters.iter().map(|(name, value)| format!("{name}={value}")).collect();
    let template = transformed(&arguments.iter().map(String::as_str).collect::<Vec<_>>());
    let conditions = conditions(&template, parameters);
    let mut template = resolved(&template, &conditions).unwrap();
    // Resources whose condition does not hold are not created.
    template["Resources"]
        .as_object_mut()
        .unwrap()
        .retain(|_, resource| resource["Condition"].as_str().is_none_or(|condition| conditions[condition]));
    let paths = &template["Resources"]["Api"]["Properties"]["Body"]["paths"];
    let operations = FORWARDED
        .iter()
        .filter_map(|path| Some(((*path).to_owned(), paths[*path].get("x-amazon-apigateway-any-method")?.clone())))
        .collect();
    (template, operations)
}

#[test]
fn without_a_backend_nothing_is_forwarded() {
    let (template, operations) = forwarding(&[]);
    assert!(operations.is_empty(), "{operations:?}");
    assert!(template["Resources"].get("UpstreamFunctionPermission").is_none());
}

#[test]
fn an_http_backend_gets_every_other_path_behind_the_authorizer_with_the_callers_headers() {
    let (_, operations) = forwarding(&[("UpstreamUrl", "https://backend.example.com/api")]);
    assert_eq!(operations.keys().map(String::as_str).collect::<Vec<_>>(), ["/", "/{proxy+}"]);
    for (path, operation) in &operations {
        assert_eq!(operation["security"], json!([{"LatchkeyBackendAuthorizer": []}, {"api_key": []}]), "{path}");
        let integration = &operation["x-amazon-apigateway-integration"];
        assert_eq!((&integration["type"], &integration["httpMethod"]), (&json!("http_proxy"), &json!("ANY")));
        assert_eq!(integration["timeoutInMillis"], 29_000, "API Gateway's limit");
        let suffix = if path == "/" { "/" } else { "/{proxy}" };
        assert_eq!(integration["uri"], json!({"Fn::Sub": format!("${{UpstreamUrl}}{suffix}")}));
        let mut mapped: BTreeMap<String, String> = integration["requestParameters"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(target, source)| (target.to_lowercase(), source.as_str().unwrap().to_owned()))
            .collect();
        if path != "/" {
            assert_eq!(mapped.remove("integration.request.path.proxy").as_deref(), Some("method.request.path.proxy"));
        }
        let mut expected: BTreeMap<String, String> = latchkey::upstream::CALLER_HEADERS
            .iter()
            .map(|(header, field)| {
                (format!("integration.request.header.{header}"), format!("context.authorizer.{field}"))
            })
            .collect();
        // The key cannot be removed, only overwritten: the backend gets these empty.
        for header in latchkey::upstream::CREDENTIAL_HEADERS {
            expected.insert(format!("integration.request.header.{header}"), "''".to_owned());
        }
        assert_eq!(mapped, expected, "{path}");
    }
}

#[test]
fn a_lambda_backend_gets_the_context_and_the_stack_may_invoke_it() {
    let arn = "arn:aws:lambda:eu-west-1:123456789012:function:backend";
    let (template, operations) = forwarding(&[("UpstreamFunctionArn", arn)]);
    assert_eq!(operations.len(), 2);
    for (path, operation) in &operations {
        assert_eq!(operation["security"], json!([{"LatchkeyBackendAuthorizer": []}, {"api_key": []}]), "{path}");
        let integration = &operation["x-amazon-apigateway-integration"];
        assert_eq!(integration["type"], "aws_proxy");
        assert!(
            integration["uri"]["Fn::Sub"].as_str().unwrap().contains("/functions/${UpstreamFunctionArn}/invocations")
        );
    }
    let permission = &template["Resources"]["UpstreamFunctionPermission"]["Properties"];
    assert_eq!(permission["FunctionName"], json!({"Ref": "UpstreamFunctionArn"}));
    assert_eq!(permission["Principal"], "apigateway.amazonaws.com");
    assert!(permission["SourceArn"]["Fn::Sub"].as_str().unwrap().ends_with(":${Api}/*"));
}

/// The backend routes' authorizer and API Gateway's answer to a request without its identity
/// source, as deployed with `parameters`; the parameters it names resolved.
fn backend_authorizer(parameters: &[(&str, &str)]) -> (Value, Value) {
    let (template, operations) = forwarding(parameters);
    assert!(!operations.is_empty());
    let body = &template["Resources"]["Api"]["Properties"]["Body"];
    // Latchkey's own routes keep the uncached authorizer whatever the mode.
    assert_eq!(body["paths"]["/whoami"]["get"]["security"], json!([{"LatchkeyAuthorizer": []}, {"api_key": []}]));
    assert_eq!(
        body["components"]["securitySchemes"]["LatchkeyAuthorizer"]["x-amazon-apigateway-authorizer"]["authorizerResultTtlInSeconds"],
        0
    );
    let mut scheme = body["components"]["securitySchemes"]["LatchkeyBackendAuthorizer"].clone();
    let authorizer = &mut scheme["x-amazon-apigateway-authorizer"];
    if let Some(source) = authorizer.get("identitySource").cloned() {
        let text = source["Fn::Sub"].as_str().expect("a Sub");
        let header = parameter_value(&template, parameters, &json!({"Ref": "AuthorizerIdentityHeader"}));
        authorizer["identitySource"] = json!(text.replace("${AuthorizerIdentityHeader}", &header));
    }
    if authorizer["authorizerResultTtlInSeconds"].get("Ref").is_some() {
        let ttl = parameter_value(&template, parameters, &authorizer["authorizerResultTtlInSeconds"]);
        authorizer["authorizerResultTtlInSeconds"] = json!(ttl.parse::<u64>().unwrap());
    }
    let unauthorized = body["x-amazon-apigateway-gateway-responses"]["UNAUTHORIZED"].clone();
    (scheme, unauthorized)
}

#[test]
fn by_default_the_backend_routes_are_authorized_afresh_on_every_request() {
    let (scheme, unauthorized) = backend_authorizer(&[("UpstreamUrl", "https://backend.example.com/api")]);
    let authorizer = &scheme["x-amazon-apigateway-authorizer"];
    assert_eq!(authorizer["type"], "request");
    assert_eq!(authorizer["authorizerResultTtlInSeconds"], 0);
    assert!(authorizer.get("identitySource").is_none(), "{authorizer}");
    assert_eq!(
        authorizer["authorizerUri"]["Fn::Sub"],
        "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${AuthorizerFunction.Arn}/invocations"
    );
    // Nothing in this mode makes API Gateway answer UNAUTHORIZED itself: fail closed.
    assert_eq!(unauthorized["statusCode"], "503");
}

#[test]
fn the_cheaper_mode_caches_the_backend_routes_by_one_header_and_answers_its_absence_in_the_envelope() {
    for (backend, header, ttl, sent_as) in [
        ("UpstreamUrl", "x-api-key", None, "x-api-key"),
        ("UpstreamFunctionArn", "Authorization", Some("60"), "authorization"),
    ] {
        let target = if backend == "UpstreamUrl" {
            "https://backend.example.com/api"
        } else {
            "arn:aws:lambda:eu-west-1:123456789012:function:backend"
        };
        let mut parameters = vec![(backend, target), ("AuthorizerIdentityHeader", header)];
        parameters.extend(ttl.map(|ttl| ("AuthorizerResultTtlSeconds", ttl)));
        let (scheme, unauthorized) = backend_authorizer(&parameters);
        let authorizer = &scheme["x-amazon-apigateway-authorizer"];
        assert_eq!(authorizer["identitySource"], format!("method.request.header.{header}"), "{header}");
        assert_eq!(authorizer["authorizerResultTtlInSeconds"], ttl.unwrap_or("300").parse::<u64>().unwrap());
        // The answer API Gateway gives without calling the authorizer: the envelope of a missing key.
        let missing = latchkey::ApiError::MissingApiKey { header: sent_as };
        assert_eq!(unauthorized["statusCode"], missing.status().to_string(), "{header}");
        let body: Value =
            serde_json::from_str(unauthorized["responseTemplates"]["application/json"].as_str().unwrap()).unwrap();
        let local: Value = serde_json::from_str(&missing.to_json()).unwrap();
        assert_eq!(body["error"]["code"], local["error"]["code"]);
        assert_eq!(body["error"]["details"], local["error"]["details"], "{header}");
        assert_eq!(body["success"], false);
        assert!(body["error"]["message"].as_str().unwrap().contains(&format!("in the {header} header")));
    }
}

#[test]
fn the_backends_failures_render_the_envelope_the_local_gateway_gives() {
    let responses = &source()["Resources"]["Api"]["Properties"]["GatewayResponses"];
    for (response, error) in [
        ("INTEGRATION_FAILURE", latchkey::ApiError::BadGateway),
        ("INTEGRATION_TIMEOUT", latchkey::ApiError::GatewayTimeout),
    ] {
        assert_eq!(responses[response]["StatusCode"], error.status().to_string(), "{response}");
        let body: Value =
            serde_json::from_str(responses[response]["ResponseTemplates"]["application/json"].as_str().unwrap())
                .unwrap();
        let local: Value = serde_json::from_str(&error.to_json()).unwrap();
        assert_eq!(body, local, "{response}");
    }
}

#[test]
fn another_stack_can_attach_to_the_authorizer_api_and_plans() {
    let outputs = &source()["Outputs"];
    for output in [
        "AuthorizerFunctionArn",
        "RestApiId",
        "RootResourceId",
        "FreeUsagePlanId",
        "StarterUsagePlanId",
        "InternalUsagePlanId",
    ] {
        let name = &outputs[output]["Export"]["Name"]["Fn::Sub"];
        assert_eq!(name, &json!(format!("${{AWS::StackName}}-{output}")), "{output} is exported");
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
