//! Every integration test of this crate in one test binary: one link step instead of one per
//! file. Each file is a module, so a test is named by its file (`cargo test --test it adopt::`).

mod adopt;
mod bootstrap;
mod import_apigateway;
