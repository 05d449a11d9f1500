//! [`EventBus`]: typed publish/subscribe with filters, bounded history and replay,
//! per-subscriber overflow policies, concurrent handlers and statistics.
//!
//! # Promises
//!
//! * **Order, once.** A subscriber sees the events that match its [`Filter`] in publish
//!   order (ascending [`Envelope::seq`]), each once.
//! * **Replay without gap or duplicate.** [`EventBus::subscribe_from`] copies the
//!   history from a sequence number and registers for live events in one step, so
//!   replay runs straight into live delivery even while publishers keep publishing.
//!   Asking for events the history no longer holds is a typed error
//!   ([`SubscribeError::Evicted`]), never silence.
//! * **Overflow is the subscriber's choice** ([`Overflow`]): `Block` (the default) makes
//!   the publisher wait — backpressure, nothing lost; `DropOldest` and `DropNewest` drop
//!   and tell the subscriber exactly how many it missed with a [`Lagged`] item at the
//!   point of the gap. Every drop is counted in [`BusStats`].
//! * **Targeted wakeups.** Filters run when an event is published; a subscriber whose
//!   filter rejects an event is not touched or woken.
//! * **Isolated handlers.** A handler ([`EventBus::on`]) that returns an error or panics
//!   is counted, recorded in [`BusStats::handlers`] and reported as an event on
//!   [`EventBus::handler_failures`]; the bus, the flow and the other handlers go on.
//! * **Clean ends.** Dropping a [`Subscription`] unsubscribes it and frees its buffer.
//!   After [`EventBus::close`] (or when the last `EventBus` handle is dropped),
//!   publishing returns [`PublishError`] with the event handed back, and every
//!   subscriber receives what was already published to it, then ends. A bus with no
//!   subscribers holds no more than its history bound.
//!
//! # Example
//!
//! ```
//! use futures::StreamExt;
//! use riverbed::bus::{EventBus, Filter};
//!
//! # futures::executor::block_on(async {
//! let bus: EventBus<String, &str> = EventBus::builder().history(100).build();
//! let mut orders = bus.subscribe(Filter::kind("order"));
//!
//! bus.emit("order", "#1001".to_string()).await?;
//! bus.emit("audit", "login".to_string()).await?;
//!
//! let event = orders.next().await.unwrap()?;
//! assert_eq!((event.seq, event.kind, event.payload.as_str()), (0, "order", "#1001"));
//!
//! // A late subscriber replays history, then continues live.
//! let mut late = bus.subscribe_from(0, Filter::all())?;
//! assert_eq!(late.next().await.unwrap()?.seq, 0);
//! assert_eq!(late.next().await.unwrap()?.seq, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod envelope;
mod error;
mod filter;
mod handler;
mod ledger;
mod stats;
mod subscription;

use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

pub use self::envelope::{Envelope, Event, EventId, ParseEventIdError, Source};
pub use self::error::{PublishError, TryPublishError};
pub use self::filter::Filter;
pub use self::handler::Handler;
pub use self::stats::{BusStats, HandlerFailure, KindCount};
pub use self::subscription::{Failures, Subscription};
/// The broadcast vocabulary, shared with the reactive stream (defined in
/// [`broadcast`](crate::broadcast)).
#[doc(no_inline)]
pub use crate::broadcast::{Lagged, Overflow, SubscribeError, SubscribeOptions};

use crate::broadcast::{Core, SubscribeSpec};
use crate::flow::{FlowMetrics, FlowStats, HandlerOutcome, ItemOnly, StopSignal, WithContext};
use crate::runtime::SharedRuntime;
use handler::FailureCore;
use ledger::KindLedger;

/// What an event kind must be: cheap to compare and hash, shareable across threads.
///
/// Implemented for every type that qualifies: `&'static str`, `String`, your own
/// `#[derive(Clone, PartialEq, Eq, Hash, Debug)] enum`.
pub trait Kind: Clone + Eq + Hash + fmt::Debug + Send + Sync + 'static {}

