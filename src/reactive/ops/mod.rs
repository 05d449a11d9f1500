//! The reactive operators, one file each; [`ReactiveExt`] puts them on every `Stream`.

use futures_core::Stream;

// Combining and stateful operators
mod accumulate;
mod combine_latest;
mod combine_latest_all;
mod dedupe_within;
mod dedupe_within_by_key;
mod distinct_until_changed;
mod distinct_until_changed_by_key;
mod pairwise;
mod start_with;
mod switch_map;
mod with_latest_from;

pub use self::accumulate::Accumulate;
pub use self::combine_latest::CombineLatest;
pub use self::combine_latest_all::{CombineLatestAll, combine_latest_all};
pub use self::dedupe_within::DedupeWithin;
pub use self::dedupe_within_by_key::DedupeWithinByKey;
pub use self::distinct_until_changed::DistinctUntilChanged;
pub use self::distinct_until_changed_by_key::DistinctUntilChangedByKey;
pub use self::pairwise::Pairwise;
pub use self::start_with::StartWith;
pub use self::switch_map::SwitchMap;
pub use self::with_latest_from::WithLatestFrom;

/// How many items an operator over several inputs takes in one poll without emitting
/// anything before it yields (waking itself), so that no input that is always ready can
/// keep a poll from returning.
const COMBINE_BUDGET: usize = 32;
// End of combining and stateful operators

/// Reactive operators on any [`Stream`]: time, combining and stateful operators that
/// `futures::StreamExt` does not offer. Time comes from a
/// [`Runtime`](crate::runtime::Runtime) handed in, so every operator behaves the same
/// under tokio, smol or the virtual clock.
pub trait ReactiveExt: Stream {
    // Combining and stateful operators

    /// Pairs the latest item of this stream with the latest item of `other`, each time
    /// either has a new one: RxJS's `combineLatest`, for two streams.
    ///
    /// * **Emission**: nothing until both streams have given an item; then one tuple for
    ///   that item and one for every later item of either stream, with the latest item
    ///   of the other. Items are cloned into every tuple they are part of.
    /// * **Completion**: when both streams have ended; or at once when one of them ends
    ///   without having given an item, since no tuple can be emitted after that. A
    ///   stream that ends after giving items keeps contributing its last one.
    /// * **Errors**: an `Err` item of a stream of `Result`s is an ordinary item: it is
    ///   paired like any other and ends nothing.
    /// * **Fairness**: each poll polls both streams, the one that did not give the last
    ///   item first, so neither can starve the other. Items ready at once are taken one
    ///   at a time, each giving its own tuple.
    ///
    /// For more than two streams, with a `Vec` per emission, see
    /// [`combine_latest_all`].
    ///
    /// ```
    /// use futures::StreamExt;
    /// use riverbed::reactive::ReactiveExt;
    ///
    /// # futures::executor::block_on(async {
    /// let sizes = futures::stream::iter(["S", "M"]);
    /// let colours = futures::stream::iter(["red", "blue"]);
    /// let combos: Vec<_> = sizes.combine_latest(colours).collect().await;
    /// // Both always ready: they take turns, and each new item gives a tuple.
    /// assert_eq!(combos, [("S", "red"), ("M", "red"), ("M", "blue")]);
    /// # });
    /// ```
    fn combine_latest<O>(self, other: O) -> CombineLatest<Self, O>
    where
        Self: Sized,
        Self::Item: Clone,
        O: Stream,
        O::Item: Clone,
    {
        CombineLatest::new(self, other)
    }

    /// Pairs each item of this stream with the latest item of `other`: RxJS's
    /// `withLatestFrom`.
    ///
    /// * **Emission**: one tuple per item of this stream, with a clone of the latest
    ///   item of `other`. Items of this stream that come before `other` has given any
    ///   are dropped; items of `other` emit nothing by themselves.
    /// * **Which is latest**: each poll takes every item `other` has ready before it
    ///   polls this stream, so an item of `other` that is ready at the same time as an
    ///   item of this stream is the one paired with it.
    /// * **Completion**: when this stream ends. When `other` ends, its last item stays
    ///   the latest. When `other` ends without having given an item, the stream ends at
    ///   once: no item could ever be paired (RxJS would go on dropping the source's
    ///   items until the source ends).
    /// * **Errors**: an `Err` item of either stream is an ordinary item: paired, or
    ///   kept as the latest, like any other.
    /// * **Fairness**: items taken without emitting anything (those of `other`, and
    ///   those of this stream before `other` has a value) are limited per poll, after
    ///   which the poll yields, so an input that is always ready cannot hold the
    ///   executor.
    ///
    /// ```
    /// use futures::StreamExt;
    /// use riverbed::reactive::ReactiveExt;
    ///
    /// # futures::executor::block_on(async {
    /// let clicks = futures::stream::iter([(1, 2), (3, 4)]);
    /// let tool = futures::stream::iter(["pen"]);
    /// let strokes: Vec<_> = clicks.with_latest_from(tool).collect().await;
    /// assert_eq!(strokes, [((1, 2), "pen"), ((3, 4), "pen")]);
    /// # });
    /// ```
    fn with_latest_from<O>(self, other: O) -> WithLatestFrom<Self, O>
    where
        Self: Sized,
        O: Stream,
        O::Item: Clone,
    {
        WithLatestFrom::new(self, other)
    }

