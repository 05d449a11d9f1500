//! Concurrency stress for the `EventBus`, on every runtime flavour: publishers in
//! tasks of their own, subscribers joining mid-stream with `subscribe_from`, `Block`
//! subscribers applying backpressure, lossy subscribers counting what they miss.
//!
//! Each test repeats its scenario a bounded number of times (chosen so the file runs
//! in seconds in a debug build); `RIVERBED_STRESS_ITERS` multiplies the repetitions
//! for a longer soak.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use common::matrix;
use futures::stream::StreamExt;
use riverbed::bus::{EventBus, Filter, Lagged, Overflow, SubscribeOptions, Subscription};
use riverbed::runtime::{RuntimeExt, SharedRuntime};

/// Kind: the publisher's number. Payload: its own counter.
type Bus = EventBus<u32, u32>;

/// `base` repetitions, times `RIVERBED_STRESS_ITERS` if set.
fn iterations(base: usize) -> usize {
    let factor = std::env::var("RIVERBED_STRESS_ITERS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1);
    base * factor.max(1)
}

/// Gives other tasks a turn: pending once, waking itself.
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

fn yield_now() -> YieldNow {
    YieldNow(false)
}

/// Spawns `publishers` tasks, each publishing `per_publisher` events of its own kind
/// with payloads `0..per_publisher`, yielding every `yield_every` events; each
/// returns the sequence numbers it got.
fn spawn_publishers(
    rt: &SharedRuntime,
    bus: &Bus,
    publishers: u32,
    per_publisher: u32,
    yield_every: u32,
) -> Vec<riverbed::runtime::JoinHandle<Vec<u64>>> {
    (0..publishers)
        .map(|kind| {
            let bus = bus.clone();
            rt.spawn(async move {
                let mut seqs = Vec::with_capacity(per_publisher as usize);
                for n in 0..per_publisher {
                    seqs.push(bus.emit(kind, n).await.expect("open").seq);
                    if n % yield_every == yield_every - 1 {
                        yield_now().await;
                    }
                }
                seqs
            })
        })
        .collect()
}

/// What a reader saw: `Ok((seq, kind, payload))` or the lag reports.
type Seen = Vec<Result<(u64, u32, u32), Lagged>>;

/// Reads `sub` to its end in a task of its own, yielding every `yield_every` items.
fn spawn_reader(
    rt: &SharedRuntime,
    sub: Subscription<u32, u32>,
    yield_every: usize,
) -> riverbed::runtime::JoinHandle<Seen> {
    spawn_reader_after(rt, sub, yield_every, async {})
}

/// As [`spawn_reader`], starting to read once `start` completes.
fn spawn_reader_after(
    rt: &SharedRuntime,
    mut sub: Subscription<u32, u32>,
    yield_every: usize,
    start: impl Future<Output = ()> + Send + 'static,
) -> riverbed::runtime::JoinHandle<Seen> {
    rt.spawn(async move {
        start.await;
        let mut seen = Vec::new();
        while let Some(item) = sub.next().await {
            seen.push(item.map(|e| (e.seq, e.kind, e.payload)));
            if seen.len() % yield_every == 0 {
                yield_now().await;
            }
        }
        seen
    })
}

fn ok_seqs(seen: &Seen) -> Vec<u64> {
    seen.iter()
        .map(|item| item.expect("Block subscribers never lag").0)
        .collect()
}

/// Publishers run while subscribers join with `subscribe_from` a recent seq; each
/// must see every matching event from its start, with no gap and no duplicate.
async fn handoff_once(rt: &SharedRuntime) {
    const PUBLISHERS: u32 = 3;
    const PER_PUBLISHER: u32 = 150;
    const JOINERS: u64 = 4;
    let total = u64::from(PUBLISHERS * PER_PUBLISHER);
    // History holds everything, so no `subscribe_from` below can be refused.
    let bus: Bus = EventBus::builder()
        .history(total as usize)
        .capacity(8)
        .build();
    let publishers = spawn_publishers(rt, &bus, PUBLISHERS, PER_PUBLISHER, 8);

    let mut readers = Vec::new();
    for j in 0..JOINERS {
        // Join once the publishers are about j/JOINERS of the way.
        while bus.next_seq() < total * j / JOINERS {
            yield_now().await;
        }
        let from = bus.next_seq().saturating_sub(3 + j * 5);
        let kind = (j % 2 == 1).then_some((j as u32) % PUBLISHERS);
        let filter = kind.map_or_else(Filter::all, Filter::kind);
        let sub = bus
            .subscribe_from(from, filter)
            .expect("the history holds it");
        readers.push((from, kind, spawn_reader(rt, sub, 5)));
    }

    let mut by_kind = Vec::new();
    for publisher in publishers {
        by_kind.push(publisher.await.expect("publisher"));
    }
    bus.close();

    // Every seq was handed out once.
    let mut all: Vec<u64> = by_kind.iter().flatten().copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..total).collect::<Vec<_>>());

    for (from, kind, reader) in readers {
        let seen = reader.await.expect("reader");
        let seqs = ok_seqs(&seen);
        let expected: Vec<u64> = match kind {
            None => (from..total).collect(),
            Some(k) => by_kind[k as usize]
                .iter()
                .copied()
                .filter(|&s| s >= from)
                .collect(),
        };
        assert_eq!(seqs, expected, "subscriber from {from}, kind {kind:?}");
        // Each publisher's events arrive in its own order, with the right seq.
        for item in &seen {
            let (seq, k, payload) = item.unwrap();
            assert_eq!(by_kind[k as usize][payload as usize], seq);
        }
    }
}

