//! Pre-flight checks (`cdc-bridge check`, also run at start): everything the bridge needs from
//! PostgreSQL, Kafka and the registry, each failure one line saying what to run to fix it.
//! [`prepare`] additionally creates what the configuration allows it to create.

use tokio_postgres::Client;

use crate::error::BridgeError;
use crate::pg;
use crate::session::Shared;
use crate::sink::topics::{self, TopicSpec};

/// One failed check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Short name of the check.
    pub check: &'static str,
    /// What is wrong.
    pub problem: String,
    /// What to run to fix it.
    pub fix: String,
    /// Whether it may clear up by itself (a service is down).
    pub transient: bool,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "FAIL {}: {} -- fix: {}",
            self.check, self.problem, self.fix
        )
    }
}

fn finding(check: &'static str, problem: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding {
        check,
        problem: problem.into(),
        fix: fix.into(),
        transient: false,
    }
}

fn unreachable(check: &'static str, problem: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding {
        transient: true,
        ..finding(check, problem, fix)
    }
}

/// The topics the bridge writes, as configured.
pub fn wanted_topics(shared: &Shared) -> Vec<TopicSpec> {
    let k = &shared.config.kafka;
    let mut out = vec![
        TopicSpec {
            name: k.progress_topic.clone(),
            partitions: 1,
            compacted: true,
        },
        TopicSpec {
            name: k.dead_letter_topic.clone(),
            partitions: 1,
            compacted: false,
        },
    ];
    let mut aggregates: Vec<&str> = shared
        .mapper
        .tables()
        .iter()
        .filter(|t| !t.is_outbox)
        .map(|t| t.aggregate_type.as_str())
        .collect();
    aggregates.sort_unstable();
    aggregates.dedup();
    for a in aggregates {
        out.push(TopicSpec {
            name: shared.config.topic_for(a),
            partitions: k.topic_partitions,
            compacted: false,
        });
    }
    out
}

/// Runs every check without changing anything.
pub async fn check(shared: &Shared) -> Vec<Finding> {
    let mut findings = Vec::new();
    match pg::connect(&shared.config.postgres.conn).await {
        Ok(client) => {
            if let Err(e) = check_postgres(shared, &client, &mut findings).await {
                findings.push(unreachable(
                    "postgres",
                    format!("query failed: {}", crate::session::error_chain(&e)),
                    "check that PostgreSQL is up and `postgres.conn` is right",
                ));
            }
        }
        Err(e) => findings.push(unreachable(
            "postgres",
            format!("cannot connect: {}", crate::session::error_chain(&e)),
            "start PostgreSQL or correct `postgres.conn`",
        )),
    }
    check_kafka(shared, &mut findings).await;
    check_registry(shared, &mut findings).await;
    findings
}

