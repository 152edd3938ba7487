//! The README's walk-through, run as written against a local API: if the README and the API
//! drift apart, this fails.

mod common;

use common::Running;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_walkthrough_runs() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let start = readme.find("<!-- walkthrough:start").expect("the README has the walk-through");
    let block = &readme[start..readme.find("<!-- walkthrough:end -->").unwrap()];
    let script = block.split("```sh\n").nth(1).and_then(|rest| rest.split("```").next()).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let api = Running::start(dir.path()).await;
    let admin = api.admin_key.clone().unwrap();
    let (base, script) = (api.base.clone(), script.to_owned());
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script])
            .env("API", base)
            .env("ADMIN", admin)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the walk-through failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    // What it prints: the MISSING_API_KEY envelope, the ingest answer, the second record.
    assert!(stdout.contains(r#""code":"MISSING_API_KEY""#), "{stdout}");
    assert!(stdout.contains(r#""accepted":2"#), "{stdout}");
    assert!(stdout.trim_end().ends_with("21.7"), "{stdout}");
    api.stop().await;
}
