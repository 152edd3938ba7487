//! `template.yaml` against the code and against what CloudFormation will see: the SAM source read
//! with a YAML parser, and the template after the SAM transform (made offline with the pinned
//! aws-sam-translator; `cfn-lint` and checkov lint both in `infra/template/check`).
//!
//! Every function binary is deployed and every deployed binary exists, built from
//! `Metadata.BuildProperties.Binary`; every route reaches the function of its role behind the
//! authorizer and its usage plan; the reading function cannot write; only the issuing functions
//! read the pepper; the authorizer writes only the items verification touches and keys-change
//! puts only audit events; the key functions touch only this stack's usage plans; the stage has
//! a throttle ceiling and each tier a quota as parameters; the authorizer has no identity source and no caching and one invoke
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
    let mut dashboard = Vec::new();
    let mut github = Vec::new();
    for (path, item) in paths {
        if FORWARDED.contains(&path.as_str()) {
            continue;
        }
        for (method, operation) in item.as_object().unwrap() {
            let function = integrated_function(operation);
            if binaries[&function] == "dashboard" {
                // Static files, for anyone: GET only, no authorizer, no usage plan key.
                assert_eq!(method, "get", "{path}");
                assert!(path.as_str() == latchkey_dashboard::PATH || path.starts_with("/dashboard/"), "{path}");
                assert_eq!(operation.get("security").unwrap_or(&json!([])), &json!([]), "{method} {path}");
                dashboard.push(path.clone());
                continue;
            }
            if path == "/leaks/github" {
                // GitHub's secret scanning signs its reports and holds no key: no authorizer, no
                // usage plan key; keys-issue checks the signature before anything else.
                assert_eq!((method.as_str(), binaries[&function].as_str()), ("post", "keys-issue"));
                assert_eq!(operation.get("security").unwrap_or(&json!([])), &json!([]), "{method} {path}");
                github.push(path.clone());
                continue;
            }
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
    assert_eq!(dashboard, ["/dashboard", "/dashboard/{file}"]);
    assert_eq!(github, ["/leaks/github"]);
    assert_eq!(template["Resources"]["Api"]["Properties"]["ApiKeySourceType"], "AUTHORIZER");
}

/// One action a function's role allows: on what, and under which condition (`Null`: none).
struct Grant {
    action: String,
    resource: Value,
    condition: Value,
}

/// The statements of a policy document, a conditional statement (`!If [condition, statement,
/// AWS::NoValue]`) as where it applies.
fn grants(document: &Value, owner: &str) -> Vec<Grant> {
    assert_eq!(document["Version"], "2012-10-17", "{owner}'s policy has no Version");
    let mut grants = Vec::new();
    for statement in document["Statement"].as_array().unwrap() {
        let statement = statement.get("Fn::If").map_or(statement, |branches| &branches[1]);
        assert_eq!(statement["Effect"], "Allow");
        let listed = match &statement["Action"] {
            Value::String(one) => vec![one.clone()],
            many => many.as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_owned()).collect(),
        };
        grants.extend(listed.into_iter().map(|action| Grant {
            action,
            resource: statement["Resource"].clone(),
            condition: statement["Condition"].clone(),
        }));
    }
    grants
}

