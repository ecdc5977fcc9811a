//! The scripted migration journey: load through the gateway while the capability moves
//! legacy → shadow → 10% → 50% → 100% → rollback through the admin API, with per-step counts of
//! requests, errors (target: zero), which side answered (checked against the gateway's
//! `explain` for each reader), and events the new service consumed.
//!
//! - [`shop`]: the client a customer's browser would be, and the legacy/new comparison;
//! - [`load`]: virtual customers and readers, and the settled-order pool;
//! - [`admin`]: the gateway's admin API.

pub mod admin;
pub mod load;
pub mod shop;

use admin::{Admin, AdminError};
use load::{LoadConfig, Orders, Tally};
use shop::{Outcome, Shop};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Header the readers' sticky key travels in (the gateway's `sticky = { header = ... }`).
pub const STICKY_HEADER: &str = "x-user-id";
/// Audit entries read to find who moved a toggle during a step.
const HISTORY_LOOKBACK: usize = 50;

/// What a step does to the capability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepAction {
    /// `PUT .../toggle` to this state and percent.
    Toggle {
        /// `legacy`, `shadow`, `percent`, `new`.
        state: &'static str,
        /// Percent for `percent` (and the shadow sample).
        percent: Option<u8>,
    },
    /// `POST .../rollback`: back to the previous state.
    Rollback,
}

/// One step of the journey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Short name for the report.
    pub name: &'static str,
    /// The change made at its start.
    pub action: StepAction,
}

/// legacy → shadow → 10% → 50% → 100% → rollback.
pub fn migration_steps() -> Vec<Step> {
    let toggle = |name, state, percent| Step {
        name,
        action: StepAction::Toggle { state, percent },
    };
    vec![
        toggle("legacy", "legacy", None),
        toggle("shadow", "shadow", None),
        toggle("10%", "percent", Some(10)),
        toggle("50%", "percent", Some(50)),
        toggle("100%", "new", None),
        Step {
            name: "rollback",
            action: StepAction::Rollback,
        },
    ]
}

/// Where the journey runs and how hard.
#[derive(Debug, Clone)]
pub struct JourneyConfig {
    /// The gateway's public URL.
    pub gateway: String,
    /// The gateway's admin URL.
    pub admin: String,
    /// An operator token for the admin API.
    pub admin_token: String,
    /// The new service, asked directly for settling and its event counters.
    pub orders_service: String,
    /// The capability moved.
    pub capability: String,
    /// How long each step's load runs.
    pub step_duration: Duration,
    /// Shape of the load.
    pub load: LoadConfig,
}

/// What one step did.
pub struct StepReport {
    /// The step.
    pub step: Step,
    /// The capability's state after the change, as the admin API shows it.
    pub capability: serde_json::Value,
    /// The traffic.
    pub tally: Arc<Tally>,
    /// Events the new service consumed during the step.
    pub events_consumed: u64,
    /// How long the step's load ran.
    pub elapsed: Duration,
    /// For each reader's sticky key, the side the gateway's `explain` says its reads take.
    pub expected_sides: BTreeMap<String, String>,
    /// Set when the toggle moved while the step's load ran, by someone other than the journey
    /// (the gateway's SLO guard rolling back, an operator): who, to what, and why. The step's
    /// reads are then checked against a table that did not hold for the whole step.
    pub changed_during_step: Option<String>,
}

impl StepReport {
    /// Reads whose answering side is not the one `explain` gives for their sticky key.
    /// Meaningful only while [`StepReport::changed_during_step`] is `None`.
    pub fn misrouted(&self) -> Vec<load::Read> {
        let expected = |r: &load::Read| self.expected_sides.get(&r.user).map(String::as_str);
        self.tally
            .reads()
            .into_iter()
            .filter(|r| r.side.as_deref() != expected(r))
            .collect()
    }

    /// One line: step, toggle, requests, errors, reads per side, misrouted reads, events.
    pub fn line(&self) -> String {
        let reads = self.tally.reads();
        let on = |side: &str| {
            reads
                .iter()
                .filter(|r| r.side.as_deref() == Some(side))
                .count()
        };
        let mut line = format!(
            "{:<9} {:<12} {:>8} {:>7} {:>12} {:>10} {:>10} {:>16}",
            self.step.name,
            admin::describe_state(&self.capability),
            self.tally.requests.load(Ordering::Relaxed),
            self.tally.errors.load(Ordering::Relaxed),
            on("legacy"),
            on("new"),
            self.misrouted().len(),
            self.events_consumed,
        );
        if let Some(change) = &self.changed_during_step {
            line.push_str(&format!(
                "\n          toggle changed during the step (misrouted not judged): {change}"
            ));
        }
        line
    }

    /// Header of [`StepReport::line`].
    pub fn header() -> String {
        format!(
            "{:<9} {:<12} {:>8} {:>7} {:>12} {:>10} {:>10} {:>16}",
            "step",
            "toggle",
            "requests",
            "errors",
            "reads legacy",
            "reads new",
            "misrouted",
            "events consumed"
        )
    }
}

/// The whole journey's outcome.
pub struct JourneyReport {
    /// One report per step.
    pub steps: Vec<StepReport>,
    /// Every order placed.
    pub orders: Vec<String>,
}

impl JourneyReport {
    /// Failed client requests across all steps.
    pub fn errors(&self) -> u64 {
        self.steps
            .iter()
            .map(|s| s.tally.errors.load(Ordering::Relaxed))
            .sum()
    }