impl<T: Clone + Eq + Hash + fmt::Debug + Send + Sync + 'static> Kind for T {}

/// The default number of events that may wait for one subscriber.
pub const DEFAULT_BUS_CAPACITY: usize = 1024;

pub(crate) type Item<P, K> = Envelope<P, K>;
pub(crate) type BusCore<P, K> = Core<Item<P, K>, KindLedger<K>>;

/// What the publisher chose of an event, rather than left to the bus.
#[derive(Clone, Copy)]
struct Chosen {
    id: Option<EventId>,
    timestamp: bool,
}

/// What a successful publish returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Receipt {
    /// The event's sequence number.
    pub seq: u64,
    /// The event's id.
    pub id: EventId,
}

/// A typed publish/subscribe bus. Cheap to clone: clones share one bus.
///
/// See the [module docs](self) for the promises it keeps and an example.
pub struct EventBus<P, K> {
    shared: Arc<Shared<P, K>>,
}

struct Shared<P, K> {
    core: Arc<BusCore<P, K>>,
    /// High 64 bits of generated event ids: random per bus.
    nonce: u64,
    clock: Option<SharedRuntime>,
    capacity: usize,
    history: usize,
    handlers: Mutex<Vec<Arc<FlowMetrics>>>,
    failures: Arc<FailureCore>,
    /// Live `EventBus` handles; the bus closes when the last one goes.
    handles: AtomicUsize,
}

/// Configures an [`EventBus`]; from [`EventBus::builder`].
pub struct EventBusBuilder<P, K> {
    history: usize,
    max_age: Option<Duration>,
    capacity: usize,
    clock: Option<SharedRuntime>,
    _types: std::marker::PhantomData<fn(P, K)>,
}

impl<P, K> fmt::Debug for EventBusBuilder<P, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventBusBuilder")
            .field("history", &self.history)
            .field("max_age", &self.max_age)
            .field("capacity", &self.capacity)
            .field("clock", &self.clock)
            .finish()
    }
}

impl<P: Clone + Send + Sync + 'static, K: Kind> EventBusBuilder<P, K> {
    /// Keep the last `events` published events for [`EventBus::history`] and
    /// [`EventBus::subscribe_from`]. Default: 0 (no history, no cost).
    pub fn history(mut self, events: usize) -> Self {
        self.history = events;
        self
    }

    /// Also forget history entries older than `age` (by their timestamp, on the bus
    /// clock). Has no effect without [`history`](Self::history).
    pub fn history_max_age(mut self, age: Duration) -> Self {
        self.max_age = Some(age);
        self
    }

    /// How many events may wait for one subscriber before its overflow policy applies,
    /// unless it chose its own. Default: [`DEFAULT_BUS_CAPACITY`]. Zero is raised to one.
    pub fn capacity(mut self, events: usize) -> Self {
        self.capacity = events.max(1);
        self
    }

    /// Timestamps and history ages come from `runtime`'s clock (a
    /// [`VirtualRuntime`](crate::runtime::VirtualRuntime) makes them deterministic).
    /// Default: the system clock.
    pub fn clock(mut self, runtime: SharedRuntime) -> Self {
        self.clock = Some(runtime);
        self
    }

    /// Builds the bus.
    pub fn build(self) -> EventBus<P, K> {
        let expired = self.max_age.map(|age| {
            let clock = self.clock.clone();
            let check: crate::broadcast::Matcher<Item<P, K>> = Box::new(move |e: &Item<P, K>| {
                let now = clock
                    .as_ref()
                    .map_or_else(SystemTime::now, |c| c.system_time());
                now.duration_since(e.timestamp)
                    .is_ok_and(|elapsed| elapsed > age)
            });
            check
        });
        let nonce = crate::id::unique_u64();
        EventBus {
            shared: Arc::new(Shared {
                core: Arc::new(Core::new(self.history, expired, KindLedger::default())),
                nonce,
                clock: self.clock,
                capacity: self.capacity,
                history: self.history,
                handlers: Mutex::new(Vec::new()),
                failures: Arc::new(Core::new(0, None, ())),
                handles: AtomicUsize::new(1),
            }),
        }
    }
}

