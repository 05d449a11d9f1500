//! Property: whatever the processor does with each item, every item is accounted for
//! exactly once — `received = emitted + filtered + skipped + dead_lettered + failed` —
//! and the outputs are exactly the items it emitted (in order for ordered stages).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use common::Flavor;
use futures::StreamExt;
use futures::channel::mpsc;
use proptest::prelude::*;
use riverbed::FlowContext;
use riverbed::pipeline::{DeadLetter, DeadLetterSink, ErrorPolicy, FlowStreamExt};
use riverbed::resilience::{Jitter, RetryPolicy};

/// What the processor does with an item.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fate {
    Emit,
    Filter,
    Fail,
    Panic,
    /// Fails once, then emits (retried under a Retry policy).
    Flaky,
}

#[derive(Debug, Clone, Copy)]
enum Policy {
    Skip,
    DeadLetter,
    RetryThenSkip,
}

fn fate() -> impl Strategy<Value = Fate> {
    prop_oneof![
        4 => Just(Fate::Emit),
        2 => Just(Fate::Filter),
        2 => Just(Fate::Fail),
        1 => Just(Fate::Panic),
        2 => Just(Fate::Flaky),
    ]
}

fn policy() -> impl Strategy<Value = Policy> {
    prop_oneof![
        Just(Policy::Skip),
        Just(Policy::DeadLetter),
        Just(Policy::RetryThenSkip)
    ]
}

async fn check(
    rt: riverbed::runtime::SharedRuntime,
    fates: Vec<Fate>,
    policy: Policy,
    concurrency: usize,
    ordered: bool,
) {
    let flaky_seen: Arc<Vec<AtomicU32>> =
        Arc::new(fates.iter().map(|_| AtomicU32::new(0)).collect());
    let fates = Arc::new(fates);
    let items: Vec<usize> = (0..fates.len()).collect();
    let (dead_tx, dead_rx) = mpsc::unbounded::<DeadLetter<usize>>();
    // Only the dead-letter policy keeps the sender; otherwise the dead letters end now.
    let error_policy = match policy {
        Policy::DeadLetter => ErrorPolicy::dead_letter(DeadLetterSink::new(dead_tx)),
        Policy::Skip => {
            drop(dead_tx);
            ErrorPolicy::skip()
        }
        Policy::RetryThenSkip => {
            drop(dead_tx);
            ErrorPolicy::retry(
                RetryPolicy::constant(std::time::Duration::ZERO)
                    .max_attempts(2)
                    .jitter(Jitter::None),
                ErrorPolicy::skip(),
            )
        }
    };
    let processor = {
        let fates = Arc::clone(&fates);
        let seen = Arc::clone(&flaky_seen);
        move |i: usize, _ctx: FlowContext| {
            let fate = fates[i];
            let attempt = seen[i].fetch_add(1, Ordering::SeqCst);
            async move {
                match fate {
                    Fate::Emit => Ok(Some(i)),
                    Fate::Filter => Ok(None),
                    Fate::Fail => Err("fails"),
                    Fate::Panic => panic!("panics on {i}"),
                    Fate::Flaky if attempt == 0 => Err("not yet"),
                    Fate::Flaky => Ok(Some(i)),
                }
            }
        }
    };
    let mut stage = futures::stream::iter(items)
        .flow()
        .pipe(processor)
        .concurrency(concurrency)
        .on_error(error_policy)
        .runtime(&rt);
    if !ordered {
        stage = stage.unordered();
    }
    let stats = stage.stats();
    let mut out: Vec<usize> = stage
        .values()
        .map(|r| r.expect("no policy here fails the stage"))
        .collect()
        .await;
    let dead: Vec<usize> = dead_rx.map(|letter| letter.item).collect().await;

    let retrying = matches!(policy, Policy::RetryThenSkip);
    let emitted: Vec<usize> = fates
        .iter()
        .enumerate()
        .filter(|(_, f)| **f == Fate::Emit || (**f == Fate::Flaky && retrying))
        .map(|(i, _)| i)
        .collect();
    if !ordered {
        out.sort_unstable();
    }
    assert_eq!(out, emitted);

    let s = stats.snapshot();
    let n = fates.len() as u64;
    assert_eq!(s.received, n);
    assert_eq!(s.in_flight, 0);
    let settled = s.emitted + s.filtered + s.skipped + s.dead_lettered + s.failed + s.cancelled;
    assert_eq!(settled, n, "{s:?}");
    assert_eq!(s.cancelled, 0, "nothing stops these stages early");
    assert_eq!(s.emitted, emitted.len() as u64);
    assert_eq!(s.dead_lettered, dead.len() as u64);
    assert_eq!(s.failed, 0);
    let panics = fates.iter().filter(|f| **f == Fate::Panic).count() as u64;
    let attempts_per_panic = if retrying { 2 } else { 1 };
    assert_eq!(s.panics, panics * attempts_per_panic);
}

fn run_case(flavor: Flavor, fates: Vec<Fate>, policy: Policy, concurrency: usize, ordered: bool) {
    common::run(flavor, move |rt| {
        check(rt, fates, policy, concurrency, ordered)
    });
}

fn config() -> ProptestConfig {
    let cases = std::env::var("RIVERBED_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

fn silence_panics() {
    // The processor panics on purpose; keep the test output readable.
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let planned = info
                .payload()
                .downcast_ref::<String>()
                .is_some_and(|m| m.starts_with("panics on "));
            if !planned {
                default(info);
            }
        }));
    });
}

proptest! {
    #![proptest_config(config())]

    #[cfg(feature = "tokio")]
    #[test]
    fn accounting_tokio_ct(fates in prop::collection::vec(fate(), 0..40), policy in policy(), c in 1usize..5, ordered: bool) {
        silence_panics();
        run_case(Flavor::TokioCt, fates, policy, c, ordered);
    }

    #[cfg(feature = "tokio")]
    #[test]
    fn accounting_tokio_mt(fates in prop::collection::vec(fate(), 0..40), policy in policy(), c in 1usize..5, ordered: bool) {
        silence_panics();
        run_case(Flavor::TokioMt, fates, policy, c, ordered);
    }

    #[cfg(feature = "smol")]
    #[test]
    fn accounting_smol(fates in prop::collection::vec(fate(), 0..40), policy in policy(), c in 1usize..5, ordered: bool) {
        silence_panics();
        run_case(Flavor::Smol, fates, policy, c, ordered);
    }

    #[test]
    fn accounting_futures(fates in prop::collection::vec(fate(), 0..40), policy in policy(), c in 1usize..5, ordered: bool) {
        silence_panics();
        run_case(Flavor::Futures, fates, policy, c, ordered);
    }

    #[test]
    fn accounting_virtual(fates in prop::collection::vec(fate(), 0..40), policy in policy(), c in 1usize..5, ordered: bool) {
        silence_panics();
        run_case(Flavor::Virtual, fates, policy, c, ordered);
    }
}