/// Every action each function's role allows, by binary: the role's own policies and every
/// `AWS::IAM::Policy` of the template attached to it.
fn allowed_actions(template: &Value) -> BTreeMap<String, Vec<Grant>> {
    let binaries = deployed_binaries(&source());
    let mut allowed = BTreeMap::new();
    for (function, binary) in binaries {
        let role_id = format!("{function}Role");
        let role = &template["Resources"][&role_id];
        assert_eq!(role["Type"], "AWS::IAM::Role", "{function} has its own role");
        let mut actions = Vec::new();
        // A function with no policies of its own (the dashboard) has none listed.
        for policy in role["Properties"]["Policies"].as_array().into_iter().flatten() {
            actions.extend(grants(&policy["PolicyDocument"], &function));
        }
        for (id, policy) in resources_of(template, "AWS::IAM::Policy") {
            if policy["Properties"]["Roles"].as_array().unwrap().contains(&json!({"Ref": role_id})) {
                actions.extend(grants(&policy["Properties"]["PolicyDocument"], id));
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
    for grant in &allowed["keys-read"] {
        assert!(!writes.iter().any(|w| grant.action.contains(w)), "keys-read may {}", grant.action);
    }
    for (binary, grants) in &allowed {
        let reads_pepper = grants.iter().any(|grant| grant.action.starts_with("secretsmanager:"));
        assert_eq!(reads_pepper, ["authorizer", "keys-issue"].contains(&binary.as_str()), "{binary} and the pepper");
        for grant in grants {
            assert_ne!(grant.resource, json!("*"), "{binary} may {} on every resource", grant.action);
        }
    }
    assert!(!allowed["ingest"].iter().any(|grant| grant.action.starts_with("apigateway:")));
}

/// The partition key patterns a grant is restricted to (`dynamodb:LeadingKeys`), if it is.
fn leading_keys(grant: &Value) -> Option<Vec<String>> {
    let patterns = grant.get("ForAllValues:StringLike")?.get("dynamodb:LeadingKeys")?;
    Some(patterns.as_array()?.iter().map(|p| p.as_str().unwrap().to_owned()).collect())
}

/// Whether an IAM `StringLike` pattern (only `*` wildcards here) matches `text`.
fn like(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, tail)) => {
            text.starts_with(head) && (0..=text.len() - head.len()).any(|i| like(tail, &text[head.len() + i..]))
        }
    }
}

