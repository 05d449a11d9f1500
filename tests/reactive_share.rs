//! `share` and `replay`: hot, multicast streams over one upstream, on every runtime of
//! the matrix; exact times as marble diagrams on the virtual clock; a bounded stress
//! test with subscribers on several tasks.
//!
//! The stress tests repeat their scenario a bounded number of times;
//! `RIVERBED_STRESS_ITERS` multiplies the repetitions for a longer soak.

mod common;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use common::marble::{FRAME, cold, record};
use common::{Flavor, matrix, run};
use futures::channel::mpsc;
use futures::stream::{self, FusedStream};
use futures::task::{ArcWake, waker};
use futures::{FutureExt, SinkExt, Stream, StreamExt};
use riverbed::reactive::{ReactiveExt, Share, ShareOptions};
use riverbed::runtime::{JoinHandle, RuntimeExt, SharedRuntime};

/// What a probed upstream reports.
#[derive(Debug, Default)]
struct Probe {
    polls: AtomicUsize,
    pulled: AtomicUsize,
    dropped: AtomicBool,
}

impl Probe {
    /// How often the upstream was polled.
    fn polls(&self) -> usize {
        self.polls.load(Ordering::SeqCst)
    }

    /// How many items the upstream gave.
    fn pulled(&self) -> usize {
        self.pulled.load(Ordering::SeqCst)
    }

    /// Whether the upstream was dropped.
    fn dropped(&self) -> bool {
        self.dropped.load(Ordering::SeqCst)
    }
}

/// A stream that reports its polls, items and drop to a [`Probe`].
struct Probed<S> {
    inner: S,
    probe: Arc<Probe>,
}

fn probed<S: Stream + Unpin>(inner: S) -> (Probed<S>, Arc<Probe>) {
    let probe = Arc::new(Probe::default());
    let probed = Probed {
        inner,
        probe: probe.clone(),
    };
    (probed, probe)
}

impl<S: Stream + Unpin> Stream for Probed<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        self.probe.polls.fetch_add(1, Ordering::SeqCst);
        let next = self.inner.poll_next_unpin(cx);
        if let Poll::Ready(Some(_)) = next {
            self.probe.pulled.fetch_add(1, Ordering::SeqCst);
        }
        next
    }
}

impl<S> Drop for Probed<S> {
    fn drop(&mut self) {
        self.probe.dropped.store(true, Ordering::SeqCst);
    }
}

/// A subscriber, boxed, so that an upstream can hold one of its own.
type BoxedShare = Pin<Box<dyn Stream<Item = u32> + Send>>;

/// An upstream whose first poll wakes its waker and then polls the subscriber in
/// `slot` (which finds the turn taken), then is pending; its second gives 1, its
/// third ends.
struct WakesDuringItsTurn {
    slot: Arc<Mutex<Option<BoxedShare>>>,
    inside_waker: Arc<CountingWaker>,
    polls: usize,
}

impl Stream for WakesDuringItsTurn {
    type Item = u32;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<u32>> {
        self.polls += 1;
        match self.polls {
            1 => {
                cx.waker().wake_by_ref();
                let mut inside = self.slot.lock().unwrap().take().expect("a subscriber");
                assert!(poll_once(&mut inside, &self.inside_waker).is_pending());
                *self.slot.lock().unwrap() = Some(inside);
                Poll::Pending
            }
            2 => Poll::Ready(Some(1)),
            _ => Poll::Ready(None),
        }
    }
}

