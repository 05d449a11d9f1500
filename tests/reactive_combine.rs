//! Combining and stateful reactive operators: their semantics on every runtime of the
//! matrix; the time-dependent ones with exact frames as marble diagrams on the virtual
//! clock, and with wide margins (content and order only) on the real runtimes.

mod common;

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use common::marble::{FRAME, Marble, MarbleError, chars, cold, record, record_with, values};
use common::{Flavor, matrix, run, timed_matrix};
use futures::channel::mpsc;
use futures::stream::{self, FusedStream};
use futures::task::{ArcWake, waker};
use futures::{FutureExt, Stream, StreamExt};
use riverbed::reactive::ReactiveExt;
use riverbed::reactive::ops::combine_latest_all;
use riverbed::runtime::{RuntimeExt, SharedRuntime};

/// Counts its drops: proves that an operator let go of what held it.
#[derive(Debug)]
struct DropGuard(Arc<AtomicUsize>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A stream that gives `items`, then stays pending, and counts its drop in `drops`.
fn guarded<T: Unpin>(
    items: Vec<T>,
    drops: &Arc<AtomicUsize>,
) -> impl Stream<Item = T> + Unpin + use<T> {
    let guard = DropGuard(drops.clone());
    stream::iter(items)
        .chain(stream::pending())
        .map(move |item| {
            let _held = &guard;
            item
        })
}

/// A waker that counts its wakes.
struct CountingWaker(AtomicUsize);

impl ArcWake for CountingWaker {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        arc_self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Polls `stream` once with a counting waker: the result, and whether the poll woke
/// its own waker before returning (an operator yielding after its budget).
fn poll_once<S: Stream + Unpin>(stream: &mut S) -> (Poll<Option<S::Item>>, bool) {
    let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
    let waker = waker(counter.clone());
    let polled = Pin::new(stream).poll_next(&mut Context::from_waker(&waker));
    (polled, counter.0.load(Ordering::SeqCst) > 0)
}

/// The next item, if the stream has one ready now; `Err(())` when it is pending.
fn ready_next<S: Stream + Unpin>(stream: &mut S) -> Result<Option<S::Item>, ()> {
    stream.next().now_or_never().ok_or(())
}

matrix! {
    /// Both inputs always ready: they take turns, and every new item gives a tuple
    /// with the other's latest.
    async fn combine_latest_takes_turns(rt) {
        let out: Vec<_> = stream::iter(['a', 'b', 'c'])
            .combine_latest(stream::iter([1, 2]))
            .collect()
            .await;
        assert_eq!(out, [('a', 1), ('b', 1), ('b', 2), ('c', 2)]);

        // An input that never ends and is always ready cannot starve the other.
        let out: Vec<_> = stream::repeat('x')
            .combine_latest(stream::iter(1..=3))
            .take(6)
            .collect()
            .await;
        assert_eq!(out, [('x', 1), ('x', 1), ('x', 2), ('x', 2), ('x', 3), ('x', 3)]);
    }

    /// Nothing comes out until both inputs have an item; the first tuple holds the
    /// latest of each, not the first.
    async fn combine_latest_waits_for_both(rt) {
        let (a_tx, a) = mpsc::unbounded::<u32>();
        let (b_tx, b) = mpsc::unbounded::<&str>();
        let mut out = a.combine_latest(b);
        a_tx.unbounded_send(1).unwrap();
        a_tx.unbounded_send(2).unwrap();
        assert_eq!(ready_next(&mut out), Err(()));
        b_tx.unbounded_send("x").unwrap();
        assert_eq!(out.next().await, Some((2, "x")));
        b_tx.unbounded_send("y").unwrap();
        assert_eq!(out.next().await, Some((2, "y")));
        a_tx.unbounded_send(3).unwrap();
        assert_eq!(out.next().await, Some((3, "y")));
        assert_eq!(ready_next(&mut out), Err(()));
    }

    /// It ends when both inputs have ended; an input that ended keeps its last item.
    async fn combine_latest_ends_when_both_end(rt) {
        let (a_tx, a) = mpsc::unbounded::<u32>();
        let (b_tx, b) = mpsc::unbounded::<&str>();
        let mut out = a.combine_latest(b);
        a_tx.unbounded_send(1).unwrap();
        b_tx.unbounded_send("x").unwrap();
        assert_eq!(out.next().await, Some((1, "x")));
        drop(a_tx);
        assert_eq!(ready_next(&mut out), Err(()));
        assert!(!out.is_terminated());
        b_tx.unbounded_send("y").unwrap();
        assert_eq!(out.next().await, Some((1, "y")));
        drop(b_tx);
        assert_eq!(out.next().await, None);
        assert!(out.is_terminated());
        assert_eq!(out.next().await, None);
        assert_eq!(out.size_hint(), (0, Some(0)));
    }

    /// An input that ends without an item ends the stream at once, whichever side,
    /// even while the other input is still open.
    async fn combine_latest_ends_when_an_input_ends_empty(rt) {
        let (b_tx, b) = mpsc::unbounded::<u32>();
        b_tx.unbounded_send(1).unwrap();
        let mut out = stream::empty::<u32>().combine_latest(b);
        assert_eq!(out.next().await, None);
        assert!(out.is_terminated());

        let (a_tx, a) = mpsc::unbounded::<u32>();
        a_tx.unbounded_send(1).unwrap();
        let mut out = a.combine_latest(stream::empty::<u32>());
        assert_eq!(out.next().await, None);
        drop(a_tx);
    }

    /// An `Err` item is an ordinary item: paired, and the stream goes on.
    async fn combine_latest_error_items(rt) {
        let a = stream::iter([Ok(1), Err("bad"), Ok(3)]);
        let b = stream::iter([Ok::<char, &str>('x')]);
        let out: Vec<_> = a.combine_latest(b).collect().await;
        assert_eq!(
            out,
            [(Ok(1), Ok('x')), (Err("bad"), Ok('x')), (Ok(3), Ok('x'))]
        );
    }

    /// An input that is always ready while the other never gives an item cannot hold
    /// the poll: it returns after a budget and wakes itself to go on.
    async fn combine_latest_yields_after_a_budget(rt) {
        let mut out = stream::repeat(1).combine_latest(stream::pending::<u32>());
        let (polled, woke) = poll_once(&mut out);
        assert!(polled.is_pending());
        assert!(woke, "a poll cut short must wake itself");
        // Pending on both sides: no self-wake.
        let mut out = stream::pending::<u32>().combine_latest(stream::pending::<u32>());
        assert_eq!(poll_once(&mut out), (Poll::Pending, false));
    }

    /// Many inputs: one `Vec` per new item once all have one, the inputs tried in turn.
    async fn combine_latest_all_takes_turns(rt) {
        let out: Vec<_> = combine_latest_all([
            stream::iter(0..).boxed(),
            stream::iter(100..).boxed(),
            stream::iter(200..).boxed(),
        ])
        .take(5)
        .collect()
        .await;
        assert_eq!(
            out,
            [
                vec![0, 100, 200],
                vec![1, 100, 200],
                vec![1, 101, 200],
                vec![1, 101, 201],
                vec![2, 101, 201],
            ]
        );
    }

    /// Nothing until every input has an item; the inputs that ended keep their last
    /// item; the end comes when every input has ended.
    async fn combine_latest_all_waits_and_ends(rt) {
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..3).map(|_| mpsc::unbounded::<u32>()).unzip();
        let mut out = combine_latest_all(rxs);
        txs[0].unbounded_send(1).unwrap();
        txs[2].unbounded_send(3).unwrap();
        assert_eq!(ready_next(&mut out), Err(()));
        txs[1].unbounded_send(2).unwrap();
        assert_eq!(out.next().await, Some(vec![1, 2, 3]));
        txs[0].close_channel();
        txs[2].close_channel();
        txs[1].unbounded_send(20).unwrap();
        assert_eq!(out.next().await, Some(vec![1, 20, 3]));
        assert_eq!(ready_next(&mut out), Err(()));
        txs[1].close_channel();
        assert_eq!(out.next().await, None);
        assert!(out.is_terminated());
    }

    /// No input, or an input that ends without an item: the stream ends at once, and
    /// drops the inputs still open.
    async fn combine_latest_all_ends_early(rt) {
        let none: Vec<stream::Iter<std::vec::IntoIter<u32>>> = Vec::new();
        let mut out = combine_latest_all(none);
        assert!(out.is_terminated());
        assert_eq!(out.next().await, None);

        let drops = Arc::new(AtomicUsize::new(0));
        let mut out = combine_latest_all([
            guarded(vec![1], &drops).boxed(),
            stream::empty().boxed(),
            guarded(vec![3], &drops).boxed(),
        ]);
        assert_eq!(out.next().await, None);
        assert_eq!(drops.load(Ordering::SeqCst), 2, "the open inputs are dropped");
    }

    /// `Err` items are ordinary items; an always-ready input with a silent one yields
    /// after a budget.
    async fn combine_latest_all_errors_and_budget(rt) {
        let out: Vec<_> = combine_latest_all([
            stream::iter([Ok(1), Err("bad")]).boxed(),
            stream::iter([Ok(2)]).boxed(),
        ])
        .collect()
        .await;
        assert_eq!(out, [vec![Ok(1), Ok(2)], vec![Err("bad"), Ok(2)]]);

        let mut out = combine_latest_all([
            stream::repeat(1).boxed(),
            stream::pending().boxed(),
        ]);
        let (polled, woke) = poll_once(&mut out);
        assert!(polled.is_pending() && woke);
    }

    /// Each item of the source is paired with the latest of the other; items of the
    /// source before the other has one are dropped; the other's items alone emit
    /// nothing.
    async fn with_latest_from_pairs_with_the_latest(rt) {
        let (s_tx, s) = mpsc::unbounded::<u32>();
        let (o_tx, o) = mpsc::unbounded::<&str>();
        let mut out = s.with_latest_from(o);
        s_tx.unbounded_send(1).unwrap();
        assert_eq!(ready_next(&mut out), Err(()), "no latest yet: 1 is dropped");
        o_tx.unbounded_send("x").unwrap();
        assert_eq!(ready_next(&mut out), Err(()), "the other alone emits nothing");
        s_tx.unbounded_send(2).unwrap();
        assert_eq!(out.next().await, Some((2, "x")));
        // Ready at once: the other's item is the latest for the source's.
        o_tx.unbounded_send("y").unwrap();
        o_tx.unbounded_send("z").unwrap();
        s_tx.unbounded_send(3).unwrap();
        s_tx.unbounded_send(4).unwrap();
        assert_eq!(out.next().await, Some((3, "z")));
        assert_eq!(out.next().await, Some((4, "z")));
    }

    /// The end of the source ends it, with the other still open; the end of the other
    /// leaves its last item the latest.
    async fn with_latest_from_completion(rt) {
        let (s_tx, s) = mpsc::unbounded::<u32>();
        let (o_tx, o) = mpsc::unbounded::<&str>();
        let mut out = s.with_latest_from(o);
        o_tx.unbounded_send("x").unwrap();
        drop(o_tx);
        s_tx.unbounded_send(1).unwrap();
        assert_eq!(out.next().await, Some((1, "x")));
        s_tx.unbounded_send(2).unwrap();
        assert_eq!(out.next().await, Some((2, "x")));
        drop(s_tx);
        assert_eq!(out.next().await, None);
        assert!(out.is_terminated());

        let (_o_tx, o) = mpsc::unbounded::<&str>();
        let mut out = stream::iter([1, 2]).with_latest_from(o);
        assert_eq!(out.next().await, None, "the source ended: the open other does not hold it");
    }

    /// An other that ends without an item ends the stream at once: nothing could ever
    /// be paired.
    async fn with_latest_from_other_ends_empty(rt) {
        let mut out = stream::pending::<u32>().with_latest_from(stream::empty::<u32>());
        assert_eq!(out.next().await, None);
        assert!(out.is_terminated());
    }

    /// `Err` items of either side are ordinary items; an always-ready other yields
    /// after a budget instead of holding the poll.
    async fn with_latest_from_errors_and_budget(rt) {
        let s = stream::iter([Ok(1), Err("s-bad")]);
        let o = stream::iter([Err::<char, &str>("o-bad")]);
        let out: Vec<_> = s.with_latest_from(o).collect().await;
        assert_eq!(out, [(Ok(1), Err("o-bad")), (Err("s-bad"), Err("o-bad"))]);

        let mut out = stream::pending::<u32>().with_latest_from(stream::repeat(1));
        let (polled, woke) = poll_once(&mut out);
        assert!(polled.is_pending() && woke);
        let mut out = stream::repeat(1).with_latest_from(stream::pending::<u32>());
        let (polled, woke) = poll_once(&mut out);
        assert!(polled.is_pending() && woke, "source items without a latest count too");
    }

    /// Each outer item switches to a new inner stream and drops the previous one at
    /// once; the inner's end ends nothing; the outer's end lets the current inner run
    /// to its end.
    async fn switch_map_switches_and_drops(rt) {
        let drops = Arc::new(AtomicUsize::new(0));
        let made = Arc::new(AtomicUsize::new(0));
        let (tx, outer) = mpsc::unbounded::<u32>();
        let (inner_drops, inner_made) = (drops.clone(), made.clone());
        let mut out = outer.switch_map(move |n| {
            inner_made.fetch_add(1, Ordering::SeqCst);
            guarded(vec![n * 10, n * 10 + 1], &inner_drops)
        });
        tx.unbounded_send(1).unwrap();
        assert_eq!(out.next().await, Some(10));
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        tx.unbounded_send(2).unwrap();
        assert_eq!(out.next().await, Some(20), "11 never comes: its inner was dropped");
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert_eq!(out.next().await, Some(21));
        assert_eq!(ready_next(&mut out), Err(()));
        drop(tx);
        // The inner (pending forever) keeps the stream open after the outer's end.
        assert_eq!(ready_next(&mut out), Err(()));
        assert!(!out.is_terminated());
        assert_eq!(made.load(Ordering::SeqCst), 2);
        drop(out);
        assert_eq!(drops.load(Ordering::SeqCst), 2);
    }

    /// Completion needs both the outer and the current inner to end, in either order.
    async fn switch_map_completion(rt) {
        // Inner ends first, then the outer.
        let (tx, outer) = mpsc::unbounded::<u32>();
        let mut out = outer.switch_map(|n| stream::iter([n]));
        tx.unbounded_send(7).unwrap();
        assert_eq!(out.next().await, Some(7));
        assert_eq!(ready_next(&mut out), Err(()), "the inner's end ends nothing");
        drop(tx);
        assert_eq!(out.next().await, None);
        assert!(out.is_terminated());

        // The outer ends first: the inner runs to its end.
        let out: Vec<_> = stream::iter([5]).switch_map(|n| stream::iter(n..n + 3)).collect().await;
        assert_eq!(out, [5, 6, 7]);

        // No outer item at all.
        let mut out = stream::empty::<u32>().switch_map(|n| stream::iter([n]));
        assert_eq!(out.next().await, None);
    }

    /// Outer items ready at once: only the last one's inner is polled; the others are
    /// made and dropped without a poll. `Err` items pass as ordinary items.
    async fn switch_map_skips_to_the_latest_ready_item(rt) {
        let polled = Arc::new(AtomicUsize::new(0));
        let drops = Arc::new(AtomicUsize::new(0));
        let (inner_polled, inner_drops) = (polled.clone(), drops.clone());
        let out: Vec<_> = stream::iter([1, 2, 3])
            .switch_map(move |n| {
                let polled = inner_polled.clone();
                let guard = DropGuard(inner_drops.clone());
                stream::iter([n, n * 10]).inspect(move |_| {
                    let _held = &guard;
                    polled.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect()
            .await;
        assert_eq!(out, [3, 30]);
        assert_eq!(polled.load(Ordering::SeqCst), 2, "only the last inner gave items");
        assert_eq!(drops.load(Ordering::SeqCst), 3);

        let out: Vec<Result<u32, &str>> = stream::iter([Err("bad")])
            .switch_map(|item: Result<u32, &str>| stream::iter([item, Ok(1)]))
            .collect()
            .await;
        assert_eq!(out, [Err("bad"), Ok(1)]);
    }

    /// An always-ready outer cannot hold the poll: after a budget of switches the inner
    /// is polled, and the poll yields.
    async fn switch_map_yields_after_a_budget(rt) {
        let mut out = stream::repeat(1).switch_map(|_| stream::pending::<u32>());
        let (polled, woke) = poll_once(&mut out);
        assert!(polled.is_pending() && woke);
        let mut out = stream::repeat(1).switch_map(|n| stream::iter([n])).take(3);
        assert_eq!(out.by_ref().collect::<Vec<_>>().await, [1, 1, 1]);
    }

    /// The given items come first, the source is not polled before they are all out,
    /// and the stream ends with the source.
    async fn start_with_items_first(rt) {
        let polled = Arc::new(AtomicUsize::new(0));
        let counter = polled.clone();
        let source = stream::iter([3, 4])
            .inspect(move |_| {
                counter.fetch_add(1, Ordering::SeqCst);
            })
            .fuse();
        let mut out = source.start_with([1, 2]);
        assert_eq!(out.size_hint(), (4, Some(4)));
        assert_eq!(out.next().await, Some(1));
        assert_eq!(out.next().await, Some(2));
        assert_eq!(polled.load(Ordering::SeqCst), 0);
        assert_eq!(out.by_ref().collect::<Vec<_>>().await, [3, 4]);
        assert!(out.is_terminated());

        let out: Vec<u32> = stream::empty::<u32>().start_with(Vec::new()).collect().await;
        assert!(out.is_empty());
        let out: Vec<Result<u32, &str>> =
            stream::iter([Ok(2)]).start_with([Err("first")]).collect().await;
        assert_eq!(out, [Err("first"), Ok(2)]);
    }

    /// Repeats in a row are dropped, against the last emitted item; a value that comes
    /// back after another is emitted again.
    async fn distinct_until_changed_drops_repeats_in_a_row(rt) {
        let out: Vec<_> = stream::iter([1, 1, 2, 2, 2, 1, 3, 3])
            .distinct_until_changed()
            .collect()
            .await;
        assert_eq!(out, [1, 2, 1, 3]);
        let out: Vec<u32> = stream::empty::<u32>().distinct_until_changed().collect().await;
        assert!(out.is_empty());

        // `Err` items are compared like any other.
        let out: Vec<Result<u32, &str>> =
            stream::iter([Ok(1), Err("e"), Err("e"), Err("f"), Ok(1)])
                .distinct_until_changed()
                .collect()
                .await;
        assert_eq!(out, [Ok(1), Err("e"), Err("f"), Ok(1)]);

        let mut fused = stream::iter([1]).fuse().distinct_until_changed();
        assert_eq!(fused.next().await, Some(1));
        assert_eq!(fused.next().await, None);
        assert!(fused.is_terminated());
    }

    /// By key: the key decides, the first item of a run is the one emitted, and the
    /// items need not be `Clone` or `PartialEq`.
    async fn distinct_until_changed_by_key(rt) {
        struct Reading {
            room: &'static str,
            celsius: i32,
        }
        let readings = [("hall", 20), ("hall", 21), ("attic", 15), ("hall", 22), ("hall", 23)]
            .map(|(room, celsius)| Reading { room, celsius });
        let mut calls = 0;
        let out: Vec<_> = stream::iter(readings)
            .distinct_until_changed_by_key(|r| {
                calls += 1;
                r.room
            })
            .map(|r| (r.room, r.celsius))
            .collect()
            .await;
        assert_eq!(out, [("hall", 20), ("attic", 15), ("hall", 22)]);
        assert_eq!(calls, 5, "the key function runs once per item");
    }

    /// Each item after the first, with the one before; none for fewer than two items.
    async fn pairwise_pairs_neighbours(rt) {
        let mut pairs = stream::iter(['a', 'b', 'c', 'd']).pairwise();
        assert_eq!(pairs.size_hint(), (3, Some(3)));
        assert_eq!(
            pairs.by_ref().collect::<Vec<_>>().await,
            [('a', 'b'), ('b', 'c'), ('c', 'd')]
        );
        let one: Vec<_> = stream::iter([1]).pairwise().collect().await;
        assert!(one.is_empty());
        let none: Vec<(u32, u32)> = stream::empty::<u32>().pairwise().collect().await;
        assert!(none.is_empty());
        let out: Vec<_> = stream::iter([Ok(1), Err("bad"), Ok(3)]).pairwise().collect().await;
        assert_eq!(out, [(Ok(1), Err("bad")), (Err("bad"), Ok(3))]);
    }

    /// Every state is emitted, the initial one is not, and the output is what
    /// `StreamExt::scan` gives with the cloning written out.
    async fn accumulate_emits_every_state(rt) {
        let sums = stream::iter([1, 2, 3, 4]).accumulate(0, |sum, n| sum + n);
        let out: Vec<_> = sums.collect().await;
        assert_eq!(out, [1, 3, 6, 10]);
        let scanned: Vec<_> = stream::iter([1, 2, 3, 4])
            .scan(0, |sum, n| {
                *sum += n;
                futures::future::ready(Some(*sum))
            })
            .collect()
            .await;
        assert_eq!(out, scanned);

        let history: Vec<_> = stream::iter(["a", "b"])
            .accumulate(Vec::new(), |mut seen, s| {
                seen.push(s);
                seen
            })
            .collect()
            .await;
        assert_eq!(history, [vec!["a"], vec!["a", "b"]]);

        let none = stream::empty::<u32>().accumulate(5, |a, b| a + b);
        assert_eq!(none.collect::<Vec<u32>>().await, Vec::<u32>::new());

        // An `Err` item is an ordinary item: the reducer decides what it does.
        let out: Vec<_> = stream::iter([Ok(1), Err("bad"), Ok(2)])
            .accumulate((0, 0), |(sum, errors), item| match item {
                Ok(n) => (sum + n, errors),
                Err(_) => (sum, errors + 1),
            })
            .collect()
            .await;
        assert_eq!(out, [(1, 0), (1, 1), (3, 1)]);
    }

    /// All items arrive well within the window: every repeat is dropped, wherever it
    /// comes; the window is on the runtime's clock, so this holds on every runtime.
    async fn dedupe_within_drops_repeats_inside_the_window(rt) {
        let hour = Duration::from_secs(3600);
        let mut out = stream::iter([1, 2, 1, 3, 2, 1]).dedupe_within(hour, &rt);
        assert_eq!(out.by_ref().collect::<Vec<_>>().await, [1, 2, 3]);
        assert_eq!(out.remembered(), 0, "everything is released at the end");

        let out: Vec<_> = stream::iter([Ok(1), Err("e"), Err("e"), Ok(1)])
            .dedupe_within(hour, &rt)
            .collect()
            .await;
        assert_eq!(out, [Ok(1), Err("e")]);

        // A zero window remembers nothing and drops nothing.
        let mut out = stream::iter([1, 1, 1]).dedupe_within(Duration::ZERO, &rt);
        assert_eq!(out.next().await, Some(1));
        assert_eq!(out.remembered(), 0);
        assert_eq!(out.collect::<Vec<_>>().await, [1, 1]);
    }

    /// `max_keys` is a hard bound: the oldest key is forgotten early, and a repeat of
    /// it is emitted again.
    async fn dedupe_within_max_keys(rt) {
        let hour = Duration::from_secs(3600);
        let mut out = stream::iter(['a', 'b', 'c', 'b', 'a']).dedupe_within(hour, &rt).max_keys(2);
        assert_eq!(out.next().await, Some('a'));
        assert_eq!(out.next().await, Some('b'));
        assert_eq!(out.remembered(), 2);
        assert_eq!(out.next().await, Some('c'));
        assert_eq!(out.remembered(), 2, "'a' was forgotten to make room");
        // 'b' is still remembered and dropped; 'a' was forgotten and comes again.
        assert_eq!(out.next().await, Some('a'));
        assert_eq!(out.next().await, None);
    }

    /// By key: the key decides and only keys are kept; the items need not be `Hash`,
    /// `Eq` or `Clone`.
    async fn dedupe_within_by_key(rt) {
        struct Delivery {
            id: u64,
            attempt: u32,
        }
        let deliveries = [(7, 1), (8, 1), (7, 2), (9, 1), (8, 2)]
            .map(|(id, attempt)| Delivery { id, attempt });
        let mut out = stream::iter(deliveries)
            .dedupe_within_by_key(Duration::from_secs(60), &rt, |d| d.id)
            .map(|d| (d.id, d.attempt));
        assert_eq!(out.by_ref().collect::<Vec<_>>().await, [(7, 1), (8, 1), (9, 1)]);
    }
}

// ---------------------------------------------------------------------------------
// Exact frames on the virtual clock, as marble diagrams (one frame: `FRAME`, 10 ms)

/// Runs `body` on the virtual clock.
fn on_virtual<F, Fut>(body: F)
where
    F: FnOnce(SharedRuntime) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    run(Flavor::Virtual, body);
}

/// A drawing of pairs of marbles for `record_with`: `"w=a1 x=#1"` draws
/// `(Ok('a'), Ok('1'))` as `w` and `(Err(MarbleError), Ok('1'))` as `x`.
fn pairs(table: &str) -> impl FnMut(&(Marble, Marble)) -> char + use<> {
    values(
        table
            .split_whitespace()
            .map(|entry| match chars(entry)[..] {
                [Ok(key), Ok('='), a, b] => (key, (a, b)),
                _ => panic!("{entry:?} is not of the form k=ab"),
            })
            .collect(),
    )
}

/// A drawing of `Vec`s of marbles for `record_with`: `"x=a1p"` draws
/// `[Ok('a'), Ok('1'), Ok('p')]` as `x`.
fn vecs(table: &str) -> impl FnMut(&Vec<Marble>) -> char + use<> {
    values(
        table
            .split_whitespace()
            .map(|entry| {
                let (key, marbles) = entry.split_once('=').expect("k=abc");
                (key.chars().next().expect("a key"), chars(marbles))
            })
            .collect(),
    )
}

/// When each inner stream of a test was dropped, by name, from the test's start.
type DropLog = Arc<Mutex<Vec<(char, Duration)>>>;

/// Logs the time of its drop.
struct DropAt {
    name: char,
    rt: SharedRuntime,
    start: Instant,
    log: DropLog,
}

impl Drop for DropAt {
    fn drop(&mut self) {
        let at = self.rt.now() - self.start;
        self.log.lock().unwrap().push((self.name, at));
    }
}

/// A cold source of `diagram` that logs when it is dropped, under `name`.
fn logged(
    rt: &SharedRuntime,
    diagram: &str,
    name: char,
    start: Instant,
    log: &DropLog,
) -> impl Stream<Item = Marble> + Unpin + use<> {
    let guard = DropAt {
        name,
        rt: rt.clone(),
        start,
        log: log.clone(),
    };
    cold(rt, diagram).map(move |m| {
        let _held = &guard;
        m
    })
}

mod marbles {
    use super::*;

    /// merge is `futures::stream::select`: items as they come, and the end when both
    /// have ended; in a frame where both are ready, the one whose turn it is goes
    /// first.
    #[test]
    fn merge_is_select() {
        on_virtual(|rt| async move {
            let merged = stream::select(cold(&rt, "-a--c|"), cold(&rt, "--b--d|"));
            assert_eq!(record(&rt, merged).await, "-ab-cd|");
            let merged = stream::select(cold(&rt, "-a-----|"), cold(&rt, "-b--|"));
            assert_eq!(record(&rt, merged).await, "-(ab)--|");
            let all =
                stream::select_all([cold(&rt, "a----|"), cold(&rt, "--b-#"), cold(&rt, "---c|")]);
            assert_eq!(record(&rt, all).await, "a-bc#|");
        });
    }

    /// takeUntil with a notifier stream: `take_until(notifier.into_future())` stops at
    /// the notifier's first item, or at its end; the notifier wins a frame it shares
    /// with an item; the RxJS rule (an empty notifier never stops) is the documented
    /// alternative.
    #[test]
    fn take_until_a_notifier_stream() {
        on_virtual(|rt| async move {
            let source = "-a-b-c-d|";
            let out = cold(&rt, source).take_until(cold(&rt, "----x|").into_future());
            assert_eq!(record(&rt, out).await, "-a-b|");
            let out = cold(&rt, source).take_until(cold(&rt, "----|").into_future());
            assert_eq!(
                record(&rt, out).await,
                "-a-b|",
                "the notifier's end stops it too"
            );
            let out = cold(&rt, source).take_until(cold(&rt, "---x").into_future());
            assert_eq!(
                record(&rt, out).await,
                "-a-|",
                "b shares frame 3 with x: x wins"
            );
            let out = cold(&rt, source).take_until(cold(&rt, "--#").into_future());
            assert_eq!(record(&rt, out).await, "-a|", "an error is an item");
            let out = cold(&rt, source).take_until(cold(&rt, "-----------x").into_future());
            assert_eq!(record(&rt, out).await, source);

            let mut empty = cold(&rt, "--|");
            let first_item = async move {
                if empty.next().await.is_none() {
                    futures::future::pending::<()>().await;
                }
            };
            let out = cold(&rt, source).take_until(first_item);
            assert_eq!(
                record(&rt, out).await,
                source,
                "RxJS's rule: an empty notifier never stops"
            );
        });
    }

    /// The classic diagram: the first tuple once both have an item, then one per new
    /// item of either; the end once both have ended.
    #[test]
    fn combine_latest_frames() {
        on_virtual(|rt| async move {
            let out = cold(&rt, "-a---b-----c|").combine_latest(cold(&rt, "---1---2|"));
            let draw = pairs("w=a1 x=b1 y=b2 z=c2");
            assert_eq!(record_with(&rt, out, draw).await, "---w-x-y---z|");

            // Items in one frame: one tuple each, in turn; a frame where both inputs
            // give their first item gives one tuple.
            let out = cold(&rt, "-a------|").combine_latest(cold(&rt, "-1--(23)|"));
            let draw = pairs("w=a1 x=a2 y=a3");
            assert_eq!(record_with(&rt, out, draw).await, "-w--(xy)|");
        });
    }

    /// An input that ends with no item ends it in that frame; an input that ended
    /// with items keeps its last one until the other ends.
    #[test]
    fn combine_latest_completion_frames() {
        on_virtual(|rt| async move {
            let out = cold(&rt, "---|").combine_latest(cold(&rt, "-1-2-3|"));
            assert_eq!(record_with(&rt, out, pairs("")).await, "---|");
            let out = cold(&rt, "-a-b-c|").combine_latest(cold(&rt, "--|"));
            assert_eq!(record_with(&rt, out, pairs("")).await, "--|");
            let out = cold(&rt, "a|").combine_latest(cold(&rt, "--1---2|"));
            assert_eq!(record_with(&rt, out, pairs("x=a1 y=a2")).await, "--x---y|");
        });
    }

    /// An error is an ordinary item: paired, and the end comes when the other input
    /// ends, not at the `#`.
    #[test]
    fn combine_latest_error_frames() {
        on_virtual(|rt| async move {
            let out = cold(&rt, "-a-#").combine_latest(cold(&rt, "--1---|"));
            assert_eq!(record_with(&rt, out, pairs("w=a1 x=#1")).await, "--wx--|");
        });
    }

    /// Many inputs: nothing before all have an item; the end when all have ended, or
    /// when one ends empty.
    #[test]
    fn combine_latest_all_frames() {
        on_virtual(|rt| async move {
            let out = combine_latest_all([
                cold(&rt, "-a----b-|"),
                cold(&rt, "--1-----|"),
                cold(&rt, "---p-q----|"),
            ]);
            let draw = vecs("w=a1p x=a1q y=b1q");
            assert_eq!(record_with(&rt, out, draw).await, "---w-xy---|");

            let out = combine_latest_all([cold(&rt, "-a-b-|"), cold(&rt, "---|")]);
            assert_eq!(record_with(&rt, out, vecs("")).await, "---|");

            let out = combine_latest_all([cold(&rt, "-a--|"), cold(&rt, "--#")]);
            assert_eq!(record_with(&rt, out, vecs("x=a#")).await, "--x-|");
        });
    }

    /// Source items before the other's first are dropped; a source item that shares a
    /// frame with an item of the other is paired with that item; the end is the
    /// source's.
    #[test]
    fn with_latest_from_frames() {
        on_virtual(|rt| async move {
            let out = cold(&rt, "-a---b-c---d|").with_latest_from(cold(&rt, "---1---2|"));
            let draw = pairs("x=b1 y=c2 z=d2");
            assert_eq!(record_with(&rt, out, draw).await, "-----x-y---z|");

            // The other ending empty ends it in that frame; the source ends it at once
            // even with the other still open.
            let out = cold(&rt, "-a-b|").with_latest_from(cold(&rt, "--|"));
            assert_eq!(record_with(&rt, out, pairs("")).await, "--|");
            let out = cold(&rt, "--a|").with_latest_from(cold(&rt, "1------"));
            assert_eq!(record_with(&rt, out, pairs("x=a1")).await, "--x|");

            // An error of the other is its latest item.
            let out = cold(&rt, "--a-b|").with_latest_from(cold(&rt, "-#"));
            assert_eq!(record_with(&rt, out, pairs("x=a# y=b#")).await, "--x-y|");
        });
    }

    /// Each outer item switches to its inner stream: the previous inner is dropped in
    /// the frame of the new outer item, and its later items never come; the end waits
    /// for both the outer and the current inner.
    #[test]
    fn switch_map_frames() {
        on_virtual(|rt| async move {
            let start = rt.now();
            let log = DropLog::default();
            let inner_rt = rt.clone();
            let inner_log = log.clone();
            let out = cold(&rt, "-a---b-------|").switch_map(move |m| {
                let (diagram, name) = match m {
                    Ok('a') => ("-1-2-3|", 'a'),
                    _ => ("-4-5-6|", 'b'),
                };
                logged(&inner_rt, diagram, name, start, &inner_log)
            });
            assert_eq!(record(&rt, out).await, "--1-2-4-5-6--|");
            let log = log.lock().unwrap().clone();
            assert_eq!(log, [('a', 5 * FRAME), ('b', 11 * FRAME)]);
        });
    }

    /// The outer's end lets the current inner run to its end; an inner's end ends
    /// nothing while the outer is open; outer items in one frame switch straight to
    /// the last.
    #[test]
    fn switch_map_completion_frames() {
        on_virtual(|rt| async move {
            let inner_rt = rt.clone();
            let out = cold(&rt, "-a|").switch_map(move |_| cold(&inner_rt, "-1-2|"));
            assert_eq!(record(&rt, out).await, "--1-2|");

            let inner_rt = rt.clone();
            let out = cold(&rt, "-a------|").switch_map(move |_| cold(&inner_rt, "1|"));
            assert_eq!(record(&rt, out).await, "-1------|");

            let inner_rt = rt.clone();
            let out = cold(&rt, "-(ab)---|").switch_map(move |m| {
                let diagram = if m == Ok('a') { "-1|" } else { "-2|" };
                cold(&inner_rt, diagram)
            });
            assert_eq!(record(&rt, out).await, "--2-----|");
        });
    }

    /// Errors are ordinary items: an inner `#` ends that inner only, and an outer `#`
    /// is an outer item like any other, mapped by `f`.
    #[test]
    fn switch_map_error_frames() {
        on_virtual(|rt| async move {
            let inner_rt = rt.clone();
            let out = cold(&rt, "-a----b|").switch_map(move |_| cold(&inner_rt, "-1#"));
            assert_eq!(record(&rt, out).await, "--1#---1#");

            let inner_rt = rt.clone();
            let out = cold(&rt, "-a---#").switch_map(move |m| match m {
                Ok(_) => cold(&inner_rt, "-1-2-3|"),
                Err(MarbleError) => cold(&inner_rt, "#"),
            });
            assert_eq!(record(&rt, out).await, "--1-2#");
        });
    }

    /// A repeat less than the window after the emitted item is dropped, one exactly a
    /// window after is emitted; dropped repeats do not extend the window.
    #[test]
    fn dedupe_within_frames() {
        on_virtual(|rt| async move {
            let window = 3 * FRAME;
            // `MarbleError` is not `Hash`: these diagrams have values only.
            let values_of = |diagram| cold(&rt, diagram).map(|m| m.expect("a value"));
            let same = |c: &char| *c;
            let out = values_of("-aaaaaa|").dedupe_within(window, &rt);
            assert_eq!(record_with(&rt, out, same).await, "-a--a--|");
            // Each item has a window of its own.
            let out = values_of("-abab-ab-|").dedupe_within(window, &rt);
            assert_eq!(record_with(&rt, out, same).await, "-ab---ab-|");
            let out = values_of("-a--a-a-a|").dedupe_within(window, &rt);
            assert_eq!(record_with(&rt, out, same).await, "-a--a---a|");
            // By key: upper and lower case are one key.
            let out = cold(&rt, "-aA--A-b|")
                .dedupe_within_by_key(window, &rt, |m| m.ok().map(|c| c.to_ascii_lowercase()));
            assert_eq!(record(&rt, out).await, "-a---A-b|");
        });
    }

    /// Memory: keys are evicted once their window has ended, at the next item.
    #[test]
    fn dedupe_within_evicts_ended_windows() {
        on_virtual(|rt| async move {
            let (tx, items) = mpsc::unbounded::<char>();
            let mut out = items.dedupe_within(3 * FRAME, &rt);
            for c in ['a', 'b', 'c'] {
                tx.unbounded_send(c).unwrap();
                assert_eq!(out.next().await, Some(c));
            }
            assert_eq!(out.remembered(), 3);
            rt.sleep(2 * FRAME).await;
            tx.unbounded_send('d').unwrap();
            assert_eq!(out.next().await, Some('d'));
            assert_eq!(out.remembered(), 4, "a, b and c are still in their window");
            rt.sleep(FRAME).await;
            tx.unbounded_send('a').unwrap();
            assert_eq!(
                out.next().await,
                Some('a'),
                "a's window ended: it comes again"
            );
            assert_eq!(out.remembered(), 2, "only d and the new a are left");
            rt.sleep(10 * FRAME).await;
            tx.unbounded_send('a').unwrap();
            assert_eq!(out.next().await, Some('a'));
            assert_eq!(out.remembered(), 1);
        });
    }
}

// ---------------------------------------------------------------------------------
// Content and order on every runtime, with wide margins

/// A stream of `items`, each at its offset in milliseconds from the call, on `rt`'s
/// clock.
fn timeline<T: Send + 'static>(
    rt: &SharedRuntime,
    items: Vec<(u64, T)>,
) -> impl Stream<Item = T> + Send + Unpin + use<T> {
    let start = rt.now();
    let rt = rt.clone();
    stream::iter(items)
        .then(move |(offset, item)| {
            let at = rt.sleep_until(start + Duration::from_millis(offset));
            async move {
                at.await;
                item
            }
        })
        .boxed()
}

timed_matrix! {
    /// merge (`select`): the items of both, in time order.
    async fn merge_on_every_runtime(rt) {
        let a = timeline(&rt, vec![(0, "a0"), (400, "a1")]);
        let b = timeline(&rt, vec![(200, "b0"), (600, "b1")]);
        let out: Vec<_> = stream::select(a, b).collect().await;
        assert_eq!(out, ["a0", "b0", "a1", "b1"]);
    }

    /// take_until with a notifier stream stops at the notifier's item.
    async fn take_until_on_every_runtime(rt) {
        let source = timeline(&rt, vec![(0, 1), (200, 2), (600, 3)]);
        let notifier = timeline(&rt, vec![(400, ())]);
        let out: Vec<_> = source.take_until(notifier.into_future()).collect().await;
        assert_eq!(out, [1, 2]);
    }

    /// combine_latest: a tuple per new item once both have one.
    async fn combine_latest_on_every_runtime(rt) {
        let a = timeline(&rt, vec![(0, 'a'), (400, 'b')]);
        let b = timeline(&rt, vec![(200, 1), (600, 2)]);
        let out: Vec<_> = a.combine_latest(b).collect().await;
        assert_eq!(out, [('a', 1), ('b', 1), ('b', 2)]);

        let out: Vec<_> = combine_latest_all([
            timeline(&rt, vec![(0, 1), (400, 3)]),
            timeline(&rt, vec![(200, 2)]),
        ])
        .collect()
        .await;
        assert_eq!(out, [vec![1, 2], vec![3, 2]]);
    }

    /// with_latest_from: source items paired with the other's latest; those before
    /// its first dropped.
    async fn with_latest_from_on_every_runtime(rt) {
        let source = timeline(&rt, vec![(0, 'a'), (400, 'b'), (800, 'c')]);
        let other = timeline(&rt, vec![(200, 1), (600, 2)]);
        let out: Vec<_> = source.with_latest_from(other).collect().await;
        assert_eq!(out, [('b', 1), ('c', 2)]);
    }

    /// switch_map: the first inner is dropped by the second outer item before its
    /// late item; the second runs to its end.
    async fn switch_map_on_every_runtime(rt) {
        let drops = Arc::new(AtomicUsize::new(0));
        let outer = timeline(&rt, vec![(0, 'a'), (400, 'b')]);
        let (inner_rt, inner_drops) = (rt.clone(), drops.clone());
        let out: Vec<_> = outer
            .switch_map(move |name| {
                let guard = DropGuard(inner_drops.clone());
                timeline(&inner_rt, vec![(0, (name, 1)), (800, (name, 2))]).map(move |item| {
                    let _held = &guard;
                    item
                })
            })
            .collect()
            .await;
        assert_eq!(out, [('a', 1), ('b', 1), ('b', 2)]);
        assert_eq!(drops.load(Ordering::SeqCst), 2);
    }

    /// dedupe_within: a repeat well inside the window is dropped, one well after it
    /// is emitted.
    async fn dedupe_within_on_every_runtime(rt) {
        let items = timeline(&rt, vec![(0, 'a'), (100, 'b'), (200, 'a'), (1600, 'a')]);
        let out: Vec<_> = items.dedupe_within(Duration::from_secs(1), &rt).collect().await;
        assert_eq!(out, ['a', 'b', 'a']);
    }
}
