//! The README's first command as users run it: the `latchkey-local` binary itself, serving from
//! one event loop per core on one port, and stopping cleanly on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[tokio::test]
async fn the_binary_serves_from_every_core_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("admin-key");
    let mut child = Stopped(
        Command::new(env!("CARGO_BIN_EXE_latchkey-local"))
            .env("LATCHKEY_ADDR", "127.0.0.1:0")
            .env("LATCHKEY_DATA_DIR", dir.path().join("data"))
            .env("LATCHKEY_ADMIN_KEY_FILE", &key_file)
            .env_remove("LATCHKEY_UPSTREAM")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let child = &mut child.0;
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = loop {
        let line = stdout.next().expect("the binary printed its address").unwrap();
        if let Some(rest) = line.strip_prefix("latchkey-local: listening on ") {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    let key = std::fs::read_to_string(&key_file).unwrap();

    // Many connections, so that the kernel hands some to each core's listener.
    let mut answers = Vec::new();
    for _ in 0..32 {
        let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
        answers.push(client.get(format!("{base}/whoami")).header("x-api-key", key.trim()).send());
    }
    for answer in answers {
        assert_eq!(answer.await.unwrap().status(), 200);
    }
    let answer = reqwest::Client::new()
        .get(format!("{base}/no-such-route"))
        .header("x-api-key", key.trim())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 404, "no upstream: an unknown path is not found");

    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let serving = std::fs::read_dir(format!("/proc/{}/task", child.id()))
        .unwrap()
        .filter(|task| {
            let comm = std::fs::read_to_string(task.as_ref().unwrap().path().join("comm")).unwrap();
            comm.starts_with("latchkey-serve-")
        })
        .count();
    assert_eq!(serving, cores, "one serving thread per core");

    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let rest: Vec<String> = stdout.map(Result::unwrap).collect();
    assert_eq!(rest, ["latchkey-local: stopped"]);
    assert!(child.wait().unwrap().success());
    assert!(reqwest::get(format!("{base}/whoami")).await.is_err(), "the port is closed");
}

/// Kills the binary should the test fail half-way (it would hold the test's output open).
struct Stopped(std::process::Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
