//! `keys-sweep`: run on a schedule (template.yaml, `SweepSchedule`), not behind the API. Retires
//! the keys that have stopped verifying (deleting a gateway key of their own, from before the
//! pool), announces the ones about to expire, and grows the gateway key pools
//! ([`latchkey::manage::sweep`]); answers what it did, `{"retired": n, "left": m, "warned": w,
//! "pooled": p}`.

use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
use latchkey::manage::sweep::{MAX_KEYS_PER_SWEEP, Swept};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    latchkey::aws::init_logging();
    let (sweeper, notice) = latchkey_keys::setup::sweeper_from_env().await?;
    let sweeper = &sweeper;
    // The scheduled event says nothing the sweep needs: it runs on the clock.
    lambda_runtime::run(service_fn(move |_: LambdaEvent<serde_json::Value>| async move {
        let swept = sweeper.sweep_and_warn(MAX_KEYS_PER_SWEEP, notice).await;
        // Before the function is frozen: the events the run queued, whatever became of it.
        sweeper.events.flush().await;
        let swept: Swept = swept?;
        tracing::info!(
            retired = swept.retired,
            left = swept.left,
            warned = swept.warned,
            pooled = swept.pooled,
            "swept the keys that stopped"
        );
        Ok::<_, lambda_runtime::Error>(swept)
    }))
    .await
}