    /// Maps each item to an inner stream and emits the items of the latest inner stream
    /// only: RxJS's `switchMap`. Each new item of this (outer) stream drops the inner
    /// stream made from the item before, at once, whether or not it had ended.
    ///
    /// * **Polling**: each poll first takes every item the outer stream has ready,
    ///   making an inner stream for each (one replaced within the same poll is dropped
    ///   without having been polled), then polls the current inner stream. So a switch
    ///   is never late, and an outer stream that is behind skips to its latest item. An
    ///   outer stream that is always ready is cut off after a budget of items per poll.
    /// * **Completion**: when the outer stream has ended and the current inner stream,
    ///   if any, has ended too. The end of an inner stream ends nothing by itself.
    /// * **Errors**: an `Err` item, outer or inner, is an ordinary item.
    ///
    /// Being pull-based, a ready outer stream such as `futures::stream::iter` switches
    /// straight to its last item, where RxJS (pushing each item through before the
    /// next) would emit every inner stream's synchronous items. To run each inner stream
    /// to its end, one after another, use `StreamExt::flat_map` (`concatMap`); to run
    /// them concurrently, `StreamExt::flat_map_unordered` (`mergeMap`).
    ///
    /// ```
    /// use futures::StreamExt;
    /// use futures::channel::mpsc;
    /// use riverbed::reactive::ReactiveExt;
    ///
    /// # futures::executor::block_on(async {
    /// let (queries, typed) = mpsc::unbounded::<&str>();
    /// let lookup = |q: &str| futures::stream::iter([1, 2].map(|n| format!("{q}: hit {n}")));
    /// let mut results = typed.switch_map(lookup);
    ///
    /// queries.unbounded_send("ru").unwrap();
    /// assert_eq!(results.next().await.as_deref(), Some("ru: hit 1"));
    /// // A new query drops the previous lookup, with its second hit.
    /// queries.unbounded_send("rust").unwrap();
    /// assert_eq!(results.next().await.as_deref(), Some("rust: hit 1"));
    /// drop(queries);
    /// // The outer stream has ended; the current lookup runs to its end.
    /// assert_eq!(results.next().await.as_deref(), Some("rust: hit 2"));
    /// assert_eq!(results.next().await, None);
    /// # });
    /// ```
    fn switch_map<U, F>(self, f: F) -> SwitchMap<Self, U, F>
    where
        Self: Sized,
        F: FnMut(Self::Item) -> U,
        U: Stream,
    {
        SwitchMap::new(self, f)
    }

    /// Emits `items` first, then the items of this stream: RxJS's `startWith`.
    ///
    /// The same as `futures::stream::iter(items).chain(self)`, in method position. This
    /// stream is not polled before `items` are all out; the stream ends when it ends.
    ///
    /// ```
    /// use futures::StreamExt;
    /// use riverbed::reactive::ReactiveExt;
    ///
    /// # futures::executor::block_on(async {
    /// let readings = futures::stream::iter([21, 22]).start_with([0]);
    /// assert_eq!(readings.collect::<Vec<_>>().await, [0, 21, 22]);
    /// # });
    /// ```
    fn start_with<I>(self, items: I) -> StartWith<Self, I::IntoIter>
    where
        Self: Sized,
        I: IntoIterator<Item = Self::Item>,
    {
        StartWith::new(self, items.into_iter())
    }

