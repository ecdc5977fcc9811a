//! A private local stack (PostgreSQL, Kafka, schema registry) for tests that inject faults.
//!
//! Stopping the shared stack's broker would fail every test running beside the fault suite, so
//! the fault suite starts its own instances with the project's scripts (`deploy/local/up`) on free
//! ports and in a state folder of their own, injects faults into one service at a time with
//! `deploy/local/fault`, and stops everything with `deploy/local/down` when dropped. A watcher
//! process stops the stack too if the test process dies without running destructors.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::Stack;

/// One service of a stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// PostgreSQL.
    Postgres,
    /// The Kafka broker.
    Kafka,
    /// The schema registry.
    Registry,
}

impl Service {
    /// The name the scripts use.
    pub fn name(self) -> &'static str {
        match self {
            Service::Postgres => "postgres",
            Service::Kafka => "kafka",
            Service::Registry => "registry",
        }
    }
}

/// What `deploy/local/fault` does to a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Graceful stop: `pg_ctl stop -m fast`, SIGTERM for the others.
    Stop,
    /// Start it again (`deploy/local/up <service>`), waiting until it answers.
    Start,
    /// SIGSTOP: the port stays open, nothing answers.
    Pause,
    /// SIGCONT.
    Resume,
}

impl Fault {
    fn verb(self) -> &'static str {
        match self {
            Fault::Stop => "stop",
            Fault::Start => "start",
            Fault::Pause => "pause",
            Fault::Resume => "resume",
        }
    }
}

/// A stack of our own, stopped and removed when dropped.
pub struct PrivateStack {
    /// Where its services listen.
    pub stack: Stack,
    /// The `FIG_*` variables that point the scripts, the harness and child processes at it.
    pub env: Vec<(String, String)>,
    state_dir: PathBuf,
    watcher: Option<std::process::Child>,
    /// Whether dropping this value stops the stack.
    owner: bool,
}

/// The variables that point the scripts and the harness at a stack.
const ENV_KEYS: &[&str] = &[
    "FIG_STATE_DIR",
    "FIG_PG_HOST",
    "FIG_PG_PORT",
    "FIG_KAFKA_PORT",
    "FIG_KAFKA_CONTROLLER_PORT",
    "FIG_REGISTRY_PORT",
    "FIG_KAFKA_BROKERS",
    "FIG_REGISTRY_URL",
];

/// How many times a start is tried with fresh ports (a free port can be taken before we bind it).
const START_ATTEMPTS: usize = 3;

impl PrivateStack {
    /// Starts PostgreSQL, Kafka and the registry on free ports in a new state folder. Takes
    /// seconds when `deploy/local/up` has run once on this machine (its downloads are cached).
    pub fn start() -> anyhow::Result<PrivateStack> {
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            let state_dir = std::env::temp_dir().join(crate::unique_name("fig_faults_stack"));
            std::fs::create_dir_all(&state_dir)?;
            let ports = free_ports(4)?;
            let env: Vec<(String, String)> = [
                ("FIG_STATE_DIR", state_dir.display().to_string()),
                ("FIG_PG_HOST", "127.0.0.1".to_string()),
                ("FIG_PG_PORT", ports[0].to_string()),
                ("FIG_KAFKA_PORT", ports[1].to_string()),
                ("FIG_KAFKA_CONTROLLER_PORT", ports[2].to_string()),
                ("FIG_REGISTRY_PORT", ports[3].to_string()),
                ("FIG_KAFKA_BROKERS", format!("127.0.0.1:{}", ports[1])),
                ("FIG_REGISTRY_URL", format!("http://127.0.0.1:{}", ports[3])),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
            let mut stack = PrivateStack {
                stack: Stack {
                    pg_host: "127.0.0.1".into(),
                    pg_port: ports[0],
                    pg_user: "fig".into(),
                    kafka_brokers: format!("127.0.0.1:{}", ports[1]),
                    registry_url: format!("http://127.0.0.1:{}", ports[3]),
                },
                env,
                state_dir,
                watcher: None,
                owner: true,
            };
            stack.watcher = stack.spawn_watcher().ok();
            match stack.script("up", &[]) {
                Ok(_) => return Ok(stack),
                // Dropping `stack` stops what did start and removes the folder.
                Err(e) => last = e.to_string(),
            }
        }
        anyhow::bail!("the private stack did not start after {START_ATTEMPTS} attempts: {last}")
    }