async fn check_postgres(
    shared: &Shared,
    client: &Client,
    findings: &mut Vec<Finding>,
) -> Result<(), BridgeError> {
    let cfg = &shared.config.postgres;
    let q = |e| BridgeError::postgres("pre-flight query", e);
    let wal_level: String = client
        .query_one("SHOW wal_level", &[])
        .await
        .map_err(q)?
        .get(0);
    if wal_level != "logical" {
        findings.push(finding(
            "wal_level",
            format!("wal_level is `{wal_level}`"),
            "psql -c \"ALTER SYSTEM SET wal_level = logical\" and restart PostgreSQL",
        ));
    }
    let role = client
        .query_one("SELECT current_user::text, rolsuper, rolreplication FROM pg_roles WHERE rolname = current_user", &[])
        .await
        .map_err(q)?;
    let (user, is_super, can_replicate): (String, bool, bool) =
        (role.get(0), role.get(1), role.get(2));
    if !is_super && !can_replicate {
        findings.push(finding(
            "role",
            format!("role `{user}` lacks REPLICATION"),
            format!("psql -c \"ALTER ROLE {user} WITH REPLICATION\""),
        ));
    }
    check_slot(shared, client, findings).await?;
    let publication = client
        .query_opt(
            "SELECT 1 FROM pg_publication WHERE pubname = $1",
            &[&cfg.publication],
        )
        .await
        .map_err(q)?;
    let published: Vec<(String, String)> = client
        .query("SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1", &[&cfg.publication])
        .await
        .map_err(q)?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    if publication.is_none() && !cfg.create_publication {
        findings.push(finding(
            "publication",
            format!("publication `{}` does not exist", cfg.publication),
            format!(
                "psql -c \"CREATE PUBLICATION {} FOR TABLE {}\"",
                cfg.publication,
                mapped_table_list(shared)
            ),
        ));
    }
    for t in shared.mapper.tables() {
        let name = format!("{}.{}", t.schema, t.table);
        if !has_select(client, &name).await? {
            findings.push(finding("privileges", format!("cannot read table {name} (missing, or no SELECT)"), format!("psql -c \"GRANT SELECT ON {name} TO {user}\", or fix the table name in the mapping")));
            continue;
        }
        if publication.is_some() && !published.contains(&(t.schema.clone(), t.table.clone())) {
            findings.push(finding(
                "publication",
                format!("publication `{}` does not cover {name}", cfg.publication),
                format!(
                    "psql -c \"ALTER PUBLICATION {} ADD TABLE {name}\"",
                    cfg.publication
                ),
            ));
        }
        let ident: i8 = client
            .query_one("SELECT c.relreplident::\"char\" FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2", &[&t.schema, &t.table])
            .await
            .map_err(q)?
            .get(0);
        let ident = u8::try_from(ident).map(char::from).unwrap_or('?');
        if t.needs_full_identity && ident != 'f' {
            findings.push(finding(
                "replica_identity",
                format!(
                    "{name} has REPLICA IDENTITY {} but its ACL rules compare old and new values",
                    identity_name(ident)
                ),
                format!("psql -c \"ALTER TABLE {name} REPLICA IDENTITY FULL\""),
            ));
        } else if ident == 'n' {
            findings.push(finding(
                "replica_identity",
                format!(
                    "{name} has REPLICA IDENTITY NOTHING: updates and deletes are not published"
                ),
                format!("psql -c \"ALTER TABLE {name} REPLICA IDENTITY DEFAULT\""),
            ));
        }
    }
    Ok(())
}

async fn has_select(client: &Client, name: &str) -> Result<bool, BridgeError> {
    let row = client
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL AND has_table_privilege($1, 'SELECT')",
            &[&name],
        )
        .await
        .map_err(|e| BridgeError::postgres("checking table privileges", e))?;
    Ok(row.get(0))
}

fn identity_name(c: char) -> &'static str {
    match c {
        'd' => "DEFAULT",
        'f' => "FULL",
        'i' => "USING INDEX",
        'n' => "NOTHING",
        _ => "unknown",
    }
}

async fn check_slot(
    shared: &Shared,
    client: &Client,
    findings: &mut Vec<Finding>,
) -> Result<(), BridgeError> {
    let cfg = &shared.config.postgres;
    let q = |e| BridgeError::postgres("pre-flight slot query", e);
    let slot = client
        .query_opt("SELECT plugin::text, coalesce(wal_status, 'unknown'), database::text FROM pg_replication_slots WHERE slot_name = $1", &[&cfg.slot])
        .await
        .map_err(q)?;
    match slot {
        None if !cfg.create_slot => findings.push(finding(
            "slot",
            format!("replication slot `{}` does not exist", cfg.slot),
            format!(
                "psql -c \"SELECT pg_create_logical_replication_slot('{}', 'pgoutput')\"",
                cfg.slot
            ),
        )),
        None => {
            let free: bool = client
                .query_one("SELECT count(*) < current_setting('max_replication_slots')::bigint FROM pg_replication_slots", &[])
                .await
                .map_err(q)?
                .get(0);
            if !free {
                findings.push(finding("slot", "no free replication slot to create one", "raise max_replication_slots (ALTER SYSTEM SET max_replication_slots = ...; restart) or drop an unused slot"));
            }
        }
        Some(row) => {
            let (plugin, wal_status, database): (String, String, String) =
                (row.get(0), row.get(1), row.get(2));
            let current_db: String = client
                .query_one("SELECT current_database()::text", &[])
                .await
                .map_err(q)?
                .get(0);
            if plugin != "pgoutput" || database != current_db {
                findings.push(finding("slot", format!("slot `{}` uses plugin `{plugin}` on database `{database}`", cfg.slot), format!("psql -d {database} -c \"SELECT pg_drop_replication_slot('{}')\" (the bridge recreates it), or choose another postgres.slot", cfg.slot)));
            }
            if wal_status == "lost" {
                findings.push(finding("slot", format!("slot `{}` lost WAL it needed: changes are missing", cfg.slot), format!("psql -c \"SELECT pg_drop_replication_slot('{}')\", then `cdc-bridge snapshot` to re-copy the tables", cfg.slot)));
            }
        }
    }
    Ok(())
}

