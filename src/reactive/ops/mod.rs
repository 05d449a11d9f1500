//! The reactive operators, one file each; [`ReactiveExt`] puts them on every `Stream`.

use futures_core::Stream;

// Combining and stateful operators
mod accumulate;
mod dedupe_within;
mod dedupe_within_by_key;
mod distinct_until_changed;
mod distinct_until_changed_by_key;
mod pairwise;
mod start_with;

pub use self::accumulate::Accumulate;
pub use self::dedupe_within::DedupeWithin;
pub use self::dedupe_within_by_key::DedupeWithinByKey;
pub use self::distinct_until_changed::DistinctUntilChanged;
pub use self::distinct_until_changed_by_key::DistinctUntilChangedByKey;
pub use self::pairwise::Pairwise;
pub use self::start_with::StartWith;

// End of combining and stateful operators

/// Reactive operators on any [`Stream`]: time, combining and stateful operators that
/// `futures::StreamExt` does not offer. Time comes from a
/// [`Runtime`](crate::runtime::Runtime) handed in, so every operator behaves the same
/// under tokio, smol or the virtual clock.
pub trait ReactiveExt: Stream {
    // Combining and stateful operators

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
    ///     let events = futures::stream::iter([(0, "alarm"), (400, "alarm"), (0, "door"), (800, "alarm")])
    ///         .then(move |(wait, event)| {
    ///             let sleep = clock.sleep(Duration::from_millis(wait));
    ///             async move {
    ///                 sleep.await;
    ///                 event
    ///             }
    ///         });
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
}

impl<S: Stream + ?Sized> ReactiveExt for S {}