impl<P: Clone + Send + Sync + 'static, K: Kind> Default for EventBus<P, K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Clone + Send + Sync + 'static, K: Kind> EventBus<P, K> {
    /// A bus with default settings: no history, [`DEFAULT_BUS_CAPACITY`] per subscriber,
    /// the system clock.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder to choose history, capacity and clock.
    pub fn builder() -> EventBusBuilder<P, K> {
        EventBusBuilder {
            history: 0,
            max_age: None,
            capacity: DEFAULT_BUS_CAPACITY,
            clock: None,
            _types: std::marker::PhantomData,
        }
    }

    /// The envelope for `event`, and what its publisher chose of it (to hand the same
    /// event back if it is not published).
    fn envelope(&self, event: Event<P, K>) -> (Item<P, K>, Chosen) {
        let chosen = Chosen {
            id: event.id,
            timestamp: event.timestamp.is_some(),
        };
        let timestamp = event.timestamp.unwrap_or_else(|| match &self.shared.clock {
            Some(clock) => clock.system_time(),
            None => SystemTime::now(),
        });
        let envelope = Envelope {
            // Replaced by `stamp` unless the publisher chose it.
            id: event.id.unwrap_or(EventId(0)),
            seq: 0,
            kind: event.kind,
            timestamp,
            source: event.source,
            payload: event.payload,
        };
        (envelope, chosen)
    }

    /// The id of event `seq` when its publisher chose none: the bus's random prefix and
    /// the sequence number.
    fn generated_id(nonce: u64, seq: u64) -> EventId {
        EventId((u128::from(nonce) << 64) | u128::from(seq))
    }

    fn stamper(&self, chosen: Chosen) -> impl FnMut(&mut Item<P, K>, u64) + use<P, K> {
        let nonce = self.shared.nonce;
        move |envelope: &mut Item<P, K>, seq: u64| {
            envelope.seq = seq;
            if chosen.id.is_none() {
                envelope.id = Self::generated_id(nonce, seq);
            }
        }
    }

    /// The event as it was given to `publish`, from its unpublished envelope.
    fn given_back(envelope: Item<P, K>, chosen: Chosen) -> PublishError<P, K> {
        PublishError::new(Event {
            kind: envelope.kind,
            payload: envelope.payload,
            source: envelope.source,
            id: chosen.id,
            timestamp: chosen.timestamp.then_some(envelope.timestamp),
        })
    }

    fn receipt(&self, seq: u64, chosen: Chosen) -> Receipt {
        let id = chosen
            .id
            .unwrap_or_else(|| Self::generated_id(self.shared.nonce, seq));
        Receipt { seq, id }
    }

    /// Publishes `event`, waiting while a matching [`Overflow::Block`] subscriber is full.
    ///
    /// Returns the event's sequence number and id. After [`close`](Self::close) it
    /// returns [`PublishError`] with the event handed back.
    pub async fn publish(
        &self,
        event: impl Into<Event<P, K>>,
    ) -> Result<Receipt, PublishError<P, K>> {
        let (item, chosen) = self.envelope(event.into());
        match self.shared.core.publish(item, self.stamper(chosen)).await {
            Ok(seq) => Ok(self.receipt(seq, chosen)),
            Err(item) => Err(Self::given_back(item, chosen)),
        }
    }

    /// Publishes an event of `kind` carrying `payload`: shorthand for
    /// `publish(Event::new(kind, payload))`.
    pub async fn emit(&self, kind: K, payload: P) -> Result<Receipt, PublishError<P, K>> {
        self.publish(Event::new(kind, payload)).await
    }

