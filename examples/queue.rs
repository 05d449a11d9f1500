//! The seed's real-time analytics scenario on riverbed's `MessageQueue`.
//!
//! User events (sign-ups, page views, purchases) are sent to `analytics_processing`.
//! Three consumer groups each receive every event, each with three workers:
//!
//! * `process_user_event` validates and enriches an event; one event in the feed is
//!   poisoned (its payload is nonsense), fails every attempt, and ends in the group's
//!   dead letters after the retry policy's three attempts;
//! * `update_metrics` keeps live counters per event kind;
//! * `generate_reports` totals revenue per user.
//!
//! The queue is durable when the `durable` feature is on (a store in a temporary
//! directory, removed at the end), in memory otherwise. At the end the example prints
//! the metrics, the report, the dead letters and the queue's statistics as JSON.
//!
//! The runtime is a cargo feature choice:
//!
//! ```sh
//! cargo run --example queue --features tokio,durable   # TokioRuntime, durable store
//! cargo run --example queue --features smol,durable    # SmolRuntime, durable store
//! cargo run --example queue                            # VirtualRuntime, in memory
//! ```
//!
//! With both runtime features on, tokio is used.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use riverbed::BoxError;
use riverbed::queue::{Backend, MessageQueue, StartFrom};
use riverbed::resilience::{Jitter, RetryPolicy};
use riverbed::runtime::SharedRuntime;
use serde::{Deserialize, Serialize};

/// What the web front end reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct UserEvent {
    user: String,
    kind: String,
    /// Cents, for purchases.
    amount: u64,
}

/// The seed's feed: thirty events from four users, one of them poisoned.
fn events() -> Vec<UserEvent> {
    let users = ["alice", "bob", "carol", "dave"];
    let mut events: Vec<UserEvent> = (0..30u64)
        .map(|i| {
            let kind = match i % 5 {
                0 => "signup",
                1..=3 => "page_view",
                _ => "purchase",
            };
            UserEvent {
                user: users[i as usize % users.len()].to_string(),
                kind: kind.to_string(),
                amount: if kind == "purchase" {
                    1_000 + i * 250
                } else {
                    0
                },
            }
        })
        .collect();
    events[17] = UserEvent {
        user: "mallory".into(),
        kind: "bogus".into(),
        amount: u64::MAX,
    };
    events
}

/// The seed's `process_user_event`: validates, then enriches (here: prints).
async fn process_user_event(event: UserEvent) -> Result<(), String> {
    if !["signup", "page_view", "purchase"].contains(&event.kind.as_str()) {
        return Err(format!(
            "unknown event kind {:?} from {}",
            event.kind, event.user
        ));
    }
    println!("  process_user_event: {} {}", event.user, event.kind);
    Ok(())
}

/// The backend: durable in a temporary directory with the `durable` feature.
#[cfg(feature = "durable")]
fn backend() -> Result<(Arc<dyn Backend>, Option<tempfile::TempDir>), BoxError> {
    let dir = tempfile::tempdir()?;
    let backend = riverbed::queue::DurableBackend::open(dir.path())?;
    println!("durable store in {}", dir.path().display());
    Ok((Arc::new(backend), Some(dir)))
}

/// The backend: in memory without the `durable` feature.
#[cfg(not(feature = "durable"))]
fn backend() -> Result<(Arc<dyn Backend>, Option<std::path::PathBuf>), BoxError> {
    println!("in-memory queue (add --features durable for the durable store)");
    Ok((Arc::new(riverbed::queue::MemoryBackend::new()), None))
}

async fn run(rt: SharedRuntime) -> Result<(), BoxError> {
    let (backend, _dir) = backend()?;
    let retry = RetryPolicy::exponential(Duration::from_millis(20))
        .max_attempts(3)
        .jitter(Jitter::None);
    let queue: MessageQueue<UserEvent> = MessageQueue::builder("analytics_processing", &rt)
        .shared_backend(backend)
        .retry(retry)
        .build();

    let metrics = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));
    let revenue = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));
    let mut flows = Vec::new();
    let mut stops = Vec::new();
    {
        let consumer = queue.consumer("process_user_event", process_user_event);
        stops.push(consumer.stop_handle());
        flows.push(consumer.workers(3).spawn(&rt));
    }
    {
        let metrics = Arc::clone(&metrics);
        let consumer = queue.consumer("update_metrics", move |event: UserEvent| {
            *metrics
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(event.kind)
                .or_default() += 1;
            std::future::ready(())
        });
        stops.push(consumer.stop_handle());
        flows.push(consumer.workers(3).spawn(&rt));
    }
    {
        let revenue = Arc::clone(&revenue);
        let consumer = queue.consumer("generate_reports", move |event: UserEvent| {
            if event.kind == "purchase" {
                *revenue
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(event.user)
                    .or_default() += event.amount;
            }
            std::future::ready(())
        });
        stops.push(consumer.stop_handle());
        flows.push(consumer.workers(3).spawn(&rt));
    }
    // The groups exist before the first event, so each sees every event.
    for group in ["process_user_event", "update_metrics", "generate_reports"] {
        queue.create_group(group, StartFrom::Latest).await?;
    }

    println!("== sending {} events ==", events().len());
    for event in events() {
        queue.send(event).await?;
    }
    // Let the poisoned event use up its retries (20 + 40 ms of backoff), then drain.
    riverbed::runtime::RuntimeExt::sleep(&*rt, Duration::from_millis(200)).await;
    for stop in &stops {
        stop.stop_when_idle(Duration::from_secs(5));
    }
    for flow in flows {
        flow.await.map_err(|e| e.to_string())?.into_result()?;
    }

    println!("== update_metrics ==");
    for (kind, count) in metrics.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        println!("  {kind}: {count}");
    }
    println!("== generate_reports: revenue per user ==");
    for (user, cents) in revenue.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        println!("  {user}: {}.{:02}", cents / 100, cents % 100);
    }
    println!("== dead letters of process_user_event ==");
    for letter in queue.dead_letters("process_user_event", 10).await? {
        println!(
            "  #{} after {} attempts: {}",
            letter.id, letter.attempts, letter.error
        );
    }
    println!("== stats ==");
    println!("{}", serde_json::to_string_pretty(&queue.stats().await?)?);
    Ok(())
}

#[cfg(feature = "tokio")]
#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let rt: SharedRuntime = riverbed::runtime::tokio();
    run(rt).await
}

#[cfg(all(feature = "smol", not(feature = "tokio")))]
fn main() -> Result<(), BoxError> {
    let rt: SharedRuntime = riverbed::runtime::smol();
    smol::block_on(run(rt))
}

/// Without a runtime feature, the `VirtualRuntime` drives the example: retries and
/// leases pass on its clock.
#[cfg(not(any(feature = "tokio", feature = "smol")))]
fn main() -> Result<(), BoxError> {
    let clock = riverbed::runtime::VirtualRuntime::new();
    let rt: SharedRuntime = Arc::new(clock.clone());
    clock.block_on(run(rt))
}
