//! [`Bulkhead`]: a limit on the calls of a processor in flight at once, with a bounded
//! wait queue.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use futures_util::future::BoxFuture;

use crate::processor::{Outcome, Processor};
use crate::stats::Counter;
use crate::{BoxError, FlowContext};

/// The error of a [`Bulkhead`] whose slots and wait queue were all taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("bulkhead full: {max_concurrent} calls in flight and {max_queue} waiting")]
pub struct BulkheadFull {
    /// The bulkhead's limit of calls in flight.
    pub max_concurrent: usize,
    /// The bulkhead's limit of waiting calls.
    pub max_queue: usize,
}

#[derive(Debug)]
struct State {
    in_flight: usize,
    /// Waiting calls, first come first served.
    queue: VecDeque<(u64, Waker)>,
    /// Waiting calls that were handed a slot but have not yet taken it.
    granted: Vec<u64>,
    next_id: u64,
}

#[derive(Debug)]
struct Shared {
    max_concurrent: usize,
    max_queue: usize,
    state: Mutex<State>,
    rejected: Counter,
}

fn lock(mutex: &Mutex<State>) -> MutexGuard<'_, State> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// Gives a slot back: to the first waiter if there is one (the slot stays in
    /// flight, handed over), else to the pool.
    fn release(&self) {
        let mut state = lock(&self.state);
        match state.queue.pop_front() {
            Some((id, waker)) => {
                state.granted.push(id);
                drop(state);
                waker.wake();
            }
            None => state.in_flight -= 1,
        }
    }
}

