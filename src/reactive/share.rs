//! [`Share`]: one upstream stream, many subscribers ([`share`], [`replay`]).
//!
//! The items go through the crate's broadcast core, the fan-out the event bus uses:
//! one write per item however many subscribers, `Block` backpressure, and history
//! with gap-free replay. What this file adds is the upstream: nothing spawns, so the
//! subscribers take turns driving it.
//!
//! # Who drives
//!
//! A subscriber that finds nothing waiting for it registers its waker in [`Waiting`]
//! and, if no one else is driving, takes the turn: it polls the upstream and publishes
//! what it gives into the core, which wakes the subscribers parked there. The upstream
//! and the wait for room are polled with [`Waiting`] as their waker, which wakes every
//! registered subscriber, so a wakeup is not lost when the subscriber that drove last
//! is no longer polled. A subscriber that finds the turn taken has registered first,
//! so the driver either publishes (waking it through the core), or ends its turn
//! with the next wakeup bound to reach it: one that came during the turn, after the
//! driver polled, is passed on to those registered when the turn ends.
//!
//! [`share`]: super::ReactiveExt::share
//! [`replay`]: super::ReactiveExt::replay

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

use futures_core::{FusedStream, Stream};

use crate::broadcast::{Core, Overflow, Receiver, SubscribeSpec, TryPublishError};

/// Items one turn publishes at most before the driver goes back to its own stream.
const DRIVE_BUDGET: usize = 32;

/// Options for [`ReactiveExt::share_with`](super::ReactiveExt::share_with).
///
/// ```
/// use riverbed::reactive::ShareOptions;
///
/// // Each subscriber may fall 16 items behind; a new one first gets the last 3.
/// let options = ShareOptions::new().capacity(16).replay(3);
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShareOptions {
    capacity: usize,
    replay: usize,
}

impl ShareOptions {
    /// The capacity of a subscriber unless set: 64 items.
    pub const DEFAULT_SHARE_CAPACITY: usize = 64;

    /// [`DEFAULT_SHARE_CAPACITY`](Self::DEFAULT_SHARE_CAPACITY), no replay.
    pub fn new() -> Self {
        ShareOptions {
            capacity: Self::DEFAULT_SHARE_CAPACITY,
            replay: 0,
        }
    }

    /// How many published items may wait for a subscriber before the upstream waits
    /// for it (at least 1; 0 counts as 1).
    pub fn capacity(mut self, items: usize) -> Self {
        self.capacity = items.max(1);
        self
    }

    /// How many of the latest items a new subscriber receives first (0: none).
    pub fn replay(mut self, items: usize) -> Self {
        self.replay = items;
        self
    }
}