    /// Reads answered by a side other than the toggle's, across all steps.
    pub fn misrouted(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| s.changed_during_step.is_none())
            .map(|s| s.misrouted().len())
            .sum()
    }

    /// Steps during which someone other than the journey moved the toggle, with who and why.
    pub fn interruptions(&self) -> Vec<(&str, &str)> {
        self.steps
            .iter()
            .filter_map(|s| Some((s.step.name, s.changed_during_step.as_deref()?)))
            .collect()
    }

    /// Sample failures across all steps.
    pub fn failures(&self) -> Vec<Outcome> {
        self.steps.iter().flat_map(|s| s.tally.failures()).collect()
    }
}

/// Why the journey could not run (client errors are counted, not returned).
#[derive(Debug, thiserror::Error)]
pub enum JourneyError {
    /// The admin API refused or did not answer.
    #[error("changing the capability")]
    Admin(#[from] AdminError),
}

/// Runs `steps` in order, calling `on_step` after each with its report.
pub async fn run(
    config: &JourneyConfig,
    steps: &[Step],
    mut on_step: impl FnMut(&StepReport),
) -> Result<JourneyReport, JourneyError> {
    let admin = Admin::new(&config.admin, &config.admin_token);
    let shop = Shop::new(&config.gateway, STICKY_HEADER);
    let orders = Arc::new(Orders::default());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let settler = tokio::spawn(load::settle(
        orders.clone(),
        config.orders_service.clone(),
        stopped,
    ));
    let mut reports = Vec::new();
    for step in steps {
        let reason = format!("demo journey: step {}", step.name);
        match &step.action {
            StepAction::Toggle { state, percent } => {
                admin
                    .set(&config.capability, state, *percent, &reason)
                    .await?
            }
            StepAction::Rollback => admin.rollback(&config.capability, &reason).await?,
        };
        let capability = admin.capability(&config.capability).await?;
        let consumed_before = events_consumed(&config.orders_service).await;
        let tally = Arc::new(Tally::default());
        let started = Instant::now();
        let until = started + config.step_duration;
        let customers: Vec<_> = (0..config.load.concurrency)
            .map(|worker| {
                tokio::spawn(load::customer(
                    shop.clone(),
                    worker,
                    config.load.clone(),
                    orders.clone(),
                    tally.clone(),
                    until,
                ))
            })
            .collect();
        for c in customers {
            let _ = c.await;
        }
        let elapsed = started.elapsed();
        let consumed_after = events_consumed(&config.orders_service).await;
        let expected_sides = expected_sides(&admin, &tally).await?;
        let changed_during_step = changed_during_step(&admin, config, &capability).await?;
        let report = StepReport {
            step: step.clone(),
            capability,
            tally,
            events_consumed: consumed_after.saturating_sub(consumed_before),
            elapsed,
            expected_sides,
            changed_during_step,
        };
        on_step(&report);
        reports.push(report);
    }
    let _ = stop.send(true);
    let _ = settler.await;
    Ok(JourneyReport {
        steps: reports,
        orders: orders.all(),
    })
}

/// Whether the capability's toggle is still what the step set; if not, the newest change from
/// the audit history, in words.
async fn changed_during_step(
    admin: &Admin,
    config: &JourneyConfig,
    set: &serde_json::Value,
) -> Result<Option<String>, JourneyError> {
    let now = admin.capability(&config.capability).await?;
    if admin::describe_state(&now) == admin::describe_state(set) {
        return Ok(None);
    }
    let history = admin.history(HISTORY_LOOKBACK).await?;
    let change = history.as_array().into_iter().flatten().rev().find(|e| {
        e["capability"].as_str() == Some(config.capability.as_str())
            && e["outcome"].as_str() == Some("applied")
    });
    Ok(Some(match change {
        Some(e) => format!(
            "{} moved it to {}: {}",
            e["actor"].as_str().unwrap_or("?"),
            admin::describe_state(&e["to"]),
            e["reason"].as_str().unwrap_or("no reason given"),
        ),
        None => format!("now {}", admin::describe_state(&now)),
    }))
}

/// Asks the gateway, for each reader that read during the step, which side its reads take.
async fn expected_sides(
    admin: &Admin,
    tally: &Tally,
) -> Result<BTreeMap<String, String>, JourneyError> {
    let mut sides = BTreeMap::new();
    for read in tally.reads() {
        if sides.contains_key(&read.user) {
            continue;
        }
        let path = format!("/orders/{}", read.order_id);
        let explained = admin.explain_get(&path, STICKY_HEADER, &read.user).await?;
        let side = explained["side"].as_str().unwrap_or("?").to_string();
        sides.insert(read.user, side);
    }
    Ok(sides)
}

/// Events the new service took in so far (applied, recorded and duplicate), from its
/// `/metrics`; 0 when it does not answer.
pub async fn events_consumed(orders_service: &str) -> u64 {
    use crate::demo::orders_service::observability as obs;
    let url = format!("{}/metrics", orders_service.trim_end_matches('/'));
    let Ok(resp) = reqwest::get(url).await else {
        return 0;
    };
    let text = resp.text().await.unwrap_or_default();
    let counted = [
        obs::EVENTS_APPLIED,
        obs::EVENTS_RECORDED,
        obs::EVENTS_DUPLICATE,
    ];
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(name, _)| {
            counted
                .iter()
                .any(|c| name.strip_suffix("_total") == Some(c))
        })
        .filter_map(|(_, v)| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}
