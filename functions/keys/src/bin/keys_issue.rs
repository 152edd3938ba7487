//! `keys-issue`: create and rotate, the only function that reads the pepper.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    latchkey_keys::run(&[latchkey::manage::Role::Issue]).await
}
