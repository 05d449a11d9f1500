//! Queue benchmarks, each group with its floor in the same run.
//!
//! * `queue_memory`: send → handle → ack of 1,000,000 `u64` messages through a
//!   `MessageQueue` on the `MemoryBackend` (capacity 65,536), with 1 and 4 workers.
//!   The producer sends one message per `send` call on the bench thread; the consumer
//!   is a handler flow spawned on the runtime (each worker a task), whose
//!   handler only `black_box`es the message; it is stopped when the group is drained.
//!   The floor is the same hand-off through a bounded `async-channel` (capacity
//!   65,536) read by 1 or 4 tasks: no acknowledgement, no redelivery, no encoding.
//!   The like-for-like floor, `stamped_channel`, hands off through the same channel
//!   what the queue must carry per message whatever its design (the send time from
//!   the runtime clock, the payload encoded by the same codec) and decodes it; still
//!   no ids, leases or acknowledgements. Every side runs on a tokio multi-thread
//!   runtime with 2 workers; before the criterion group the bench prints
//!   `MEMORY_ROUNDS` untimed rounds of all three, one after the other, with the
//!   median ratios (single runs swing by 2x with thread placement).
//!
//! * `queue_durable` (feature `durable`): send → handle → ack of 50,000 `u64` messages
//!   through a `MessageQueue` on the `DurableBackend` with `Durability::SyncAll` (every
//!   commit `fsync`ed before the operations in it resolve), in a fresh store per
//!   iteration. 64 producer tasks send at once (one message per `send` call), so their
//!   sends, the workers' claims and their batched acknowledgements share commits
//!   (group commit); a handler flow of 4 workers consumes. Opening and closing the
//!   store are not timed. The floor is fjall itself: the same number of messages
//!   inserted into a fresh fjall keyspace (8-byte big-endian keys, 32-byte values,
//!   about the size of riverbed's message row), in batches of the size riverbed's
//!   group commit gathers on average (from `DurableBackend::stats`), each batch
//!   committed with `PersistMode::SyncAll`. The floor writes one row per message and
//!   reads nothing; riverbed writes two (the message, and its deletion once every
//!   group acknowledged it) plus, per claim, its run's row and a rewrite per commit
//!   that acknowledges some of it, and runs the queue. Both
//!   are bound by the disk's `fsync`, whose latency drifts over minutes (see
//!   `benches/queue_store.rs`), so before the criterion group the bench runs five
//!   untimed rounds that each measure riverbed's group size and run the floor at that
//!   size right after, and prints each round's two rates and the median ratio; the
//!   criterion group then runs the floor at the median group size, and riverbed.
//!
//! Throughput is in messages per second.
//!
//! Run: `cargo bench --bench queue` (add `-- --quick` for a fast pass); the durable
//! group needs its feature: `cargo bench --bench queue --features durable --
//! queue_durable`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use riverbed::queue::backend::Payload;
use riverbed::queue::{Codec, MemoryBackend, MessageQueue, Postcard, StartFrom};
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
    flow.await.expect("flow").into_result().expect("consumer");
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

/// The like-for-like floor: the same hand-off through a bounded `async-channel`, of
/// what the queue has to carry for each message whatever its design: the send time,
/// read from the same runtime clock (for the send-to-ack latency statistics), and the
/// payload, encoded by the same codec into the same `Payload` (one codec layer for
/// every backend); the receiver decodes it. No ids, no leases, no acknowledgements.
async fn stamped_channel_floor(rt: &SharedRuntime, workers: usize) -> u64 {
    let (tx, rx) = async_channel::bounded::<(SystemTime, Payload)>(CAPACITY);
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let rx = rx.clone();
            tokio::spawn(async move {
                let mut n = 0u64;
                while let Ok((sent_at, payload)) = rx.recv().await {
                    let message: u64 = Postcard.decode(&payload).expect("decode");
                    black_box((sent_at, message));
                    n += 1;
                }
                n
            })
        })
        .collect();
    drop(rx);
    for n in 0..MESSAGES {
        let payload = Postcard.encode_payload(&n).expect("encode");
        tx.send((rt.system_time(), payload)).await.expect("send");
    }
    drop(tx);
    let mut handled = 0;
    for task in tasks {
        handled += task.await.expect("worker");
    }
    handled
}

/// Untimed rounds before the criterion group: riverbed, the raw floor and the
/// stamped floor one after the other, for each worker count. The hand-off's speed
/// swings with where the scheduler puts the producer and the consumers (two cores,
/// three busy threads), so single runs of either side vary by 2x; the median of the
/// per-round ratios is the figure to read.
const MEMORY_ROUNDS: usize = 7;

