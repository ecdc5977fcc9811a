//! One row per fault case: what was injected, how many operations ran, how many were lost and
//! how long recovery took; printed as a table and written as JSON for CI artefacts.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

/// The outcome of one fault case.
#[derive(Debug, Clone, Serialize)]
pub struct CaseReport {
    /// Case name (as given on the command line to run it alone).
    pub case: String,
    /// What was injected, in words.
    pub injected: String,
    /// How many times the fault was injected.
    pub injections: usize,
    /// Operations run while faults were injected (legacy transactions, or gateway requests).
    pub operations: u64,
    /// What an operation is in this case.
    pub operation_kind: String,
    /// Operations lost: committed but never published, published twice, or failed reads.
    pub lost: u64,
    /// Slowest recovery, in milliseconds, measured by waiting on a condition.
    pub recovery_max_ms: u64,
    /// What "recovered" means in this case.
    pub recovery_condition: String,
    /// Other figures worth a look (fallbacks, writes answered fast, ...).
    pub notes: String,
    /// Whether every assertion held.
    pub passed: bool,
    /// The failure, when `passed` is false.
    pub failure: Option<String>,
}

impl CaseReport {
    /// A row for a case that passed, to be completed with struct update syntax.
    pub fn passed(case: &str) -> CaseReport {
        CaseReport {
            passed: true,
            failure: None,
            ..CaseReport::failed(case, String::new())
        }
    }

    /// A row for a case that panicked before reporting.
    pub fn failed(case: &str, failure: String) -> CaseReport {
        CaseReport {
            case: case.to_string(),
            injected: String::new(),
            injections: 0,
            operations: 0,
            operation_kind: String::new(),
            lost: 0,
            recovery_max_ms: 0,
            recovery_condition: String::new(),
            notes: String::new(),
            passed: false,
            failure: Some(failure),
        }
    }
}

/// Milliseconds of the longest of `times`.
pub fn max_ms(times: &[Duration]) -> u64 {
    times
        .iter()
        .max()
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The table people read at the end of the run.
pub fn table(rows: &[CaseReport]) -> String {
    let mut out = format!(
        "{:<22} {:>4} {:>8} {:>5} {:>10}  {}\n",
        "case", "inj", "ops", "lost", "recov ms", "injected / result"
    );
    for r in rows {
        let result = match &r.failure {
            None => format!("{} | {}", r.injected, r.notes),
            Some(f) => format!("FAILED: {f}"),
        };
        out.push_str(&format!(
            "{:<22} {:>4} {:>8} {:>5} {:>10}  {}\n",
            r.case, r.injections, r.operations, r.lost, r.recovery_max_ms, result
        ));
    }
    out
}

/// Writes `rows` to `${FIG_ARTIFACTS_DIR:-<workspace>/target/artifacts}/faults.json`.
pub fn write_json(rows: &[CaseReport]) -> std::io::Result<PathBuf> {
    let dir = std::env::var_os("FIG_ARTIFACTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| e2e::private_stack::repo_root().join("target/artifacts"));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("faults.json");
    let text = serde_json::to_string_pretty(rows).map_err(std::io::Error::other)?;
    std::fs::write(&path, text)?;
    Ok(path)
}
