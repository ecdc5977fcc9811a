//! Waiting on conditions with a deadline.

use std::future::Future;
use std::time::{Duration, Instant};

/// How long a test waits for a condition unless it says otherwise.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);

/// Polls `probe` until it returns `Some`, and returns that value.
///
/// The pause between polls starts at 5 ms and doubles up to 200 ms. Panics with `what` and the
/// time waited when `deadline` passes, so a failing test says which condition never held.
pub async fn wait_for<T, F, Fut>(what: &str, deadline: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        if start.elapsed() >= deadline {
            panic!("gave up after {:?} waiting for: {what}", start.elapsed());
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}
