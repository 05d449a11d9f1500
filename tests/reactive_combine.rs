//! Combining and stateful reactive operators, on every runtime flavour.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::matrix;
use futures::stream::{self, FusedStream};
use futures::{Stream, StreamExt};
use riverbed::reactive::ReactiveExt;

matrix! {
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
