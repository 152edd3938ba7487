//! `keys-read`: list, get, usage, whoami, audit.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    latchkey_keys::run(&[latchkey::manage::Role::Read]).await
}
