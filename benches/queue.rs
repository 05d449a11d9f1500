//! Queue benchmarks, each group with its floor in the same run.
//!
//! * `queue_memory`: send → handle → ack of 1,000,000 `u64` messages through a
//!   `MessageQueue` on the `MemoryBackend` (capacity 65,536), with 1 and 4 workers.
//!   The producer sends one message per `send` call on the bench thread; the consumer
//!   is a handler flow spawned on the runtime (each handler call a task), whose
//!   handler only `black_box`es the message; it is stopped when the group is drained.
//!   The floor is the same hand-off through a bounded `async-channel` (capacity
//!   65,536) read by 1 or 4 tasks: no acknowledgement, no redelivery, no encoding.
//!   Both sides run on a tokio multi-thread runtime with 2 workers.
//!
//! Throughput is in messages per second.
//!
//! Run: `cargo bench --bench queue` (add `-- --quick` for a fast pass).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use riverbed::queue::{MemoryBackend, MessageQueue, StartFrom};
use riverbed::runtime::SharedRuntime;

#[path = "support/runtime.rs"]
mod support;
use support::BenchRuntime;

/// Messages per iteration.
const MESSAGES: u64 = 1_000_000;
/// Buffer of both sides.
const CAPACITY: usize = 65_536;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

async fn riverbed_memory(rt: &SharedRuntime, workers: usize) -> u64 {
    let queue: MessageQueue<u64> = MessageQueue::builder("bench", rt)
        .backend(MemoryBackend::with_capacity(CAPACITY))
        .build();
    queue
        .create_group("workers", StartFrom::Latest)
        .await
        .expect("group");
    let consumer = queue
        .consumer("workers", |n: u64| {
            black_box(n);
            std::future::ready(())
        })
        .workers(workers);
    let stop = consumer.stop_handle();
    let flow = consumer.spawn(rt);
    for n in 0..MESSAGES {
        queue.send(n).await.expect("send");
    }
    stop.stop_when_idle(Duration::from_secs(60));
    flow.await.expect("flow").expect("consumer");
    let stats = queue.stats().await.expect("stats");
    stats.group("workers").map_or(0, |g| g.acked)
}

async fn async_channel_floor(workers: usize) -> u64 {
    let (tx, rx) = async_channel::bounded::<u64>(CAPACITY);
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let rx = rx.clone();
            tokio::spawn(async move {
                let mut n = 0u64;
                while let Ok(message) = rx.recv().await {
                    black_box(message);
                    n += 1;
                }
                n
            })
        })
        .collect();
    drop(rx);
    for n in 0..MESSAGES {
        tx.send(n).await.expect("send");
    }
    drop(tx);
    let mut handled = 0;
    for task in tasks {
        handled += task.await.expect("worker");
    }
    handled
}

fn memory(c: &mut Criterion) {
    let tokio_rt = runtime();
    let rt: SharedRuntime = Arc::new(BenchRuntime {
        handle: tokio_rt.handle().clone(),
    });
    let rt = &rt;
    let mut group = c.benchmark_group("queue_memory");
    group
        .sample_size(10)
        .throughput(Throughput::Elements(MESSAGES));
    for workers in [1usize, 4] {
        group.bench_function(BenchmarkId::new("riverbed", workers), |b| {
            b.to_async(&tokio_rt).iter_custom(|iters| async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let acked = riverbed_memory(rt, workers).await;
                    total += start.elapsed();
                    assert_eq!(acked, MESSAGES, "every message acknowledged");
                }
                total
            })
        });
        group.bench_function(BenchmarkId::new("async_channel", workers), |b| {
            b.to_async(&tokio_rt).iter_custom(|iters| async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let handled = async_channel_floor(workers).await;
                    total += start.elapsed();
                    assert_eq!(handled, MESSAGES, "every message handled");
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group!(benches, memory);
criterion_main!(benches);