    /// A handle on the private stack a parent process started and pointed this process at with
    /// [`PrivateStack::env`]; dropping it leaves the stack running (the parent stops it).
    /// Without `FIG_STATE_DIR` in the environment it injects nothing: faults are refused rather
    /// than sent to the shared stack.
    pub fn attach() -> PrivateStack {
        let env: Vec<(String, String)> = ENV_KEYS
            .iter()
            .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
            .collect();
        let state_dir = std::env::var_os("FIG_STATE_DIR")
            .map(PathBuf::from)
            .unwrap_or_default();
        PrivateStack {
            stack: Stack::from_env(),
            env,
            state_dir,
            watcher: None,
            owner: false,
        }
    }

    /// Injects `fault` into `service` and returns once the script has done it (for `Start`:
    /// once the service answers).
    pub fn fault(&self, fault: Fault, service: Service) -> anyhow::Result<()> {
        if self.state_dir.as_os_str().is_empty() {
            anyhow::bail!("no private stack (FIG_STATE_DIR unset): refusing to inject {fault:?}");
        }
        self.script("fault", &[fault.verb(), service.name()])
            .map(drop)
    }

    /// Undoes whatever a failed case left injected: resumes paused services and starts stopped
    /// ones, so the next case finds the whole stack answering.
    pub fn heal(&self) -> anyhow::Result<()> {
        for service in [Service::Postgres, Service::Kafka, Service::Registry] {
            // Resuming a running or stopped service fails harmlessly.
            let _ = self.fault(Fault::Resume, service);
        }
        for service in [Service::Postgres, Service::Kafka, Service::Registry] {
            self.fault(Fault::Start, service)?;
        }
        Ok(())
    }

    fn script(&self, name: &str, args: &[&str]) -> anyhow::Result<String> {
        let path = repo_root().join("deploy/local").join(name);
        let out = Command::new(&path)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| anyhow::anyhow!("cannot run {}: {e}", path.display()))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !out.status.success() {
            anyhow::bail!(
                "deploy/local/{name} {} failed ({}): {}",
                args.join(" "),
                out.status,
                text.trim()
            );
        }
        Ok(text)
    }

    /// A shell that waits for this process to end and then stops the stack, for the case where
    /// the test process is killed and `Drop` never runs.
    fn spawn_watcher(&self) -> std::io::Result<std::process::Child> {
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; '{down}' >/dev/null 2>&1; rm -rf '{dir}'",
            pid = std::process::id(),
            down = repo_root().join("deploy/local/down").display(),
            dir = self.state_dir.display(),
        );
        Command::new("sh")
            .args(["-c", &script])
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
    }

    /// The state folder (data and logs of the private services).
    pub fn state_dir(&self) -> &std::path::Path {
        &self.state_dir
    }
}

impl Drop for PrivateStack {
    fn drop(&mut self) {
        if !self.owner {
            return;
        }
        if let Some(mut w) = self.watcher.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
        // Resume a paused service first: a stopped process ignores SIGTERM until continued.
        for service in [Service::Registry, Service::Kafka, Service::Postgres] {
            let _ = self.fault(Fault::Resume, service);
        }
        if let Err(e) = self.script("down", &[]) {
            eprintln!("private stack: {e}");
        }
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }
}

/// The repository's root folder.
pub fn repo_root() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    root.canonicalize().unwrap_or(root)
}

/// `n` distinct ports that were free a moment ago (all bound at once, then released).
fn free_ports(n: usize) -> std::io::Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect()
}
