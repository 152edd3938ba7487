//! `import-apigateway`: moves the keys a team's customers already hold from API Gateway's own keys
//! to Latchkey, without a customer changing a key. Reads the account's API Gateway keys with their
//! values and the usage plans they are in (every page), and imports each key of a mapped plan into
//! the tier the mapping names (`POST /keys/import`'s operation: the value stored as a peppered
//! HMAC, never as itself), with its name and its enabled flag. A dry run unless `--apply`; a second
//! run imports nothing twice (an imported value is found by its digest first). Prints a JSON
//! summary on stdout, and on stderr what to remove from API Gateway once clients have moved.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_apigateway::Client;
use futures_util::StreamExt;
use latchkey::manage::Caller;
use latchkey::manage::input::{CreateKeyBody, ImportKeyBody, ImportedSecret};
use latchkey::{ApiError, TenantId};
use serde_json::json;

/// Imports in flight at once.
const CONCURRENT_IMPORTS: usize = 8;
/// API Gateway's largest page.
const PAGE: i32 = 500;

/// `PLAN=TIER`: a usage plan (its id or its name) and the tier its keys go to.
pub fn parse_mapping(text: &str) -> Result<(String, String), String> {
    let (plan, tier) = text.split_once('=').ok_or_else(|| format!("--tier {text}: expected PLAN=TIER"))?;
    if plan.is_empty() || tier.is_empty() {
        return Err(format!("--tier {text}: expected PLAN=TIER"));
    }
    Ok((plan.to_owned(), tier.to_owned()))
}

/// One API Gateway key, as read.
struct GatewayKey {
    id: String,
    name: String,
    value: String,
    enabled: bool,
}

/// The tier of each API Gateway key id, from the mapped plans' keys.
async fn tiers_by_key(client: &Client, mapping: &[(String, String)]) -> Result<HashMap<String, String>, String> {
    let mut plans = Vec::new();
    let mut position = None;
    loop {
        let page = client.get_usage_plans().limit(PAGE).set_position(position).send().await.map_err(aws)?;
        plans.extend(page.items().iter().cloned());
        position = page.position().map(str::to_owned);
        if position.is_none() {
            break;
        }
    }
    let mut tiers = HashMap::new();
    for (wanted, tier) in mapping {
        let plan = plans
            .iter()
            .find(|p| p.id() == Some(wanted.as_str()) || p.name() == Some(wanted.as_str()))
            .ok_or_else(|| format!("--tier {wanted}={tier}: no usage plan has that id or name"))?;
        let plan_id = plan.id().unwrap_or_default().to_owned();
        let mut position = None;
        loop {
            let page = client
                .get_usage_plan_keys()
                .usage_plan_id(&plan_id)
                .limit(PAGE)
                .set_position(position)
                .send()
                .await
                .map_err(aws)?;
            for key in page.items() {
                if let Some(id) = key.id() {
                    // A key in two mapped plans goes to the first one named.
                    tiers.entry(id.to_owned()).or_insert_with(|| tier.clone());
                }
            }
            position = page.position().map(str::to_owned);
            if position.is_none() {
                break;
            }
        }
    }
    Ok(tiers)
}

async fn gateway_keys(client: &Client) -> Result<Vec<GatewayKey>, String> {
    let mut keys = Vec::new();
    let mut position = None;
    loop {
        let page =
            client.get_api_keys().include_values(true).limit(PAGE).set_position(position).send().await.map_err(aws)?;
        for key in page.items() {
            keys.push(GatewayKey {
                id: key.id().unwrap_or_default().to_owned(),
                name: key.name().unwrap_or_default().to_owned(),
                value: key.value().unwrap_or_default().to_owned(),
                enabled: key.enabled(),
            });
        }
        position = page.position().map(str::to_owned);
        if position.is_none() {
            break;
        }
    }
    Ok(keys)
}

fn aws<E: std::error::Error + 'static, R: std::fmt::Debug>(error: aws_sdk_apigateway::error::SdkError<E, R>) -> String {
    format!("API Gateway: {}", aws_sdk_apigateway::error::DisplayErrorContext(&error))
}

/// What happened to one key.
enum Outcome {
    Imported,
    /// Its value verifies already (a previous run, or imported by hand).
    Already,
    Refused(ApiError),
}

