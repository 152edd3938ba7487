//! Every integration test of this crate in one test binary: the built `latchkey` against a local
//! API of the test's own.

mod commands;