    /// Publishes `event` without waiting: fails with [`TryPublishError::Full`] (the
    /// event handed back) when a matching `Block` subscriber has no room.
    pub fn try_publish(
        &self,
        event: impl Into<Event<P, K>>,
    ) -> Result<Receipt, TryPublishError<P, K>> {
        use crate::broadcast::TryPublishError as CoreError;
        let (item, chosen) = self.envelope(event.into());
        match self
            .shared
            .core
            .try_publish(item, &mut self.stamper(chosen))
        {
            Ok(seq) => Ok(self.receipt(seq, chosen)),
            Err(CoreError::Closed(item)) => {
                Err(TryPublishError::Closed(Self::given_back(item, chosen)))
            }
            Err(CoreError::Full(item)) => {
                Err(TryPublishError::Full(Self::given_back(item, chosen)))
            }
        }
    }

    /// Subscribes to the events matching `filter` published from now on, with the
    /// `Block` policy and the bus's default capacity.
    pub fn subscribe(&self, filter: Filter<P, K>) -> Subscription<P, K> {
        let spec = SubscribeSpec {
            matcher: filter.into_matcher(),
            overflow: Overflow::Block,
            capacity: self.shared.capacity,
        };
        Subscription::new(self.shared.core.subscribe(spec))
    }

    fn spec(
        &self,
        filter: Filter<P, K>,
        options: &SubscribeOptions,
    ) -> Result<SubscribeSpec<Item<P, K>>, SubscribeError> {
        Ok(SubscribeSpec {
            matcher: filter.into_matcher(),
            overflow: options.get_overflow(),
            capacity: options.resolve_capacity(self.shared.capacity)?,
        })
    }

    /// Subscribes to the events matching `filter` published from now on, with explicit
    /// options (capacity, overflow policy).
    ///
    /// Fails with [`SubscribeError::ZeroCapacity`] for a capacity of 0.
    pub fn subscribe_with(
        &self,
        filter: Filter<P, K>,
        options: SubscribeOptions,
    ) -> Result<Subscription<P, K>, SubscribeError> {
        let spec = self.spec(filter, &options)?;
        Ok(Subscription::new(self.shared.core.subscribe(spec)))
    }

    /// Replays the history from sequence number `seq` (the matching events the bus
    /// still holds), then continues with live events — no gap, no duplicate.
    ///
    /// Fails with [`SubscribeError::Evicted`] when the history no longer holds `seq`,
    /// and with [`SubscribeError::Ahead`] when `seq` has not been published yet
    /// (`seq == next_seq()` is fine: live events only).
    pub fn subscribe_from(
        &self,
        seq: u64,
        filter: Filter<P, K>,
    ) -> Result<Subscription<P, K>, SubscribeError> {
        self.subscribe_from_with(seq, filter, SubscribeOptions::new())
    }

    /// As [`subscribe_from`](Self::subscribe_from), with explicit options; a capacity
    /// of 0 fails with [`SubscribeError::ZeroCapacity`].
    pub fn subscribe_from_with(
        &self,
        seq: u64,
        filter: Filter<P, K>,
        options: SubscribeOptions,
    ) -> Result<Subscription<P, K>, SubscribeError> {
        let spec = self.spec(filter, &options)?;
        Ok(Subscription::new(
            self.shared.core.subscribe_from(spec, seq)?,
        ))
    }

    /// The last `limit` events in the history that match `filter`, oldest first.
    pub fn history(&self, filter: &Filter<P, K>, limit: usize) -> Vec<Envelope<P, K>> {
        self.shared.core.inspect(|_, _, history, _| {
            let mut out: Vec<_> = history
                .rev()
                .filter(|e| filter.matches(e))
                .take(limit)
                .cloned()
                .collect();
            out.reverse();
            out
        })
    }

    /// The sequence number the next event will get.
    pub fn next_seq(&self) -> u64 {
        self.shared.core.next_seq()
    }

    /// How many subscriptions (handlers included) are live.
    pub fn subscriber_count(&self) -> usize {
        self.shared.core.subscriber_count()
    }

