//! The floor of the local API's load benchmark (`infra/bench/load`): axum answering a fixed JSON
//! body on every path, on the same runtime and release profile, doing nothing else.

#[tokio::main]
async fn main() {
    let addr = std::env::var("LATCHKEY_ADDR").unwrap_or_else(|_| "127.0.0.1:3001".to_owned());
    let app =
        axum::Router::new().fallback(|| async { ([("content-type", "application/json")], r#"{"hello":"world"}"#) });
    let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
    axum::serve(listener, app).await.unwrap();
}