#[test]
fn the_authorizer_writes_only_the_items_verification_touches() {
    use latchkey::store::schema;
    let allowed = allowed_actions(default_transform());
    let digest = schema::digest_pk(&latchkey::KeyDigest::from_bytes([7; 32]));
    let pointer = schema::id_pk(&latchkey::KeyId::generate());
    let audit = schema::audit_pk(&latchkey::AuditId::generate());
    let datasource = schema::datasource_pk(&latchkey::DatasourceId::generate());
    let starter: latchkey::TierName = "starter".parse().unwrap();
    let (slot, pool) = (schema::slot_pk(&starter, 7), schema::pool_pk(&starter));
    let balance = schema::credits_pk(&latchkey::KeyId::generate());
    let authorizer = &allowed["authorizer"];
    assert!(!authorizer.iter().any(|g| g.action == "dynamodb:ConditionCheckItem"), "unused: ConditionCheckItem");
    // In the records table, the authorizer adds to its verification counters, nothing else.
    let records_table = json!({"Fn::GetAtt": ["RecordsTable", "Arn"]});
    let ds = latchkey::DatasourceId::generate();
    let tenant: latchkey::TenantId = "acme".parse().unwrap();
    let counter = latchkey::verifications::dynamo::key_partition(&tenant, &latchkey::KeyId::generate());
    let overview = latchkey::verifications::dynamo::tenant_partition(&tenant);
    let on_records: Vec<&Grant> = authorizer.iter().filter(|g| g.resource == records_table).collect();
    assert!(!on_records.is_empty(), "the authorizer cannot write its verification counts");
    let refusals = latchkey::verifications::dynamo::refusals_partition(&tenant, &latchkey::KeyId::generate());
    for grant in on_records {
        let patterns = leading_keys(&grant.condition).expect("the authorizer may write any item of the records table");
        let may = |pk: &str| patterns.iter().any(|pattern| like(pattern, pk));
        match grant.action.as_str() {
            "dynamodb:UpdateItem" => {
                assert!(may(&counter) && may(&overview) && may("verif-unknown") && !may(&refusals), "{patterns:?}")
            }
            "dynamodb:PutItem" => assert!(may(&refusals) && !may(&counter) && !may(&overview), "{patterns:?}"),
            other => panic!("the authorizer may {other} in the records table"),
        }
        assert!(
            !may(&schema::records_pk(&ds, 0)) && !may(&schema::received_count_pk(&ds)),
            "the authorizer may update records or ingest counts: {patterns:?}"
        );
    }
    let keys_table = json!({"Fn::GetAtt": ["KeysTable", "Arn"]});
    for grant in authorizer
        .iter()
        .filter(|g| g.action.starts_with("dynamodb:") && g.action != "dynamodb:GetItem" && g.resource == keys_table)
    {
        let action = &grant.action;
        let patterns = leading_keys(&grant.condition).unwrap_or_else(|| panic!("the authorizer may {action} any item"));
        let may = |pk: &str| patterns.iter().any(|pattern| like(pattern, pk));
        assert!(!may(&audit) && !may(&datasource) && !may(&pool), "the authorizer may {action} {patterns:?}");
        match action.as_str() {
            // last_used_at and the lease on a key's record; the rehash repoints the key's id
            // pointer; a claim sets a pool slot's holder and lease end.
            "dynamodb:UpdateItem" => {
                let attributes = &grant.condition["ForAllValues:StringEquals"]["dynamodb:Attributes"];
                let kinds = [may(&digest), may(&pointer), may(&slot), may(&balance)];
                assert_eq!(kinds.iter().filter(|k| **k).count(), 1, "one statement per item kind: {patterns:?}");
                let expected = match kinds {
                    [true, _, _, _] => json!(["pk", "last_used_at", "lease"]),
                    [_, true, _, _] => json!(["pk", "digest"]),
                    [_, _, true, _] => json!(["pk", "holder", "lease_until"]),
                    // A spend: the balance's count and, at a refill, its period (its conditions
                    // name the refill's interval and amount); never its threshold.
                    _ => json!(["pk", "remaining", "period", "refill_interval", "refill_amount"]),
                };
                assert_eq!(attributes, &expected, "the authorizer may UpdateItem {patterns:?} in any attribute");
            }
            // The rehash moves a record to its new digest: in a transaction, records only.
            "dynamodb:PutItem" | "dynamodb:DeleteItem" => {
                assert!(may(&digest) && !may(&pointer), "the authorizer may {action} {patterns:?}");
                assert_eq!(
                    grant.condition["ForAnyValue:StringEquals"]["dynamodb:EnclosingOperation"],
                    json!(["TransactWriteItems"]),
                    "{action} outside the rehash's transaction"
                );
            }
            other => panic!("the authorizer may {other}"),
        }
    }
    // keys-change puts audit events, a pool's first slot (a tier change to a tier whose pool
    // is empty) and a key's balance of credits, nothing else: never a key.
    for grant in allowed["keys-change"].iter().filter(|g| g.action == "dynamodb:PutItem") {
        let patterns = leading_keys(&grant.condition).expect("keys-change may PutItem any item");
        assert!(
            patterns.iter().all(|p| (like(p, &audit) || like(p, &slot) || like(p, &balance))
                && !like(p, &digest)
                && !like(p, &datasource)),
            "keys-change may PutItem {patterns:?}, not only audit events, pool slots and balances"
        );
    }
    // ingest updates only a datasource's daily count, never a record in place.
    let datasource_id = latchkey::DatasourceId::generate();
    let (count, record) = (
        latchkey::store::schema::received_count_pk(&datasource_id),
        latchkey::store::schema::records_pk(&datasource_id, 0),
    );
    for grant in allowed["ingest"].iter().filter(|g| g.action == "dynamodb:UpdateItem") {
        let patterns = leading_keys(&grant.condition).expect("ingest may UpdateItem any item");
        assert!(patterns.iter().all(|p| like(p, &count) && !like(p, &record)), "ingest may UpdateItem {patterns:?}");
    }
    // ingest reads the keys table only to see that the calling key's datasource still exists.
    let on_keys: Vec<&Grant> = allowed["ingest"].iter().filter(|g| g.resource == keys_table).collect();
    assert!(!on_keys.is_empty(), "ingest cannot see whether a datasource exists");
    for grant in on_keys {
        assert_eq!(grant.action, "dynamodb:GetItem", "ingest may {} in the keys table", grant.action);
        let patterns = leading_keys(&grant.condition).expect("ingest may read any item of the keys table");
        assert!(
            patterns
                .iter()
                .all(|p| like(p, &datasource) && !like(p, &digest) && !like(p, &pointer) && !like(p, &audit)),
            "ingest may read {patterns:?} in the keys table"
        );
    }
}

