//! Recording cost of the statistics types, against a bare `AtomicU64::fetch_add`.
//!
//! `single/*` records from one thread. `contended_2/*` runs two threads that record
//! into the same value at once; the time reported is the wall-clock time per
//! operation on each thread (both threads do `iters` operations).

use std::hint::black_box;
use std::sync::Barrier;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use riverbed::stats::{Counter, Histogram};

/// Latency-like values spread over 10 ns .. ~10 ms, so recording hits many buckets.
fn sample_values() -> Vec<u64> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let bits = 4 + (state % 20) as u32;
            (state >> 24) & ((1 << bits) - 1) | 1 << (bits - 1)
        })
        .collect()
}

/// Runs `op(i)` for `i in 0..iters` on `threads` threads at once and returns the
/// wall-clock time from the common start to the last thread finishing.
fn contended(threads: usize, iters: u64, op: &(dyn Fn(u64) + Sync)) -> Duration {
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                barrier.wait();
                for i in 0..iters {
                    op(i);
                }
            });
        }
        barrier.wait();
        let start = Instant::now();
        // Leaving the scope joins the threads.
        start
    })
    .elapsed()
}

fn single(c: &mut Criterion) {
    let values = sample_values();
    let mut group = c.benchmark_group("single");

    let atomic = AtomicU64::new(0);
    group.bench_function("baseline_atomic_fetch_add", |b| {
        b.iter(|| atomic.fetch_add(1, Ordering::Relaxed))
    });

    let counter = Counter::new();
    group.bench_function("counter_inc", |b| b.iter(|| counter.inc()));

    let histogram = Histogram::new();
    let mut i = 0usize;
    group.bench_function("histogram_record_nanos", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            histogram.record_nanos(black_box(values[i]));
        })
    });

    let steady = Histogram::new();
    group.bench_function("histogram_record_nanos_same_value", |b| {
        b.iter(|| steady.record_nanos(black_box(1_500)))
    });

    group.bench_function("histogram_snapshot", |b| b.iter(|| histogram.snapshot()));
    group.finish();
}

fn contended_2(c: &mut Criterion) {
    let values = sample_values();
    let mut group = c.benchmark_group("contended_2");

    let atomic = AtomicU64::new(0);
    group.bench_function("baseline_atomic_fetch_add", |b| {
        b.iter_custom(|iters| {
            contended(2, iters, &|_| {
                atomic.fetch_add(1, Ordering::Relaxed);
            })
        })
    });

    let counter = Counter::new();
    group.bench_function("counter_inc", |b| {
        b.iter_custom(|iters| contended(2, iters, &|_| counter.inc()))
    });

    let histogram = Histogram::new();
    group.bench_function("histogram_record_nanos", |b| {
        b.iter_custom(|iters| {
            contended(2, iters, &|i| {
                histogram.record_nanos(black_box(values[(i & 1023) as usize]))
            })
        })
    });
    group.finish();
}

criterion_group!(benches, single, contended_2);
criterion_main!(benches);
