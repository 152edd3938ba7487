//! Every integration test of this crate in one test binary: one link step instead of one per
//! file. Each file is a module, so a test is named by its file (`cargo test --test it lifecycle::`).

mod common;
mod credits;
mod fixtures;
mod flood;
mod integration;
mod jwt_secret;
mod lambda_runtime;
mod leases;
mod own_sessions;
mod properties;
