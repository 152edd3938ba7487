//! The built `latchkey` against a local API in this process (on a free port, on a data directory
//! of the test's): every command's output and exit code, the credentials file, and the keys it
//! makes working.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use latchkey::config::Env;
use latchkey_cli::client::Client;
use latchkey_cli::exit;
use serde_json::Value;

/// A local API serving on a free port, and its admin key.
struct Api {
    base: String,
    admin_key: String,
    _dir: tempfile::TempDir,
}

impl Api {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data").display().to_string();
        let env = Env::from_fn(move |name| (name == "LATCHKEY_DATA_DIR").then(|| data.clone()));
        let config = latchkey_local::LocalConfig::from_env(&env).unwrap();
        let (api, admin_key) = latchkey_local::open(&config, latchkey_local::system_clock()).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(latchkey_local::serve(listener, Arc::new(api), std::future::pending()));
        Self { base, admin_key: admin_key.unwrap(), _dir: dir }
    }
}

/// What one run of `latchkey` printed, and how it exited.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    fn ok(self) -> Self {
        assert_eq!(self.code, i32::from(exit::OK), "{self:?}");
        self
    }
}

/// `latchkey ARGS` with `stdin`, its configuration in `home` and the environment's
/// `LATCHKEY_URL`/`LATCHKEY_KEY` only as `env` gives them.
async fn latchkey(home: &Path, env: &[(&str, &str)], stdin: &str, args: &[&str]) -> Run {
    let (home, stdin) = (home.to_owned(), stdin.to_owned());
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_latchkey"));
        command.args(&args).env("XDG_CONFIG_HOME", &home).env_remove("LATCHKEY_URL").env_remove("LATCHKEY_KEY");
        command.envs(env).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), stdin.as_bytes()).unwrap();
        let output = child.wait_with_output().unwrap();
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
        }
    })
    .await
    .unwrap()
}

