//! The operator's command line. `bootstrap` creates a tenant's first admin key, against the
//! configured DynamoDB table, pepper secret and usage plans (the same variables as the
//! `keys-issue` function), and prints it once:
//!
//! ```sh
//! cargo run -p latchkey-admin -- bootstrap --tenant acme
//! ```
//!
//! `init-local` prepares the local engines for `cargo lambda watch` (see its module).

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
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let (tenant, name, tier) = match Cli::parse().command {
        Command::Bootstrap { tenant, name, tier } => (tenant, name, tier),
        Command::InitLocal => {
            println!("{}", init_local::run().await?);
            return Ok(());
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
