//! [`ReactiveStream`]: a hot, multicast subject with a transformer chain.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use futures_util::FutureExt;
use serde::{Deserialize, Serialize};

use super::chain::{Chain, Panicked, Step};
use super::subject_state::{Counters, Inner, Subject, Terminal};
use super::subscriber::Subscriber;
use super::subscription::Subscription;
use crate::broadcast::{
    Core, Overflow, SubscribeError, SubscribeOptions, SubscribeSpec, TryPublishError,
};
use crate::flow::{HandlerOutcome, ItemOnly, StopSignal, WithContext};

/// The default error type of a [`ReactiveStream`]: any error, shared by every
/// subscriber that receives it.
pub type SharedError = Arc<dyn std::error::Error + Send + Sync>;

/// How many items may wait for one subscriber, unless the stream or the subscriber says
/// otherwise.
pub const DEFAULT_STREAM_CAPACITY: usize = 256;

/// A hot, multicast stream: a *subject* that you [`emit`](Self::emit) into and that
/// any number of subscribers read, each as a [`Stream`](futures_core::Stream)
/// ([`subscribe`](Self::subscribe)) or through a handler flow
/// ([`on`](Self::on)).
///
/// # Promises
///
/// * **Hot.** A subscriber sees what is emitted after it subscribes; a
///   [`replay`](Self::replay) subject first gives it the last `n` items, a
///   [`latest`](Self::latest) subject the current value. The hand-off from those to
///   live items has no gap and no duplicate, even while emitters run.
/// * **Transformers run once per item**, in the order they were added, on the
///   emitter's task, before the item is shared: never once per subscriber. A
///   transformer returns the item (changed or not) or `None` to drop it (counted).
/// * **Terminal signals.** [`complete`](Self::complete) or [`error`](Self::error) ends
///   the stream: every subscriber receives what was emitted before, then the terminal
///   signal exactly once (an `Err(StreamError::Failed(e))` item, or the end of its
///   stream), and nothing after it. Emitting afterwards is a typed error
///   ([`EmitError::Terminated`], the item handed back). Dropping the last
///   `ReactiveStream` handle completes the stream.
/// * **Overflow is each subscriber's choice** ([`Overflow`](crate::broadcast::Overflow)):
///   `Block` (the default: `emit` waits for room; nothing is lost), `DropOldest` or
///   `DropNewest`, where the subscriber is told how many it missed
///   ([`StreamError::Lagged`](super::StreamError::Lagged)) and the drops are counted.
/// * **One mechanism.** Items fan out through the same broadcast core as the
///   [`EventBus`](crate::bus::EventBus): one write per emit, whatever the number of
///   subscribers; dropping a subscriber unsubscribes it and frees its buffer.
///
/// Cloning a `ReactiveStream` gives another handle to the same stream.
///
/// # Example
///
/// ```
/// use futures::StreamExt;
/// use riverbed::reactive::ReactiveStream;
///
/// # futures::executor::block_on(async {
/// let prices: ReactiveStream<u32> = ReactiveStream::new("prices");
/// // Runs once per item, whatever the number of subscribers; `None` drops the item.
/// prices.add_transformer(|cents: u32| async move { (cents > 0).then_some(cents * 2) });
///
/// let mut ui = prices.subscribe();
/// let mut cache = prices.subscribe();
/// for cents in [100, 0, 250] {
///     prices.emit(cents).await?;
/// }
/// prices.complete()?;
///
/// let ui: Vec<u32> = ui.by_ref().map(Result::unwrap).collect().await;
/// let cache: Vec<u32> = cache.by_ref().map(Result::unwrap).collect().await;
/// assert_eq!(ui, [200, 500]);
/// assert_eq!(cache, [200, 500]);
/// assert_eq!(prices.stats().transformed_away, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub struct ReactiveStream<T: Clone + Send + Sync + 'static, E = SharedError> {
    inner: Arc<Inner<T, E>>,
}

/// Configures a [`ReactiveStream`]; from [`ReactiveStream::builder`].
#[must_use = "a builder does nothing until `build` is called"]
pub struct ReactiveStreamBuilder<T, E = SharedError> {
    name: Arc<str>,
    capacity: usize,
    replay: usize,
    initial: Option<T>,
    error: PhantomData<fn() -> E>,
}