fn memory_rounds(tokio_rt: &tokio::runtime::Runtime, rt: &SharedRuntime) {
    for workers in [1usize, 4] {
        let mut raw = Vec::new();
        let mut stamped = Vec::new();
        for round in 1..=MEMORY_ROUNDS {
            let rate = |elapsed: Duration| MESSAGES as f64 / elapsed.as_secs_f64();
            let start = Instant::now();
            assert_eq!(tokio_rt.block_on(riverbed_memory(rt, workers)), MESSAGES);
            let ours = rate(start.elapsed());
            let start = Instant::now();
            assert_eq!(tokio_rt.block_on(async_channel_floor(workers)), MESSAGES);
            let floor = rate(start.elapsed());
            let start = Instant::now();
            assert_eq!(
                tokio_rt.block_on(stamped_channel_floor(rt, workers)),
                MESSAGES
            );
            let like = rate(start.elapsed());
            println!(
                "queue_memory round {round}, {workers} worker(s): riverbed {:.2} M/s, \
                 async-channel {:.2} M/s ({:.2}x), stamped channel {:.2} M/s ({:.2}x)",
                ours / 1e6,
                floor / 1e6,
                ours / floor,
                like / 1e6,
                ours / like
            );
            raw.push(ours / floor);
            stamped.push(ours / like);
        }
        raw.sort_by(f64::total_cmp);
        stamped.sort_by(f64::total_cmp);
        println!(
            "queue_memory: {workers} worker(s), median ratio riverbed / async-channel {:.2}, \
             riverbed / stamped channel {:.2}, over {MEMORY_ROUNDS} rounds",
            raw[MEMORY_ROUNDS / 2],
            stamped[MEMORY_ROUNDS / 2]
        );
    }
}

fn memory(c: &mut Criterion) {
    let tokio_rt = runtime();
    let rt: SharedRuntime = Arc::new(BenchRuntime {
        handle: tokio_rt.handle().clone(),
    });
    let rt = &rt;
    // The rounds run when the group first runs (not when it is filtered out).
    let rounds = std::cell::OnceCell::new();
    let mut group = c.benchmark_group("queue_memory");
    group
        .sample_size(10)
        .throughput(Throughput::Elements(MESSAGES));
    for workers in [1usize, 4] {
        group.bench_function(BenchmarkId::new("riverbed", workers), |b| {
            rounds.get_or_init(|| memory_rounds(&tokio_rt, rt));
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
        group.bench_function(BenchmarkId::new("stamped_channel", workers), |b| {
            b.to_async(&tokio_rt).iter_custom(|iters| async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let handled = stamped_channel_floor(rt, workers).await;
                    total += start.elapsed();
                    assert_eq!(handled, MESSAGES, "every message handled");
                }
                total
            })
        });
    }
    group.finish();
}

#[cfg(feature = "durable")]
mod durable {
    use std::path::Path;

    use riverbed::queue::{DurableBackend, DurableStats};

    use super::*;

    /// Messages per iteration.
    pub const MESSAGES: u64 = 50_000;
    /// Producer tasks sending at once.
    const PRODUCERS: u64 = 64;
    /// Handler workers.
    const WORKERS: usize = 4;
    /// The floor's value size: about riverbed's message row (postcard and checksum).
    const VALUE_LEN: usize = 32;

