//! `keys-change`: update and revoke.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    latchkey_keys::run(&[latchkey::manage::Role::Change]).await
}
