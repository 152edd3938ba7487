//! `latchkey`: wiring only; the commands are in the library ([`latchkey_cli::run`]).

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = latchkey_cli::Cli::parse();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    runtime.block_on(latchkey_cli::run(cli, |name| std::env::var(name).ok()))
}
