//! Faults at the gateway under load: the new service killed and made slow, toggles flipped, and
//! one of two replicas on the shared PostgreSQL toggle store killed with SIGKILL.
//!
//! Load is real HTTP through a real gateway: reader tasks send `GET /orders/N` without pause and
//! count every answer that is not a 200 as a lost read; a writer task sends `POST /orders` and
//! records how long each answer took (writes may fail while new is away, but fast).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use e2e::{TestDb, wait_for};
use serde_json::json;

use crate::report::{CaseReport, max_ms};
use crate::settings::Settings;
use crate::support::{Backend, Gateway, OPERATOR, TempDir, VIEWER};
use crate::upstream::{HOLD, OK, Upstream};

/// Environment variable that turns this binary into a gateway replica child process.
pub const CHILD_CONFIG_ENV: &str = "FIG_FAULTS_GATEWAY_CONFIG";
/// How long a phase may take to show its effect.
const PHASE: Duration = Duration::from_secs(20);
/// Reader tasks per gateway.
const READERS: usize = 4;
/// A write slower than this is hanging, not failing fast.
const FAST: Duration = Duration::from_millis(1500);

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// Counters of the load against one gateway.
#[derive(Default)]
struct Load {
    reads: AtomicU64,
    failed_reads: AtomicU64,
    served_new: AtomicU64,
    served_legacy: AtomicU64,
    writes: AtomicU64,
    writes_failed: AtomicU64,
    slowest_write_ms: AtomicU64,
    stop: AtomicBool,
}

impl Load {
    /// Starts `READERS` readers (and a writer when `writes`) against `public`.
    fn start(public: &str, writes: bool) -> (Arc<Load>, Vec<tokio::task::JoinHandle<()>>) {
        let load = Arc::new(Load::default());
        let mut tasks = Vec::new();
        for n in 0..READERS {
            let (load, url, http) = (Arc::clone(&load), format!("{public}/orders/{n}"), http());
            tasks.push(tokio::spawn(async move {
                while !load.stop.load(Ordering::SeqCst) {
                    load.reads.fetch_add(1, Ordering::SeqCst);
                    let body = match http.get(&url).send().await {
                        Ok(r) if r.status() == 200 => r.text().await.ok(),
                        _ => None,
                    };
                    match body.as_deref() {
                        Some("new") => load.served_new.fetch_add(1, Ordering::SeqCst),
                        Some("legacy") => load.served_legacy.fetch_add(1, Ordering::SeqCst),
                        _ => load.failed_reads.fetch_add(1, Ordering::SeqCst),
                    };
                }
            }));
        }
        if writes {
            let (load, url, http) = (Arc::clone(&load), format!("{public}/orders"), http());
            tasks.push(tokio::spawn(async move {
                let mut pace = tokio::time::interval(Duration::from_millis(20));
                while !load.stop.load(Ordering::SeqCst) {
                    pace.tick().await;
                    let started = Instant::now();
                    let ok = http
                        .post(&url)
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success());
                    let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                    load.slowest_write_ms.fetch_max(ms, Ordering::SeqCst);
                    load.writes.fetch_add(1, Ordering::SeqCst);
                    if !ok {
                        load.writes_failed.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }));
        }
        (load, tasks)
    }

    /// Waits until `counter` has grown by `by` from now.
    async fn more(&self, what: &str, counter: &AtomicU64, by: u64) {
        let at_least = counter.load(Ordering::SeqCst) + by;
        wait_for(what, PHASE, || async {
            (counter.load(Ordering::SeqCst) >= at_least).then_some(())
        })
        .await;
    }

    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::SeqCst)
    }
}

async fn stop(load: &Load, tasks: Vec<tokio::task::JoinHandle<()>>) {
    load.stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.expect("load task");
    }
}

/// Waits until a read through `gw` is answered by `side`; returns how long that took.
async fn serves(http: &reqwest::Client, public: &str, side: &str) -> Duration {
    let started = Instant::now();
    wait_for(&format!("{public} serving {side}"), PHASE, || async {
        let r = http.get(format!("{public}/orders/1")).send().await.ok()?;
        (r.status() == 200 && r.text().await.ok()? == side).then_some(())
    })
    .await;
    started.elapsed()
}

async fn flip(http: &reqwest::Client, admin: &str, body: serde_json::Value) {
    let status = http
        .put(format!("{admin}/api/v1/capabilities/orders/toggle"))
        .bearer_auth(OPERATOR)
        .json(&body)
        .send()
        .await
        .expect("admin call")
        .status();
    assert_eq!(status, 200, "toggle change {body} refused");
}

