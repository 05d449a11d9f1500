//! Reactive benchmarks, each group with its peers or floor in the same run.
//!
//! * `reactive_fanout`: emit → one transformer → 4 subscribers, 1,000,000 `u64`s per
//!   iteration, each subscriber (receiver) on its own task, the emitter on the bench
//!   thread; the transformer is an integer hash. Throughput counts items
//!   **delivered** (4 M per iteration when nothing is lost): each iteration's time is
//!   scaled by `expected / delivered`, and the delivered share is printed once per
//!   side. Sides:
//!   - `riverbed_block`: a `ReactiveStream` with the transformer as a plain function
//!     (`add_sync_transformer`), run once per item; `Block` subscribers of capacity
//!     1024: lossless, the emitter waits for room;
//!   - `riverbed_block_async_transformer`: the same with the transformer as an async
//!     closure (`add_transformer`; its future is boxed);
//!   - `riverbed_drop_oldest`: as `riverbed_block` with `DropOldest` subscribers:
//!     lossy, like tokio's broadcast;
//!   - `tokio_broadcast`: `tokio::sync::broadcast` of capacity 1024, the transformer
//!     applied by each receiver (it has no shared step); lossy: a receiver that falls
//!     behind skips what was overwritten;
//!   - `async_broadcast`: `async-broadcast` of capacity 1024, the transformer applied
//!     by each receiver; lossless, the sender waits for room.
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
//! Run: `cargo bench --bench reactive` (or one group: `-- reactive_fanout`,
//! `-- operator_overhead`; add `--quick` for a fast pass).

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use futures::{Stream, StreamExt, stream};
use riverbed::broadcast::Overflow;
use riverbed::reactive::{ReactiveExt, ReactiveStream, SubscribeOptions};
use riverbed::runtime::SharedRuntime;

#[path = "support/runtime.rs"]
mod support;
use support::BenchRuntime;
#[path = "support/timing.rs"]
mod timing;
use timing::{runtime, time_counted, time_delivered};

/// Items per iteration of `operator_overhead`.
const ITEMS: u64 = 1_000_000;
/// A window that never closes during a run.
const LONG: Duration = Duration::from_secs(3600);

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
    group.bench_function("passthrough", |b| {
        time_counted(b, &rt, ITEMS, || drain(input()))
    });
    group.bench_function("debounce_long", |b| {
        time_counted(b, &rt, 1, || drain(input().debounce(LONG, clock)))
    });
    group.bench_function("debounce_zero", |b| {
        time_counted(b, &rt, ITEMS, || {
            drain(input().debounce(Duration::ZERO, clock))
        })
    });
    group.bench_function("throttle_long", |b| {
        time_counted(b, &rt, 1, || drain(input().throttle(LONG, clock)))
    });
    group.bench_function("throttle_zero", |b| {
        time_counted(b, &rt, ITEMS, || {
            drain(input().throttle(Duration::ZERO, clock))
        })
    });
    group.finish();
}

/// Items emitted per iteration of `reactive_fanout`.
const FANOUT_ITEMS: u64 = 1_000_000;
/// Subscribers (receivers) of `reactive_fanout`.
const FANOUT_SUBS: usize = 4;
/// Buffer per subscriber (riverbed) or channel capacity (peers).
const FANOUT_CAPACITY: usize = 1024;

/// The transformer every side applies: once per item (riverbed), once per item and
/// receiver (the peers, which have no shared transform step).
fn transform(n: u64) -> u64 {
    n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 7
}

