//! Every integration test of this crate in one test binary: one link step instead of one per
//! file. Each file is a module, so a test is named by its file (`cargo test --test it lifecycle::`).

mod common;
mod concurrency;
mod costs;
mod datasources;
mod gateway;
mod key_budget;
mod key_events;
mod lambda_runtime;
mod leaks;
mod lifecycle;
mod scale;
mod template_stack;
mod verifications;
