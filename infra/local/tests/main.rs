//! Every integration test of this crate in one test binary: one link step instead of one per
//! file. Each file is a module, so a test is named by its file (`cargo test --test it lifecycle::`).

mod binary;
mod bounds;
mod common;
mod credits;
mod dashboard;
mod dynamodb;
mod events;
mod example_walkthrough;
mod files;
mod gateway;
mod import;
mod independent_limits;
mod key_fields;
mod leaks;
mod local_api;
mod openapi;
mod sessions;
mod usage;
mod verifications;
mod walkthrough;
