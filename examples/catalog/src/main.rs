//! `cargo run -p latchkey-example-catalog`: the catalog on `CATALOG_ADDR` (default
//! 127.0.0.1:8080), for Latchkey's gateway to forward to.

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::var("CATALOG_ADDR").unwrap_or_else(|_| "127.0.0.1:8080".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("catalog: listening on http://{}", listener.local_addr()?);
    axum::serve(listener, latchkey_example_catalog::app()).await
}