    /// Drops each item equal to the item emitted just before it: RxJS's
    /// `distinctUntilChanged`.
    ///
    /// The first item is always emitted; each later one is compared (`PartialEq`) with
    /// the last item emitted, of which a clone is kept. An item equal to an earlier but
    /// not the last emitted one is emitted again (to drop repeats over a span of time,
    /// see [`dedupe_within`](Self::dedupe_within)). An `Err` item of a stream of
    /// `Result`s is an ordinary item, compared like any other. The stream ends when
    /// this stream ends.
    ///
    /// ```
    /// use futures::StreamExt;
    /// use riverbed::reactive::ReactiveExt;
    ///
    /// # futures::executor::block_on(async {
    /// let states = futures::stream::iter(["idle", "idle", "busy", "busy", "idle"]);
    /// let changes: Vec<_> = states.distinct_until_changed().collect().await;
    /// assert_eq!(changes, ["idle", "busy", "idle"]);
    /// # });
    /// ```
    fn distinct_until_changed(self) -> DistinctUntilChanged<Self>
    where
        Self: Sized,
        Self::Item: PartialEq + Clone,
    {
        DistinctUntilChanged::new(self)
    }

    /// Drops each item whose key, `f(&item)`, equals the key of the item emitted just
    /// before it: RxJS's `distinctUntilKeyChanged`, with any key.
    ///
    /// As [`distinct_until_changed`](Self::distinct_until_changed), comparing keys:
    /// `f` runs once per item, only the last emitted key is kept, and the items need
    /// not be `Clone` or `PartialEq`.
    ///
    /// ```
    /// use futures::StreamExt;
    /// use riverbed::reactive::ReactiveExt;
    ///
    /// # futures::executor::block_on(async {
    /// let readings = futures::stream::iter([("hall", 20), ("hall", 21), ("attic", 15)]);
    /// let moves: Vec<_> = readings.distinct_until_changed_by_key(|r| r.0).collect().await;
    /// assert_eq!(moves, [("hall", 20), ("attic", 15)]);
    /// # });
    /// ```
    fn distinct_until_changed_by_key<K, F>(self, f: F) -> DistinctUntilChangedByKey<Self, K, F>
    where
        Self: Sized,
        F: FnMut(&Self::Item) -> K,
        K: PartialEq,
    {
        DistinctUntilChangedByKey::new(self, f)
    }

    /// Emits each item after the first with the item before it, as
    /// `(previous, current)`: RxJS's `pairwise`.
    ///
    /// A stream of `n` items gives `n - 1` pairs (none for one item or none); every
    /// item is cloned once, to be both the current item of one pair and the previous
    /// item of the next. The stream ends when this stream ends.
    ///
    /// ```
    /// use futures::StreamExt;
    /// use riverbed::reactive::ReactiveExt;
    ///
    /// # futures::executor::block_on(async {
    /// let odometer = futures::stream::iter([100, 130, 175]);
    /// let legs: Vec<_> = odometer.pairwise().map(|(a, b)| b - a).collect().await;
    /// assert_eq!(legs, [30, 45]);
    /// # });
    /// ```
    fn pairwise(self) -> Pairwise<Self>
    where
        Self: Sized,
        Self::Item: Clone,
    {
        Pairwise::new(self)
    }

    /// Folds each item into a state with `f(state, item)` and emits every new state:
    /// RxJS's `scan(f, initial)`.
    ///
    /// `initial` is not emitted; each item gives exactly one state, a clone of the one
    /// kept for the next item. The stream ends when this stream ends (a panic in `f`
    /// ends it too, if it is polled again).
    ///
    /// What it adds to `StreamExt::scan`: that one is a stateful `filter_map` that can
    /// stop early. Its closure gets `&mut state` and returns a future of an `Option`,
    /// so emitting every state takes
    /// `|acc, x| { *acc += x; future::ready(Some(acc.clone())) }` where `accumulate`
    /// takes a plain reducer, `|acc, x| acc + x`. Use `StreamExt::scan` to stop early
    /// or to await in the fold.
    ///
    /// ```
    /// use futures::StreamExt;
    /// use riverbed::reactive::ReactiveExt;
    ///
    /// # futures::executor::block_on(async {
    /// let deposits = futures::stream::iter([10, 5, 20]);
    /// let balances: Vec<_> = deposits.accumulate(100, |balance, d| balance + d).collect().await;
    /// assert_eq!(balances, [110, 115, 135]);
    /// # });
    /// ```
    #[doc(alias = "scan")]
    fn accumulate<A, F>(self, initial: A, f: F) -> Accumulate<Self, A, F>
    where
        Self: Sized,
        F: FnMut(A, Self::Item) -> A,
        A: Clone,
    {
        Accumulate::new(self, initial, f)
    }

