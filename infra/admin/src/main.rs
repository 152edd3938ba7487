//! The operator's command line. `bootstrap` creates a tenant's first admin key, against the
//! configured DynamoDB table, pepper secret and usage plans (the same variables as the
//! `keys-issue` function), and prints it once:
//!
//! ```sh
//! cargo run -p latchkey-admin -- bootstrap --tenant acme
//! ```
//!
//! `init-local` prepares the local engines for `cargo lambda watch` (see its module).

mod import_apigateway;
mod init_local;

use clap::{Parser, Subcommand};
use latchkey::TenantId;
use latchkey::manage::{Caller, Role};

#[derive(Parser)]
#[command(name = "latchkey-admin", about = "Latchkey's operator commands")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Creates an admin key for a tenant and prints it, with its record, as JSON on stdout.
    Bootstrap {
        /// The tenant the key administers.
        #[arg(long)]
        tenant: String,
        /// The key's name.
        #[arg(long, default_value = "bootstrap admin")]
        name: String,
        /// The key's tier (its usage plan).
        #[arg(long, default_value = "internal")]
        tier: String,
    },
    /// Makes the tables, pepper secret and usage plans in the local engines, and prints the
    /// functions' environment (an env file for `cargo lambda watch`).
    InitLocal,
    /// Moves the keys made before the gateway key pool onto it, once, after upgrading: each
    /// one's own API Gateway key becomes a slot of its tier's pool (up to
    /// `LATCHKEY_GATEWAY_POOL_SIZE`) or is deleted; no key changes. Prints what it did as JSON.
    /// Safe to run again (a key already moved is not read twice).
    AdoptGatewayKeys,
    /// Imports the account's API Gateway keys into a tenant, each into the tier its usage plan
    /// maps to, their values kept (your customers keep their keys). A dry run unless --apply;
    /// safe to run again. Prints a summary as JSON, and what to remove from API Gateway after.
    ImportApigateway {
        /// The tenant the keys belong to.
        #[arg(long)]
        tenant: String,
        /// PLAN=TIER: the keys of a usage plan (its id or name) go to a tier. Repeat per plan;
        /// keys in no plan named are left (and listed).
        #[arg(long = "tier", value_parser = import_apigateway::parse_mapping)]
        tiers: Vec<(String, String)>,
        /// Import; without it, only say what would be imported.
        #[arg(long)]
        apply: bool,
    },
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let (tenant, name, tier) = match Cli::parse().command {
        Command::Bootstrap { tenant, name, tier } => (tenant, name, tier),
        Command::InitLocal => {
            println!("{}", init_local::run().await?);
            return Ok(());
        }
        Command::AdoptGatewayKeys => return adopt_gateway_keys().await,
        Command::ImportApigateway { tenant, tiers, apply } => {
            return import_apigateway::run(&tenant, &tiers, apply).await;
        }
    };
    let tenant: TenantId = tenant.parse().map_err(|e| format!("--tenant: {e}"))?;
    let function = latchkey_keys::setup::from_env(&[Role::Issue]).await.map_err(|e| e.to_string())?;
    let issuance = function.issuance.as_ref().expect("the issuing role loads the pepper");
    let issued =
        function.service.bootstrap(issuance, &Caller::operator(tenant), name, &tier).await.map_err(|e| e.to_json())?;
    println!("{}", serde_json::to_string_pretty(&issued).expect("views always serialize"));
    eprintln!("latchkey-admin: the key is shown this once; store it now");
    Ok(())
}

/// What `adopt-gateway-keys` did, key by key.
#[derive(Debug, Default)]
struct AdoptedKeys {
    into_pool: u32,
    deleted: u32,
    gone: u32,
    failed: u32,
}

async fn adopt_gateway_keys() -> Result<(), String> {
    use latchkey::gateway::pool::{Adopted, adopt};
    let (service, _) = latchkey_keys::setup::sweeper_from_env().await.map_err(|e| e.to_string())?;
    let mut done = AdoptedKeys::default();
    let mut start = None;
    loop {
        let (records, next) = service.store.with_own_gateway_keys(start).await.map_err(|e| e.to_string())?;
        for record in &records {
            match adopt(&*service.store, &service.gateway, record, service.pools.target).await {
                Ok(Adopted::IntoPool) => done.into_pool += 1,
                Ok(Adopted::Deleted) => done.deleted += 1,
                Ok(Adopted::Gone) => done.gone += 1,
                Err(error) => {
                    eprintln!(
                        "latchkey-admin: key {} keeps its own gateway key for now: {}",
                        record.id,
                        error.to_json()
                    );
                    done.failed += 1;
                }
            }
        }
        match next {
            Some(next) => start = Some(next),
            None => break,
        }
    }
    let summary = serde_json::json!({
        "into_pool": done.into_pool, "deleted": done.deleted, "gone": done.gone, "failed": done.failed,
    });
    println!("{summary}");
    if done.failed > 0 {
        return Err(format!("{} keys were not moved; run the command again", done.failed));
    }
    Ok(())
}