/// The sweep reads the stopped keys' index, and writes only what retiring a key writes: the
/// key's record and its tenant's count, in the transaction; it deletes gateway keys and nothing
/// else in API Gateway; and a schedule runs it.
#[test]
fn the_sweep_runs_on_a_schedule_and_may_only_retire_keys() {
    use latchkey::store::schema;
    let template = default_transform();
    let digest = schema::digest_pk(&latchkey::KeyDigest::from_bytes([7; 32]));
    let count = schema::tenant_count_pk(&"acme".parse().unwrap());
    let others = [
        schema::id_pk(&latchkey::KeyId::generate()),
        schema::audit_pk(&latchkey::AuditId::generate()),
        schema::datasource_pk(&latchkey::DatasourceId::generate()),
    ];
    let tier: latchkey::TierName = "free".parse().unwrap();
    let (pool, slot) = (schema::pool_pk(&tier), schema::slot_pk(&tier, 3));
    let allowed = allowed_actions(template);
    let (mut retires, mut notes, mut fills) = (false, false, false);
    for grant in &allowed["keys-sweep"] {
        let action = grant.action.as_str();
        match action {
            "dynamodb:GetItem" => assert_eq!(grant.resource, json!({"Fn::GetAtt": ["KeysTable", "Arn"]})),
            "dynamodb:Query" => {
                assert_eq!(
                    grant.resource,
                    json!({"Fn::Sub": format!("${{KeysTable.Arn}}/index/{}", schema::STOP_INDEX)})
                )
            }
            "dynamodb:UpdateItem" => {
                let patterns = leading_keys(&grant.condition).expect("the sweep may UpdateItem any item");
                let may = |pk: &str| patterns.iter().any(|pattern| like(pattern, pk));
                assert!(!others.iter().any(|pk| may(pk)), "the sweep may UpdateItem {patterns:?}");
                let enclosing = &grant.condition["ForAnyValue:StringEquals"]["dynamodb:EnclosingOperation"];
                if *enclosing == json!(["TransactWriteItems"]) {
                    assert!(may(&digest) && may(&count), "the sweep cannot retire: {patterns:?}");
                    assert!(may(&pool) && !may(&slot), "the sweep cannot grow a pool: {patterns:?}");
                    retires = true;
                } else {
                    // Outside retirement's transaction: only the note that key.expiring was sent.
                    assert!(
                        may(&digest) && !may(&count) && !may(&pool),
                        "UpdateItem outside a retirement: {patterns:?}"
                    );
                    assert_eq!(
                        grant.condition["ForAllValues:StringEquals"]["dynamodb:Attributes"],
                        json!(["pk", "expires_at", "expiry_warned_for"]),
                        "UpdateItem outside a retirement may change more than the expiry note"
                    );
                    notes = true;
                }
            }
            // To this stack's bus only: key_events_go_to_this_stacks_bus_from_the_functions_that_change_keys.
            "events:PutEvents" => {}
            // A pool's new slot, in the transaction that counts it.
            "dynamodb:PutItem" => {
                let patterns = leading_keys(&grant.condition).expect("the sweep may PutItem any item");
                let may = |pk: &str| patterns.iter().any(|pattern| like(pattern, pk));
                assert!(may(&slot) && !may(&digest) && !others.iter().any(|pk| may(pk)), "PutItem {patterns:?}");
                let enclosing = &grant.condition["ForAnyValue:StringEquals"]["dynamodb:EnclosingOperation"];
                assert_eq!(enclosing, &json!(["TransactWriteItems"]), "a slot put outside its transaction");
                fills = true;
            }
            "apigateway:DELETE" => {
                let arn = grant.resource["Fn::Sub"].as_str().unwrap();
                assert!(arn.ends_with("::/apikeys/*"), "the sweep may DELETE {arn}");
            }
            // Making the pools' gateway keys: /apikeys, the plans' listing, and attaching a key
            // to this stack's plans (the_key_functions_touch_only_this_stacks_usage_plans).
            "apigateway:POST" | "apigateway:GET" => {}
            kms if kms.starts_with("kms:") => {}
            other => panic!("the sweep may {other}"),
        }
    }
    assert!(
        retires && notes && fills,
        "keys-sweep can retire keys ({retires}), note key.expiring ({notes}) and fill pools ({fills})"
    );
    let rules: Vec<&Value> = resources_of(template, "AWS::Events::Rule").into_iter().map(|(_, rule)| rule).collect();
    let targets =
        |rule: &Value| rule["Properties"]["Targets"][0]["Arn"] == json!({"Fn::GetAtt": ["KeysSweepFunction", "Arn"]});
    let rule = rules.into_iter().find(|rule| targets(rule)).expect("no schedule runs keys-sweep");
    assert_eq!(rule["Properties"]["ScheduleExpression"], json!({"Ref": "SweepSchedule"}));
    assert_eq!(source()["Parameters"]["SweepSchedule"]["Default"], "rate(15 minutes)");
}

