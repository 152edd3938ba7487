//! `cargo run -p latchkey-local`: the local API (see the library). Prints the first admin key
//! once, on the first start with an empty data directory.

use std::sync::Arc;

use latchkey::config::Env;
use latchkey_local::{DEFAULT_TENANT, LocalConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = LocalConfig::from_env(&Env::process())?;
    let (api, admin_key) = latchkey_local::open(&config, latchkey_local::system_clock()).await?;
    if let Some(key) = admin_key {
        println!("latchkey-local: tenant `{DEFAULT_TENANT}` admin key (shown once; keep it): {key}");
    }
    let listener = tokio::net::TcpListener::bind(&config.addr).await?;
    println!("latchkey-local: listening on http://{} (data in {})", listener.local_addr()?, config.data_dir.display());
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
