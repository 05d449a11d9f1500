//! Reactive streams: a hot, multicast [`ReactiveStream`] (a *subject*: emit into it,
//! subscribe to it many times), and operators usable on any `Stream` ([`ReactiveExt`]).
//!
//! # ReactiveStream
//!
//! * **Hot and multicast.** Each subscriber — a `Stream` from
//!   [`subscribe`](ReactiveStream::subscribe) or a handler flow from
//!   [`on`](ReactiveStream::on) — sees what is emitted after it
//!   subscribed, in emit order, each item once. [`ReactiveStream::replay`] gives a late
//!   subscriber the last `n` items first, [`ReactiveStream::latest`] the current value.
//! * **Transformers run once per item**, on the emitter's task, before the item is
//!   shared; one may drop an item.
//! * **Terminal signals** reach every subscriber exactly once, after everything emitted
//!   before them; nothing follows them, and emitting afterwards is a typed error.
//! * **Overflow per subscriber** (`Block`, `DropOldest`, `DropNewest`), as on the event
//!   bus, through the same broadcast core: one write per emit, drops counted, and a
//!   dropped subscriber frees its buffer at once.
//!
//! ```
//! use futures::StreamExt;
//! use riverbed::reactive::{ReactiveStream, StreamError};
//!
//! # futures::executor::block_on(async {
//! let inventory: ReactiveStream<(String, u32), String> = ReactiveStream::new("inventory");
//! inventory.add_transformer(|(sku, n): (String, u32)| async move { (sku.to_uppercase(), n) });
//! let mut ui = inventory.subscribe();
//!
//! inventory.emit(("ab-1".into(), 3)).await?;
//! inventory.error("warehouse offline".to_string())?;
//!
//! assert_eq!(ui.next().await, Some(Ok(("AB-1".to_string(), 3))));
//! assert_eq!(ui.next().await, Some(Err(StreamError::Failed("warehouse offline".into()))));
//! assert_eq!(ui.next().await, None);
//! assert!(inventory.emit(("ab-2".into(), 1)).await.is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! # Operators
//!
//! The operators here add what `futures::StreamExt` does not have (time, combining and
//! stateful operators); they do not repeat what it has (`map`, `filter`, `zip`,
//! `chunks`, ...). Import both traits and mix them freely.
//!
//! The time operators and sources ([`interval`], [`timer`]) run on the clock of a
//! [`Runtime`](crate::runtime::Runtime) handed to them, exactly on the virtual clock;
//! the rules they share (arrival, half-open windows, opaque items, timers, memory) are
//! in the [`ops`] module docs.
//!
//! # From RxJS to futures
//!
//! Where `futures` already has an operator with the semantics reactive code expects,
//! riverbed adds none; this table maps the Rx name to the call to use. An `Err` item of
//! a stream of `Result`s is an ordinary item for all of them (Rx's error channel is the
//! item type here): it ends nothing unless the stream ends after it. Operators that
//! stop at the first error are `TryStreamExt`'s (`try_flatten`, `try_filter`, ...).
//!
//! | Rx | futures / riverbed | semantics |
//! |---|---|---|
//! | `merge(a, b)` | `futures::stream::select(a, b)` | items of both as they come; the two are polled in turn (round robin), so neither starves the other; ends when both have ended |
//! | `merge(...streams)` | `futures::stream::select_all(streams)` | items of all as they come; a stream is polled only when it has woken, and after giving an item it goes to the back of the queue, so none starves the others; ends when all have ended (at once for none). The streams must be `Unpin`: `Box::pin` or `.boxed()` those that are not |
//! | `concat(a, b)` | `a.chain(b)` | `b` is polled only once `a` has ended |
//! | `concatMap(f)` | `StreamExt::flat_map(f)` (`then(f)` when `f` is async and gives one item) | each inner stream runs to its end before the next outer item is taken; ends when the outer stream and the last inner stream have ended. The next outer item is pulled, not buffered: that is backpressure, and the output is the same |
//! | `mergeMap(f, n)` / `mergeAll(n)` | `StreamExt::flat_map_unordered(n, f)` / `flatten_unordered(n)` | up to `n` inner streams at once (`None`: no limit), their items as they come |
//! | `switchMap(f)` | [`ReactiveExt::switch_map`] | added: `futures` has no switch |
//! | `combineLatest(a, b)` / `combineLatest([...])` | [`ReactiveExt::combine_latest`] / [`ops::combine_latest_all`] | added |
//! | `withLatestFrom(b)` | [`ReactiveExt::with_latest_from`] | added |
//! | `zip(a, b)` | `a.zip(b)` | pairs in order; ends when either ends |
//! | `startWith(...items)` | [`ReactiveExt::start_with`] | a named `futures::stream::iter(items).chain(s)`, for method chains |
//! | `takeUntil(notifier)` | `s.take_until(notifier.into_future())` | see below |
//! | `takeWhile(p)` / `skipWhile(p)` | `take_while` / `skip_while` | `p` returns a future (`std::future::ready(..)` for a plain test) |
//! | `scan(f, seed)` | [`ReactiveExt::accumulate`] | added: `StreamExt::scan` is a stateful `filter_map` whose closure returns a future of an `Option`; `accumulate` emits every state of a plain reducer |
//! | `reduce(f, seed)` / `toArray()` | `fold(seed, f)` / `collect::<Vec<_>>()` | futures, not streams: they resolve when the stream ends |
//! | `distinctUntilChanged()` / `distinctUntilKeyChanged(k)` | [`ReactiveExt::distinct_until_changed`] / [`distinct_until_changed_by_key`](ReactiveExt::distinct_until_changed_by_key) | added |
//! | `pairwise()` | [`ReactiveExt::pairwise`] | added |
//! | `bufferCount(n)` | `chunks(n)` | the last chunk may be shorter |
//! | `share()` / `shareReplay(n)` | [`ReactiveExt::share`] / [`ReactiveExt::replay`] | added: one upstream, many subscribers (clones), hot; `Block` backpressure; see [`Share`] |
//!
//! riverbed also adds [`dedupe_within`](ReactiveExt::dedupe_within) (and
//! [`dedupe_within_by_key`](ReactiveExt::dedupe_within_by_key)), which has no Rx
//! operator: it drops an item equal to one emitted less than a window ago, on a
//! runtime's clock, with memory bounded by the window.
//!
//! ## `takeUntil` with a notifier stream
//!
//! `StreamExt::take_until` takes a future: the stream ends as soon as it resolves
//! (checked before each item, so a notifier that is ready together with an item wins).
//! For a notifier *stream*, `notifier.into_future()` resolves on the notifier's first
//! item **or on its end**, so the source stops in both cases. That is the Rust idiom:
//! dropping the sending half of a channel is how one says "stop" (RxJS instead lets
//! the source run on when the notifier completes without a value). For RxJS's rule,
//! wait for an item only:
//!
//! ```
//! use futures::{StreamExt, future, stream};
//!
//! # futures::executor::block_on(async {
//! // Ends on the notifier's first item or its end (here: its end).
//! let stop = stream::empty::<()>();
//! let out: Vec<_> = stream::iter(1..=3).take_until(stop.into_future()).collect().await;
//! assert!(out.is_empty());
//!
//! // Ends on the notifier's first item only: an empty notifier never stops it.
//! let mut stop = stream::empty::<()>();
//! let first_item = async move {
//!     if stop.next().await.is_none() {
//!         future::pending::<()>().await;
//!     }
//! };
//! let out: Vec<_> = stream::iter(1..=3).take_until(first_item).collect().await;
//! assert_eq!(out, [1, 2, 3]);
//! # });
//! ```
//!
//! Merging and concatenating, with the `futures` calls above:
//!
//! ```
//! use futures::{StreamExt, stream};
//!
//! # futures::executor::block_on(async {
//! // merge: round robin while both are ready.
//! let merged: Vec<_> = stream::select(stream::iter([1, 3]), stream::iter([2, 4])).collect().await;
//! assert_eq!(merged, [1, 2, 3, 4]);
//!
//! // merge of many: every item of every stream, each stream in its own order.
//! let all = stream::select_all([stream::iter(0..2), stream::iter(10..12), stream::iter(20..22)]);
//! let mut all: Vec<_> = all.collect().await;
//! all.sort();
//! assert_eq!(all, [0, 1, 10, 11, 20, 21]);
//!
//! // concatMap: each inner stream to its end, in outer order.
//! let spans: Vec<_> = stream::iter([1, 3]).flat_map(|n| stream::iter(n..n + 2)).collect().await;
//! assert_eq!(spans, [1, 2, 3, 4]);
//! # });
//! ```

mod chain;
pub mod ops;
mod share;
mod subject;
mod subject_state;
mod subscriber;
mod subscription;

/// The broadcast vocabulary, shared with the event bus (defined in
/// [`broadcast`](crate::broadcast)).
#[doc(no_inline)]
pub use crate::broadcast::{Lagged, Overflow, SubscribeError, SubscribeOptions};
pub use ops::ReactiveExt;
pub use share::{Share, ShareOptions};
pub use subject::{
    AlreadyTerminated, DEFAULT_STREAM_CAPACITY, EmitError, ReactiveStats, ReactiveStream,
    ReactiveStreamBuilder, SharedError, StreamState, TryEmitError,
};
pub use subscriber::Subscriber;
pub use subscription::{StreamError, Subscription};
// Time sources and settings
pub use ops::{ThrottleConfig, interval, timer};
