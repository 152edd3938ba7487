//! A workspace function run as Lambda runs it: `cargo lambda watch` emulates the Lambda runtime
//! API (building the function on first use), `cargo lambda invoke` sends it events.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::required_env;

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().unwrap()
}

/// `cargo lambda watch` on a free port, stopped with its whole process group (it runs the
/// function as a child) when dropped.
pub struct Watch {
    child: std::process::Child,
    port: u16,
    cargo_lambda: String,
}

impl Watch {
    /// Starts the emulator with `env` (plus the local engines' endpoints and credentials) and
    /// waits until it listens.
    pub async fn start(env: &[(&str, String)]) -> Self {
        let cargo_lambda = required_env("LATCHKEY_CARGO_LAMBDA");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        // Quoted: the file's parser refuses a bare `=` inside a value.
        let quoted = |k: &str, v: &str| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""));
        let mut vars: Vec<String> = env.iter().map(|(k, v)| quoted(k, v)).collect();
        for var in [
            "AWS_ENDPOINT_URL_DYNAMODB",
            "AWS_ENDPOINT_URL_SECRETS_MANAGER",
            "AWS_ENDPOINT_URL_API_GATEWAY",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_REGION",
            "AWS_EC2_METADATA_DISABLED",
        ] {
            vars.push(quoted(var, &required_env(var)));
        }
        // A file, not --env-vars, which splits values at commas.
        let env_file = std::env::temp_dir().join(crate::unique_name("cargo-lambda-env"));
        std::fs::write(&env_file, vars.join("\n")).unwrap();
        let child = Command::new(&cargo_lambda)
            .args(["lambda", "watch", "--quiet", "--ignore-changes", "--invoke-address", "127.0.0.1", "--invoke-port"])
            .arg(port.to_string())
            .arg("--env-file")
            .arg(&env_file)
            .current_dir(workspace_root())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("starting cargo lambda watch");
        for _ in 0..600 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self { child, port, cargo_lambda }
    }

    /// `cargo lambda invoke FUNCTION` with `event` (JSON); the function's response.
    pub async fn invoke(&self, function: &str, event: &str) -> serde_json::Value {
        let mut command = Command::new(&self.cargo_lambda);
        command
            .args(["lambda", "invoke", function, "--invoke-address", "127.0.0.1", "--invoke-port"])
            .arg(self.port.to_string())
            .args(["--data-ascii", event, "--output-format", "json"])
            .current_dir(workspace_root());
        let output =
            tokio::task::spawn_blocking(move || command.output().expect("running cargo lambda invoke")).await.unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "invoke failed: {stdout}\n{}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let _ = self.child.wait();
    }
}
