//! The reactive operators, one file each; [`ReactiveExt`] puts them on every `Stream`.
//!
//! # Time operators
//!
//! [`debounce`](ReactiveExt::debounce), [`throttle`](ReactiveExt::throttle),
//! [`sample`](ReactiveExt::sample), [`audit`](ReactiveExt::audit),
//! [`chunks_timeout`](ReactiveExt::chunks_timeout),
//! [`window_time`](ReactiveExt::window_time), [`delay`](ReactiveExt::delay),
//! [`timeout`](ReactiveExt::timeout), and the sources [`interval`] and [`timer`]. Each
//! takes, as its last argument, the [shared runtime](crate::runtime::SharedRuntime)
//! whose clock it reads: none names an executor, spawns a task or starts a timer
//! thread, so each behaves the same under tokio, smol, any executor with a
//! [`Runtime`](crate::runtime::Runtime), or the
//! [`VirtualRuntime`](crate::runtime::VirtualRuntime), where its timings are exact. The
//! rules they share:
//!
//! * **Arrival.** An item arrives when the operator receives it from upstream: when the
//!   operator is polled and upstream yields it. Items received in one poll arrive at the
//!   same instant. Every operator polls upstream whenever it is polled, so a consumer
//!   that keeps polling sees upstream's own timing.
//! * **Half-open windows.** Every span of time is half-open: a window of `d` opened at
//!   `t` holds what arrives at or after `t` and before `t + d`; an item that arrives
//!   exactly at `t + d` comes after it. Decisions compare instants, and timers only wake
//!   the stream; so an outcome never depends on which of two timers due at the same
//!   instant fires first (a tie that is common on the virtual clock).
//! * **Items are opaque.** The operators never look inside an item: an `Err` of a
//!   stream of `Result`s is an item like any other, delayed, dropped or sampled by the
//!   same rules, and never a reason to stop. (To stop at the first error, put
//!   `take_while` or a `try_` combinator of `futures` after the operator.)
//! * **Completion.** What happens to an item still held when upstream ends is stated
//!   per operator; after upstream ends, no operator waits longer than its own rule
//!   says.
//! * **Timers.** A deadline is an `Instant` in a field: moving it costs nothing. A
//!   timer is created only when the stream is about to wait, and when it fires early
//!   (the deadline moved later meanwhile) it is re-armed. No operator creates a timer
//!   per item: a burst of a million items costs at most one.
//! * **Memory.** Bounded by design: [`debounce`](ReactiveExt::debounce),
//!   [`throttle`](ReactiveExt::throttle), [`sample`](ReactiveExt::sample) and
//!   [`audit`](ReactiveExt::audit) hold at most one item (throttle two, for an
//!   instant), [`chunks_timeout`](ReactiveExt::chunks_timeout) one chunk,
//!   [`window_time`](ReactiveExt::window_time) none (a window pulls from upstream), and
//!   [`delay`](ReactiveExt::delay) exactly the items that arrived in the last `d`.

use futures_core::Stream;

// Time operators
use std::time::Duration;

use crate::runtime::SharedRuntime;

mod chunks_timeout;
mod delay;
mod hold;
mod interval;
mod throttle;
mod timeout;
mod timer;
mod upstream;
mod window_time;