impl Default for ShareOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// A hot, multicast stream over one upstream, from
/// [`ReactiveExt::share`](super::ReactiveExt::share),
/// [`replay`](super::ReactiveExt::replay) or
/// [`share_with`](super::ReactiveExt::share_with).
///
/// Every value of this type is a subscriber, the one returned by `share` included;
/// [`Clone`] makes another. All of them receive the same items, clones of the
/// upstream's, in the upstream's order, each once.
///
/// * **Hot**: a subscriber receives the items published after it was created (an item
///   the upstream gave while the subscribers were full is published when there is
///   room, so a subscriber created meanwhile receives it too). With `replay(n)`, a new
///   subscriber first receives the last `n` items published before it was created,
///   then goes on live with no gap and no duplicate.
/// * **Start**: the upstream is not polled until a subscriber asks for an item and
///   has none waiting for it.
/// * **Who drives**: nothing spawns. A subscriber that is polled and has no item
///   waiting polls the upstream, on its own task, for all of them, and publishes up
///   to 32 items in one turn; the others find their items waiting. Only one drives at
///   a time; a subscriber that finds the upstream taken waits to be woken. The
///   upstream's wakeups reach every subscriber waiting for an item, so it keeps
///   moving as long as one of them is polled, whichever subscriber drove it last. The
///   price is that each wakeup of the upstream wakes every subscriber that waits.
/// * **Backpressure**: every subscriber has a bounded buffer
///   ([`ShareOptions::capacity`], 64 by default) and the `Block` policy: when a
///   subscriber is full, the upstream is not polled again until it reads. Nothing is
///   lost or reordered, so the upstream runs at the pace of the slowest subscriber,
///   and a subscriber that is never polled stops the others once its buffer is full:
///   drop a subscriber you no longer read (the one `share` returned included, once
///   the clones you need are made). Like an event bus subscription, a
///   subscriber claims what waits for it in one go, so up to twice its capacity may be
///   unread at once, and the upstream is at most `2 × capacity + 1` items ahead of it.
///   There is no lossy policy: for one, subscribe to an
///   [`EventBus`](crate::bus::EventBus) with `Overflow::DropOldest` instead.
/// * **End**: when the upstream ends, each subscriber receives what was published
///   before the end, then ends, once (the stream is fused). The upstream is dropped
///   when it ends. A subscriber created after the end ends at once; with `replay(n)`
///   it first receives the last `n` items. An `Err` item of a stream of `Result`s is
///   an ordinary item, sent to every subscriber; it ends nothing.
/// * **Reference counting**: the upstream is dropped when the last subscriber is
///   dropped, if it has not ended before. Every handle is a subscriber, so none is
///   left to subscribe with: that shared stream is over. (A Rust stream cannot be
///   restarted; sharing anew means building a new upstream.)
/// * **Memory**: dropping a subscriber unsubscribes it and frees what was waiting
///   for it; [`subscriber_count`](Self::subscriber_count) tells how many remain.
/// * **Panics**: a panic of the upstream reaches the subscriber that was driving it,
///   and ends the shared stream: every subscriber (that one too, if polled again)
///   receives what was published before the panic, then ends.
///
/// Items are `Clone + Send + Sync` (each subscriber receives a clone; a clone of the
/// last `n` is kept for `replay(n)`). The subscribers may live on different tasks and
/// threads when the upstream is `Send`.
///
/// ```
/// use futures::StreamExt;
/// use riverbed::reactive::ReactiveExt;
///
/// # futures::executor::block_on(async {
/// let (prices, updates) = futures::channel::mpsc::unbounded::<u32>();
/// let mut chart = updates.share();
/// let mut alerts = chart.clone();
/// assert_eq!(chart.subscriber_count(), 2);
///
/// prices.unbounded_send(101).unwrap();
/// prices.unbounded_send(99).unwrap();
/// // Whichever polls first pulls from the channel, for both.
/// assert_eq!(chart.next().await, Some(101));
/// assert_eq!(alerts.next().await, Some(101));
/// assert_eq!(alerts.next().await, Some(99));
///
/// // A late subscriber sees only what comes after it.
/// let mut late = alerts.clone();
/// prices.unbounded_send(104).unwrap();
/// drop(prices);
/// assert_eq!(late.next().await, Some(104));
/// assert_eq!(late.next().await, None);
/// assert_eq!(chart.collect::<Vec<_>>().await, [99, 104]);
/// # });
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct Share<S: Stream>
where
    S::Item: Clone + Send + Sync,
{
    // Declared first: unsubscribes before the shared state may go.
    receiver: Receiver<S::Item, ()>,
    shared: Arc<Shared<S>>,
    /// This subscriber's slot in `shared.waiting`.
    key: usize,
}

/// What the subscribers of one upstream share.
struct Shared<S: Stream> {
    core: Arc<Core<S::Item>>,
    waiting: Arc<Waiting>,
    /// `waiting` as a waker: the upstream and the wait for room are polled with it.
    waker: Waker,
    /// Used only by the subscriber whose turn it is (see `Waiting::begin_turn`).
    driver: Mutex<Driver<S>>,
    options: ShareOptions,
}

/// The upstream and what its driver carries from one turn to the next.
struct Driver<S: Stream> {
    /// `None` once it has ended.
    upstream: Option<Pin<Box<S>>>,
    /// An item the upstream gave that a full subscriber has no room for yet.
    stash: Option<S::Item>,
    /// Notified when a subscriber makes room (or leaves).
    room: Option<crate::broadcast::SpaceListener>,
}

/// What a turn at driving achieved.
enum Step {
    /// Something was published, or the upstream ended.
    Progress,
    /// The upstream, or room for its item, is not ready; a wakeup will come through
    /// `Waiting`.
    Wait,
}

impl<S: Stream> Share<S>
where
    S::Item: Clone + Send + Sync,
{
    pub(crate) fn new(upstream: S, options: ShareOptions) -> Self {
        let waiting = Arc::new(Waiting::default());
        let shared = Arc::new(Shared {
            core: Arc::new(Core::new(options.replay, None, ())),
            waker: Waker::from(Arc::clone(&waiting)),
            waiting,
            driver: Mutex::new(Driver {
                upstream: Some(Box::pin(upstream)),
                stash: None,
                room: None,
            }),
            options,
        });
        Self::subscribe(shared)
    }

    fn subscribe(shared: Arc<Shared<S>>) -> Self {
        let receiver = shared.subscribe();
        let key = shared.waiting.join();
        Share {
            receiver,
            shared,
            key,
        }
    }

    /// How many subscribers are receiving items: those not dropped yet, this one
    /// included. A subscriber created after the upstream ended is not counted (it
    /// only serves its replay, if any, and ends).
    pub fn subscriber_count(&self) -> usize {
        self.shared.core.subscriber_count()
    }
}

