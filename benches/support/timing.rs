//! How the benches time their sides: the tokio runtime they run on, and the
//! `iter_custom` loop around the runs of a side, which either checks how many items
//! came out of each or scales its time by how many were delivered.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::Bencher;

/// A tokio multi-thread runtime with 2 workers, timers on.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Times `run` (an async function returning the number of outputs) per iteration on
/// `rt`, and checks that number against `expected`.
pub fn time_counted<F, Fut>(
    b: &mut Bencher<'_>,
    rt: &tokio::runtime::Runtime,
    expected: u64,
    run: F,
) where
    F: Fn() -> Fut,
    Fut: Future<Output = u64>,
{
    time_counted_with(b, rt, expected, || (), |()| run());
}

/// As [`time_counted`], with `run` taking an input that `setup` builds, every
/// iteration, before the clock starts.
pub fn time_counted_with<I, S, F, Fut>(
    b: &mut Bencher<'_>,
    rt: &tokio::runtime::Runtime,
    expected: u64,
    setup: S,
    run: F,
) where
    S: Fn() -> I,
    F: Fn(I) -> Fut,
    Fut: Future<Output = u64>,
{
    let (setup, run) = (&setup, &run);
    b.to_async(rt).iter_custom(|iters| async move {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            let input = setup();
            let start = Instant::now();
            let produced = run(input).await;
            total += start.elapsed();
            assert_eq!(produced, expected, "the expected items come out");
        }
        total
    })
}

/// Times `run` (an async function returning the number of items delivered, of
/// `expected`) per iteration on `rt`, each time scaled by `expected / delivered` so
/// that a side that loses items is not credited for items nobody received; prints the
/// delivered share once per `label`.
pub fn time_delivered<F, Fut>(
    b: &mut Bencher<'_>,
    rt: &tokio::runtime::Runtime,
    expected: u64,
    label: &str,
    run: F,
) where
    F: Fn() -> Fut,
    Fut: Future<Output = u64>,
{
    let run = &run;
    b.to_async(rt).iter_custom(|iters| async move {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            let start = Instant::now();
            let delivered = run().await;
            total += scaled(start.elapsed(), expected, delivered);
            report(label, expected, delivered);
        }
        total
    })
}

/// Scales `elapsed` so that throughput reflects delivered items.
fn scaled(elapsed: Duration, expected: u64, delivered: u64) -> Duration {
    if delivered == 0 {
        return elapsed * 1000;
    }
    elapsed.mul_f64(expected as f64 / delivered as f64)
}

/// Prints the delivered share once per `key`.
fn report(key: &str, expected: u64, delivered: u64) {
    static SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    if seen.get_or_insert_with(HashSet::new).insert(key.to_owned()) {
        println!(
            "delivered {key}: {delivered}/{expected} ({:.1}%)",
            100.0 * delivered as f64 / expected as f64
        );
    }
}
