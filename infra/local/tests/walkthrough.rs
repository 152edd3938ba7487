//! The README's tour and the guide's local walk-through, run as written against a local API: if
//! either page and the API drift apart, this fails.

use crate::common;

use common::{Running, run_walkthrough, sh_block};

/// README.md's tour: the example backend on a loopback port and the local API in front of it
/// (`LATCHKEY_UPSTREAM`), as its two start commands say.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_tour_runs() {
    let script = sh_block("README.md", "<!-- tour:start", "<!-- tour:end -->");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, latchkey_example_catalog::app()).await.unwrap() });
    let dir = tempfile::tempdir().unwrap();
    let api = Running::start_configured(dir.path(), None, &[("LATCHKEY_UPSTREAM", backend.as_str())]).await;
    let stdout = run_walkthrough(&api, script).await;
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}\n{stdout}")))
        .collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    // The key's own view of itself, then the two refusals, then the backend's answer.
    assert_eq!((lines[0]["auth_type"].as_str(), lines[0]["name"].as_str()), (Some("api_key"), Some("ci")), "{stdout}");
    assert_eq!(lines[1]["error"]["code"], "MISSING_API_KEY", "{stdout}");
    assert_eq!(lines[2]["error"]["code"], "INVALID_API_KEY", "{stdout}");
    assert_eq!(lines[3]["sources"].as_array().map(Vec::len), Some(3), "{stdout}");
    assert_eq!(lines[3]["caller"]["tenant_id"], "default", "the backend was told the caller: {stdout}");
    api.stop().await;
}

/// The guide's "Five minutes with the local API" (docs/src/getting-started.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guide_walkthrough_runs() {
    let script = sh_block("docs/src/getting-started.md", "<!-- walkthrough:start", "<!-- walkthrough:end -->");
    let dir = tempfile::tempdir().unwrap();
    let api = Running::start(dir.path()).await;
    let stdout = run_walkthrough(&api, script).await;
    // What it prints: the MISSING_API_KEY envelope, the ingest answer, the second record.
    assert!(stdout.contains(r#""code":"MISSING_API_KEY""#), "{stdout}");
    assert!(stdout.contains(r#""accepted":2"#), "{stdout}");
    assert!(stdout.trim_end().ends_with("21.7"), "{stdout}");
    api.stop().await;
}
