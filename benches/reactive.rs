//! Reactive operator benchmarks, each group with its floor in the same run.
//!
//! * `operator_overhead`: what a time operator costs per item, when time plays no
//!   part. 1,000,000 `u64`s per iteration from `stream::iter` (always ready, so no
//!   side ever waits on a timer), read to the end with `fold`. Sides:
//!   - `passthrough`: the floor, the same stream folded with no operator;
//!   - `debounce_long`: `debounce(1 h)`: every item replaces the held one and moves
//!     the deadline (an `Instant` in a field, no timer), and only the last comes out,
//!     at the end: the cost of an item debounced away;
//!   - `debounce_zero`: `debounce(0)`: every item comes out, one poll after it
//!     arrived: the cost of an item debounced through, a clock read per poll included;
//!   - `throttle_long`: `throttle(1 h)`: the first item passes and every other one is
//!     dropped inside its window: the cost of an item throttled away;
//!   - `throttle_zero`: `throttle(0)`: every item passes and opens an empty window: the
//!     cost of an item throttled through, a clock read per item included.
//!
//!   The windows are chosen at the extremes on purpose: a window of an hour never
//!   closes during the run and a zero window closes at once, so what is measured is
//!   the per-item path, never a timer; each side checks how many items came out.
//!   The operators' runtime is `BenchRuntime`, a few lines over the tokio runtime
//!   whose clock is `std::time::Instant::now()`, as `SmolRuntime`'s is (the crate's
//!   `TokioRuntime` needs the `tokio` feature, which the run command below does not
//!   turn on).
//!
//! Throughput is in items per second. Everything runs on a tokio multi-thread runtime
//! with 2 workers, the operators on the bench thread (inside the runtime's
//! `block_on`).
//!
//! Run: `cargo bench --bench reactive -- operator_overhead` (add `--quick` for a fast
//! pass).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::future::BoxFuture;
use futures::{Stream, StreamExt, stream};
use riverbed::reactive::ReactiveExt;
use riverbed::runtime::{Runtime, SharedRuntime, Sleep};

/// Items per iteration of `operator_overhead`.
const ITEMS: u64 = 1_000_000;
/// A window that never closes during a run.
const LONG: Duration = Duration::from_secs(3600);

/// Spawns and sleeps on a tokio runtime; reads the system's monotonic clock.
#[derive(Debug)]
struct BenchRuntime {
    handle: tokio::runtime::Handle,
}

impl Runtime for BenchRuntime {
    fn spawn_boxed(&self, task: BoxFuture<'static, ()>) {
        drop(self.handle.spawn(task));
    }

    fn sleep_until(&self, deadline: Instant) -> Sleep {
        let _context = self.handle.enter();
        Box::pin(tokio::time::sleep_until(deadline.into()))
    }

    fn now(&self) -> Instant {
        Instant::now()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// The input of one iteration.
fn input() -> impl Stream<Item = u64> {
    stream::iter(0..ITEMS)
}

/// Reads `stream` to the end; the number of items.
async fn drain(stream: impl Stream<Item = u64>) -> u64 {
    stream
        .fold(0u64, |count, item| {
            black_box(item);
            std::future::ready(count + 1)
        })
        .await
}

/// Times `$run` (an async expression returning the number of outputs) per iteration
/// and checks that number.
macro_rules! bench_side {
    ($group:expr, $id:expr, $rt:expr, $expected:expr, $run:expr) => {{
        $group.bench_function($id, |b| {
            b.to_async($rt).iter_custom(|iters| async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let produced = $run.await;
                    total += start.elapsed();
                    assert_eq!(produced, $expected, "the expected items come out");
                }
                total
            })
        });
    }};
}

fn operator_overhead(c: &mut Criterion) {
    let rt = runtime();
    let clock: SharedRuntime = Arc::new(BenchRuntime {
        handle: rt.handle().clone(),
    });
    let clock = &clock;
    let mut group = c.benchmark_group("operator_overhead");
    group
        .sample_size(10)
        .throughput(Throughput::Elements(ITEMS));
    bench_side!(group, "passthrough", &rt, ITEMS, drain(input()));
    bench_side!(
        group,
        "debounce_long",
        &rt,
        1,
        drain(input().debounce(LONG, clock))
    );
    bench_side!(
        group,
        "debounce_zero",
        &rt,
        ITEMS,
        drain(input().debounce(Duration::ZERO, clock))
    );
    bench_side!(
        group,
        "throttle_long",
        &rt,
        1,
        drain(input().throttle(LONG, clock))
    );
    bench_side!(
        group,
        "throttle_zero",
        &rt,
        ITEMS,
        drain(input().throttle(Duration::ZERO, clock))
    );
    group.finish();
}

criterion_group!(benches, operator_overhead);
criterion_main!(benches);