impl<T: Clone + Send + Sync + 'static, E> ReactiveStreamBuilder<T, E> {
    /// How many items may wait for each subscriber before its overflow policy applies
    /// (default [`DEFAULT_STREAM_CAPACITY`]; at least 1). A subscriber may choose its own.
    pub fn capacity(mut self, items: usize) -> Self {
        self.capacity = items.max(1);
        self
    }

    /// Makes a replay subject: a new subscriber first receives the last `n` items.
    pub fn replay(mut self, n: usize) -> Self {
        self.replay = n;
        self.initial = None;
        self
    }

    /// Makes a behaviour subject: a new subscriber first receives the current value,
    /// `initial` until something else is emitted.
    pub fn latest(mut self, initial: T) -> Self {
        self.initial = Some(initial);
        self.replay = 0;
        self
    }

    /// Builds the stream.
    pub fn build(self) -> ReactiveStream<T, E> {
        let (subject, history) = match (&self.initial, self.replay) {
            (Some(_), _) => (Subject::Latest, 1),
            (None, 0) => (Subject::Plain, 0),
            (None, n) => (Subject::Replay(n), n),
        };
        let core = Arc::new(Core::new(history, None, ()));
        if let Some(initial) = self.initial {
            // No subscriber yet and no `Block` one to wait for: it goes to the history.
            let _ = core.try_publish(initial, &mut |_, _| {});
        }
        ReactiveStream {
            inner: Arc::new(Inner {
                name: self.name,
                core,
                subject,
                capacity: self.capacity,
                chain: Chain::new(),
                terminal: OnceLock::new(),
                handles: AtomicUsize::new(1),
                counters: Counters::default(),
            }),
        }
    }
}

impl<T, E> fmt::Debug for ReactiveStreamBuilder<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReactiveStreamBuilder")
            .field("name", &self.name)
            .field("capacity", &self.capacity)
            .field("replay", &self.replay)
            .field("latest", &self.initial.is_some())
            .finish()
    }
}

impl<T: Clone + Send + Sync + 'static, E: Clone + Send + Sync + 'static> ReactiveStream<T, E> {
    /// A builder for a stream named `name` (capacity, replay or latest).
    pub fn builder(name: impl Into<Arc<str>>) -> ReactiveStreamBuilder<T, E> {
        ReactiveStreamBuilder {
            name: name.into(),
            capacity: DEFAULT_STREAM_CAPACITY,
            replay: 0,
            initial: None,
            error: PhantomData,
        }
    }