/// Riverbed: one `ReactiveStream` with one transformer (a plain function, or the same
/// as an async closure), `FANOUT_SUBS` subscriber streams read on their own tasks.
async fn riverbed_fanout(overflow: Overflow, async_transformer: bool) -> u64 {
    let stream: ReactiveStream<u64> = ReactiveStream::builder("fanout")
        .capacity(FANOUT_CAPACITY)
        .build();
    if async_transformer {
        stream.add_transformer(|n: u64| async move { transform(n) });
    } else {
        stream.add_sync_transformer(transform);
    }
    let delivered = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..FANOUT_SUBS {
        let mut sub = stream
            .subscribe_with(SubscribeOptions::new().overflow(overflow))
            .unwrap();
        let delivered = Arc::clone(&delivered);
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            while let Some(item) = sub.next().await {
                if let Ok(value) = item {
                    black_box(value);
                    n += 1;
                }
            }
            delivered.fetch_add(n, Ordering::Relaxed);
        }));
    }
    for i in 0..FANOUT_ITEMS {
        stream.emit(i).await.expect("emit");
    }
    stream.complete().expect("complete");
    for task in tasks {
        task.await.expect("subscriber");
    }
    delivered.load(Ordering::Relaxed)
}

/// tokio's broadcast channel, the map applied by every receiver. Lossy: a receiver
/// that falls behind skips what was overwritten (`Lagged`).
async fn tokio_broadcast_fanout() -> u64 {
    let (tx, _) = tokio::sync::broadcast::channel::<u64>(FANOUT_CAPACITY);
    let delivered = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..FANOUT_SUBS {
        let mut rx = tx.subscribe();
        let delivered = Arc::clone(&delivered);
        tasks.push(tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            let mut n = 0;
            loop {
                match rx.recv().await {
                    Ok(value) => {
                        black_box(transform(value));
                        n += 1;
                    }
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => break,
                }
            }
            delivered.fetch_add(n, Ordering::Relaxed);
        }));
    }
    for i in 0..FANOUT_ITEMS {
        let _ = tx.send(i);
    }
    drop(tx);
    for task in tasks {
        task.await.expect("receiver");
    }
    delivered.load(Ordering::Relaxed)
}

/// async-broadcast, the map applied by every receiver. Lossless: the sender waits
/// for room.
async fn async_broadcast_fanout() -> u64 {
    let (tx, rx) = async_broadcast::broadcast::<u64>(FANOUT_CAPACITY);
    let delivered = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..FANOUT_SUBS {
        let mut rx = rx.clone();
        let delivered = Arc::clone(&delivered);
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            while let Some(value) = rx.next().await {
                black_box(transform(value));
                n += 1;
            }
            delivered.fetch_add(n, Ordering::Relaxed);
        }));
    }
    drop(rx);
    for i in 0..FANOUT_ITEMS {
        tx.broadcast(i).await.expect("broadcast");
    }
    drop(tx);
    for task in tasks {
        task.await.expect("receiver");
    }
    delivered.load(Ordering::Relaxed)
}

/// Times one fan-out side (an async function returning the items delivered).
fn fanout_side<F, Fut>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    id: &str,
    rt: &tokio::runtime::Runtime,
    run: F,
) where
    F: Fn() -> Fut,
    Fut: Future<Output = u64>,
{
    let expected = FANOUT_ITEMS * FANOUT_SUBS as u64;
    group.bench_function(id, |b| time_delivered(b, rt, expected, id, &run));
}

fn fanout(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("reactive_fanout");
    group
        .sample_size(10)
        .throughput(Throughput::Elements(FANOUT_ITEMS * FANOUT_SUBS as u64));
    fanout_side(&mut group, "riverbed_block", &rt, || {
        riverbed_fanout(Overflow::Block, false)
    });
    fanout_side(&mut group, "riverbed_block_async_transformer", &rt, || {
        riverbed_fanout(Overflow::Block, true)
    });
    fanout_side(&mut group, "riverbed_drop_oldest", &rt, || {
        riverbed_fanout(Overflow::DropOldest, false)
    });
    fanout_side(&mut group, "tokio_broadcast", &rt, tokio_broadcast_fanout);
    fanout_side(&mut group, "async_broadcast", &rt, async_broadcast_fanout);
    group.finish();
}

criterion_group!(benches, fanout, operator_overhead);
criterion_main!(benches);
