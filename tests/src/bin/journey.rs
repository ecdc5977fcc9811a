//! `journey`: load through the gateway while the capability moves legacy → shadow → 10% → 50% →
//! 100% → rollback, then checks that the new service agrees with legacy on every order touched.
//! Exits 1 when any client request failed, any read took the wrong side, or any order disagrees.

use anyhow::Context;
use clap::Parser;
use e2e::demo::journey::{self, JourneyConfig, StepReport, load::LoadConfig, shop};
use std::time::{Duration, Instant};

/// The fig demo's scripted migration journey.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The gateway's public URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    gateway: String,
    /// The gateway's admin URL.
    #[arg(long, default_value = "http://127.0.0.1:9090")]
    admin: String,
    /// Operator token for the admin API.
    #[arg(long, env = "FIG_DEMO_OPERATOR_TOKEN")]
    token: String,
    /// The legacy monolith, asked directly for the final comparison.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    legacy: String,
    /// The new order-status service, asked directly.
    #[arg(long, default_value = "http://127.0.0.1:8001")]
    orders_service: String,
    /// The capability moved.
    #[arg(long, default_value = "order-status")]
    capability: String,
    /// Seconds of load per step.
    #[arg(long, default_value_t = 10)]
    step_seconds: u64,
    /// Concurrent virtual customers.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Seconds to wait for the new service to catch up with legacy at the end.
    #[arg(long, default_value_t = 60)]
    catch_up_seconds: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    e2e::demo::init_tracing();
    let args = Args::parse();
    let config = JourneyConfig {
        gateway: args.gateway.clone(),
        admin: args.admin.clone(),
        admin_token: args.token.clone(),
        orders_service: args.orders_service.clone(),
        capability: args.capability.clone(),
        step_duration: Duration::from_secs(args.step_seconds),
        load: LoadConfig {
            concurrency: args.concurrency,
            ..LoadConfig::default()
        },
    };
    println!("{}", StepReport::header());
    let report = journey::run(&config, &journey::migration_steps(), |step| {
        println!("{}", step.line());
    })
    .await
    .context("running the journey")?;
    for failure in report.failures().iter().take(5) {
        println!(
            "  failed: {} -> {:?} {}",
            failure.what, failure.status, failure.body
        );
    }
    let disagreeing = catch_up(&args, &report.orders).await;
    println!(
        "orders touched: {}, failed client requests: {}, misrouted reads: {}, orders where the \
         new service disagrees with legacy after {}s: {}",
        report.orders.len(),
        report.errors(),
        report.misrouted(),
        args.catch_up_seconds,
        disagreeing.len()
    );
    for (order, diffs) in disagreeing.iter().take(5) {
        println!("  order {order}: {}", diffs.join("; "));
    }
    for (step, change) in report.interruptions() {
        println!("  step {step}: the toggle was moved by someone else: {change}");
    }
    if report.errors() > 0 || report.misrouted() > 0 || !disagreeing.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}

/// Orders whose new-service view still differs from legacy once the deadline passes.
async fn catch_up(args: &Args, orders: &[String]) -> Vec<(String, Vec<String>)> {
    let legacy = shop::Shop::new(&args.legacy, journey::STICKY_HEADER);
    let new = shop::Shop::new(&args.orders_service, journey::STICKY_HEADER);
    let deadline = Instant::now() + Duration::from_secs(args.catch_up_seconds);
    loop {
        let mut disagreeing = Vec::new();
        for order in orders {
            let (l, n) = (
                legacy.order("journey", order).await,
                new.order("journey", order).await,
            );
            let diffs = match (shop::order_view(&l), shop::order_view(&n)) {
                (Some(l), Some(n)) => shop::differences(&l, &n),
                _ => vec![format!(
                    "legacy answered {:?}, new {:?}",
                    l.status, n.status
                )],
            };
            if !diffs.is_empty() {
                disagreeing.push((order.clone(), diffs));
            }
        }
        if disagreeing.is_empty() || Instant::now() >= deadline {
            return disagreeing;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
