//! How long the fault suite runs: a short form by default (CI), longer with environment
//! variables (tests/faults/README.md).

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
}

/// Default number of bridge kills: the issue asks for 20 in a row, and they are cheap.
pub const DEFAULT_KILLS: usize = 20;
/// Default rounds of every other fault.
pub const DEFAULT_ROUNDS: usize = 1;
/// Default legacy transactions written during an outage.
pub const DEFAULT_OUTAGE_TXNS: usize = 50;

impl Settings {
    /// Reads the environment; a value that is not a positive number stops the run with the name
    /// of the variable.
    pub fn from_env() -> Result<Settings, String> {
        Ok(Settings {
            kills: positive("FIG_FAULT_KILLS", DEFAULT_KILLS)?,
            rounds: positive("FIG_FAULT_ROUNDS", DEFAULT_ROUNDS)?,
            outage_txns: positive("FIG_FAULT_OUTAGE_TXNS", DEFAULT_OUTAGE_TXNS)?,
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