/// The new service made slow, then killed and restarted, and the toggle flipped between legacy,
/// new and percent 50, all under load: no read fails, writes fail fast and never hang.
pub async fn gateway_upstream(settings: &Settings) -> CaseReport {
    let legacy = Backend::start("legacy").await;
    let mut new = Upstream::start("new");
    let dir = TempDir::new();
    let config = format!(
        "[store]\nkind = \"file\"\npath = \"{}\"\n\
         [[capability]]\nname = \"orders\"\nnew = \"{}\"\nstate = \"new\"\nroutes = [{{ prefix = \"/orders\" }}]\n\
         [capability.resilience.slo_guard]\nenabled = false\n\
         [capability.resilience.new.timeouts]\nconnect = \"100ms\"\nfirst_byte = \"200ms\"\n\
         [capability.resilience.new.breaker]\nconsecutive_failures = 3\ncool_down = \"300ms\"\n",
        dir.0.join("toggles.json").display(),
        new.url
    );
    let gw = Gateway::start(&dir, &legacy.url, &config).await;
    let http = http();
    let (load, tasks) = Load::start(&gw.public, true);
    let mut recoveries = Vec::new();
    let mut injections = 0;
    for _ in 0..settings.rounds {
        load.more("new serving load", &load.served_new, 50).await;

        // Slow: new holds every request; reads time out after 200 ms and fall back to legacy.
        new.set(HOLD);
        load.more(
            "reads answered by legacy while new is slow",
            &load.served_legacy,
            100,
        )
        .await;
        new.set(OK);
        recoveries.push(serves(&http, &gw.public, "new").await);

        // Killed: connections refused; reads fall back, writes fail fast.
        new.kill();
        load.more(
            "reads answered by legacy while new is dead",
            &load.served_legacy,
            200,
        )
        .await;
        new.restart();
        recoveries.push(serves(&http, &gw.public, "new").await);

        // Toggles flipped under load.
        for state in ["legacy", "new"] {
            flip(
                &http,
                &gw.admin,
                json!({ "state": state, "reason": "fault suite" }),
            )
            .await;
            recoveries.push(serves(&http, &gw.public, state).await);
        }
        flip(
            &http,
            &gw.admin,
            json!({ "state": "percent", "percent": 50, "reason": "fault suite" }),
        )
        .await;
        load.more("reads at percent 50", &load.reads, 200).await;
        flip(
            &http,
            &gw.admin,
            json!({ "state": "new", "reason": "fault suite" }),
        )
        .await;
        recoveries.push(serves(&http, &gw.public, "new").await);
        injections += 5;
    }
    stop(&load, tasks).await;
    let (reads, failed) = (Load::get(&load.reads), Load::get(&load.failed_reads));
    let (writes, writes_failed) = (Load::get(&load.writes), Load::get(&load.writes_failed));
    let slowest = Load::get(&load.slowest_write_ms);
    assert_eq!(failed, 0, "{failed} of {reads} reads failed");
    assert!(
        slowest < FAST.as_millis() as u64,
        "a write took {slowest} ms: writes must fail fast, not hang"
    );
    assert!(
        writes_failed > 0,
        "writes never failed: the faults did not bite"
    );
    gw.shutdown().await;
    CaseReport {
        injected:
            "new service slow (held), killed and restarted; toggle flipped legacy/new/percent 50"
                .into(),
        injections,
        operations: reads + writes,
        operation_kind: "gateway requests (reads and writes)".into(),
        lost: failed,
        recovery_max_ms: max_ms(&recoveries),
        recovery_condition: "a read is answered by the side the toggle names again".into(),
        notes: format!(
            "{reads} reads (legacy {}, new {}), {writes} writes of which {writes_failed} failed fast (slowest {slowest} ms)",
            Load::get(&load.served_legacy),
            Load::get(&load.served_new)
        ),
        ..CaseReport::passed("gateway_upstream")
    }
}

/// A gateway replica in a child process (this binary), killable with SIGKILL.
struct Replica {
    child: std::process::Child,
    public: String,
    admin: String,
}

