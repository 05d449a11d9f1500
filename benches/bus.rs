//! Event bus benchmarks, each group with its peers or floors in the same run.
//!
//! * `bus_1to1`: one publisher, one subscriber, vs a bounded `async-channel` (the floor).
//! * `bus_fanout_drop`: 1 → 4/16/64 subscribers; riverbed `DropOldest` vs
//!   `tokio::sync::broadcast` (which overwrites its oldest slot: the same loss policy).
//! * `bus_fanout_block`: 1 → 4/16/64; riverbed `Block` vs `async-broadcast` (whose
//!   sender waits when full: the same lossless policy).
//!
//! Like for like: a riverbed event is an `Envelope` (id, seq, kind, timestamp, source,
//! payload: 80 bytes), stamped with the wall clock at publish. Each peer runs twice: with
//! a `PeerEvent` carrying the same fields, built the same way (`*_event`), and with a
//! bare `u64` (`*_u64`), the raw floor.
//!
//! Fan-out throughput counts events **delivered**, not published: each iteration's time
//! is scaled by `expected / delivered`, so a side that loses events under load is not
//! credited for events nobody received. The delivered share is printed once per side.
//!
//! After the groups, a latency report (publish → receive p50/p99, 1→1 and 1→16) and the
//! heap bytes per idle subscriber are printed.
//!
//! Run: `cargo bench --bench bus` (add `-- --quick` for a fast pass).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use futures::StreamExt;
use riverbed::bus::{EventBus, Filter, Overflow, SubscribeOptions};
use riverbed::stats::Histogram;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[path = "support/timing.rs"]
#[allow(dead_code)] // the benches that check counts use the rest
mod timing;
use timing::{runtime, time_delivered};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

const EVENTS: u64 = 100_000;
const CAPACITY: usize = 1024;

/// The fields of a riverbed `Envelope<u64, u8>`, for peers: like for like.
#[derive(Clone, Debug)]
#[allow(dead_code)] // the fields are carried, not read
struct PeerEvent {
    id: u128,
    seq: u64,
    kind: u8,
    timestamp: SystemTime,
    source: Option<&'static str>,
    payload: u64,
}

fn peer_event(i: u64) -> PeerEvent {
    PeerEvent {
        id: u128::from(i),
        seq: i,
        kind: 0,
        timestamp: SystemTime::now(),
        source: None,
        payload: i,
    }
}

fn bare(i: u64) -> u64 {
    i
}

async fn riverbed_fanout(subs: usize, overflow: Overflow) -> u64 {
    let bus: EventBus<u64, u8> = EventBus::new();
    let delivered = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..subs {
        let mut sub = bus
            .subscribe_with(
                Filter::all(),
                SubscribeOptions::new()
                    .capacity(CAPACITY)
                    .overflow(overflow),
            )
            .expect("subscribe");
        let delivered = Arc::clone(&delivered);
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            while let Some(item) = sub.next().await {
                if item.is_ok() {
                    n += 1;
                }
            }
            delivered.fetch_add(n, Ordering::Relaxed);
        }));
    }
    for i in 0..EVENTS {
        bus.emit(0, i).await.expect("publish");
    }
    bus.close();
    for t in tasks {
        t.await.expect("subscriber");
    }
    delivered.load(Ordering::Relaxed)
}

async fn tokio_broadcast_fanout<T: Clone + Send + 'static>(subs: usize, make: fn(u64) -> T) -> u64 {
    let (tx, _) = tokio::sync::broadcast::channel::<T>(CAPACITY);
    let delivered = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..subs {
        let mut rx = tx.subscribe();
        let delivered = Arc::clone(&delivered);
        tasks.push(tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            let mut n = 0;
            loop {
                match rx.recv().await {
                    Ok(_) => n += 1,
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => break,
                }
            }
            delivered.fetch_add(n, Ordering::Relaxed);
        }));
    }
    for i in 0..EVENTS {
        let _ = tx.send(make(i));
    }
    drop(tx);
    for t in tasks {
        t.await.expect("receiver");
    }
    delivered.load(Ordering::Relaxed)
}

async fn async_broadcast_fanout<T: Clone + Send + Sync + 'static>(
    subs: usize,
    make: fn(u64) -> T,
) -> u64 {
    let (tx, rx) = async_broadcast::broadcast::<T>(CAPACITY);
    let delivered = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..subs {
        let mut rx = rx.clone();
        let delivered = Arc::clone(&delivered);
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            while rx.next().await.is_some() {
                n += 1;
            }
            delivered.fetch_add(n, Ordering::Relaxed);
        }));
    }
    drop(rx);
    for i in 0..EVENTS {
        tx.broadcast(make(i)).await.expect("broadcast");
    }
    drop(tx);
    for t in tasks {
        t.await.expect("receiver");
    }
    delivered.load(Ordering::Relaxed)
}

async fn async_channel_1to1<T: Send + 'static>(make: fn(u64) -> T) -> u64 {
    let (tx, rx) = async_channel::bounded::<T>(CAPACITY);
    let consumer = tokio::spawn(async move {
        let mut n = 0u64;
        while rx.recv().await.is_ok() {
            n += 1;
        }
        n
    });
    for i in 0..EVENTS {
        tx.send(make(i)).await.expect("send");
    }
    drop(tx);
    consumer.await.expect("consumer")
}

