//! `ingest`: `POST /ingest`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    latchkey_ingest::run().await
}