impl Replica {
    async fn start(dir: &TempDir, legacy: &str, body: &str) -> Replica {
        let (public, admin) = (free_addr(), free_addr());
        let tokens = dir.0.join("tokens");
        std::fs::write(
            &tokens,
            format!("ops:operator:{OPERATOR}\nwatcher:viewer:{VIEWER}\n"),
        )
        .expect("write tokens");
        let path = dir.0.join(format!("{}.toml", e2e::unique_name("replica")));
        std::fs::write(
            &path,
            format!(
                "listen = \"{public}\"\nlegacy = \"{legacy}\"\n{body}\n[admin]\nlisten = \"{admin}\"\ntokens_file = \"{}\"\n",
                tokens.display()
            ),
        )
        .expect("write replica config");
        let log = std::fs::File::create(path.with_extension("log")).expect("replica log");
        let child = std::process::Command::new(std::env::current_exe().expect("exe"))
            .env(CHILD_CONFIG_ENV, &path)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn gateway replica");
        let replica = Replica {
            child,
            public: format!("http://{public}"),
            admin: format!("http://{admin}"),
        };
        let http = http();
        wait_for("the replica ready", PHASE, || async {
            let r = http
                .get(format!("{}/health/ready", replica.admin))
                .send()
                .await
                .ok()?;
            (r.status() == 200).then_some(())
        })
        .await;
        replica
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
}

/// Two replicas on one PostgreSQL toggle store under load; one is killed with SIGKILL: the
/// other answers every read, and still sees changes made on a replacement replica.
pub async fn gateway_replica_kill(settings: &Settings) -> CaseReport {
    let db = TestDb::create("fgwstore").await.expect("store database");
    let (legacy, new) = (Backend::start("legacy").await, Backend::start("new").await);
    let (dir_a, dir_b) = (TempDir::new(), TempDir::new());
    let body = format!(
        "[store]\nkind = \"postgres\"\nurl = \"{}\"\n[[capability]]\nname = \"orders\"\nnew = \"{}\"\nroutes = [{{ prefix = \"/orders\" }}]\n",
        db.conn_string(),
        new.url
    );
    let mut a = Replica::start(&dir_a, &legacy.url, &body).await;
    let b = Gateway::start(&dir_b, &legacy.url, &body).await;
    let http = http();
    let (load, tasks) = Load::start(&b.public, false);
    let (mut a_ok, mut a_failed) = (0, 0);
    let mut recoveries = Vec::new();
    for round in 0..settings.rounds {
        let target = if round % 2 == 0 { "new" } else { "legacy" };
        flip(
            &http,
            &a.admin,
            json!({ "state": target, "reason": "before the kill" }),
        )
        .await;
        serves(&http, &b.public, target).await;
        load.more("load on the surviving replica", &load.reads, 100)
            .await;
        // Load on the victim too, so it dies with requests in flight.
        let (load_a, tasks_a) = Load::start(&a.public, false);
        load_a.more("load on the victim", &load_a.reads, 50).await;
        a.kill9();
        let killed = Instant::now();
        stop(&load_a, tasks_a).await;
        a_ok += Load::get(&load_a.reads) - Load::get(&load_a.failed_reads);
        a_failed += Load::get(&load_a.failed_reads);
        load.more("reads on the survivor after the kill", &load.reads, 200)
            .await;
        // The survivor still takes changes, and sees those of a replacement replica.
        let other = if target == "new" { "legacy" } else { "new" };
        flip(
            &http,
            &b.admin,
            json!({ "state": other, "reason": "after the kill" }),
        )
        .await;
        serves(&http, &b.public, other).await;
        a = Replica::start(&dir_a, &legacy.url, &body).await;
        flip(
            &http,
            &a.admin,
            json!({ "state": target, "reason": "from the replacement" }),
        )
        .await;
        let changed = Instant::now();
        serves(&http, &b.public, target).await;
        recoveries.push(changed.elapsed());
        eprintln!(
            "gateway_replica_kill: round {round}: replacement ready {:?} after the kill",
            killed.elapsed()
        );
    }
    stop(&load, tasks).await;
    let (reads, failed) = (Load::get(&load.reads), Load::get(&load.failed_reads));
    assert_eq!(
        failed, 0,
        "{failed} of {reads} reads on the surviving replica failed"
    );
    let ready = http
        .get(format!("{}/health/ready", b.admin))
        .send()
        .await
        .expect("ready probe")
        .status();
    assert_eq!(ready, 200, "the survivor stays ready on the shared store");
    b.shutdown().await;
    drop(a);
    CaseReport {
        injected: "SIGKILL of one of two gateway replicas on the PostgreSQL toggle store".into(),
        injections: settings.rounds,
        operations: reads,
        operation_kind: "reads on the surviving replica".into(),
        lost: failed,
        recovery_max_ms: max_ms(&recoveries),
        recovery_condition: "a toggle change on the replacement replica served by the survivor"
            .into(),
        notes: format!(
            "reads sent to the victim: {a_ok} ok, {a_failed} failed in flight (not counted)"
        ),
        ..CaseReport::passed("gateway_replica_kill")
    }
}

/// The gateway replica child process: `gateway run` on the config at `path`, until killed.
pub fn gateway_child(path: &str) -> std::process::ExitCode {
    let config = match gateway::Config::load(std::path::Path::new(path)) {
        Ok(c) => c,
        Err(problems) => {
            eprintln!("gateway replica: bad config {path}: {problems:?}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let result = runtime.block_on(async move {
        let public = tokio::net::TcpListener::bind(config.listen).await?;
        let admin = tokio::net::TcpListener::bind(config.admin.listen).await?;
        gateway::serve(config, public, admin, std::future::pending::<()>())
            .await
            .map_err(std::io::Error::other)
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gateway replica stopped: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