/// A waker that counts its wakes.
#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl CountingWaker {
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl ArcWake for CountingWaker {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        arc_self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Polls `stream` once with `counter` as its waker.
fn poll_once<S: Stream + Unpin>(
    stream: &mut S,
    counter: &Arc<CountingWaker>,
) -> Poll<Option<S::Item>> {
    let waker = waker(counter.clone());
    stream.poll_next_unpin(&mut Context::from_waker(&waker))
}

/// Everything `stream` has ready now, polled with `counter`; stops at the first
/// `Pending`, and fails on the end.
fn ready_now<S: Stream + Unpin>(stream: &mut S, counter: &Arc<CountingWaker>) -> Vec<S::Item> {
    let mut out = Vec::new();
    loop {
        match poll_once(stream, counter) {
            Poll::Ready(Some(item)) => out.push(item),
            Poll::Ready(None) => panic!("the stream ended"),
            Poll::Pending => return out,
        }
    }
}

/// Reads `share` to its end, and checks that it stays ended.
async fn drain<S>(mut share: Share<S>) -> Vec<S::Item>
where
    S: Stream,
    S::Item: Clone + Send + Sync,
{
    let mut out = Vec::new();
    while let Some(item) = share.next().await {
        out.push(item);
    }
    assert!(share.is_terminated(), "an ended subscriber says so");
    assert!(
        share.next().await.is_none(),
        "an ended subscriber stays ended"
    );
    out
}

/// Reads `share` to its end in a task of its own.
fn spawn_drain<S>(rt: &SharedRuntime, share: Share<S>) -> JoinHandle<Vec<S::Item>>
where
    S: Stream + Send + 'static,
    S::Item: Clone + Send + Sync + 'static,
{
    rt.spawn(drain(share))
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

/// `base` repetitions, times `RIVERBED_STRESS_ITERS` if set.
fn iterations(base: usize) -> usize {
    let factor = std::env::var("RIVERBED_STRESS_ITERS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1);
    base * factor.max(1)
}

/// A payload that counts its live copies, to see when everything is let go.
struct Tracked(Arc<AtomicUsize>);

impl Tracked {
    fn new(live: &Arc<AtomicUsize>) -> Self {
        live.fetch_add(1, Ordering::SeqCst);
        Tracked(Arc::clone(live))
    }
}

impl Clone for Tracked {
    fn clone(&self) -> Self {
        Tracked::new(&self.0)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

matrix! {
    /// Three subscribers, two of them on tasks of their own, receive the same items in
    /// order, each once; the upstream runs once for all of them.
    async fn multicast_same_items_in_order_once(rt) {
        const N: u32 = 300;
        let (upstream, probe) = probed(stream::iter(0..N));
        let first = upstream.share_with(ShareOptions::new().capacity(8));
        // All subscribe before any of them can run.
        let (second, third) = (first.clone(), first.clone());
        let second = spawn_drain(&rt, second);
        let third = spawn_drain(&rt, third);
        let expected: Vec<u32> = (0..N).collect();
        assert_eq!(drain(first).await, expected);
        assert_eq!(second.await.expect("second subscriber"), expected);
        assert_eq!(third.await.expect("third subscriber"), expected);
        assert_eq!(probe.pulled(), N as usize, "each item was taken from upstream once");
        assert!(probe.dropped());
    }

    /// A subscriber receives what is published after it was created, not before.
    async fn a_later_subscriber_sees_only_later_items(rt) {
        let (tx, rx) = mpsc::unbounded::<u32>();
        let mut first = rx.share();
        tx.unbounded_send(1).unwrap();
        tx.unbounded_send(2).unwrap();
        // The turn publishes both items that are ready.
        assert_eq!(first.next().await, Some(1));
        let later = first.clone();
        tx.unbounded_send(3).unwrap();
        drop(tx);
        assert_eq!(drain(later).await, [3]);
        assert_eq!(first.subscriber_count(), 1);
        assert_eq!(drain(first.clone()).await, Vec::<u32>::new(), "after the end: the end");
        assert_eq!(drain(first).await, [2, 3]);
    }

    /// `replay(n)`: a new subscriber receives the last `n` items (all of them while
    /// fewer were published), then the live ones, with no gap and no duplicate; after
    /// the end, the last `n` and the end.
    async fn replay_gives_the_last_n_then_live(rt) {
        let (tx, rx) = mpsc::unbounded::<u32>();
        let mut first = rx.replay(3);
        tx.unbounded_send(0).unwrap();
        tx.unbounded_send(1).unwrap();
        assert_eq!(first.next().await, Some(0));
        // Two published, fewer than three: both.
        let early = first.clone();
        for n in 2..6 {
            tx.unbounded_send(n).unwrap();
        }
        assert_eq!(first.next().await, Some(1));
        // Its window is empty: this turn publishes 2..=5.
        assert_eq!(first.next().await, Some(2));
        let middle = first.clone();
        tx.unbounded_send(6).unwrap();
        tx.unbounded_send(7).unwrap();
        drop(tx);
        assert_eq!(drain(middle).await, [3, 4, 5, 6, 7]);
        assert_eq!(drain(early.clone()).await, [5, 6, 7], "after the end: the last 3, then the end");
        assert_eq!(drain(early).await, [0, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(drain(first).await, [3, 4, 5, 6, 7]);
    }

    /// Nothing polls the upstream before a subscriber asks for an item.
    async fn the_upstream_is_polled_lazily(rt) {
        let (upstream, probe) = probed(stream::iter(0..3u32));
        let mut first = upstream.share();
        let second = first.clone();
        let _ = format!("{first:?} {second:?}");
        assert_eq!(first.subscriber_count(), 2);
        assert_eq!(probe.polls(), 0, "sharing and cloning poll nothing");
        assert_eq!(first.next().await, Some(0));
        assert!(probe.polls() > 0);

        // Never asked: never polled, and dropped with its last subscriber.
        let (upstream, probe) = probed(stream::iter(0..3u32));
        let unused = upstream.replay(2);
        drop(unused.clone());
        drop(unused);
        assert_eq!(probe.polls(), 0);
        assert!(probe.dropped());
    }

    /// The upstream lives as long as one subscriber does, on whichever task.
    async fn the_upstream_is_dropped_with_the_last_subscriber(rt) {
        let (upstream, probe) = probed(stream::iter(0u32..).chain(stream::pending()));
        let mut first = upstream.share();
        let mut second = first.clone();
        let on_a_task = first.clone();
        let reader = rt.spawn(async move {
            let mut sub = on_a_task;
            let got: Vec<u32> = (&mut sub).take(5).collect().await;
            (got, sub.subscriber_count())
        });
        assert_eq!(reader.await.expect("reader"), ((0..5).collect(), 3));
        assert_eq!(first.subscriber_count(), 2, "the task's subscriber was dropped with it");
        assert!(!probe.dropped());
        assert_eq!(first.next().await, Some(0));
        assert_eq!(second.next().await, Some(0));
        let third = second.clone();
        drop(first);
        assert!(!probe.dropped());
        drop(second);
        assert!(!probe.dropped());
        assert_eq!(third.subscriber_count(), 1);
        drop(third);
        assert!(probe.dropped(), "dropped with the last subscriber");
    }

    /// An upstream that ends is dropped then, while subscribers are still reading.
    async fn the_upstream_is_dropped_when_it_ends(rt) {
        let (upstream, probe) = probed(stream::iter(0..3u32));
        let first = upstream.share();
        let second = first.clone();
        assert_eq!(drain(first).await, [0, 1, 2]);
        assert!(probe.dropped());
        assert_eq!(drain(second).await, [0, 1, 2]);
    }

    /// The end reaches every subscriber once, after everything it was sent; `Err`
    /// items are items like any other.
    async fn the_end_and_err_items_reach_every_subscriber(rt) {
        let items: Vec<Result<u32, String>> = vec![Ok(1), Err("bad".into()), Ok(2)];
        let first = stream::iter(items.clone()).share();
        // Both subscribe before the task can run.
        let (second, third) = (first.clone(), first.clone());
        let second = spawn_drain(&rt, second);
        assert_eq!(drain(first).await, items);
        assert_eq!(drain(third).await, items);
        assert_eq!(second.await.expect("second subscriber"), items);
    }

    /// A slow subscriber holds the upstream back: it is never more than twice the
    /// capacity (plus the item waiting for room) ahead of what the slow one read,
    /// while the fast one receives everything.
    async fn a_slow_subscriber_bounds_how_far_the_upstream_runs_ahead(rt) {
        const CAP: usize = 4;
        const N: u32 = 200;
        let (upstream, probe) = probed(stream::iter(0..N));
        let mut slow = upstream.share_with(ShareOptions::new().capacity(CAP));
        let (progress, mut fast_progress) = mpsc::unbounded::<usize>();
        let mut fast = slow.clone();
        let fast = rt.spawn(async move {
            let mut got = Vec::new();
            while let Some(item) = fast.next().await {
                got.push(item);
                // The reader may have stopped listening: that is fine.
                let _ = progress.unbounded_send(got.len());
            }
            got
        });
        let (mut read, mut fast_read, mut max_ahead) = (0usize, 0usize, 0usize);
        while read < N as usize {
            // Let the fast one run as far as this one's buffer allows.
            let target = (read + CAP).min(N as usize);
            while fast_read < target {
                fast_read = fast_progress.next().await.expect("the fast reader runs");
            }
            assert_eq!(slow.next().await, Some(read as u32));
            read += 1;
            let ahead = probe.pulled() - read;
            assert!(ahead <= 2 * CAP + 1, "{ahead} items ahead after {read}");
            max_ahead = max_ahead.max(ahead);
        }
        assert_eq!(slow.next().await, None);
        assert_eq!(fast.await.expect("fast reader"), (0..N).collect::<Vec<_>>());
        assert!(max_ahead >= CAP, "the fast subscriber ran ahead ({max_ahead})");
    }

    /// With `Block`, a subscriber that is never read stops the others once its
    /// buffer is full; dropping it wakes them and lets them go on, with nothing lost.
    async fn an_idle_subscriber_holds_the_others_back_until_dropped(rt) {
        const CAP: usize = 4;
        let (upstream, probe) = probed(stream::iter(0..20u32));
        let idle = upstream.share_with(ShareOptions::new().capacity(CAP));
        let mut reader = idle.clone();
        let counter = Arc::new(CountingWaker::default());
        let mut got = ready_now(&mut reader, &counter);
        assert_eq!(got, [0, 1, 2, 3]);
        // One more was taken: it waits for room, it is not lost.
        assert_eq!(probe.pulled(), CAP + 1);
        assert_eq!(ready_now(&mut reader, &counter), Vec::<u32>::new());
        let woken = counter.count();
        drop(idle);
        assert!(counter.count() > woken, "the waiting subscriber is woken");
        got.extend(drain(reader).await);
        assert_eq!(got, (0..20).collect::<Vec<_>>());
    }

    /// An item the upstream gave to a driver that leaves before there is room for
    /// it is delivered by whoever drives next.
    async fn an_item_waiting_for_room_outlives_its_driver(rt) {
        let (upstream, probe) = probed(stream::iter(0..6u32));
        let slow = upstream.share_with(ShareOptions::new().capacity(2));
        let mut driver = slow.clone();
        let mut other = slow.clone();
        let mut slow = slow;
        let counter = Arc::new(CountingWaker::default());
        assert_eq!(ready_now(&mut driver, &counter), [0, 1]);
        assert_eq!(probe.pulled(), 3, "item 2 waits for room");
        drop(driver);
        assert_eq!(ready_now(&mut other, &counter), [0, 1]);
        // `slow` makes room; `other` is woken and publishes item 2.
        let woken = counter.count();
        assert_eq!(slow.next().await, Some(0));
        assert!(counter.count() > woken);
        assert_eq!(other.next().await, Some(2));
        drop(slow);
        assert_eq!(drain(other).await, [3, 4, 5]);
    }

    /// The upstream's wakeup reaches every subscriber waiting for an item, so one
    /// that drove it and is never polled again leaves no one stranded.
    async fn a_wakeup_of_the_upstream_reaches_every_waiting_subscriber(rt) {
        let (tx, rx) = mpsc::unbounded::<u32>();
        let mut stays = rx.share();
        let mut leaves = stays.clone();
        let (stays_waker, leaves_waker) = (Arc::new(CountingWaker::default()), Arc::new(CountingWaker::default()));
        assert!(poll_once(&mut stays, &stays_waker).is_pending());
        // Polled last: the upstream holds the wakeup of this one's turn.
        assert!(poll_once(&mut leaves, &leaves_waker).is_pending());
        tx.unbounded_send(7).unwrap();
        assert!(stays_waker.count() > 0, "woken, though another drove last");
        assert_eq!(poll_once(&mut stays, &stays_waker), Poll::Ready(Some(7)));
        drop(leaves);
        tx.unbounded_send(8).unwrap();
        drop(tx);
        assert_eq!(drain(stays).await, [8]);
    }

    /// A subscriber that finds the turn taken, after the upstream woke during that
    /// turn, is woken when the turn ends: the driver may never be polled again. (The
    /// upstream polls the other subscriber itself, which is how the race between two
    /// threads plays out on one.)
    async fn a_wakeup_during_a_turn_reaches_who_found_it_taken(rt) {
        let slot: Arc<Mutex<Option<BoxedShare>>> = Arc::new(Mutex::new(None));
        let inside_waker = Arc::new(CountingWaker::default());
        let upstream = WakesDuringItsTurn {
            slot: slot.clone(),
            inside_waker: inside_waker.clone(),
            polls: 0,
        };
        let mut driver = upstream.share();
        *slot.lock().unwrap() = Some(Box::pin(driver.clone()));
        let driver_waker = Arc::new(CountingWaker::default());
        assert!(poll_once(&mut driver, &driver_waker).is_pending());
        let mut other = slot.lock().unwrap().take().expect("put back after its poll");
        assert!(inside_waker.count() > 0, "woken when the turn ended");
        // It takes over; the driver is not polled again.
        assert_eq!(poll_once(&mut other, &inside_waker), Poll::Ready(Some(1)));
        assert_eq!(poll_once(&mut other, &inside_waker), Poll::Ready(None));
    }

    /// The subscriber that drives is dropped mid-stream (its task aborted); the
    /// others take over and receive everything.
    async fn the_driver_can_leave_mid_stream(rt) {
        const N: u32 = 100;
        let (mut tx, rx) = mpsc::channel::<u32>(4);
        let (go, wait_for_go) = futures::channel::oneshot::channel::<()>();
        let first = rx.share_with(ShareOptions::new().capacity(8));
        let (reached, mut reached_rx) = mpsc::unbounded::<()>();
        let mut driver = first.clone();
        let others: Vec<_> = (0..2).map(|_| spawn_drain(&rt, first.clone())).collect();
        drop(first);
        let driver = rt.spawn(async move {
            for expected in 0..10 {
                assert_eq!(driver.next().await, Some(expected));
            }
            let _ = reached.unbounded_send(());
            // Reads on, until aborted.
            while driver.next().await.is_some() {}
        });
        let producer = rt.spawn(async move {
            for n in 0..20 {
                tx.send(n).await.expect("the shared stream is open");
            }
            // The rest once the driver is gone.
            wait_for_go.await.expect("go");
            for n in 20..N {
                tx.send(n).await.expect("the shared stream is open");
            }
        });
        reached_rx.next().await.expect("the driver read 10 items");
        driver.abort();
        assert!(driver.await.is_err(), "the driver was aborted");
        go.send(()).expect("the producer waits");
        producer.await.expect("producer");
        for other in others {
            assert_eq!(other.await.expect("other subscriber"), (0..N).collect::<Vec<_>>());
        }
    }

    /// Subscribers come and go: the count follows, and once all are gone every item
    /// (in the buffers, the replay history and the upstream) has been let go.
    async fn subscribers_are_counted_and_let_go(rt) {
        let live = Arc::new(AtomicUsize::new(0));
        let items = {
            let live = live.clone();
            stream::iter(0..50u32).map(move |n| (n, Tracked::new(&live)))
        };
        let mut first = items.share_with(ShareOptions::new().capacity(8).replay(2));
        let second = first.clone();
        let third = first.clone();
        assert_eq!(first.subscriber_count(), 3);
        drop(third);
        assert_eq!(first.subscriber_count(), 2);
        for n in 0..5 {
            assert_eq!(first.next().await.map(|(n, _)| n), Some(n));
        }
        assert!(live.load(Ordering::SeqCst) > 0);
        drop(second);
        assert_eq!(first.subscriber_count(), 1);
        let mut rest = Vec::new();
        while let Some((n, _)) = first.next().await {
            rest.push(n);
        }
        assert_eq!(rest, (5..50).collect::<Vec<_>>());
        let late = first.clone();
        assert_eq!(late.subscriber_count(), 1, "a subscriber made after the end is not counted");
        assert_eq!(drain(late).await.iter().map(|(n, _)| *n).collect::<Vec<_>>(), [48, 49]);
        drop(first);
        assert_eq!(live.load(Ordering::SeqCst), 0, "every copy was let go");
    }

    /// A panic of the upstream reaches the subscriber that drove it; the shared stream
    /// is closed, so every subscriber receives what was published, then ends.
    async fn a_panicking_upstream_ends_the_shared_stream(rt) {
        let upstream = stream::iter(0..5u32).map(|n| {
            assert!(n != 2, "upstream failure at 2");
            n
        });
        let mut driver = upstream.share();
        let other = driver.clone();
        let outcome = AssertUnwindSafe(driver.next()).catch_unwind().await;
        assert!(outcome.is_err(), "the driver sees the panic");
        assert_eq!(drain(other).await, [0, 1]);
        assert_eq!(drain(driver).await, [0, 1]);
    }

    /// Stress: subscribers on tasks of their own, a producer on another, small
    /// buffers; every subscriber receives every item, in order.
    async fn stress_every_subscriber_receives_everything(rt) {
        for round in 0..iterations(3) {
            share_stress_once(&rt, 4 + round % 3, 2_000).await;
        }
    }

    /// Stress: subscribers join mid-stream with `replay`, from tasks of their own;
    /// each receives a run of consecutive items to the end, starting no later than
    /// the item after the one its parent had read.
    async fn stress_replay_joiners_get_no_gap_and_no_duplicate(rt) {
        for _ in 0..iterations(3) {
            replay_stress_once(&rt, 2_000).await;
        }
    }
}

async fn share_stress_once(rt: &SharedRuntime, subscribers: usize, n: u32) {
    let (mut tx, rx) = mpsc::channel::<u32>(8);
    let shared = rx.share_with(ShareOptions::new().capacity(4));
    let readers: Vec<_> = (0..subscribers)
        .map(|i| {
            let mut sub = shared.clone();
            rt.spawn(async move {
                let mut got = Vec::with_capacity(n as usize);
                while let Some(item) = sub.next().await {
                    got.push(item);
                    // Readers of different speeds.
                    if got.len() % (i + 1) == 0 {
                        yield_now().await;
                    }
                }
                got
            })
        })
        .collect();
    // The handle made by `share` is a subscriber too: it must not hold the others.
    drop(shared);
    let producer = rt.spawn(async move {
        for item in 0..n {
            tx.send(item).await.expect("the shared stream is open");
            if item % 16 == 0 {
                yield_now().await;
            }
        }
    });
    producer.await.expect("producer");
    let expected: Vec<u32> = (0..n).collect();
    for (i, reader) in readers.into_iter().enumerate() {
        assert_eq!(reader.await.expect("reader"), expected, "subscriber {i}");
    }
}

/// What a stress reader returns: its items, and for each clone it made, the item it
/// had read then and what the clone read.
type Joined = (Vec<u32>, Vec<(u32, JoinHandle<Vec<u32>>)>);

async fn replay_stress_once(rt: &SharedRuntime, n: u32) {
    const REPLAY: usize = 8;
    const CAP: usize = 4;
    let (mut tx, rx) = mpsc::channel::<u32>(8);
    let shared = rx.share_with(ShareOptions::new().capacity(CAP).replay(REPLAY));
    let join_at = [100, n / 3, n / 2, n - 10];
    let parents: Vec<JoinHandle<Joined>> = (0..2)
        .map(|_| {
            let mut sub = shared.clone();
            let rt = rt.clone();
            rt.clone().spawn(async move {
                let mut got = Vec::new();
                let mut joined = Vec::new();
                while let Some(item) = sub.next().await {
                    got.push(item);
                    if join_at.contains(&item) {
                        joined.push((item, spawn_drain(&rt, sub.clone())));
                    }
                    if item % 7 == 0 {
                        yield_now().await;
                    }
                }
                (got, joined)
            })
        })
        .collect();
    drop(shared);
    let producer = rt.spawn(async move {
        for item in 0..n {
            tx.send(item).await.expect("the shared stream is open");
        }
    });
    producer.await.expect("producer");
    for parent in parents {
        let (got, joined) = parent.await.expect("parent reader");
        assert_eq!(got, (0..n).collect::<Vec<_>>());
        assert_eq!(joined.len(), join_at.len());
        for (at, joiner) in joined {
            let seen = joiner.await.expect("joiner");
            let first = *seen.first().expect("a joiner receives at least the replay");
            assert!(first <= at + 1, "joined after {at}, started at {first}");
            assert_eq!(seen, (first..n).collect::<Vec<_>>(), "joined after {at}");
        }
    }
}

/// On the virtual clock: a subscriber created later receives the items from then on,
/// at the times the upstream gives them.
#[test]
fn marbles_share_is_hot() {
    run(Flavor::Virtual, |rt| async move {
        let first = cold(&rt, "-a-b-c-d|").share();
        let template = first.clone();
        let later_rt = rt.clone();
        let later = rt.spawn(async move {
            later_rt.sleep(FRAME * 4).await;
            let late = template.clone();
            drop(template);
            record(&later_rt, late).await
        });
        assert_eq!(record(&rt, first).await, "-a-b-c-d|");
        assert_eq!(later.await.expect("later subscriber"), "-c-d|");
    });
}

/// On the virtual clock: with `replay(1)`, a late subscriber receives the last item
/// at once, then the live ones; after the end, the last item and the end at once.
#[test]
fn marbles_replay_hands_over_to_live() {
    run(Flavor::Virtual, |rt| async move {
        let first = cold(&rt, "-a-b-c-d|").replay(1);
        let template = first.clone();
        let later_rt = rt.clone();
        let later = rt.spawn(async move {
            later_rt.sleep(FRAME * 4).await;
            let late = record(&later_rt, template.clone()).await;
            // Made after the end.
            let after_end = template.clone();
            drop(template);
            (late, record(&later_rt, after_end).await)
        });
        assert_eq!(record(&rt, first).await, "-a-b-c-d|");
        let (late, after_end) = later.await.expect("later subscribers");
        assert_eq!(late, "bc-d|");
        assert_eq!(after_end, "(d|)");
    });
}

/// On the virtual clock: an error item reaches every subscriber at its frame, and
/// the end with it.
#[test]
fn marbles_errors_are_multicast() {
    run(Flavor::Virtual, |rt| async move {
        let first = cold(&rt, "-a--#").share();
        let second = first.clone();
        let (a, b) = futures::join!(record(&rt, first), record(&rt, second));
        assert_eq!((a.as_str(), b.as_str()), ("-a--#", "-a--#"));
    });
}
