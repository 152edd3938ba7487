//! `cargo run -p latchkey-local [-- --store embedded|dynamodb]`: the local API (see the library).
//! Prints the first admin key once, on the first start with an empty store.

use std::sync::Arc;

use latchkey::config::Env;
use latchkey_local::{DEFAULT_TENANT, LocalApi, LocalConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let store = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        [] | ["--store", "embedded"] => "embedded",
        ["--store", "dynamodb"] => "dynamodb",
        _ => return Err("usage: latchkey-local [--store embedded|dynamodb]".into()),
    };
    let config = LocalConfig::from_env(&Env::process())?;
    let clock = latchkey_local::system_clock();
    match store {
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
    S: latchkey::store::KeyStore + latchkey::audit::AuditLog + latchkey::datasource::DatasourceStore + 'static,
    R: latchkey::ingest::RecordStore + 'static,
{
    if let Some(key) = admin_key {
        println!("latchkey-local: tenant `{DEFAULT_TENANT}` admin key (shown once; keep it): {key}");
    }
    let listener = tokio::net::TcpListener::bind(&config.addr).await?;
    println!(
        "latchkey-local: listening on http://{} ({store}; pepper and data in {})",
        listener.local_addr()?,
        config.data_dir.display()
    );
    latchkey_local::serve(listener, Arc::new(api), shutdown()).await?;
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