    /// Closes the bus: publishing fails from now on; subscribers drain what they were
    /// sent and then end. Idempotent.
    pub fn close(&self) {
        self.shared.core.close();
    }

    /// Whether the bus is closed.
    pub fn is_closed(&self) -> bool {
        self.shared.core.is_closed()
    }

    /// Runs `handler` for every event matching `filter`; see [`Handler`].
    ///
    /// The subscription starts now, so events published before the returned flow is
    /// first polled are handled too. Nothing runs until the flow is awaited or
    /// [spawned](Handler::spawn).
    pub fn on<F, Fut>(&self, filter: Filter<P, K>, handler: F) -> Handler<P, K, ItemOnly<F>>
    where
        F: Fn(Envelope<P, K>) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future + Send + 'static,
        Fut::Output: HandlerOutcome,
    {
        self.handler(filter, ItemOnly(handler))
    }

    /// As [`on`](Self::on), with the flow's [`StopSignal`] as the handler's second
    /// argument: a long handler can see that a stop was asked for and finish early,
    /// or stop its own flow.
    pub fn on_with_context<F, Fut>(
        &self,
        filter: Filter<P, K>,
        handler: F,
    ) -> Handler<P, K, WithContext<F>>
    where
        F: Fn(Envelope<P, K>, StopSignal) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future + Send + 'static,
        Fut::Output: HandlerOutcome,
    {
        self.handler(filter, WithContext(handler))
    }

    fn handler<H>(&self, filter: Filter<P, K>, handler: H) -> Handler<P, K, H>
    where
        H: crate::flow::HandlerFn<Envelope<P, K>, StopSignal>,
    {
        let metrics = {
            let mut handlers = self
                .shared
                .handlers
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let metrics = FlowMetrics::new(
                format!("handler-{}", handlers.len()),
                self.shared.clock.clone(),
            );
            handlers.push(Arc::clone(&metrics));
            metrics
        };
        Handler::new(
            self.subscribe(filter),
            handler,
            metrics,
            Arc::clone(&self.shared.failures),
            self.shared.clock.clone(),
        )
    }

    /// Handler failures as they happen, as a stream of events: every invocation of a
    /// handler of this bus that returns an error or panics from now on, with the
    /// handler's name, the event's sequence number and kind, and the message.
    ///
    /// The stream keeps up to `capacity` failures for a slow reader and then drops the
    /// oldest, telling it how many with a [`Lagged`] item, so a failing handler is never
    /// held back by it. It ends when the last `EventBus` handle is dropped. Failures are
    /// also counted and the last few kept in [`stats`](Self::stats).
    pub fn handler_failures(&self, capacity: usize) -> Failures {
        Failures::new(self.shared.failures.subscribe(SubscribeSpec {
            matcher: None,
            overflow: Overflow::DropOldest,
            capacity,
        }))
    }

    /// A snapshot of the bus statistics.
    pub fn stats(&self) -> BusStats<K> {
        let handlers: Vec<FlowStats> = self
            .shared
            .handlers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .map(|m| m.snapshot())
            .collect();
        self.shared
            .core
            .inspect(|ledger, counts, history, subscribers| {
                BusStats::new(
                    counts,
                    ledger.snapshot(),
                    subscribers,
                    history.count(),
                    self.shared.history,
                    handlers,
                )
            })
    }
}

impl<P, K> Clone for EventBus<P, K> {
    fn clone(&self) -> Self {
        self.shared.handles.fetch_add(1, Ordering::Relaxed);
        EventBus {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<P, K> Drop for EventBus<P, K> {
    fn drop(&mut self) {
        if self.shared.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.core.close();
            self.shared.failures.close();
        }
    }
}

impl<P, K> fmt::Debug for EventBus<P, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventBus")
            .field("closed", &self.shared.core)
            .field("capacity", &self.shared.capacity)
            .field("history", &self.shared.history)
            .finish_non_exhaustive()
    }
}