pub async fn run(tenant: &str, mapping: &[(String, String)], apply: bool) -> Result<(), String> {
    let tenant: TenantId = tenant.parse().map_err(|e| format!("--tenant: {e}"))?;
    if mapping.is_empty() {
        return Err("give at least one --tier PLAN=TIER".into());
    }
    let function = latchkey_keys::setup::from_env(&[latchkey::manage::Role::Issue]).await.map_err(|e| e.to_string())?;
    let issuance = function.issuance.as_ref().expect("the issuing role loads the pepper");
    let service = &function.service;
    let sdk = latchkey::aws::load_sdk_config(&latchkey::config::AwsTimeouts::default()).await;
    let client = Client::new(&sdk);
    let tiers = tiers_by_key(&client, mapping).await?;
    let keys = gateway_keys(&client).await?;
    let peppers = issuance.peppers.current().await;
    let caller = Caller::operator(tenant);

    let (mapped, unmapped): (Vec<_>, Vec<_>) = keys.into_iter().partition(|key| tiers.contains_key(&key.id));
    let outcomes: Vec<(GatewayKey, Outcome)> = futures_util::stream::iter(mapped)
        .map(|key| {
            let (tier, caller, peppers, service) = (tiers[&key.id].clone(), &caller, &peppers, service);
            async move {
                // Already here: its value verifies (under the current pepper).
                let known = match issuance.profile.parse_imported(&key.value) {
                    Ok(value) => {
                        let digest = peppers.current.digest(&value);
                        latchkey::store::KeyStore::find_by_digest(&*service.store, &digest)
                            .await
                            .ok()
                            .flatten()
                            .is_some()
                    }
                    Err(_) => false,
                };
                let outcome = if known {
                    Outcome::Already
                } else if !apply {
                    Outcome::Imported
                } else {
                    let body = ImportKeyBody {
                        secret: ImportedSecret::Plaintext(key.value.clone()),
                        fields: fields(&key, &tier),
                    };
                    match service.import(issuance, caller, body).await {
                        Ok(_) => Outcome::Imported,
                        Err(ApiError::Conflict { .. }) => Outcome::Already,
                        Err(error) => Outcome::Refused(error),
                    }
                };
                (key, outcome)
            }
        })
        .buffer_unordered(CONCURRENT_IMPORTS)
        .collect()
        .await;

    let mut by_tier: BTreeMap<String, u32> = BTreeMap::new();
    let (mut imported, mut already, mut refused) = (0, 0, Vec::new());
    for (key, outcome) in &outcomes {
        match outcome {
            Outcome::Imported => {
                imported += 1;
                *by_tier.entry(tiers[&key.id].clone()).or_default() += 1;
            }
            Outcome::Already => already += 1,
            Outcome::Refused(error) => {
                refused.push(json!({"id": key.id, "name": key.name, "error": error.envelope().error}))
            }
        }
    }
    let removable: Vec<&GatewayKey> =
        outcomes.iter().filter(|(_, o)| matches!(o, Outcome::Imported | Outcome::Already)).map(|(k, _)| k).collect();
    let summary = json!({
        "dry_run": !apply,
        "imported": imported,
        "already_imported": already,
        "imported_by_tier": by_tier,
        "refused": refused,
        "not_in_a_mapped_plan": unmapped.iter().map(|k| json!({"id": k.id, "name": k.name})).collect::<Vec<_>>(),
        "remove_from_api_gateway_afterwards": removable.iter().map(|k| json!({"id": k.id, "name": k.name})).collect::<Vec<_>>(),
    });
    println!("{}", serde_json::to_string_pretty(&summary).expect("a summary serializes"));
    if apply {
        eprintln!(
            "latchkey-admin: {imported} imported, {already} already there. Once your clients call through Latchkey, \
             remove the {} keys listed in remove_from_api_gateway_afterwards, e.g.:",
            removable.len()
        );
        for key in removable.iter().take(3) {
            eprintln!("  aws apigateway delete-api-key --api-key {}", key.id);
        }
    } else {
        eprintln!(
            "latchkey-admin: a dry run: {imported} would be imported, {already} are already there; --apply imports"
        );
    }
    if refused.is_empty() { Ok(()) } else { Err(format!("{} keys were refused; see `refused`", refused.len())) }
}

/// The fields of an imported key: its name (`imported from API Gateway` when it has none), its
/// tier, its enabled flag; `read`, as every key made without permissions.
fn fields(key: &GatewayKey, tier: &str) -> CreateKeyBody {
    let name = if key.name.trim().is_empty() { "imported from API Gateway".to_owned() } else { key.name.clone() };
    CreateKeyBody {
        name: name.chars().take(100).collect(),
        permissions: None,
        tier: Some(tier.to_owned()),
        expires_at: None,
        expires_in_days: None,
        owner_id: None,
        meta: None,
        enabled: Some(key.enabled),
        ip_allowlist: None,
        credits: None,
    }
}