fn credentials_file(home: &Path) -> PathBuf {
    home.join("latchkey").join("credentials.json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_checks_and_stores_the_key_for_every_later_command() {
    let api = Api::start().await;
    let home = tempfile::tempdir().unwrap();
    let home = home.path();

    // Not logged in: told how, exit 1.
    let run = latchkey(home, &[], "", &["whoami"]).await;
    assert_eq!(run.code, i32::from(exit::OTHER), "{run:?}");
    assert!(run.stderr.contains("latchkey login"), "{run:?}");
    // A wrong key is refused by the API before anything is stored.
    let run =
        latchkey(home, &[], "lk_00000000000000000000000000000000deadbeef\n", &["login", "--url", &api.base]).await;
    assert_eq!(run.code, i32::from(exit::AUTH), "{run:?}");
    assert!(!credentials_file(home).exists());

    let run = latchkey(home, &[], &format!("{}\n", api.admin_key), &["login", "--url", &api.base]).await.ok();
    assert!(run.stderr.contains("logged in to") && run.stdout.is_empty(), "{run:?}");
    assert!(!run.stderr.contains(&api.admin_key), "the key is never printed");
    let file = credentials_file(home);
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(file.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);

    let run = latchkey(home, &[], "", &["whoami"]).await.ok();
    assert!(run.stdout.contains("tenant_id") && run.stdout.contains("default"), "{run:?}");
    let me = latchkey(home, &[], "", &["whoami", "--json"]).await.ok().json();
    assert_eq!(me["auth_type"], "api_key");

    // A file others may read is refused, not used.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = latchkey(home, &[], "", &["whoami"]).await;
    assert_eq!(run.code, i32::from(exit::OTHER), "{run:?}");
    assert!(run.stderr.contains("chmod 600"), "{run:?}");
    // The environment's credentials need no file.
    let env = [("LATCHKEY_URL", api.base.as_str()), ("LATCHKEY_KEY", api.admin_key.as_str())];
    latchkey(home, &env, "", &["whoami"]).await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_commands_print_what_they_did_and_made_keys_work() {
    let api = Api::start().await;
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let env = [("LATCHKEY_URL", api.base.as_str()), ("LATCHKEY_KEY", api.admin_key.as_str())];

    // The key alone on stdout, once; what it is on stderr.
    let run =
        latchkey(home, &env, "", &["keys", "create", "--name", "billing", "--permissions", "read,write"]).await.ok();
    let key = run.stdout.trim_end().to_owned();
    assert_eq!(run.stdout, format!("{key}\n"), "{run:?}");
    assert!(run.stderr.contains("shown this once"), "{run:?}");
    let me = Client::new(&api.base, &key).whoami().await.expect("the key it made works");
    let id = me["id"].as_str().unwrap().to_owned();
    assert_eq!(me["permissions"], serde_json::json!(["read", "write"]));

    // --json: one document on stdout, the key in it once.
    let issued = latchkey(home, &env, "", &["keys", "create", "--name", "ci", "--json"]).await.ok().json();
    assert!(issued["key"].as_str().unwrap().starts_with("lk_"), "{issued}");

    let run = latchkey(home, &env, "", &["keys", "list"]).await.ok();
    assert!(run.stdout.starts_with("ID") && run.stdout.contains(&id) && run.stdout.contains("billing"), "{run:?}");
    assert!(!run.stdout.contains(&key), "a list shows hints, never keys");
    let listed = latchkey(home, &env, "", &["keys", "list", "--json", "--limit", "2"]).await.ok().json();
    assert_eq!(listed["keys"].as_array().unwrap().len(), 2, "{listed}");

    let run = latchkey(home, &env, "", &["keys", "get", &id]).await.ok();
    assert!(run.stdout.contains("name") && run.stdout.contains("billing") && run.stdout.contains("active"), "{run:?}");
    let updated =
        latchkey(home, &env, "", &["keys", "update", &id, "--name", "billing-v2", "--json"]).await.ok().json();
    assert_eq!(updated["name"], "billing-v2");
    latchkey(home, &env, "", &["keys", "usage", &id]).await.ok();
    let counted = latchkey(home, &env, "", &["keys", "verifications", &id, "--json"]).await.ok().json();
    assert_eq!(counted["id"], id.as_str());

    let run = latchkey(home, &env, "", &["keys", "rotate", &id, "--grace-seconds", "60"]).await.ok();
    let rotated = run.stdout.trim_end().to_owned();
    assert!(rotated.starts_with("lk_") && rotated != key, "{run:?}");
    Client::new(&api.base, &rotated).whoami().await.expect("the rotated key works");
    let new_id = Client::new(&api.base, &rotated).whoami().await.unwrap()["id"].as_str().unwrap().to_owned();
    latchkey(home, &env, "", &["keys", "revoke", &new_id]).await.ok();
    let revoked = latchkey(home, &env, "", &["keys", "get", &new_id, "--json"]).await.ok().json();
    assert_eq!(revoked["status"], "revoked");
    let refused = Client::new(&api.base, &rotated).whoami().await.unwrap_err();
    assert_eq!(refused.to_string(), "INVALID_API_KEY: The API key is invalid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_the_envelope_on_stderr_with_an_exit_code_per_kind() {
    let api = Api::start().await;
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let env = [("LATCHKEY_URL", api.base.as_str()), ("LATCHKEY_KEY", api.admin_key.as_str())];

    let run = latchkey(home, &env, "", &["keys", "get", "key_00000000000000000000000000000000"]).await;
    assert_eq!((run.code, run.stdout.as_str()), (i32::from(exit::NOT_FOUND), ""), "{run:?}");
    assert!(run.stderr.contains("NOT_FOUND"), "{run:?}");
    let run = latchkey(home, &env, "", &["keys", "create", "--name", ""]).await;
    assert_eq!(run.code, i32::from(exit::INVALID), "{run:?}");
    assert!(run.stderr.contains("VALIDATION_ERROR") && run.stderr.contains("field: name"), "{run:?}");
    let run = latchkey(home, &env, "", &["keys", "create", "--name", "", "--json"]).await;
    let envelope: Value = serde_json::from_str(run.stderr.trim()).unwrap();
    assert_eq!(envelope["error"]["code"], "VALIDATION_ERROR", "{run:?}");

    let wrong = [("LATCHKEY_URL", api.base.as_str()), ("LATCHKEY_KEY", "lk_nope")];
    let run = latchkey(home, &wrong, "", &["keys", "list"]).await;
    assert_eq!(run.code, i32::from(exit::AUTH), "{run:?}");
    // Nothing listens there.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let nowhere = format!("http://{closed}");
    let gone = [("LATCHKEY_URL", nowhere.as_str()), ("LATCHKEY_KEY", api.admin_key.as_str())];
    let run = latchkey(home, &gone, "", &["whoami"]).await;
    assert_eq!(run.code, i32::from(exit::UNAVAILABLE), "{run:?}");
    // clap's own refusal of a command line.
    let run = latchkey(home, &env, "", &["keys", "frobnicate"]).await;
    assert_eq!(run.code, i32::from(exit::USAGE), "{run:?}");
    let run = latchkey(home, &env, "", &["completions", "bash"]).await.ok();
    assert!(run.stdout.contains("latchkey") && run.stdout.contains("keys"), "a completion script");
    latchkey(home, &env, "", &["keys", "--help"]).await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datasources_audit_and_leak_reports() {
    let api = Api::start().await;
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let env = [("LATCHKEY_URL", api.base.as_str()), ("LATCHKEY_KEY", api.admin_key.as_str())];

    let run = latchkey(home, &env, "", &["datasources", "create", "--name", "meters"]).await.ok();
    let ingest_key = run.stdout.trim_end().to_owned();
    assert!(ingest_key.starts_with("lk_") && run.stdout == format!("{ingest_key}\n"), "{run:?}");
    let listed = latchkey(home, &env, "", &["datasources", "list", "--json"]).await.ok().json();
    let ds = listed["datasources"][0]["id"].as_str().unwrap().to_owned();
    latchkey(home, &env, "", &["datasources", "list"]).await.ok();
    latchkey(home, &env, "", &["datasources", "get", &ds]).await.ok();
    latchkey(home, &env, "", &["datasources", "records", &ds, "--limit", "5"]).await.ok();
    let run = latchkey(home, &env, "", &["datasources", "regenerate-key", &ds]).await.ok();
    assert!(run.stdout.trim_end().starts_with("lk_") && run.stdout.trim_end() != ingest_key, "{run:?}");
    latchkey(home, &env, "", &["datasources", "delete", &ds]).await.ok();

    // A leak reported: the key read from stdin, revoked, audited.
    let leaked = latchkey(home, &env, "", &["keys", "create", "--name", "pasted"]).await.ok().stdout;
    let run = latchkey(home, &env, &leaked, &["leaks", "report", "--found-at", "a support chat"]).await.ok();
    assert!(run.stdout.starts_with("revoke: key_") && run.stdout.contains("revoked"), "{run:?}");
    assert!(!run.stdout.contains(leaked.trim()), "{run:?}");
    let audit = latchkey(home, &env, "", &["audit", "--json", "--limit", "5"]).await.ok().json();
    assert_eq!(audit["events"][0]["action"], "key.leaked", "{audit}");
    let run = latchkey(home, &env, "", &["audit"]).await.ok();
    assert!(run.stdout.contains("key.leaked") && run.stdout.contains("a support chat"), "{run:?}");
}
