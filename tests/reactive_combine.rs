//! Combining and stateful reactive operators, on every runtime flavour.

mod common;

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use common::matrix;
use futures::channel::mpsc;
use futures::stream::{self, FusedStream};
use futures::task::{ArcWake, waker};
use futures::{FutureExt, Stream, StreamExt};
use riverbed::reactive::ReactiveExt;
use riverbed::reactive::ops::combine_latest_all;

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
        let out: Vec<_> = stream::iter([1, 2, 3, 4]).accumulate(0, |sum, n| sum + n).collect().await;
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

        let none: Vec<u32> = stream::empty::<u32>().accumulate(5, |a, b: u32| a + b).collect().await;
        assert!(none.is_empty());

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
