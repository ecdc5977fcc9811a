//! How long the fault suite runs: a short form by default (CI), longer with environment
//! variables (tests/faults/README.md).

use std::time::Duration;

/// Knobs of one run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// SIGKILLs of the bridge in a row (`FIG_FAULT_KILLS`, default 20).
    pub kills: usize,
    /// Broker and PostgreSQL restarts, and gateway kill/slow/flip rounds (`FIG_FAULT_ROUNDS`,
    /// default 1).
    pub rounds: usize,
    /// Legacy transactions committed while Kafka or the registry is away
    /// (`FIG_FAULT_OUTAGE_TXNS`, default 50, about a second of writes): sets how long the outage
    /// lasts.
    pub outage_txns: usize,
    /// Shortest time the Kafka broker stays stopped in `kafka_restart`
    /// (`FIG_FAULT_BROKER_DOWN_SECS`, default 30): long enough that the bridge's producer, its
    /// event channel and PostgreSQL's `wal_sender_timeout` all run out while it waits.
    pub broker_down: Duration,
}

/// Default number of bridge kills: the issue asks for 20 in a row, and they are cheap.
pub const DEFAULT_KILLS: usize = 20;
/// Default rounds of every other fault.
pub const DEFAULT_ROUNDS: usize = 1;
/// Default legacy transactions written during an outage.
pub const DEFAULT_OUTAGE_TXNS: usize = 50;
/// Default seconds the broker stays down: the 30 s the bridge's issue asks it to wait out.
pub const DEFAULT_BROKER_DOWN_SECS: usize = 30;

impl Settings {
    /// Reads the environment; a value that is not a positive number stops the run with the name
    /// of the variable.
    pub fn from_env() -> Result<Settings, String> {
        Ok(Settings {
            kills: positive("FIG_FAULT_KILLS", DEFAULT_KILLS)?,
            rounds: positive("FIG_FAULT_ROUNDS", DEFAULT_ROUNDS)?,
            outage_txns: positive("FIG_FAULT_OUTAGE_TXNS", DEFAULT_OUTAGE_TXNS)?,
            broker_down: Duration::from_secs(positive(
                "FIG_FAULT_BROKER_DOWN_SECS",
                DEFAULT_BROKER_DOWN_SECS,
            )? as u64),
        })
    }
}

fn positive(var: &str, default: usize) -> Result<usize, String> {
    match std::env::var(var) {
        Err(_) => Ok(default),
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("{var}={v:?} is not a positive whole number")),
        },
    }
}