    /// A plain subject: subscribers see what is emitted after they subscribe.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self::builder(name).build()
    }

    /// A replay subject: a new subscriber first receives the last `n` items, then
    /// continues live.
    ///
    /// ```
    /// use futures::StreamExt;
    /// use riverbed::reactive::ReactiveStream;
    ///
    /// # futures::executor::block_on(async {
    /// let ticks: ReactiveStream<u32> = ReactiveStream::replay("ticks", 2);
    /// for n in 1..=3 {
    ///     ticks.emit(n).await.unwrap();
    /// }
    /// let mut late = ticks.subscribe();
    /// ticks.emit(4).await.unwrap();
    /// ticks.complete().unwrap();
    /// let seen: Vec<u32> = late.by_ref().map(Result::unwrap).collect().await;
    /// assert_eq!(seen, [2, 3, 4]);
    /// # });
    /// ```
    pub fn replay(name: impl Into<Arc<str>>, n: usize) -> Self {
        Self::builder(name).replay(n).build()
    }

    /// A behaviour subject: a new subscriber first receives the current value —
    /// `initial` until something else is emitted — then continues live.
    ///
    /// ```
    /// use futures::StreamExt;
    /// use riverbed::reactive::ReactiveStream;
    ///
    /// # futures::executor::block_on(async {
    /// let status: ReactiveStream<&str> = ReactiveStream::latest("status", "starting");
    /// let mut first = status.subscribe();
    /// status.emit("ready").await.unwrap();
    /// let mut second = status.subscribe();
    /// assert_eq!(first.next().await.unwrap().unwrap(), "starting");
    /// assert_eq!(first.next().await.unwrap().unwrap(), "ready");
    /// assert_eq!(second.next().await.unwrap().unwrap(), "ready");
    /// # });
    /// ```
    pub fn latest(name: impl Into<Arc<str>>, initial: T) -> Self {
        Self::builder(name).latest(initial).build()
    }

    /// The stream's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Appends an async `transformer` to the chain every emitted item goes through,
    /// once, before it is shared with the subscribers. It returns the item (`T`) or
    /// `Option<T>`, where `None` drops the item (counted in
    /// [`ReactiveStats::transformed_away`]). Its future is boxed; for a plain function,
    /// [`add_sync_transformer`](Self::add_sync_transformer) allocates nothing.
    ///
    /// A transformer added while an emit is running applies from the next emit on.
    pub fn add_transformer<F, Fut>(&self, transformer: F)
    where
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: Into<Option<T>>,
    {
        self.inner.chain.push(Step::Async(Arc::new(move |item| {
            transformer(item).map(Into::into).boxed()
        })));
    }

    /// Appends a plain-function `transformer` to the chain (see
    /// [`add_transformer`](Self::add_transformer)); it runs in place on the emitter's
    /// task and allocates nothing.
    pub fn add_sync_transformer<F, Out>(&self, transformer: F)
    where
        F: Fn(T) -> Out + Send + Sync + 'static,
        Out: Into<Option<T>>,
    {
        self.inner
            .chain
            .push(Step::Sync(Arc::new(move |item| transformer(item).into())));
    }

    /// Emits `item`: runs the transformers, then shares the result with every
    /// subscriber, waiting while a `Block` subscriber has no room.
    ///
    /// Returns `Ok(())` also when a transformer dropped the item. Fails with
    /// [`EmitError::Terminated`] (the item handed back) after
    /// [`complete`](Self::complete) or [`error`](Self::error), and with
    /// [`EmitError::TransformerPanicked`] if a transformer panicked (the item is then
    /// gone; the panic is counted).
    pub async fn emit(&self, item: T) -> Result<(), EmitError<T>> {
        if self.inner.core.is_closed() {
            return Err(EmitError::Terminated(item));
        }
        let item = if self.inner.chain.is_empty() {
            item
        } else {
            match self.transform(item).await? {
                Some(item) => item,
                None => return Ok(()),
            }
        };
        match self.inner.core.publish(item, |_, _| {}).await {
            Ok(_) => {
                self.inner.counters.emitted.inc();
                Ok(())
            }
            Err(item) => Err(EmitError::Terminated(item)),
        }
    }

    /// Runs the chain, counting what it drops and its panics.
    async fn transform(&self, item: T) -> Result<Option<T>, EmitError<T>> {
        match self.inner.chain.run(item).await {
            Ok(Some(item)) => Ok(Some(item)),
            Ok(None) => {
                self.inner.counters.transformed_away.inc();
                Ok(None)
            }
            Err(Panicked(message)) => {
                self.inner.counters.transformer_panics.inc();
                Err(EmitError::TransformerPanicked { message })
            }
        }
    }

    /// Emits `item` without waiting.
    ///
    /// Fails with [`TryEmitError::Full`] when a `Block` subscriber has no room, and
    /// with [`TryEmitError::WouldWait`] when a transformer does not finish at once (an
    /// async transformer that awaits something): in both cases the item, as given, is
    /// handed back and nothing was shared. With transformers, the item is cloned first
    /// so that it can be handed back.
    pub fn try_emit(&self, item: T) -> Result<(), TryEmitError<T>> {
        if self.inner.core.is_closed() {
            return Err(TryEmitError::Terminated(item));
        }
        let (item, original) = if self.inner.chain.is_empty() {
            (item, None)
        } else {
            {
                let original = item.clone();
                let waker = futures_util::task::noop_waker();
                let mut cx = Context::from_waker(&waker);
                let mut run = std::pin::pin!(self.transform(item));
                match run.as_mut().poll(&mut cx) {
                    Poll::Ready(Ok(Some(item))) => (item, Some(original)),
                    Poll::Ready(Ok(None)) => return Ok(()),
                    Poll::Ready(Err(EmitError::TransformerPanicked { message })) => {
                        return Err(TryEmitError::TransformerPanicked { message });
                    }
                    Poll::Ready(Err(EmitError::Terminated(_))) => {
                        return Err(TryEmitError::Terminated(original));
                    }
                    Poll::Pending => return Err(TryEmitError::WouldWait(original)),
                }
            }
        };
        match self.inner.core.try_publish(item, &mut |_, _| {}) {
            Ok(_) => {
                self.inner.counters.emitted.inc();
                Ok(())
            }
            Err(TryPublishError::Full(item)) => Err(TryEmitError::Full(original.unwrap_or(item))),
            Err(TryPublishError::Closed(item)) => {
                Err(TryEmitError::Terminated(original.unwrap_or(item)))
            }
        }
    }

    /// Completes the stream: subscribers receive what was emitted, then their streams
    /// end. Fails if the stream had already ended.
    pub fn complete(&self) -> Result<(), AlreadyTerminated> {
        self.terminate(Terminal::Completed)
    }

    /// Ends the stream with `error`: subscribers receive what was emitted, then
    /// `Err(StreamError::Failed(error))`, then the end. Fails if the stream had already
    /// ended.
    pub fn error(&self, error: E) -> Result<(), AlreadyTerminated> {
        self.terminate(Terminal::Failed(error))
    }

    fn terminate(&self, terminal: Terminal<E>) -> Result<(), AlreadyTerminated> {
        // The signal is in place before the core closes, so every subscriber that
        // reaches the end finds it.
        self.inner
            .terminal
            .set(terminal)
            .map_err(|_| AlreadyTerminated)?;
        self.inner.core.close();
        Ok(())
    }

    /// Whether the stream has completed or failed.
    pub fn is_terminated(&self) -> bool {
        self.inner.terminal.get().is_some()
    }

    /// A subscriber, as a [`Stream`](futures_core::Stream) of `Result<T,
    /// StreamError<E>>`, with the stream's capacity and the `Block` policy.
    pub fn subscribe(&self) -> Subscription<T, E> {
        self.attach(Overflow::Block, self.inner.capacity)
    }

    /// A subscriber with its own capacity and overflow policy; a capacity of 0 fails
    /// with [`SubscribeError::ZeroCapacity`].
    pub fn subscribe_with(
        &self,
        options: SubscribeOptions,
    ) -> Result<Subscription<T, E>, SubscribeError> {
        let capacity = options.resolve_capacity(self.inner.capacity)?;
        Ok(self.attach(options.get_overflow(), capacity))
    }

    fn attach(&self, overflow: Overflow, capacity: usize) -> Subscription<T, E> {
        let spec = SubscribeSpec {
            matcher: None,
            overflow,
            capacity,
        };
        let receiver = match self.inner.subject {
            Subject::Plain => self.inner.core.subscribe(spec),
            Subject::Replay(_) | Subject::Latest => self.inner.core.subscribe_history(spec),
        };
        Subscription::new(receiver, Arc::clone(&self.inner))
    }

    /// Runs `handler` for every item from now on; see [`Subscriber`]. The subscription
    /// starts now; nothing runs until the returned flow is awaited, run or spawned.
    pub fn on<F, Fut>(&self, handler: F) -> Subscriber<T, E, ItemOnly<F>>
    where
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: HandlerOutcome,
    {
        Subscriber::new(self.subscribe(), ItemOnly(handler))
    }

    /// As [`on`](Self::on), with the flow's [`StopSignal`] as the handler's second
    /// argument: a long handler can see that a stop was asked for and finish early.
    pub fn on_with_context<F, Fut>(&self, handler: F) -> Subscriber<T, E, WithContext<F>>
    where
        F: Fn(T, StopSignal) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: HandlerOutcome,
    {
        Subscriber::new(self.subscribe(), WithContext(handler))
    }

    /// How many subscribers are attached now (streams and handler flows).
    pub fn subscriber_count(&self) -> usize {
        self.inner.core.subscriber_count()
    }

    /// A snapshot of the stream's statistics.
    pub fn stats(&self) -> ReactiveStats {
        let c = &self.inner.counters;
        let (counts, subscribers) = self
            .inner
            .core
            .inspect(|_, counts, _, subscribers| (*counts, subscribers));
        ReactiveStats {
            name: self.inner.name.to_string(),
            emitted: c.emitted.get(),
            transformed_away: c.transformed_away.get(),
            transformer_panics: c.transformer_panics.get(),
            subscribers,
            delivered: counts.delivered,
            dropped_oldest: counts.dropped_oldest,
            dropped_newest: counts.dropped_newest,
            handled: c.handled.get(),
            handler_failures: c.handler_failures.get(),
            handler_panics: c.handler_panics.get(),
            state: match self.inner.terminal.get() {
                None => StreamState::Open,
                Some(Terminal::Completed) => StreamState::Completed,
                Some(Terminal::Failed(_)) => StreamState::Failed,
            },
        }
    }
}