impl<S: Stream> Shared<S>
where
    S::Item: Clone + Send + Sync,
{
    fn subscribe(&self) -> Receiver<S::Item, ()> {
        let spec = || SubscribeSpec {
            matcher: None,
            overflow: Overflow::Block,
            capacity: self.options.capacity,
        };
        let replay = self.options.replay as u64;
        if replay == 0 {
            return self.core.subscribe(spec());
        }
        loop {
            // The history holds exactly the last `replay` items (all of them while
            // fewer were published), and nothing else forgets them.
            let from = self.core.next_seq().saturating_sub(replay);
            if let Ok(receiver) = self.core.subscribe_from(spec(), from) {
                return receiver;
            }
            // An item was published in between, so `from` was just forgotten: look
            // again.
        }
    }

    /// Takes the turn that `Waiting::begin_turn` gave, and ends it.
    fn take_turn(&self, seen: u64) -> Step {
        let mut turn = Turn {
            waiting: &self.waiting,
            held: true,
        };
        let step = self.drive();
        turn.held = false;
        match step {
            // The subscribers parked in the core were woken: they come back for it.
            Step::Progress => self.waiting.release(),
            Step::Wait => self.waiting.end_turn(seen),
        }
        step
    }

    /// One turn: publishes the stashed item, then what the upstream has ready, up to
    /// the budget.
    fn drive(&self) -> Step {
        let Ok(mut guard) = self.driver.lock() else {
            // The upstream panicked in an earlier turn, which closed the core.
            self.core.close();
            return Step::Progress;
        };
        let driver = &mut *guard;
        let mut cx = Context::from_waker(&self.waker);
        let mut published = 0;
        let waited = |published| {
            if published > 0 {
                Step::Progress
            } else {
                Step::Wait
            }
        };
        loop {
            if let Some(item) = driver.stash.take() {
                match self.core.try_publish(item, &mut |_, _| {}) {
                    Ok(_) => {
                        published += 1;
                        driver.room = None;
                    }
                    // Only the driver closes the core, after the upstream's end.
                    Err(TryPublishError::Closed(_)) => return Step::Progress,
                    Err(TryPublishError::Full(item)) => {
                        driver.stash = Some(item);
                        match driver.room.as_mut() {
                            None => {
                                // Listen, then try again: room made in between
                                // must not be missed.
                                driver.room = Some(self.core.listen_space());
                                continue;
                            }
                            Some(room) => match Pin::new(room).poll(&mut cx) {
                                Poll::Ready(()) => {
                                    driver.room = None;
                                    continue;
                                }
                                Poll::Pending => return waited(published),
                            },
                        }
                    }
                }
            }
            if published >= DRIVE_BUDGET {
                return Step::Progress;
            }
            let Some(upstream) = driver.upstream.as_mut() else {
                // It ended, and the core is closed.
                return Step::Progress;
            };
            let close_on_panic = CloseOnUnwind(&self.core);
            let next = upstream.as_mut().poll_next(&mut cx);
            std::mem::forget(close_on_panic);
            match next {
                Poll::Ready(Some(item)) => driver.stash = Some(item),
                Poll::Ready(None) => {
                    let ended = driver.upstream.take();
                    self.core.close();
                    // Dropped after the close: a panic in its drop ends no one's wait.
                    drop(ended);
                    return Step::Progress;
                }
                Poll::Pending => return waited(published),
            }
        }
    }
}

/// Closes the core if the upstream panics while it is polled, so that the other
/// subscribers end instead of waiting for a driver that is gone.
struct CloseOnUnwind<'a, T: Clone + Send + Sync>(&'a Core<T>);

impl<T: Clone + Send + Sync> Drop for CloseOnUnwind<'_, T> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// A turn at driving; ends it if dropped while held (on a panic).
struct Turn<'a> {
    waiting: &'a Waiting,
    held: bool,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        if self.held {
            self.waiting.release();
        }
    }
}