fn one_to_one(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("bus_1to1");
    group
        .sample_size(10)
        .throughput(Throughput::Elements(EVENTS));
    group.bench_function("riverbed", |b| {
        time_delivered(b, &rt, EVENTS, "1to1/riverbed", || {
            riverbed_fanout(1, Overflow::Block)
        })
    });
    group.bench_function("async_channel_event", |b| {
        time_delivered(b, &rt, EVENTS, "1to1/async_channel_event", || {
            async_channel_1to1(peer_event)
        })
    });
    group.bench_function("async_channel_u64", |b| {
        time_delivered(b, &rt, EVENTS, "1to1/async_channel_u64", || {
            async_channel_1to1(bare)
        })
    });
    group.finish();
}

fn fanout(c: &mut Criterion) {
    let rt = runtime();
    for (name, lossy) in [("bus_fanout_drop", true), ("bus_fanout_block", false)] {
        let mut group = c.benchmark_group(name);
        group.sample_size(10);
        let policy = if lossy {
            Overflow::DropOldest
        } else {
            Overflow::Block
        };
        let peer = if lossy {
            "tokio_broadcast"
        } else {
            "async_broadcast"
        };
        for subs in [4usize, 16, 64] {
            let expected = EVENTS * subs as u64;
            group.throughput(Throughput::Elements(expected));
            let label = |side: &str| format!("{name}/{side}/{subs}");
            group.bench_function(BenchmarkId::new("riverbed", subs), |b| {
                time_delivered(b, &rt, expected, &label("riverbed"), || {
                    riverbed_fanout(subs, policy)
                })
            });
            for (suffix, event) in [("event", true), ("u64", false)] {
                let side = format!("{peer}_{suffix}");
                group.bench_function(BenchmarkId::new(side.as_str(), subs), |b| {
                    time_delivered(b, &rt, expected, &label(&side), move || async move {
                        match (lossy, event) {
                            (true, true) => tokio_broadcast_fanout(subs, peer_event).await,
                            (true, false) => tokio_broadcast_fanout(subs, bare).await,
                            (false, true) => async_broadcast_fanout(subs, peer_event).await,
                            (false, false) => async_broadcast_fanout(subs, bare).await,
                        }
                    })
                });
            }
        }
        group.finish();
    }
}

/// Publish → receive latency at a steady, unsaturated rate.
fn latency_report() {
    let rt = runtime();
    const SAMPLES: usize = 20_000;
    for subs in [1usize, 16] {
        let riverbed = rt.block_on(async {
            let bus: EventBus<Instant, u8> = EventBus::new();
            let hist = Arc::new(Histogram::new());
            let mut tasks = Vec::new();
            for _ in 0..subs {
                let mut sub = bus.subscribe(Filter::all());
                let hist = Arc::clone(&hist);
                tasks.push(tokio::spawn(async move {
                    while let Some(Ok(e)) = sub.next().await {
                        hist.record(e.payload.elapsed());
                    }
                }));
            }
            for _ in 0..SAMPLES {
                bus.emit(0, Instant::now()).await.expect("publish");
                // Unsaturated: give receivers a moment between events.
                tokio::task::yield_now().await;
                spin(Duration::from_micros(2));
            }
            bus.close();
            for t in tasks {
                t.await.expect("task");
            }
            hist.snapshot()
        });
        let peer = rt.block_on(async {
            let hist = Arc::new(Histogram::new());
            let mut tasks = Vec::new();
            let (tx, rx) = async_broadcast::broadcast::<(Instant, PeerEvent)>(CAPACITY);
            for _ in 0..subs {
                let mut rx = rx.clone();
                let hist = Arc::clone(&hist);
                tasks.push(tokio::spawn(async move {
                    while let Some((sent, _event)) = rx.next().await {
                        hist.record(sent.elapsed());
                    }
                }));
            }
            drop(rx);
            for _ in 0..SAMPLES {
                tx.broadcast((Instant::now(), peer_event(0)))
                    .await
                    .expect("broadcast");
                tokio::task::yield_now().await;
                spin(Duration::from_micros(2));
            }
            drop(tx);
            for t in tasks {
                t.await.expect("task");
            }
            hist.snapshot()
        });
        println!(
            "latency 1->{subs}: riverbed p50 {:?} p99 {:?} | async-broadcast (event) p50 {:?} p99 {:?}",
            riverbed.p50, riverbed.p99, peer.p50, peer.p99
        );
    }
}

fn spin(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// Heap bytes one idle subscriber costs (allocated by `subscribe`, still held).
fn idle_subscriber_bytes() {
    let bus: EventBus<u64, u8> = EventBus::new();
    const N: usize = 1000;
    let region = Region::new(GLOBAL);
    let subs: Vec<_> = (0..N).map(|_| bus.subscribe(Filter::all())).collect();
    let stats = region.change();
    let held = stats.bytes_allocated as isize - stats.bytes_deallocated as isize;
    // Subtract the growth of the vectors that hold the subscriptions.
    let containers = (subs.capacity() * std::mem::size_of_val(&subs[0])) as isize;
    println!(
        "idle subscriber: {} bytes each (+{} bytes for the Subscription value itself)",
        (held - containers) / N as isize,
        std::mem::size_of_val(&subs[0])
    );
    drop(subs);
}

criterion_group!(benches, one_to_one, fanout);

fn main() {
    benches();
    latency_report();
    idle_subscriber_bytes();
    Criterion::default().configure_from_args().final_summary();
}