    /// Drops each item equal to an item emitted less than `window` ago, on `rt`'s
    /// clock.
    ///
    /// * **Window**: an item equal to one emitted at instant `t` is dropped if it
    ///   arrives before `t + window`; from `t + window` on, it is emitted again and
    ///   starts a window of its own. A dropped duplicate does not extend the window, so
    ///   an item repeated more often than `window` is emitted once per window.
    ///   `Duration::ZERO` drops nothing.
    /// * **Clock**: an item's instant is `rt.now()` when it is taken from this stream.
    ///   No timer is set, so any runtime will do; under the
    ///   [`VirtualRuntime`](crate::runtime::VirtualRuntime) the window is exact.
    /// * **Memory**: each emitted item is remembered (two clones: a hash set for
    ///   lookup, a queue in emission order) until its window ends; ended windows are
    ///   evicted whenever an item arrives. So the items held are those emitted less
    ///   than `window` before the latest arrival: the bound is the number of distinct
    ///   items emitted in one window. [`DedupeWithin::max_keys`] sets a hard bound,
    ///   forgetting the oldest item early. Everything is released when the stream ends.
    /// * **Key requirements**: `Hash + Eq + Clone`, with `Hash` and `Eq` agreeing, as
    ///   for a `HashSet`. To deduplicate by part of an item (an id), see
    ///   [`dedupe_within_by_key`](Self::dedupe_within_by_key).
    /// * **Errors**: an `Err` item of a stream of `Result`s is an ordinary item,
    ///   deduplicated like any other.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use futures::StreamExt;
    /// use riverbed::reactive::ReactiveExt;
    /// use riverbed::runtime::{RuntimeExt, SharedRuntime, VirtualRuntime};
    ///
    /// let vrt = VirtualRuntime::new();
    /// let rt: SharedRuntime = Arc::new(vrt.clone());
    /// let out = vrt.block_on(async {
    ///     let clock = rt.clone();
    ///     // "alarm" at 0 ms, 400 ms and 1200 ms; "door" at 400 ms.
    ///     let waits = [(0, "alarm"), (400, "alarm"), (0, "door"), (800, "alarm")];
    ///     let events = futures::stream::iter(waits).then(move |(wait, event)| {
    ///         let sleep = clock.sleep(Duration::from_millis(wait));
    ///         async move {
    ///             sleep.await;
    ///             event
    ///         }
    ///     });
    ///     events.dedupe_within(Duration::from_secs(1), &rt).collect::<Vec<_>>().await
    /// });
    /// // The second "alarm" came 400 ms after the first: dropped. The third came 1200 ms
    /// // after the first: emitted.
    /// assert_eq!(out, ["alarm", "door", "alarm"]);
    /// ```
    fn dedupe_within(
        self,
        window: std::time::Duration,
        rt: &crate::runtime::SharedRuntime,
    ) -> DedupeWithin<Self>
    where
        Self: Sized,
        Self::Item: std::hash::Hash + Eq + Clone,
    {
        DedupeWithin::new(self, window, rt)
    }

    /// Drops each item whose key, `f(&item)`, equals the key of an item emitted less
    /// than `window` ago, on `rt`'s clock.
    ///
    /// As [`dedupe_within`](Self::dedupe_within), comparing keys: `f` runs once per
    /// item, the keys (not the items) are remembered, and the items need not be
    /// `Hash`, `Eq` or `Clone`. [`DedupeWithinByKey::max_keys`] sets a hard bound.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use futures::StreamExt;
    /// use riverbed::reactive::ReactiveExt;
    /// use riverbed::runtime::{SharedRuntime, VirtualRuntime};
    ///
    /// struct Delivery { id: u64, attempt: u32 }
    ///
    /// let rt: SharedRuntime = Arc::new(VirtualRuntime::new());
    /// // A message delivered twice in a row: the redelivery is dropped.
    /// let deliveries = futures::stream::iter([
    ///     Delivery { id: 7, attempt: 1 },
    ///     Delivery { id: 7, attempt: 2 },
    ///     Delivery { id: 8, attempt: 1 },
    /// ]);
    /// let fresh = deliveries.dedupe_within_by_key(Duration::from_secs(60), &rt, |d| d.id);
    /// let seen: Vec<_> = futures::executor::block_on(fresh.map(|d| (d.id, d.attempt)).collect());
    /// assert_eq!(seen, [(7, 1), (8, 1)]);
    /// ```
    fn dedupe_within_by_key<K, F>(
        self,
        window: std::time::Duration,
        rt: &crate::runtime::SharedRuntime,
        f: F,
    ) -> DedupeWithinByKey<Self, K, F>
    where
        Self: Sized,
        F: FnMut(&Self::Item) -> K,
        K: std::hash::Hash + Eq + Clone,
    {
        DedupeWithinByKey::new(self, window, rt, f)
    }
    // End of combining and stateful operators