/// Which `(kind, payload)` a filter keeps, for the expected results.
type KeepFn = fn(u32, u32) -> bool;

/// Several publishers and `Block` subscribers with a small capacity: every
/// subscriber receives every matching event, in order, once.
async fn block_fan_in_once(rt: &SharedRuntime) {
    const PUBLISHERS: u32 = 4;
    const PER_PUBLISHER: u32 = 150;
    let bus: Bus = EventBus::new();
    let small = || SubscribeOptions::new().capacity(4);
    let filters: Vec<(&str, Filter<u32, u32>, KeepFn)> = vec![
        ("all", Filter::all(), |_, _| true),
        ("kind 0", Filter::kind(0), |k, _| k == 0),
        ("kinds 1, 2", Filter::kinds([1, 2]), |k, _| k == 1 || k == 2),
        (
            "payload % 3 == 0",
            Filter::predicate(|e| e.payload % 3 == 0),
            |_, p| p % 3 == 0,
        ),
    ];
    let mut readers = Vec::new();
    for (i, (name, filter, keep)) in filters.into_iter().enumerate() {
        let sub = bus.subscribe_with(filter, small()).unwrap();
        // Readers of different speeds.
        readers.push((name, keep, spawn_reader(rt, sub, 1 + i * 3)));
    }
    let publishers = spawn_publishers(rt, &bus, PUBLISHERS, PER_PUBLISHER, 16);
    let mut by_kind = Vec::new();
    for publisher in publishers {
        by_kind.push(publisher.await.expect("publisher"));
    }
    bus.close();

    for (name, keep, reader) in readers {
        let seen = reader.await.expect("reader");
        let seqs = ok_seqs(&seen);
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "{name}: out of order or duplicated"
        );
        let mut expected: Vec<u64> = (0..PUBLISHERS)
            .flat_map(|k| (0..PER_PUBLISHER).map(move |p| (k, p)))
            .filter(|&(k, p)| keep(k, p))
            .map(|(k, p)| by_kind[k as usize][p as usize])
            .collect();
        expected.sort_unstable();
        assert_eq!(seqs, expected, "{name}");
        for item in &seen {
            let (seq, k, payload) = item.unwrap();
            assert_eq!(by_kind[k as usize][payload as usize], seq, "{name}");
        }
    }
    let stats = bus.stats();
    assert_eq!(stats.published, u64::from(PUBLISHERS * PER_PUBLISHER));
    assert_eq!(stats.dropped(), 0);
}