    /// One end-to-end run in the empty directory `dir`: what was acknowledged, the
    /// writer's statistics, and the time taken (opening and closing not counted).
    pub async fn riverbed(rt: &SharedRuntime, dir: &Path) -> (u64, DurableStats, Duration) {
        let backend = DurableBackend::open(dir).expect("open the store");
        let queue: MessageQueue<u64> = MessageQueue::builder("bench", rt)
            .backend(backend.clone())
            .build();
        queue
            .create_group("workers", StartFrom::Latest)
            .await
            .expect("group");
        let start = Instant::now();
        let consumer = queue
            .consumer("workers", |n: u64| {
                black_box(n);
                std::future::ready(())
            })
            .workers(WORKERS);
        let stop = consumer.stop_handle();
        let flow = consumer.spawn(rt);
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let queue = queue.clone();
                tokio::spawn(async move {
                    for n in (p..MESSAGES).step_by(PRODUCERS as usize) {
                        queue.send(n).await.expect("send");
                    }
                })
            })
            .collect();
        for producer in producers {
            producer.await.expect("producer");
        }
        stop.stop_when_idle(Duration::from_secs(60));
        flow.await.expect("flow").into_result().expect("consumer");
        let elapsed = start.elapsed();
        let stats = queue.stats().await.expect("stats");
        let acked = stats.group("workers").map_or(0, |g| g.acked);
        (acked, backend.stats(), elapsed)
    }

    /// fjall alone: `MESSAGES` inserts in the empty directory `dir`, `batch` per
    /// `SyncAll` commit; the time the commits took.
    pub fn fjall_floor(dir: &Path, batch: u64) -> Duration {
        use fjall::{Database, KeyspaceCreateOptions, PersistMode};
        let db = Database::builder(dir).open().expect("fjall: open");
        let messages = db
            .keyspace("messages", KeyspaceCreateOptions::default)
            .expect("fjall: keyspace");
        let start = Instant::now();
        let mut id = 0u64;
        while id < MESSAGES {
            let mut commit = db.batch().durability(Some(PersistMode::SyncAll));
            for n in id..(id + batch).min(MESSAGES) {
                let mut value = [0u8; VALUE_LEN];
                value[..8].copy_from_slice(&n.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes());
                commit.insert(&messages, n.to_be_bytes(), value);
            }
            commit.commit().expect("fjall: commit");
            id += batch;
        }
        start.elapsed()
    }
}

/// Interleaved riverbed-then-floor rounds before the durable group.
#[cfg(feature = "durable")]
const ROUNDS: usize = 5;

/// Untimed rounds that each measure riverbed's group size and run the floor at that
/// size right after, so that both sides of a round see the same disk (its `fsync`
/// latency drifts over minutes). Prints each round and the median ratio; returns the
/// median group size.
#[cfg(feature = "durable")]
fn calibrate(tokio_rt: &tokio::runtime::Runtime, rt: &SharedRuntime) -> u64 {
    let mut rounds = Vec::new();
    for _ in 0..ROUNDS {
        let dir = tempfile::tempdir().expect("temporary directory");
        let (acked, stats, riverbed) = tokio_rt.block_on(durable::riverbed(rt, dir.path()));
        assert_eq!(acked, durable::MESSAGES, "every message acknowledged");
        let batch = (stats.operations / stats.commits.max(1)).max(1);
        let dir = tempfile::tempdir().expect("temporary directory");
        let floor = durable::fjall_floor(dir.path(), batch);
        let rate = |d: Duration| durable::MESSAGES as f64 / d.as_secs_f64();
        let ratio = floor.as_secs_f64() / riverbed.as_secs_f64();
        println!(
            "queue_durable round: {} operations in {} commits ({batch} per commit): \
             riverbed {:.0} messages/s, fjall floor {:.0} messages/s, ratio {ratio:.2}",
            stats.operations,
            stats.commits,
            rate(riverbed),
            rate(floor),
        );
        rounds.push((batch, ratio));
    }
    rounds.sort_by(|a, b| a.1.total_cmp(&b.1));
    println!(
        "queue_durable: median ratio riverbed / floor {:.2} over {ROUNDS} interleaved rounds",
        rounds[ROUNDS / 2].1
    );
    rounds.sort_by_key(|r| r.0);
    rounds[ROUNDS / 2].0
}

#[cfg(feature = "durable")]
fn durable(c: &mut Criterion) {
    let tokio_rt = runtime();
    let rt: SharedRuntime = Arc::new(BenchRuntime {
        handle: tokio_rt.handle().clone(),
    });
    let rt = &rt;
    // Measured when the group first runs (not when it is filtered out or listed).
    let batch = std::cell::OnceCell::new();
    let mut group = c.benchmark_group("queue_durable");
    group
        .sample_size(10)
        .throughput(Throughput::Elements(durable::MESSAGES));
    group.bench_function("fjall_sync_all_same_batch", |b| {
        let batch = *batch.get_or_init(|| calibrate(&tokio_rt, rt));
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().expect("temporary directory");
                total += durable::fjall_floor(dir.path(), batch);
            }
            total
        })
    });
    group.bench_function("riverbed_sync_all", |b| {
        b.to_async(&tokio_rt).iter_custom(|iters| async move {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().expect("temporary directory");
                let (acked, _, elapsed) = durable::riverbed(rt, dir.path()).await;
                total += elapsed;
                assert_eq!(acked, durable::MESSAGES, "every message acknowledged");
            }
            total
        })
    });
    group.finish();
}

#[cfg(feature = "durable")]
criterion_group!(benches, memory, durable);
#[cfg(not(feature = "durable"))]
criterion_group!(benches, memory);
criterion_main!(benches);