pub use self::chunks_timeout::ChunksTimeout;
pub use self::delay::Delay;
pub use self::hold::{
    Audit, AuditRule, Debounce, DebounceRule, Held, HoldRule, Sample, SampleRule,
};
pub use self::interval::{Interval, interval};
pub use self::throttle::{Throttle, ThrottleConfig};
pub use self::timeout::TimeoutStream;
pub use self::timer::{Timer, timer};
pub use self::window_time::{Window, WindowTime};
// End of time operators

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

    // Time operators
    //
    // The examples share one source: items at 0, 30, 60 and 300 ms on the virtual
    // clock, then the end at 300 ms.

    /// Emits an item once `quiet` has passed with no newer item; an item followed by
    /// a newer one within `quiet` is dropped. (RxJS's `debounceTime`.)
    ///
    /// Exactly: an item that arrives at `t` is held; it goes out at `t + quiet` if no
    /// other item arrived before then, and is dropped the moment one does (the newer
    /// item is held in its place, and its own quiet period starts). An item arriving
    /// exactly at `t + quiet` comes too late to replace it: the held item goes out
    /// first. When upstream ends, the held item goes out at once, then the stream ends.
    /// An `Err` item is held and replaced like any other. Holds at most one item.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use futures::{StreamExt, stream};
    /// use riverbed::reactive::ReactiveExt;
    /// use riverbed::runtime::{Runtime, SharedRuntime, VirtualRuntime};
    ///
    /// let clock = VirtualRuntime::new();
    /// let rt: SharedRuntime = Arc::new(clock.clone());
    /// let (start, ms) = (rt.now(), Duration::from_millis);
    /// let source = stream::iter([(0, 'a'), (30, 'b'), (60, 'c'), (300, 'd')]).then(|(at, c)| {
    ///     let due = rt.sleep_until(start + ms(at));
    ///     async move { due.await; c }
    /// });
    /// let out: Vec<_> = clock.block_on(
    ///     source
    ///         .debounce(ms(100), &rt)
    ///         .map(|c| (c, (rt.now() - start).as_millis()))
    ///         .collect(),
    /// );
    /// // `c` after 100 ms of quiet; `d` at once, as upstream ends.
    /// assert_eq!(out, [('c', 160), ('d', 300)]);
    /// ```
    #[doc(alias = "debounceTime")]
    fn debounce(self, quiet: Duration, rt: &SharedRuntime) -> Debounce<Self>
    where
        Self: Sized,
    {
        Debounce::new(self, quiet, rt.clone())
    }

    /// Lets the first item of each `window` through and drops the rest. (RxJS's
    /// `throttleTime`, leading.) The same as
    /// [`throttle_with`](Self::throttle_with)`(window, ThrottleConfig::LEADING, rt)`.
    ///
    /// Exactly: an item that arrives when no window is open goes out at once and opens
    /// a window `[t, t + window)`; the items that arrive inside it are dropped. When
    /// upstream ends, the stream ends at once. An `Err` item is let through or dropped
    /// like any other. A zero window lets every item through.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use futures::{StreamExt, stream};
    /// use riverbed::reactive::ReactiveExt;
    /// use riverbed::runtime::{Runtime, SharedRuntime, VirtualRuntime};
    ///
    /// let clock = VirtualRuntime::new();
    /// let rt: SharedRuntime = Arc::new(clock.clone());
    /// let (start, ms) = (rt.now(), Duration::from_millis);
    /// let source = stream::iter([(0, 'a'), (30, 'b'), (60, 'c'), (300, 'd')]).then(|(at, c)| {
    ///     let due = rt.sleep_until(start + ms(at));
    ///     async move { due.await; c }
    /// });
    /// let out: Vec<_> = clock.block_on(
    ///     source
    ///         .throttle(ms(100), &rt)
    ///         .map(|c| (c, (rt.now() - start).as_millis()))
    ///         .collect(),
    /// );
    /// assert_eq!(out, [('a', 0), ('d', 300)]);
    /// ```
    #[doc(alias = "throttleTime")]
    fn throttle(self, window: Duration, rt: &SharedRuntime) -> Throttle<Self>
    where
        Self: Sized,
    {
        Throttle::new(self, window, ThrottleConfig::LEADING, rt.clone())
    }

    /// Lets at most one item through per `window`, the first one (`leading`), the last
    /// one (`trailing`) or both. (RxJS's `throttleTime` with its config.)
    ///
    /// Exactly: an item that arrives when no window is open opens a window
    /// `[t, t + window)` and, if `leading`, goes out at once. Items that arrive inside
    /// the window are dropped, except that with `trailing` the newest of them is kept
    /// and goes out when the window closes, at `t + window`, opening a new window there
    /// (so with `trailing`, items keep coming out at most once per `window` while
    /// upstream is busy). An item that arrives exactly as a window closes is outside
    /// it. When upstream ends: with `trailing` and an item kept, it goes out when its
    /// window closes, then the stream ends; otherwise the stream ends at once. With
    /// neither `leading` nor `trailing`, nothing goes out. An `Err` item is treated like
    /// any other. Holds at most one item (two for the instant a window closes while an
    /// item arrives).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use futures::{StreamExt, stream};
    /// use riverbed::reactive::{ReactiveExt, ThrottleConfig};
    /// use riverbed::runtime::{Runtime, SharedRuntime, VirtualRuntime};
    ///
    /// let clock = VirtualRuntime::new();
    /// let rt: SharedRuntime = Arc::new(clock.clone());
    /// let (start, ms) = (rt.now(), Duration::from_millis);
    /// let source = stream::iter([(0, 'a'), (30, 'b'), (60, 'c'), (300, 'd')]).then(|(at, c)| {
    ///     let due = rt.sleep_until(start + ms(at));
    ///     async move { due.await; c }
    /// });
    /// let out: Vec<_> = clock.block_on(
    ///     source
    ///         .throttle_with(ms(100), ThrottleConfig::LEADING_AND_TRAILING, &rt)
    ///         .map(|c| (c, (rt.now() - start).as_millis()))
    ///         .collect(),
    /// );
    /// // `c`, the last of the first window, when it closes.
    /// assert_eq!(out, [('a', 0), ('c', 100), ('d', 300)]);
    /// ```
    #[doc(alias = "throttleTime")]
    fn throttle_with(
        self,
        window: Duration,
        config: ThrottleConfig,
        rt: &SharedRuntime,
    ) -> Throttle<Self>
    where
        Self: Sized,
    {
        Throttle::new(self, window, config, rt.clone())
    }

    /// At every tick of `period`, emits the newest item that arrived since the tick
    /// before, if any. (RxJS's `sampleTime`.)
    ///
    /// Exactly: ticks fall at `start + k × period` (`k ≥ 1`), `start` being the first
    /// poll. The tick at `T` emits the newest item that arrived in `[T - period, T)`;
    /// older items of that span are dropped, and a tick with no new item emits nothing.
    /// An item that arrives exactly at a tick belongs to the next one. When upstream
    /// ends, the stream ends at once: as in RxJS, an item not sampled yet is dropped
    /// (use [`audit`](Self::audit) to keep the last one). An `Err` item is sampled or
    /// dropped like any other. A zero period is taken as one nanosecond. Holds at most
    /// one item.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use futures::{StreamExt, stream};
    /// use riverbed::reactive::ReactiveExt;
    /// use riverbed::runtime::{Runtime, SharedRuntime, VirtualRuntime};
    ///
    /// let clock = VirtualRuntime::new();
    /// let rt: SharedRuntime = Arc::new(clock.clone());
    /// let (start, ms) = (rt.now(), Duration::from_millis);
    /// let source = stream::iter([(0, 'a'), (30, 'b'), (60, 'c'), (300, 'd')]).then(|(at, c)| {
    ///     let due = rt.sleep_until(start + ms(at));
    ///     async move { due.await; c }
    /// });
    /// let out: Vec<_> = clock.block_on(
    ///     source
    ///         .sample(ms(100), &rt)
    ///         .map(|c| (c, (rt.now() - start).as_millis()))
    ///         .collect(),
    /// );
    /// // `d` came at 300 ms, for the tick at 400 ms; upstream ended first.
    /// assert_eq!(out, [('c', 100)]);
    /// ```
    #[doc(alias = "sampleTime")]
    fn sample(self, period: Duration, rt: &SharedRuntime) -> Sample<Self>
    where
        Self: Sized,
    {
        Sample::new(self, period, rt.clone())
    }

    /// Emits the newest item of each `window` when the window closes; a window opens
    /// with the first item that arrives while none is open. (RxJS's `auditTime`.)
    ///
    /// Exactly: an item that arrives at `t` when no window is open is held and opens
    /// the window `[t, t + window)`; items that arrive inside it replace the held item;
    /// at `t + window` the held item goes out and the window closes (the next window
    /// opens with the next item). An item that arrives exactly as a window closes opens
    /// the next one. When upstream ends, a held item still goes out when its window
    /// closes, then the stream ends. An `Err` item is held and replaced like any other.
    /// Holds at most one item.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use futures::{StreamExt, stream};
    /// use riverbed::reactive::ReactiveExt;
    /// use riverbed::runtime::{Runtime, SharedRuntime, VirtualRuntime};
    ///
    /// let clock = VirtualRuntime::new();
    /// let rt: SharedRuntime = Arc::new(clock.clone());
    /// let (start, ms) = (rt.now(), Duration::from_millis);
    /// let source = stream::iter([(0, 'a'), (30, 'b'), (60, 'c'), (300, 'd')]).then(|(at, c)| {
    ///     let due = rt.sleep_until(start + ms(at));
    ///     async move { due.await; c }
    /// });
    /// let out: Vec<_> = clock.block_on(
    ///     source
    ///         .audit(ms(100), &rt)
    ///         .map(|c| (c, (rt.now() - start).as_millis()))
    ///         .collect(),
    /// );
    /// // `d` waits for its window to close, though upstream ended at 300 ms.
    /// assert_eq!(out, [('c', 100), ('d', 400)]);
    /// ```
    #[doc(alias = "auditTime")]
    fn audit(self, window: Duration, rt: &SharedRuntime) -> Audit<Self>
    where
        Self: Sized,
    {
        Audit::new(self, window, rt.clone())
    }

    /// Groups items into `Vec`s of at most `max_len`, emitting a shorter one when
    /// `max_wait` has passed since its first item. (tokio-stream's `chunks_timeout`;
    /// RxJS's `bufferTime` with a maximum size, but without empty buffers.)
    ///
    /// Exactly: the first item that arrives when no chunk is in progress starts one at
    /// `t`. The chunk goes out as soon as it holds `max_len` items, or at
    /// `t + max_wait` with what it holds; an item that arrives exactly at
    /// `t + max_wait` starts the next chunk. A chunk is never empty. When upstream
    /// ends, the chunk in progress goes out at once, then the stream ends. `Err` items
    /// are collected like any other. A `max_len` of 0 is taken as 1. Holds at most one
    /// chunk. The pipeline's [`batch_timeout`](crate::pipeline::FlowStreamExt::batch_timeout)
    /// groups flowing items by the same rules.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use futures::{StreamExt, stream};
    /// use riverbed::reactive::ReactiveExt;
    /// use riverbed::runtime::{Runtime, SharedRuntime, VirtualRuntime};
    ///
    /// let clock = VirtualRuntime::new();
    /// let rt: SharedRuntime = Arc::new(clock.clone());
    /// let (start, ms) = (rt.now(), Duration::from_millis);
    /// let source = stream::iter([(0, 'a'), (30, 'b'), (60, 'c'), (300, 'd')]).then(|(at, c)| {
    ///     let due = rt.sleep_until(start + ms(at));
    ///     async move { due.await; c }
    /// });
    /// let out: Vec<_> = clock.block_on(
    ///     source
    ///         .chunks_timeout(2, ms(100), &rt)
    ///         .map(|chunk| (chunk, (rt.now() - start).as_millis()))
    ///         .collect(),
    /// );
    /// // Full at 30 ms; `c` alone after 100 ms; `d` at the end.
    /// assert_eq!(
    ///     out,
    ///     [(vec!['a', 'b'], 30), (vec!['c'], 160), (vec!['d'], 300)]
    /// );
    /// ```
    #[doc(alias = "bufferTime")]
    #[doc(alias = "buffer_time")]
    fn chunks_timeout(
        self,
        max_len: usize,
        max_wait: Duration,
        rt: &SharedRuntime,
    ) -> ChunksTimeout<Self>
    where
        Self: Sized,
    {
        ChunksTimeout::new(self, max_len, max_wait, rt.clone())
    }

    /// Splits the stream into consecutive windows of length `span`, each a stream
    /// ([`Window`]) of the items that arrive while it is open. (RxJS's `windowTime`.)
    ///
    /// Exactly: the first window opens at the first poll, at `start`, and is yielded at
    /// once; window `k` covers `[start + k × span, start + (k + 1) × span)` and is
    /// yielded when it opens, empty or not. A window ends when its time is up (an item
    /// that arrives exactly then goes to the next window) or when upstream ends; when
    /// upstream ends, the outer stream ends too, after the window that saw it.
    ///
    /// Windows hold nothing: the open window pulls its items from upstream when it is
    /// polled, so nothing is buffered however many items come, and a slow reader slows
    /// upstream down instead. The price: an item *arrives* when the open window pulls
    /// it. Items nobody pulls while a window is open (because its `Window` was dropped
    /// or not polled) stay in upstream for the next window, and upstream's end is seen
    /// only through a window. When the outer stream is polled late, past several
    /// boundaries, the windows wholly in the past are skipped (they could have received
    /// nothing). For windows as `Vec`s, collect each one
    /// (`.then(|window| window.collect::<Vec<_>>())`, as below) or use
    /// [`chunks_timeout`](Self::chunks_timeout). `Err` items go into windows like any
    /// other. A zero span is taken as one nanosecond.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use futures::{StreamExt, stream};
    /// use riverbed::reactive::ReactiveExt;
    /// use riverbed::runtime::{Runtime, SharedRuntime, VirtualRuntime};
    ///
    /// let clock = VirtualRuntime::new();
    /// let rt: SharedRuntime = Arc::new(clock.clone());
    /// let (start, ms) = (rt.now(), Duration::from_millis);
    /// let source = stream::iter([(0, 'a'), (30, 'b'), (60, 'c'), (300, 'd')]).then(|(at, c)| {
    ///     let due = rt.sleep_until(start + ms(at));
    ///     async move { due.await; c }
    /// });
    /// let out: Vec<_> = clock.block_on(
    ///     source
    ///         .window_time(ms(100), &rt)
    ///         .then(|window| window.collect::<Vec<_>>())
    ///         .map(|items| (items, (rt.now() - start).as_millis()))
    ///         .collect(),
    /// );
    /// // Each window is collected when it ends; `d`, at 300 ms, opens the fourth.
    /// assert_eq!(
    ///     out,
    ///     [(vec!['a', 'b', 'c'], 100), (vec![], 200), (vec![], 300), (vec!['d'], 300)]
    /// );
    /// ```
    #[doc(alias = "windowTime")]
    fn window_time(self, span: Duration, rt: &SharedRuntime) -> WindowTime<Self>
    where
        Self: Sized,
    {
        WindowTime::new(self, span, rt.clone())
    }

    /// Emits every item `by` after it arrived, in order. (RxJS's `delay`.)
    ///
    /// Exactly: an item that arrives at `t` goes out at `t + by` (later only when the
    /// consumer polls later); items keep their order. When upstream ends, the items in
    /// flight still go out at their times, and the stream ends when upstream has ended
    /// and the last of them is out. `Err` items are delayed like any other.
    ///
    /// Memory: the operator holds exactly the items that arrived in the last `by` and
    /// are not out yet (it must, to shift them), no more than upstream gave it in that
    /// span; [`Delay::in_flight`] tells how many. It pulls upstream whenever it is
    /// polled, so thin a fast upstream out before it (with [`throttle`](Self::throttle)
    /// or [`sample`](Self::sample), say) when `by` is long.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use futures::{StreamExt, stream};
    /// use riverbed::reactive::ReactiveExt;
    /// use riverbed::runtime::{Runtime, SharedRuntime, VirtualRuntime};
    ///
    /// let clock = VirtualRuntime::new();
    /// let rt: SharedRuntime = Arc::new(clock.clone());
    /// let (start, ms) = (rt.now(), Duration::from_millis);
    /// let source = stream::iter([(0, 'a'), (30, 'b'), (60, 'c'), (300, 'd')]).then(|(at, c)| {
    ///     let due = rt.sleep_until(start + ms(at));
    ///     async move { due.await; c }
    /// });
    /// let out: Vec<_> = clock.block_on(
    ///     source
    ///         .delay(ms(100), &rt)
    ///         .map(|c| (c, (rt.now() - start).as_millis()))
    ///         .collect(),
    /// );
    /// assert_eq!(out, [('a', 100), ('b', 130), ('c', 160), ('d', 400)]);
    /// ```
    fn delay(self, by: Duration, rt: &SharedRuntime) -> Delay<Self>
    where
        Self: Sized,
    {
        Delay::new(self, by, rt.clone())
    }

    /// Yields every item as `Ok`, and ends with `Err(`[`Elapsed`](crate::runtime::Elapsed)`)`
    /// when upstream takes `limit` or longer to yield one. (RxJS's `timeout`.)
    ///
    /// Exactly: each wait for an item starts when the item is asked for, at the first
    /// poll or at the first poll after the previous item was yielded (so a slow
    /// consumer never causes a timeout), and lasts `limit`. If upstream yields an item
    /// in `[asked, asked + limit)`, it comes out as `Ok(item)`; otherwise the stream
    /// yields `Err(Elapsed)` at `asked + limit` and ends, dropping upstream's late item
    /// if it comes exactly then. When upstream ends in time, the stream ends. An `Err`
    /// item of upstream is an item: it comes out as `Ok(Err(..))`. A zero limit times
    /// out at once.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use futures::{StreamExt, stream};
    /// use riverbed::reactive::ReactiveExt;
    /// use riverbed::runtime::{Elapsed, Runtime, SharedRuntime, VirtualRuntime};
    ///
    /// let clock = VirtualRuntime::new();
    /// let rt: SharedRuntime = Arc::new(clock.clone());
    /// let (start, ms) = (rt.now(), Duration::from_millis);
    /// let source = stream::iter([(0, 'a'), (30, 'b'), (60, 'c'), (300, 'd')]).then(|(at, c)| {
    ///     let due = rt.sleep_until(start + ms(at));
    ///     async move { due.await; c }
    /// });
    /// let out: Vec<_> = clock.block_on(
    ///     source
    ///         .timeout(ms(100), &rt)
    ///         .map(|c| (c, (rt.now() - start).as_millis()))
    ///         .collect(),
    /// );
    /// // Nothing came within 100 ms of 60 ms.
    /// assert_eq!(out, [(Ok('a'), 0), (Ok('b'), 30), (Ok('c'), 60), (Err(Elapsed), 160)]);
    /// ```
    fn timeout(self, limit: Duration, rt: &SharedRuntime) -> TimeoutStream<Self>
    where
        Self: Sized,
    {
        TimeoutStream::new(self, limit, rt.clone())
    }
    // End of time operators

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