    // Hot streams

    /// Shares this stream among many subscribers: RxJS's `share()`. The result is a
    /// subscriber; each clone of it is another, and all receive the same items, each
    /// once, in order, from the point they were created on (hot).
    ///
    /// The upstream is polled when a subscriber first asks for an item, by whichever
    /// subscriber has none waiting (nothing spawns), and dropped when it ends or when
    /// the last subscriber is dropped. Each subscriber buffers up to 64 items; when one
    /// is full, the upstream waits for it (backpressure: nothing is lost, and a
    /// subscriber that is never read holds the others back). When the upstream ends,
    /// every subscriber receives what it was sent, then ends. The details are on
    /// [`Share`](crate::reactive::Share); [`share_with`](Self::share_with) sets the
    /// capacity.
    ///
    /// ```
    /// use futures::StreamExt;
    /// use riverbed::reactive::ReactiveExt;
    ///
    /// # futures::executor::block_on(async {
    /// let readings = futures::stream::iter([3, 1, 4]).share();
    /// let display = readings.clone();
    /// // The two read concurrently; the upstream runs once for both.
    /// let (sum, shown) = futures::join!(
    ///     readings.fold(0, |sum, r| async move { sum + r }),
    ///     display.collect::<Vec<_>>(),
    /// );
    /// assert_eq!((sum, shown), (8, vec![3, 1, 4]));
    /// # });
    /// ```
    fn share(self) -> crate::reactive::Share<Self>
    where
        Self: Sized,
        Self::Item: Clone + Send + Sync,
    {
        self.share_with(crate::reactive::ShareOptions::new())
    }

    /// As [`share`](Self::share), and a new subscriber (a clone) first receives the
    /// last `n` items published before it was created, then the live ones with no gap
    /// and no duplicate: RxJS's `shareReplay(n)`. A clone made after the upstream ended
    /// receives the last `n` items, then the end. `replay(0)` is `share()`.
    ///
    /// The last `n` items are kept (cloned) as long as a subscriber is alive.
    ///
    /// ```
    /// use futures::StreamExt;
    /// use riverbed::reactive::ReactiveExt;
    ///
    /// # futures::executor::block_on(async {
    /// let (moves, played) = futures::channel::mpsc::unbounded();
    /// let mut game = played.replay(2);
    /// for m in ["e4", "e5", "Nf3"] {
    ///     moves.unbounded_send(m).unwrap();
    /// }
    /// // The driver publishes every move that is ready, not only the one it returns.
    /// assert_eq!(game.next().await, Some("e4"));
    /// // Joins late: the last two moves published first, then the live ones.
    /// let viewer = game.clone();
    /// moves.unbounded_send("Nc6").unwrap();
    /// drop(moves);
    /// assert_eq!(viewer.collect::<Vec<_>>().await, ["e5", "Nf3", "Nc6"]);
    /// assert_eq!(game.collect::<Vec<_>>().await, ["e5", "Nf3", "Nc6"]);
    /// # });
    /// ```
    #[doc(alias = "shareReplay")]
    fn replay(self, n: usize) -> crate::reactive::Share<Self>
    where
        Self: Sized,
        Self::Item: Clone + Send + Sync,
    {
        self.share_with(crate::reactive::ShareOptions::new().replay(n))
    }

    /// As [`share`](Self::share) or [`replay`](Self::replay), with the capacity of
    /// each subscriber and the replay count taken from `options`.
    ///
    /// ```
    /// use futures::StreamExt;
    /// use riverbed::reactive::{ReactiveExt, ShareOptions};
    ///
    /// # futures::executor::block_on(async {
    /// let ticks = futures::stream::iter(0..100).share_with(ShareOptions::new().capacity(8));
    /// let mut fast = ticks.clone();
    /// let slow = ticks;
    /// // `slow` reads nothing yet: `fast` gets 8 items (what fits in `slow`'s buffer)
    /// // and then would wait. Dropping `slow` lets it go on.
    /// let first: Vec<_> = (&mut fast).take(8).collect().await;
    /// assert_eq!(first, (0..8).collect::<Vec<_>>());
    /// drop(slow);
    /// assert_eq!(fast.count().await, 92);
    /// # });
    /// ```
    fn share_with(self, options: crate::reactive::ShareOptions) -> crate::reactive::Share<Self>
    where
        Self: Sized,
        Self::Item: Clone + Send + Sync,
    {
        crate::reactive::Share::new(self, options)
    }
    // End of hot streams
}

impl<S: Stream + ?Sized> ReactiveExt for S {}
