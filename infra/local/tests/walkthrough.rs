//! The README's walk-through, run as written against a local API: if the README and the API
//! drift apart, this fails.

use crate::common;

use common::{Running, run_walkthrough, sh_block};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_walkthrough_runs() {
    let script = sh_block("README.md", "<!-- walkthrough:start", "<!-- walkthrough:end -->");
    let dir = tempfile::tempdir().unwrap();
    let api = Running::start(dir.path()).await;
    let stdout = run_walkthrough(&api, script).await;
    // What it prints: the MISSING_API_KEY envelope, the ingest answer, the second record.
    assert!(stdout.contains(r#""code":"MISSING_API_KEY""#), "{stdout}");
    assert!(stdout.contains(r#""accepted":2"#), "{stdout}");
    assert!(stdout.trim_end().ends_with("21.7"), "{stdout}");
    api.stop().await;
}
