//! The real consumer binaries behind `cargo lambda watch`'s Lambda Invoke API (cargo-lambda
//! from PyPI, installed by `make tools`): how a developer runs one consumer locally.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fanout_esm::InvokeApi;

use crate::servers::tools_dir;

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cargo-lambda is not installed at {0}: run `make tools`")]
    NotInstalled(String),
    #[error("starting cargo lambda watch for {package}: {message}")]
    Start { package: String, message: String },
}

/// One `cargo lambda watch` serving one consumer binary on a loopback port, with its own
/// environment. Dropping it stops the watcher and the function it runs.
#[derive(Debug)]
pub struct WatchedFunction {
    child: Child,
    pub endpoint: String,
    pub package: String,
}

impl WatchedFunction {
    /// Starts `cargo lambda watch -p <package> --bin <package>` on a free loopback port. The
    /// function gets this process's environment plus `env` (its config variables).
    pub fn start(package: &str, env: &[(String, String)]) -> Result<Self, WatchError> {
        let venv_bin = tools_dir().join("venv/bin");
        if !venv_bin.join("cargo-lambda").is_file() {
            return Err(WatchError::NotInstalled(venv_bin.display().to_string()));
        }
        let fail = |message: String| WatchError::Start {
            package: package.to_owned(),
            message,
        };
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map_err(|e| fail(e.to_string()))?
            .port();
        let path = format!(
            "{}:{}",
            venv_bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let log = tools_dir()
            .join("logs")
            .join(format!("cargo-lambda-watch-{package}-{port}.log"));
        std::fs::create_dir_all(tools_dir().join("logs")).map_err(|e| fail(e.to_string()))?;
        let log_file = std::fs::File::create(&log).map_err(|e| fail(e.to_string()))?;
        let log_err = log_file.try_clone().map_err(|e| fail(e.to_string()))?;
        let mut command = Command::new("cargo");
        command
            .args(["lambda", "watch", "--package", package, "--bin", package])
            .args([
                "--invoke-address",
                "127.0.0.1",
                "--invoke-port",
                &port.to_string(),
            ])
            .current_dir(fanout_testkit::workspace_root())
            .env("PATH", path)
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err);
        for (key, value) in env {
            command.arg("--env-var").arg(format!("{key}={value}"));
        }
        // Its own process group, so stopping it stops the function process it spawned too.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command.spawn().map_err(|e| fail(e.to_string()))?;
        let started = Instant::now();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(fail(format!("exited with {status}; see {}", log.display())));
            }
            if started.elapsed() > Duration::from_secs(120) {
                let _ = child.kill();
                return Err(fail(format!(
                    "not listening after 120 s; see {}",
                    log.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(WatchedFunction {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            package: package.to_owned(),
        })
    }

    /// The Invoke API client for this function.
    pub fn invoker(&self) -> InvokeApi {
        InvokeApi::new(&self.endpoint, &self.package)
    }
}

impl Drop for WatchedFunction {
    fn drop(&mut self) {
        // The whole group: the watcher and the function binary it runs.
        let _ = Command::new("kill")
            .arg("--")
            .arg(format!("-{}", self.child.id()))
            .status();
        let _ = self.child.wait();
    }
}