/// The keys table as deployed has the indexes the store queries, keyed as the schema says (the
/// tests' tables are made from the schema, so a drift would pass them and fail deployed).
#[test]
fn the_keys_table_has_the_schemas_indexes() {
    use latchkey::store::schema;
    let table = &source()["Resources"]["KeysTable"]["Properties"];
    let types: BTreeMap<&str, &str> = table["AttributeDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["AttributeName"].as_str().unwrap(), d["AttributeType"].as_str().unwrap()))
        .collect();
    let indexes: BTreeMap<&str, (&str, &str)> = table["GlobalSecondaryIndexes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|index| {
            let key = |n: usize| index["KeySchema"][n]["AttributeName"].as_str().unwrap();
            assert_eq!(index["Projection"]["ProjectionType"], "ALL", "{index}");
            (index["IndexName"].as_str().unwrap(), (key(0), key(1)))
        })
        .collect();
    assert_eq!(
        indexes,
        BTreeMap::from([
            (schema::TENANT_INDEX, (schema::TENANT_INDEX_PARTITION_KEY, schema::TENANT_INDEX_SORT_KEY)),
            (schema::STOP_INDEX, (schema::STOP_INDEX_PARTITION_KEY, schema::STOP_INDEX_SORT_KEY)),
            (schema::OWNER_INDEX, (schema::OWNER_INDEX_PARTITION_KEY, schema::TENANT_INDEX_SORT_KEY)),
        ])
    );
    assert_eq!(types[schema::STOP_INDEX_SORT_KEY], "N", "stops_at is epoch seconds");
    assert_eq!(types[schema::STOP_INDEX_PARTITION_KEY], "S");
    assert_eq!(types[schema::OWNER_INDEX_PARTITION_KEY], "S");
}

#[test]
fn the_key_functions_touch_only_this_stacks_usage_plans() {
    let plans = ["FreeUsagePlan", "StarterUsagePlan", "InternalUsagePlan"];
    for (binary, grants) in allowed_actions(default_transform()) {
        for grant in grants.iter().filter(|g| g.action.starts_with("apigateway:")) {
            let resources = match &grant.resource {
                Value::Array(many) => many.clone(),
                one => vec![one.clone()],
            };
            for resource in resources {
                let arn = resource["Fn::Sub"].as_str().unwrap_or_else(|| panic!("{binary}: {resource}"));
                let Some((_, path)) = arn.split_once("}::") else { panic!("{binary}: {arn}") };
                // Listing the plans (to find this stack's by name) has no narrower ARN.
                if path == "/usageplans" || !path.starts_with("/usageplans") {
                    continue;
                }
                let plan = path.trim_start_matches("/usageplans/").split('/').next().unwrap();
                assert!(
                    plans.iter().any(|p| plan == format!("${{{p}}}")),
                    "{binary} may {} {path}: another stack's usage plan",
                    grant.action
                );
            }
        }
    }
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

/// The transformed template as deployed with `parameters`: conditions resolved, the resources
/// whose condition does not hold left out.
fn deployed(parameters: &[(&str, &str)]) -> Value {
    let arguments: Vec<String> = parameters.iter().map(|(name, value)| format!("{name}={value}")).collect();
    let template = transformed(&arguments.iter().map(String::as_str).collect::<Vec<_>>());
    let conditions = conditions(&template, parameters);
    let mut template = resolved(&template, &conditions).unwrap();
    template["Resources"]
        .as_object_mut()
        .unwrap()
        .retain(|_, resource| resource["Condition"].as_str().is_none_or(|condition| conditions[condition]));
    template
}

/// The forwarding operation of each forwarded path, as deployed with `parameters`.
fn forwarding(parameters: &[(&str, &str)]) -> (Value, BTreeMap<String, Value>) {
    let template = deployed(parameters);
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
        // Keyed on the source address too: a key's IP allowlist decides by it, so a decision
        // cached from an allowed address must not admit the same key from anywhere else.
        assert_eq!(
            authorizer["identitySource"],
            format!("method.request.header.{header}, context.identity.sourceIp"),
            "{header}"
        );
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
        .chain([("POST".to_owned(), "/ingest".to_owned()), ("POST".to_owned(), "/leaks/github".to_owned())])
        .collect();
    assert_eq!(latchkey_tests::openapi::OpenApi::load().operations(), routes);
}

/// Each `Ref` to a parameter in `value` replaced by the parameter's value (as text).
fn with_parameters(template: &Value, parameters: &[(&str, &str)], value: &Value) -> Value {
    match value {
        Value::Object(map)
            if map.get("Ref").is_some_and(|name| template["Parameters"].get(name.as_str().unwrap()).is_some()) =>
        {
            json!(parameter_value(template, parameters, value))
        }
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), with_parameters(template, parameters, v))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| with_parameters(template, parameters, v)).collect()),
        other => other.clone(),
    }
}

