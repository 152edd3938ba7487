//! A DynamoDB Local of a test's own, for tests that stop the database mid-run. Launched from the
//! jar that `infra/local-aws/install` put under `.tools/`, on a free loopback port.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::required_env;

pub struct DynamoDbLocal {
    child: Option<Child>,
    port: u16,
}

impl DynamoDbLocal {
    /// Starts an in-memory instance on a free port and waits until it accepts connections.
    pub async fn start() -> Self {
        Self::start_on(Self::free_port()).await
    }

    /// Starts (or restarts) an in-memory instance on `port`.
    pub async fn start_on(port: u16) -> Self {
        Self::launch(port, None).await
    }

    /// Starts (or restarts) an instance on `port` that keeps its data in `dir`, so a restart
    /// finds what was written before it.
    pub async fn start_persistent_on(port: u16, dir: &std::path::Path) -> Self {
        Self::launch(port, Some(dir)).await
    }

    /// A free port for [`DynamoDbLocal::start_persistent_on`].
    pub fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }

    /// Launches the engine and waits until it answers a real call (a fresh JVM is slow to serve
    /// its first request; tests with short timeouts start after that).
    async fn launch(port: u16, dir: Option<&std::path::Path>) -> Self {
        let java = required_env("LATCHKEY_JAVA");
        let jar = required_env("LATCHKEY_DYNAMODB_LOCAL_JAR");
        let lib = required_env("LATCHKEY_DYNAMODB_LOCAL_LIB");
        let child = Command::new(java)
            .args(["-Xmx256m", "-XX:+UseSerialGC"])
            .arg(format!("-Djava.library.path={lib}"))
            .args(["-jar", &jar, "-sharedDb", "-disableTelemetry", "-port", &port.to_string()])
            .args(match dir {
                Some(dir) => vec!["-dbPath".to_owned(), dir.display().to_string()],
                None => vec!["-inMemory".to_owned()],
            })
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("starting DynamoDB Local");
        let instance = Self { child: Some(child), port };
        let client = crate::dynamodb_client_at(&instance.endpoint(), crate::patient_timeouts()).await;
        for _ in 0..300 {
            if client.list_tables().send().await.is_ok() {
                return instance;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("DynamoDB Local did not answer on port {port} within 30 s");
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the process and waits for it to be gone.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }
}