impl<T: Clone + Send + Sync + 'static, E> Clone for ReactiveStream<T, E> {
    fn clone(&self) -> Self {
        self.inner.handles.fetch_add(1, Ordering::Relaxed);
        ReactiveStream {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T: Clone + Send + Sync + 'static, E> Drop for ReactiveStream<T, E> {
    fn drop(&mut self) {
        if self.inner.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The last handle: nobody can emit any more, so the stream completes
            // (unless it had ended already).
            if self.inner.terminal.set(Terminal::Completed).is_ok() {
                self.inner.core.close();
            }
        }
    }
}

impl<T: Clone + Send + Sync + 'static, E> fmt::Debug for ReactiveStream<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReactiveStream")
            .field("name", &self.inner.name)
            .field("subject", &self.inner.subject)
            .field("capacity", &self.inner.capacity)
            .field("terminated", &self.inner.terminal.get().is_some())
            .finish_non_exhaustive()
    }
}

/// Why [`ReactiveStream::emit`] failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmitError<T> {
    /// The stream has completed or failed; the item is handed back.
    Terminated(T),
    /// A transformer panicked on the item, which is gone.
    TransformerPanicked {
        /// The panic message, when it was a string.
        message: Option<String>,
    },
}

impl<T> EmitError<T> {
    /// The item, if it was handed back.
    pub fn into_inner(self) -> Option<T> {
        match self {
            EmitError::Terminated(item) => Some(item),
            EmitError::TransformerPanicked { .. } => None,
        }
    }
}