/// A slot in flight; gives it back when dropped.
struct Permit(Arc<Shared>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// Waits for a slot: FIFO; gives its place (or the slot it was handed) back when
/// dropped.
struct Acquire {
    shared: Arc<Shared>,
    /// The id in the queue, once queued.
    queued: Option<u64>,
}

impl Future for Acquire {
    type Output = Result<Permit, BulkheadFull>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let shared = self.shared.clone();
        let mut state = lock(&shared.state);
        match self.queued {
            None => {
                if state.in_flight < shared.max_concurrent && state.queue.is_empty() {
                    state.in_flight += 1;
                    return Poll::Ready(Ok(Permit(shared.clone())));
                }
                if state.queue.len() >= shared.max_queue {
                    drop(state);
                    shared.rejected.inc();
                    return Poll::Ready(Err(BulkheadFull {
                        max_concurrent: shared.max_concurrent,
                        max_queue: shared.max_queue,
                    }));
                }
                let id = state.next_id;
                state.next_id = state.next_id.wrapping_add(1);
                state.queue.push_back((id, cx.waker().clone()));
                self.queued = Some(id);
                Poll::Pending
            }
            Some(id) => {
                if let Some(at) = state.granted.iter().position(|&g| g == id) {
                    state.granted.swap_remove(at);
                    self.queued = None;
                    return Poll::Ready(Ok(Permit(shared.clone())));
                }
                if let Some((_, waker)) = state.queue.iter_mut().find(|(q, _)| *q == id) {
                    waker.clone_from(cx.waker());
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for Acquire {
    fn drop(&mut self) {
        let Some(id) = self.queued else { return };
        let mut state = lock(&self.shared.state);
        if let Some(at) = state.granted.iter().position(|&g| g == id) {
            // Handed a slot it will not use: pass it on.
            state.granted.swap_remove(at);
            drop(state);
            self.shared.release();
        } else if let Some(at) = state.queue.iter().position(|(q, _)| *q == id) {
            state.queue.remove(at);
        }
    }
}

/// Lets at most `max_concurrent` calls of the inner processor run at once; up to
/// `max_queue` more wait, first come first served, and any beyond that fail at once
/// with [`BulkheadFull`]; from [`ProcessorExt::bulkhead`](super::ProcessorExt::bulkhead).
///
/// The slot is taken when the call's future is first polled and held until it
/// completes; the inner processor is only called once a slot is held. A waiting call
/// whose future is dropped leaves the queue, and a slot handed to it goes to the next
/// waiter. No runtime is needed.
///
/// ```
/// use std::sync::Arc;
/// use futures::channel::oneshot;
/// use futures::FutureExt;
/// use riverbed::FlowContext;
/// use riverbed::pipeline::Processor;
/// use riverbed::resilience::{BulkheadFull, ProcessorExt};
///
/// // Each call waits for its own go signal.
/// let gated = |go: oneshot::Receiver<u32>, _ctx: FlowContext| async move {
///     Ok::<_, oneshot::Canceled>(Some(go.await?))
/// };
/// let bulkhead = gated.bulkhead(1, 1);
/// let ctx = FlowContext::new();
///
/// let (go_a, a) = oneshot::channel();
/// let (go_b, b) = oneshot::channel();
/// let (_go_c, c) = oneshot::channel();
/// let mut a = bulkhead.process(a, &ctx);
/// let mut b = bulkhead.process(b, &ctx);
/// assert!(a.as_mut().now_or_never().is_none()); // running
/// assert!(b.as_mut().now_or_never().is_none()); // waiting
/// assert_eq!((bulkhead.in_flight(), bulkhead.queued()), (1, 1));
///
/// // No slot, no room in the queue: refused at once.
/// let err = bulkhead.process(c, &ctx).now_or_never().unwrap().unwrap_err();
/// assert_eq!(err.downcast_ref(), Some(&BulkheadFull { max_concurrent: 1, max_queue: 1 }));
///
/// futures::executor::block_on(async {
///     go_a.send(1).unwrap();
///     go_b.send(2).unwrap();
///     assert_eq!(a.await.unwrap(), Some(1));
///     assert_eq!(b.await.unwrap(), Some(2)); // got a's slot when a finished
/// });
/// assert_eq!((bulkhead.in_flight(), bulkhead.queued(), bulkhead.rejected()), (0, 0, 1));
/// ```
pub struct Bulkhead<P> {
    inner: Arc<P>,
    shared: Arc<Shared>,
}

impl<P> Bulkhead<P> {
    /// Wraps `inner`: at most `max_concurrent` calls in flight (raised to 1), at most
    /// `max_queue` waiting.
    pub fn new(inner: P, max_concurrent: usize, max_queue: usize) -> Self {
        Bulkhead {
            inner: Arc::new(inner),
            shared: Arc::new(Shared {
                max_concurrent: max_concurrent.max(1),
                max_queue,
                state: Mutex::new(State {
                    in_flight: 0,
                    queue: VecDeque::new(),
                    granted: Vec::new(),
                    next_id: 0,
                }),
                rejected: Counter::new(),
            }),
        }
    }

    /// Calls holding a slot now (a slot handed to a waiter that has not yet run
    /// counts as in flight).
    pub fn in_flight(&self) -> usize {
        lock(&self.shared.state).in_flight
    }

    /// Calls waiting for a slot now.
    pub fn queued(&self) -> usize {
        lock(&self.shared.state).queue.len()
    }

    /// Calls refused with [`BulkheadFull`] so far.
    pub fn rejected(&self) -> u64 {
        self.shared.rejected.get()
    }

    /// The limit of calls in flight.
    pub fn max_concurrent(&self) -> usize {
        self.shared.max_concurrent
    }

    /// The limit of waiting calls.
    pub fn max_queue(&self) -> usize {
        self.shared.max_queue
    }

    /// The wrapped processor.
    pub fn get_ref(&self) -> &P {
        &self.inner
    }
}

impl<P> fmt::Debug for Bulkhead<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bulkhead")
            .field("max_concurrent", &self.shared.max_concurrent)
            .field("max_queue", &self.shared.max_queue)
            .field("in_flight", &self.in_flight())
            .field("queued", &self.queued())
            .finish_non_exhaustive()
    }
}

impl<In, P> Processor<In> for Bulkhead<P>
where
    In: Send + 'static,
    P: Processor<In>,
{
    type Out = P::Out;
    type Future = BoxFuture<'static, Outcome<P::Out>>;

    fn process(&self, item: In, ctx: &FlowContext) -> Self::Future {
        let acquire = Acquire {
            shared: self.shared.clone(),
            queued: None,
        };
        let inner = self.inner.clone();
        let ctx = ctx.clone();
        Box::pin(async move {
            let _permit = acquire.await.map_err(|full| Box::new(full) as BoxError)?;
            inner.process(item, &ctx).await
        })
    }
}
