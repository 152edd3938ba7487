//! `cargo run -p latchkey-local [-- --store embedded|dynamodb] [--upstream URL]`: the local API
//! (see the library), and with an upstream the gateway in front of it. Prints the first admin key
//! once, on the first start with an empty store.

use std::sync::Arc;

use latchkey::config::Env;
use latchkey_local::{DEFAULT_TENANT, LocalApi, LocalConfig};

/// Per-thread caches: glibc's malloc and free were ~8 % of the gateway's CPU (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    const USAGE: &str = "usage: latchkey-local [--store embedded|dynamodb] [--upstream http://HOST:PORT]";
    let env = Env::process();
    let mut config = LocalConfig::from_env(&env)?;
    let mut store = "embedded".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match (flag.as_str(), args.next()) {
            ("--store", Some(value)) if value == "embedded" || value == "dynamodb" => store = value,
            ("--upstream", Some(url)) => config.upstream = Some(LocalConfig::upstream(&env, &url, "--upstream")?),
            _ => return Err(USAGE.into()),
        }
    }
    let clock = config.clock();
    match store.as_str() {
        "dynamodb" => {
            let (api, admin_key) = latchkey_local::open_dynamodb(&config, clock).await?;
            run(&config, api, admin_key, "DynamoDB").await
        }
        _ => {
            let (api, admin_key) = latchkey_local::open(&config, clock).await?;
            run(&config, api, admin_key, "the embedded store").await
        }
    }
}

async fn run<S, R>(
    config: &LocalConfig,
    api: LocalApi<S, R>,
    admin_key: Option<String>,
    store: &str,
) -> Result<(), Box<dyn std::error::Error>>
where
    S: latchkey::store::KeyStore
        + latchkey::gateway::pool::GatewaySlots
        + latchkey::audit::AuditLog
        + latchkey::credits::CreditStore
        + latchkey::datasource::DatasourceStore
        + 'static,
    R: latchkey::ingest::RecordStore + latchkey::verifications::VerificationStore + 'static,
{
    if let Some(key) = admin_key {
        println!("latchkey-local: tenant `{DEFAULT_TENANT}` admin key (shown once; keep it): {key}");
    }
    // One event loop per core (see the threads module).
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let listeners = latchkey_local::threads::bind(&config.addr, cores).await?;
    println!(
        "latchkey-local: listening on http://{} ({store}; pepper and data in {})",
        listeners[0].local_addr()?,
        config.data_dir.display()
    );
    if let Some(upstream) = &config.upstream {
        println!("latchkey-local: forwarding every other path to {}", upstream.url());
    }
    let api = Arc::new(api);
    tokio::spawn(latchkey_local::sweep_periodically(Arc::clone(&api)));
    tokio::spawn(latchkey_local::flush_verifications_periodically(Arc::clone(&api)));
    latchkey_local::threads::serve(listeners, Arc::clone(&api), shutdown()).await?;
    // The counts of the last minute's decisions, not lost to the stop.
    api.flush_verifications().await;
    println!("latchkey-local: stopped");
    Ok(())
}

/// SIGINT or SIGTERM.
async fn shutdown() {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
