//! The bridge tests' fixture: a legacy database with the reference schema, a bridge child
//! process with its own slot, topics and subjects, and a Confluent-style reader of what it
//! published (schema id from the wire header, schema from the registry, decoded by contracts).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use contracts::DomainEvent;
use e2e::{Stack, SubjectPrefix, TestDb, wait_for};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use tokio_postgres::Client;

/// Environment variable that turns this test binary into a bridge child process.
pub const CHILD_CONFIG_ENV: &str = "FIG_E2E_BRIDGE_CONFIG";

/// How long a test waits for the bridge to catch up.
pub const CATCH_UP: Duration = Duration::from_secs(60);

/// Everything one test owns: database, names, config file, cleanup of topics and subjects.
pub struct Setup {
    /// The legacy database (dropped with its slots at the end).
    pub db: TestDb,
    /// A connection to it.
    pub legacy: Client,
    /// Unique prefix of slot, publication, topics, transactional id and subjects.
    pub prefix: String,
    /// Metrics/health port of the first bridge; later ones get their own.
    pub config_path: PathBuf,
    http_port: u16,
    stack: Stack,
    _subjects: SubjectPrefix,
}

impl Setup {
    /// A fresh legacy database with the reference schema and a bridge config; `extra_kafka`
    /// and `extra_postgres` are TOML lines added to those tables.
    pub async fn new(tag: &str, extra_postgres: &str, extra_kafka: &str) -> Setup {
        let stack = Stack::from_env();
        let subjects = SubjectPrefix::new(tag);
        let prefix = subjects.prefix.clone();
        let db = TestDb::create(tag).await.expect("create database");
        let legacy = db.connect().await.expect("connect");
        let schema = std::fs::read_to_string(repo_path("deploy/legacy/schema.sql"))
            .expect("read deploy/legacy/schema.sql");
        legacy
            .batch_execute(&schema)
            .await
            .expect("load the legacy schema");
        let http_port = free_port();
        let config = format!(
            r#"
[postgres]
conn = "{conn}"
slot = "{prefix}"
publication = "{prefix}"
{status_interval}
slot_lag_interval = "500ms"
standby_poll = "200ms"
{extra_postgres}

[kafka]
brokers = "{brokers}"
topic_prefix = "{prefix}."
progress_topic = "{prefix}.progress"
dead_letter_topic = "{prefix}.dead-letter"
transactional_id = "{prefix}"
topic_partitions = 2
max_batch_latency = "20ms"
properties = {{ "transaction.timeout.ms" = "60000" }}
{extra_kafka}

[registry]
url = "{registry}"

[mapping]
path = "{mapping}"

[http]
listen = "127.0.0.1:{http_port}"
"#,
            conn = db.conn_string(),
            // Acknowledgements go out once per status interval; tests that kill the bridge set a
            // long one so kills land between a Kafka commit and its acknowledgement.
            status_interval = if extra_postgres.contains("status_interval") {
                ""
            } else {
                r#"status_interval = "200ms""#
            },
            brokers = stack.kafka_brokers,
            registry = stack.registry_url,
            mapping = repo_path("acl/mappings/order_to_cash.toml").display(),
        );
        let config_path = std::env::temp_dir().join(format!("{prefix}.toml"));
        std::fs::write(&config_path, config).expect("write bridge config");
        Setup {
            db,
            legacy,
            prefix,
            config_path,
            http_port,
            stack,
            _subjects: subjects,
        }
    }

    /// The topic events of `aggregate` go to.
    pub fn topic(&self, aggregate: &str) -> String {
        format!("{}.{aggregate}", self.prefix)
    }

    /// The dead-letter topic.
    pub fn dead_letter_topic(&self) -> String {
        format!("{}.dead-letter", self.prefix)
    }