impl<T> fmt::Display for EmitError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EmitError::Terminated(_) => f.write_str("the reactive stream has ended"),
            EmitError::TransformerPanicked { message: Some(m) } => {
                write!(f, "a transformer panicked: {m}")
            }
            EmitError::TransformerPanicked { message: None } => {
                f.write_str("a transformer panicked")
            }
        }
    }
}

impl<T: fmt::Debug> std::error::Error for EmitError<T> {}

/// Why [`ReactiveStream::try_emit`] failed; the item is handed back where it can be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TryEmitError<T> {
    /// A `Block` subscriber has no room.
    Full(T),
    /// A transformer did not finish at once.
    WouldWait(T),
    /// The stream has completed or failed.
    Terminated(T),
    /// A transformer panicked on the item, which is gone.
    TransformerPanicked {
        /// The panic message, when it was a string.
        message: Option<String>,
    },
}

impl<T> TryEmitError<T> {
    /// The item, if it was handed back.
    pub fn into_inner(self) -> Option<T> {
        match self {
            TryEmitError::Full(item)
            | TryEmitError::WouldWait(item)
            | TryEmitError::Terminated(item) => Some(item),
            TryEmitError::TransformerPanicked { .. } => None,
        }
    }
}

impl<T> fmt::Display for TryEmitError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryEmitError::Full(_) => f.write_str("a subscriber of the reactive stream is full"),
            TryEmitError::WouldWait(_) => f.write_str("a transformer did not finish at once"),
            TryEmitError::Terminated(_) => f.write_str("the reactive stream has ended"),
            TryEmitError::TransformerPanicked { message: Some(m) } => {
                write!(f, "a transformer panicked: {m}")
            }
            TryEmitError::TransformerPanicked { message: None } => {
                f.write_str("a transformer panicked")
            }
        }
    }
}

impl<T: fmt::Debug> std::error::Error for TryEmitError<T> {}

/// [`ReactiveStream::complete`] or [`error`](ReactiveStream::error) was called on a
/// stream that had already ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the reactive stream had already ended")]
pub struct AlreadyTerminated;

/// Whether a [`ReactiveStream`] is still open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamState {
    /// Items can be emitted.
    Open,
    /// [`complete`](ReactiveStream::complete) was called, or every handle dropped.
    Completed,
    /// [`error`](ReactiveStream::error) was called.
    Failed,
}

/// A snapshot of a [`ReactiveStream`]'s statistics (serde-serialisable).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReactiveStats {
    /// The stream's name.
    pub name: String,
    /// Items shared with the subscribers (after the transformers).
    pub emitted: u64,
    /// Items a transformer dropped.
    pub transformed_away: u64,
    /// Transformer panics (each an [`EmitError::TransformerPanicked`]).
    pub transformer_panics: u64,
    /// Subscribers attached now.
    pub subscribers: usize,
    /// Items received by subscribers, all of them together.
    pub delivered: u64,
    /// Items `DropOldest` subscribers missed.
    pub dropped_oldest: u64,
    /// Items `DropNewest` subscribers missed.
    pub dropped_newest: u64,
    /// Handler invocations that succeeded.
    pub handled: u64,
    /// Handler invocations that returned an error.
    pub handler_failures: u64,
    /// Handler invocations that panicked.
    pub handler_panics: u64,
    /// Open, completed or failed.
    pub state: StreamState,
}