/// The stage's throttle settings and each plan's quota, as deployed with `parameters`.
fn ceilings(parameters: &[(&str, &str)]) -> (Value, BTreeMap<String, Value>) {
    let template = deployed(parameters);
    let (_, stage) = resources_of(&template, "AWS::ApiGateway::Stage").pop().unwrap();
    let settings = with_parameters(&template, parameters, &stage["Properties"]["MethodSettings"]);
    let quotas = resources_of(&template, "AWS::ApiGateway::UsagePlan")
        .into_iter()
        .map(|(id, plan)| (id.to_owned(), with_parameters(&template, parameters, &plan["Properties"]["Quota"])))
        .collect();
    (settings, quotas)
}

#[test]
fn the_stage_has_a_throttle_ceiling_before_the_authorizer_and_each_tier_a_daily_quota() {
    // By default: a ceiling for the whole stage (every method, every caller together: API
    // Gateway applies it before it calls the authorizer), no quota.
    let (settings, quotas) = ceilings(&[]);
    let all = |rate: &str, burst: &str| json!([{"ResourcePath": "/*", "HttpMethod": "*", "ThrottlingRateLimit": rate, "ThrottlingBurstLimit": burst}]);
    assert_eq!(settings, all("1000", "2000"));
    assert_eq!(quotas.len(), 3);
    for (plan, quota) in &quotas {
        assert_eq!(quota, &Value::Null, "{plan} has a quota by default");
    }
    let (settings, quotas) = ceilings(&[
        ("StageThrottleRatePerSecond", "50"),
        ("StageThrottleBurst", "100"),
        ("FreeQuotaPerDay", "1000"),
        ("StarterQuotaPerDay", "20000"),
    ]);
    assert_eq!(settings, all("50", "100"));
    assert_eq!(quotas["FreeUsagePlan"], json!({"Limit": "1000", "Period": "DAY"}));
    assert_eq!(quotas["StarterUsagePlan"], json!({"Limit": "20000", "Period": "DAY"}));
    assert_eq!(quotas["InternalUsagePlan"], Value::Null);
    let (_, quotas) = ceilings(&[("InternalQuotaPerDay", "5")]);
    assert_eq!(quotas["InternalUsagePlan"], json!({"Limit": "5", "Period": "DAY"}));
    // 0: no stage ceiling (the account's limits only).
    let (settings, _) = ceilings(&[("StageThrottleRatePerSecond", "0")]);
    assert_eq!(settings, Value::Null);
}

#[test]
fn key_events_go_to_this_stacks_bus_from_the_functions_that_change_keys() {
    let template = default_transform();
    assert_eq!(template["Resources"]["KeyEventBus"]["Type"], "AWS::Events::EventBus");
    for (binary, grants) in allowed_actions(template) {
        let puts: Vec<&Grant> = grants.iter().filter(|g| g.action.starts_with("events:")).collect();
        // The authorizer: the credit events of metered keys (key.credits_low, key.credits_exhausted).
        if ["keys-issue", "keys-change", "keys-sweep", "authorizer"].contains(&binary.as_str()) {
            assert_eq!(puts.len(), 1, "{binary}");
            assert_eq!(puts[0].action, "events:PutEvents", "{binary}");
            assert_eq!(
                puts[0].resource,
                json!({"Fn::GetAtt": ["KeyEventBus", "Arn"]}),
                "{binary}: this stack's bus only"
            );
        } else {
            assert!(puts.is_empty(), "{binary} may publish events");
        }
    }
    for function in ["KeysIssueFunction", "KeysChangeFunction", "KeysSweepFunction", "AuthorizerFunction"] {
        let variables = &template["Resources"][function]["Properties"]["Environment"]["Variables"];
        assert_eq!(variables["LATCHKEY_EVENT_BUS"], json!({"Ref": "KeyEventBus"}), "{function}");
    }
}