fn mapped_table_list(shared: &Shared) -> String {
    shared
        .mapper
        .tables()
        .iter()
        .map(|t| format!("{}.{}", t.schema, t.table))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn check_kafka(shared: &Shared, findings: &mut Vec<Finding>) {
    match topics::missing(&shared.kafka, &wanted_topics(shared)).await {
        Ok(missing) if !shared.config.kafka.create_topics => {
            for t in missing {
                findings.push(finding(
                    "topics",
                    format!("topic `{t}` does not exist"),
                    format!(
                        "kafka-topics.sh --bootstrap-server {} --create --topic {t}",
                        shared.config.kafka.brokers
                    ),
                ));
            }
        }
        Ok(_) => {}
        Err(e) => findings.push(unreachable(
            "kafka",
            format!(
                "cannot read cluster metadata: {}",
                crate::session::error_chain(&e)
            ),
            format!(
                "start Kafka or correct kafka.brokers ({})",
                shared.config.kafka.brokers
            ),
        )),
    }
}

async fn check_registry(shared: &Shared, findings: &mut Vec<Finding>) {
    if let Err(e) = shared.registry.ping().await {
        findings.push(unreachable(
            "registry",
            crate::session::error_chain(&e),
            format!(
                "start the schema registry or correct registry.url ({})",
                shared.config.registry.url
            ),
        ));
        return;
    }
    for f in crate::schemas::check_registered(shared).await {
        findings.push(f);
    }
}

/// At start: creates the publication and topics when allowed, then fails on what is left.
pub async fn prepare(shared: &Shared) -> Result<(), BridgeError> {
    let cfg = &shared.config;
    let client = pg::connect(&cfg.postgres.conn).await?;
    let exists = client
        .query_opt(
            "SELECT 1 FROM pg_publication WHERE pubname = $1",
            &[&cfg.postgres.publication],
        )
        .await
        .map_err(|e| BridgeError::postgres("reading pg_publication", e))?
        .is_some();
    if !exists && cfg.postgres.create_publication {
        let sql = format!(
            "CREATE PUBLICATION {} FOR TABLE {}",
            cfg.postgres.publication,
            mapped_table_list(shared)
        );
        client.batch_execute(&sql).await.map_err(|e| {
            BridgeError::postgres(
                format!("creating publication `{}`", cfg.postgres.publication),
                e,
            )
        })?;
        tracing::info!(publication = %cfg.postgres.publication, "created publication");
    }
    if cfg.kafka.create_topics {
        topics::ensure(&shared.kafka, &wanted_topics(shared)).await?;
    }
    let findings = check(shared).await;
    if findings.is_empty() {
        return Ok(());
    }
    for f in &findings {
        tracing::error!(check = f.check, "{f}");
    }
    let first = &findings[0];
    if findings.iter().all(|f| f.transient) {
        return Err(BridgeError::Unavailable(format!(
            "pre-flight: {} ({})",
            first.problem, first.fix
        )));
    }
    Err(BridgeError::definite(
        format!(
            "{} pre-flight check(s) failed, first: {}",
            findings.len(),
            first.problem
        ),
        format!("{} (run `cdc-bridge check` for all)", first.fix),
    ))
}
