//! examples/catalog/README.md's local walk-through, run as written: the example backend on a
//! loopback port, the local API as its gateway (at the defaults users get), and the README's
//! commands against them. If the example's README and the gateway drift apart, this fails.

use crate::common;

use common::{Running, run_walkthrough, sh_block};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_walkthrough_runs() {
    let script = sh_block("examples/catalog/README.md", "<!-- example:start", "<!-- example:end -->");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, latchkey_example_catalog::app()).await.unwrap() });
    let dir = tempfile::tempdir().unwrap();
    let upstream = [("LATCHKEY_UPSTREAM", backend.as_str())];
    let api = Running::start_configured(dir.path(), None, &upstream).await;
    let stdout = run_walkthrough(&api, script).await;
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 8, "{stdout}");
    let json = |line: &str| serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    let listed = json(lines[0]);
    assert_eq!(listed["sources"].as_array().unwrap().len(), 3, "{stdout}");
    assert_eq!(
        (listed["caller"]["tenant_id"].as_str(), listed["caller"]["tier"].as_str()),
        (Some("default"), Some("free"))
    );
    assert_eq!(json(lines[1])["id"], "who-atc");
    assert_eq!(json(lines[2])["id"], "ema-epar");
    for (line, code) in [(3, "MISSING_API_KEY"), (4, "INVALID_API_KEY_FORMAT"), (5, "INVALID_API_KEY")] {
        let refused = json(lines[line]);
        assert_eq!(
            (refused["error"]["code"].as_str(), refused["message"].as_str()),
            (Some(code), Some("Unauthorized"))
        );
    }
    assert_eq!(json(lines[6])["error"]["code"], "INSUFFICIENT_PERMISSIONS");
    let statuses: Vec<&str> = lines[7].split_whitespace().collect();
    assert_eq!(statuses.len(), 8);
    assert!(statuses.iter().all(|s| *s == "200" || *s == "429"), "{statuses:?}");
    assert!(statuses.iter().filter(|s| **s == "429").count() >= 4, "the free tier throttles: {statuses:?}");
    api.stop().await;
}