    /// Starts a bridge child process. `instance` > 0 gets another metrics port (standby).
    pub fn start_bridge(&self, instance: u16) -> Bridge {
        let exe = std::env::current_exe().expect("current test executable");
        let log = std::env::temp_dir().join(format!(
            "{}-bridge-{instance}-{}.log",
            self.prefix,
            unique_suffix()
        ));
        let out = std::fs::File::create(&log).expect("create bridge log");
        let err = out.try_clone().expect("clone log handle");
        let port = if instance == 0 {
            self.http_port
        } else {
            free_port()
        };
        let child = Command::new(exe)
            .args([
                "bridge::bridge_process",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_CONFIG_ENV, &self.config_path)
            .env("FIG_BRIDGE_HTTP_LISTEN", format!("127.0.0.1:{port}"))
            .env(
                "RUST_LOG",
                "info,cdc_bridge=debug,pg_walstream=warn,rdkafka=warn",
            )
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("spawn bridge child process");
        Bridge {
            child: Some(child),
            log,
            port,
        }
    }

    /// Waits until `bridge` answers ready (it holds the slot and streams).
    pub async fn wait_streaming(&self, bridge: &Bridge) {
        let url = format!("http://127.0.0.1:{}/health/ready", bridge.port);
        wait_for(
            &format!("bridge ready (log: {})", bridge.log.display()),
            CATCH_UP,
            || {
                let url = url.clone();
                async move {
                    reqwest::get(&url)
                        .await
                        .ok()
                        .filter(|r| r.status().is_success())
                        .map(drop)
                }
            },
        )
        .await;
    }

    /// A reader of `topics` from the beginning, `read_committed`.
    pub fn reader(&self, topic: &str) -> EventReader {
        // Configured like the harness's read_committed_consumer, as a BaseConsumer polled in steps.
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &self.stack.kafka_brokers)
            .set("group.id", e2e::unique_name("g"))
            .set("isolation.level", "read_committed")
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        for t in [topic] {
            let md = consumer
                .fetch_metadata(Some(t), Duration::from_secs(10))
                .expect("topic metadata");
            for topic in md.topics() {
                assert!(!topic.partitions().is_empty(), "topic {t} does not exist");
                for p in topic.partitions() {
                    tpl.add_partition_offset(t, p.id(), Offset::Beginning)
                        .expect("assign");
                }
            }
        }
        consumer.assign(&tpl).expect("assign");
        let partitions = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        EventReader {
            consumer,
            partitions,
            at_end: HashSet::new(),
            registry: cdc_bridge::registry::SchemaRegistry::new(&self.stack.registry_url, "NONE"),
            schemas: HashMap::new(),
            received: Vec::new(),
        }
    }

    /// Bytes of WAL between the current position and the slot's confirmed flush.
    pub async fn slot_lag(&self) -> Option<i64> {
        let row = self
            .legacy
            .query_opt("SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::bigint FROM pg_replication_slots WHERE slot_name = $1", &[&self.prefix])
            .await
            .expect("slot lag");
        row.and_then(|r| r.get(0))
    }

    /// Pid of the walsender holding the slot.
    pub async fn slot_holder(&self) -> Option<i32> {
        let row = self
            .legacy
            .query_opt(
                "SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1",
                &[&self.prefix],
            )
            .await
            .expect("slot holder");
        row.and_then(|r| r.get(0))
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let brokers = self.stack.kafka_brokers.clone();
        let prefix = format!("{}.", self.prefix);
        let _ = std::fs::remove_file(&self.config_path);
        let _ = std::thread::spawn(move || {
            let Ok(admin) = rdkafka::ClientConfig::new()
                .set("bootstrap.servers", &brokers)
                .create::<rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext>>()
            else {
                return;
            };
            let Ok(md) = admin.inner().fetch_metadata(None, Duration::from_secs(5)) else {
                return;
            };
            let names: Vec<String> = md
                .topics()
                .iter()
                .map(|t| t.name().to_string())
                .filter(|n| n.starts_with(&prefix))
                .collect();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                let _ =
                    rt.block_on(admin.delete_topics(&refs, &rdkafka::admin::AdminOptions::new()));
            }
        })
        .join();
    }
}

/// A bridge child process, killed (SIGKILL) when dropped.
pub struct Bridge {
    child: Option<Child>,
    /// Its log file.
    pub log: PathBuf,
    /// Its metrics/health port.
    pub port: u16,
}

impl Bridge {
    /// `kill -9`: no destructor, no flush, no abort of the open Kafka transaction.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A metric's value from `/metrics` (first line starting with `name`).
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let body = reqwest::get(format!("http://127.0.0.1:{}/metrics", self.port))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        body.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Ok(text) = std::fs::read_to_string(&self.log)
        {
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            eprintln!("--- last lines of {} ---", self.log.display());
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
        self.kill9();
    }
}

