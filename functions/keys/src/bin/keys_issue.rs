//! `keys-issue`: create and rotate, the only function that reads the pepper. Wires the runtime; see the library.

use latchkey::manage::Role;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    latchkey::aws::init_logging();
    let function = latchkey_keys::setup::from_env(&[Role::Issue]).await?;
    let function = &function;
    lambda_http::run(lambda_http::service_fn(move |request| async move {
        Ok::<_, std::convert::Infallible>(latchkey_keys::respond(function, request).await)
    }))
    .await
}