impl<S: Stream> Stream for Share<S>
where
    S::Item: Clone + Send + Sync,
{
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = self.get_mut();
        loop {
            match this.receiver.poll_recv(cx) {
                Poll::Ready(Some(Ok(item))) => return Poll::Ready(Some(item)),
                // Only lossy policies report lag; every subscriber here blocks.
                Poll::Ready(Some(Err(_lagged))) => continue,
                Poll::Ready(None) => return Poll::Ready(None),
                // Parked in the core: a publish or the close wakes it.
                Poll::Pending => {}
            }
            let Some(seen) = this.shared.waiting.begin_turn(this.key, cx.waker()) else {
                // Another subscriber drives; registered, so its wakeups reach us.
                return Poll::Pending;
            };
            match this.shared.take_turn(seen) {
                Step::Progress => continue,
                Step::Wait => return Poll::Pending,
            }
        }
    }
}

impl<S: Stream> FusedStream for Share<S>
where
    S::Item: Clone + Send + Sync,
{
    fn is_terminated(&self) -> bool {
        self.receiver.is_terminated()
    }
}

impl<S: Stream> Clone for Share<S>
where
    S::Item: Clone + Send + Sync,
{
    /// Another subscriber, from now on (after the last `n` items, with `replay(n)`).
    fn clone(&self) -> Self {
        Self::subscribe(Arc::clone(&self.shared))
    }
}

impl<S: Stream> Drop for Share<S>
where
    S::Item: Clone + Send + Sync,
{
    fn drop(&mut self) {
        self.shared.waiting.leave(self.key);
        // It may have been the one the last wakeup was meant for: another takes over.
        self.shared.waiting.wake_all();
    }
}

// Nothing is pinned in place: the upstream is boxed.
impl<S: Stream> Unpin for Share<S> where S::Item: Clone + Send + Sync {}

impl<S: Stream> fmt::Debug for Share<S>
where
    S::Item: Clone + Send + Sync,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Share")
            .field("options", &self.shared.options)
            .field("subscribers", &self.subscriber_count())
            .field("ended", &self.shared.core.is_closed())
            .field("receiver", &self.receiver)
            .finish_non_exhaustive()
    }
}

/// The wakers of the subscribers that wait for an item, and whose turn it is to
/// drive. As a [`Waker`], it wakes them all.
#[derive(Default)]
struct Waiting {
    slots: Mutex<Slots>,
}

#[derive(Default)]
struct Slots {
    /// One slot per subscriber: its waker while it waits.
    wakers: Vec<Option<Waker>>,
    free: Vec<usize>,
    /// A subscriber is driving the upstream.
    driving: bool,
    /// Counts the times the set was woken, so that a driver sees a wakeup that came
    /// during its turn.
    wakeups: u64,
}

impl Waiting {
    fn slots(&self) -> MutexGuard<'_, Slots> {
        // No user code runs under this lock.
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot for a new subscriber.
    fn join(&self) -> usize {
        let mut slots = self.slots();
        match slots.free.pop() {
            Some(key) => key,
            None => {
                slots.wakers.push(None);
                slots.wakers.len() - 1
            }
        }
    }

    fn leave(&self, key: usize) {
        let waker = {
            let mut slots = self.slots();
            let waker = slots.wakers.get_mut(key).and_then(Option::take);
            slots.free.push(key);
            waker
        };
        // Dropped outside the lock.
        drop(waker);
    }

    /// Registers `waker` for subscriber `key`, then takes the turn to drive if no one
    /// has it: `Some(wakeups so far)` if taken.
    fn begin_turn(&self, key: usize, waker: &Waker) -> Option<u64> {
        let mut slots = self.slots();
        if let Some(slot) = slots.wakers.get_mut(key) {
            match slot {
                Some(old) if old.will_wake(waker) => {}
                _ => *slot = Some(waker.clone()),
            }
        }
        if slots.driving {
            return None;
        }
        slots.driving = true;
        Some(slots.wakeups)
    }

    /// Ends a turn in which nothing was published. A wakeup that came during it, after
    /// the driver polled, may have missed subscribers that registered later (they
    /// found the turn taken): they are woken now.
    fn end_turn(&self, seen: u64) {
        let wakers: Vec<Waker> = {
            let mut slots = self.slots();
            slots.driving = false;
            if slots.wakeups == seen {
                return;
            }
            slots.wakers.iter_mut().filter_map(Option::take).collect()
        };
        for waker in wakers {
            waker.wake();
        }
    }

    fn release(&self) {
        self.slots().driving = false;
    }

    fn wake_all(&self) {
        let wakers: Vec<Waker> = {
            let mut slots = self.slots();
            slots.wakeups = slots.wakeups.wrapping_add(1);
            slots.wakers.iter_mut().filter_map(Option::take).collect()
        };
        for waker in wakers {
            waker.wake();
        }
    }
}

impl Wake for Waiting {
    fn wake(self: Arc<Self>) {
        self.wake_all();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wake_all();
    }
}
