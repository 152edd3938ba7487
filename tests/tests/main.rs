//! Every integration test of this crate in one test binary: one link step instead of one per
//! file. Each file is a module, so a test is named by its file (`cargo test --test it lifecycle::`).

mod dynamodb_store;
mod gateway_slots;
mod guide;
mod guide_lambda;
mod pepper_rotation;
mod record_store;
mod store_contract;
mod template;
mod verification_store;