/// One record read back.
#[derive(Debug, Clone)]
pub struct Received {
    /// Key as text.
    pub key: String,
    /// Headers as text.
    pub headers: HashMap<String, String>,
    /// The decoded event; `None` for dead letters and tombstones.
    pub event: Option<DomainEvent>,
    /// Raw value (dead letters: JSON).
    pub value: Option<Vec<u8>>,
}

/// Reads committed records and decodes events the Confluent way.
pub struct EventReader {
    consumer: BaseConsumer,
    partitions: Vec<(String, i32)>,
    at_end: HashSet<(String, i32)>,
    registry: cdc_bridge::registry::SchemaRegistry,
    schemas: HashMap<u32, apache_avro::Schema>,
    /// Everything read so far, in order per partition.
    pub received: Vec<Received>,
}

impl EventReader {
    /// Reads until `done(&received)` holds, or panics with `what` after `deadline`.
    pub async fn read_until(
        &mut self,
        what: &str,
        deadline: Duration,
        done: impl Fn(&[Received]) -> bool,
    ) {
        let start = std::time::Instant::now();
        while !done(&self.received) {
            assert!(
                start.elapsed() < deadline,
                "gave up after {:?} waiting for: {what}; read {} records",
                start.elapsed(),
                self.received.len()
            );
            self.poll_once().await;
        }
    }

    /// Reads until every partition is at its end (for `read_committed`: its last stable
    /// offset), so nothing committed so far is left unread.
    pub async fn read_to_end(&mut self) {
        let start = std::time::Instant::now();
        while self.partitions.iter().any(|p| !self.at_end.contains(p)) {
            assert!(
                start.elapsed() < CATCH_UP,
                "partitions never reached their end"
            );
            self.poll_once().await;
        }
    }

    async fn poll_once(&mut self) {
        let msg = match self.consumer.poll(Duration::from_millis(100)) {
            None => return,
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                // The EOF event does not name the topic; every assigned topic's partition p is
                // at its end only if no record of it arrives later, which removes it again.
                for (t, part) in &self.partitions {
                    if *part == p {
                        self.at_end.insert((t.clone(), p));
                    }
                }
                return;
            }
            Some(Err(e)) => panic!("consumer error: {e}"),
            Some(Ok(m)) => m.detach(),
        };
        self.at_end
            .remove(&(msg.topic().to_string(), msg.partition()));
        let headers = msg
            .headers()
            .map(|h| {
                h.iter()
                    .map(|x| {
                        (
                            x.key.to_string(),
                            x.value
                                .map(|v| String::from_utf8_lossy(v).to_string())
                                .unwrap_or_default(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let value = msg.payload().map(<[u8]>::to_vec);
        let is_dead_letter = msg.topic().ends_with(".dead-letter");
        let event = match (&value, is_dead_letter) {
            (Some(bytes), false) => Some(self.decode(bytes).await),
            _ => None,
        };
        self.received.push(Received {
            key: msg
                .key()
                .map(|k| String::from_utf8_lossy(k).to_string())
                .unwrap_or_default(),
            headers,
            event,
            value,
        });
    }

    async fn decode(&mut self, bytes: &[u8]) -> DomainEvent {
        let (id, datum) = contracts::wire::unframe(bytes).expect("Confluent wire header");
        if !self.schemas.contains_key(&id) {
            let text = self
                .registry
                .schema_by_id(id)
                .await
                .expect("schema by id from the registry");
            let schema = apache_avro::Schema::parse_str(&text).expect("registered schema parses");
            self.schemas.insert(id, schema);
        }
        DomainEvent::decode(&self.schemas[&id], datum)
            .expect("event decodes with the registered writer schema")
    }

    /// Decoded events, in reading order.
    pub fn events(&self) -> Vec<&DomainEvent> {
        self.received
            .iter()
            .filter_map(|r| r.event.as_ref())
            .collect()
    }
}

/// Absolute path of a file in the repository.
pub fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn unique_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..6].to_string()
}

/// A random number in `range` (test randomness without another dependency).
pub fn random_in(range: std::ops::Range<u64>) -> u64 {
    let r = uuid::Uuid::new_v4().as_u128() as u64;
    range.start + r % (range.end - range.start).max(1)
}
