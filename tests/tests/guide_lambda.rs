//! The guide's `cargo lambda watch` sequence (docs/src/getting-started.md), run as written: init the local engines, bootstrap a
//! key, serve the functions, invoke the authorizer with a fixture event carrying that key.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::Command;

#[test]
fn the_guide_lambda_sequence_runs() {
    let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let page = std::fs::read_to_string(root.join("docs/src/getting-started.md")).unwrap();
    let start = page.find("<!-- lambda:start").expect("the guide's Getting started has the sequence");
    let block = &page[start..page.find("<!-- lambda:end -->").unwrap()];
    let script = block.split("```sh\n").nth(1).and_then(|rest| rest.split("```").next()).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();

    // Its own process group, so `cargo lambda watch` and the function it runs stop with it.
    let mut child = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(root)
        .env("PORT", port.to_string())
        .process_group(0)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let group = format!("-{}", child.id());
    // The script's end, then the background watcher's: it holds the output pipes open.
    let status = child.wait().unwrap();
    let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
    let (mut stdout, mut stderr) = (String::new(), String::new());
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(status.success(), "the sequence failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains(r#""Effect":"Allow""#), "the authorizer allowed the bootstrapped key:\n{stdout}");
    assert!(stdout.contains(r#""tenant_id":"demo""#), "{stdout}");
}