/// Several publishers and slow lossy subscribers: what each receives is in order, and
/// what it receives plus what it is told it missed is exactly what matched.
async fn lossy_accounting_once(rt: &SharedRuntime) {
    const PUBLISHERS: u32 = 3;
    const PER_PUBLISHER: u32 = 200;
    let bus: Bus = EventBus::new();
    let lossy = |overflow| SubscribeOptions::new().capacity(4).overflow(overflow);
    let subs = [
        (Overflow::DropOldest, None),
        (Overflow::DropNewest, None),
        (Overflow::DropOldest, Some(1)),
        (Overflow::DropNewest, Some(2)),
    ];
    // The readers start once half the events are out, so each has fallen behind.
    let (go, started) = async_channel::bounded::<()>(1);
    let mut readers = Vec::new();
    for (overflow, kind) in subs {
        let filter = kind.map_or_else(Filter::all, Filter::kind);
        let sub = bus.subscribe_with(filter, lossy(overflow)).unwrap();
        let started = started.clone();
        let start = async move {
            // Closed, not sent: every reader sees it.
            assert!(started.recv().await.is_err());
        };
        readers.push((overflow, kind, spawn_reader_after(rt, sub, 1, start)));
    }
    let publishers = spawn_publishers(rt, &bus, PUBLISHERS, PER_PUBLISHER, 32);
    while bus.next_seq() < u64::from(PUBLISHERS * PER_PUBLISHER / 2) {
        yield_now().await;
    }
    drop(go);
    let mut by_kind = Vec::new();
    for publisher in publishers {
        by_kind.push(publisher.await.expect("publisher"));
    }
    bus.close();

    let (mut missed_oldest, mut missed_newest) = (0, 0);
    for (overflow, kind, reader) in readers {
        let seen = reader.await.expect("reader");
        let matching = match kind {
            None => u64::from(PUBLISHERS * PER_PUBLISHER),
            Some(_) => u64::from(PER_PUBLISHER),
        };
        let mut received = Vec::new();
        let mut missed = 0;
        for item in &seen {
            match item {
                Ok((seq, k, payload)) => {
                    assert!(kind.is_none_or(|want| want == *k));
                    assert_eq!(by_kind[*k as usize][*payload as usize], *seq);
                    received.push(*seq);
                }
                Err(lagged) => {
                    assert!(lagged.missed > 0, "a lag report of nothing");
                    missed += lagged.missed;
                }
            }
        }
        assert!(
            received.windows(2).all(|w| w[0] < w[1]),
            "{overflow:?} {kind:?}: out of order or duplicated"
        );
        assert!(
            missed > 0,
            "{overflow:?} {kind:?} fell behind but missed nothing"
        );
        assert_eq!(
            received.len() as u64 + missed,
            matching,
            "{overflow:?} {kind:?}: received {} and missed {missed}",
            received.len()
        );
        match overflow {
            Overflow::DropOldest => missed_oldest += missed,
            Overflow::DropNewest => missed_newest += missed,
            Overflow::Block => unreachable!(),
        }
    }
    let stats = bus.stats();
    assert_eq!(stats.dropped_oldest, missed_oldest);
    assert_eq!(stats.dropped_newest, missed_newest);
}

matrix! {
    /// `subscribe_from` hand-off from replay to live while publishers run.
    async fn subscribe_from_handoff(rt) {
        for _ in 0..iterations(100) {
            handoff_once(&rt).await;
        }
    }

    /// Concurrent publishers, `Block` subscribers: order and completeness.
    async fn block_fan_in(rt) {
        for _ in 0..iterations(20) {
            block_fan_in_once(&rt).await;
        }
    }

    /// Concurrent publishers, lossy subscribers: order and exact loss accounting.
    async fn lossy_accounting(rt) {
        for _ in 0..iterations(20) {
            lossy_accounting_once(&rt).await;
        }
    }
}
