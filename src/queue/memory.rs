//! [`MemoryBackend`]: a bounded, in-process queue backend; fast, not durable.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use event_listener::Event;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::backend::{
    Backend, BackendFuture, Claim, DeadRecord, GroupCounts, NewMessage, StartFrom, StoredMessage,
};
use super::state::State;

/// Messages a [`MemoryBackend`] holds by default before `send` waits.
pub const DEFAULT_MEMORY_CAPACITY: usize = 65_536;

/// The in-memory backend: every operation takes effect at once under one lock; nothing
/// survives the process.
///
/// It is **bounded**: it holds at most `capacity` messages (those not yet finished by
/// every consumer group); an append that does not fit waits until acknowledgements
/// make room (backpressure). A batch larger than the capacity is let in once the
/// backend is empty, so it cannot wait forever. Dead letters are kept apart and do not
/// count.
///
/// ```
/// use std::sync::Arc;
/// use riverbed::queue::{MemoryBackend, MessageQueue};
/// use riverbed::runtime::{SharedRuntime, VirtualRuntime};
///
/// let rt: SharedRuntime = Arc::new(VirtualRuntime::new());
/// let queue: MessageQueue<String> = MessageQueue::builder("jobs", &rt)
///     .backend(MemoryBackend::with_capacity(1_000))
///     .build();
/// # let _ = queue;
/// ```
pub struct MemoryBackend {
    state: Mutex<State>,
    /// Sends land here under a lock of their own, held for a push, so that producers
    /// do not wait for consumers' claims and acks; every state operation first moves
    /// them into the state, in id order.
    ///
    /// Only a send into an empty inbox wakes consumers: one that found nothing to
    /// claim had emptied the inbox in its claim (after it began listening), so the
    /// first send after that claim is the one it must hear of; later sends join an
    /// inbox that the next state operation will take in anyway.
    inbox: Mutex<Inbox>,
    /// Messages the state held after its last operation.
    held: AtomicUsize,
    capacity: usize,
    /// Appenders waiting for room.
    room: Event,
    /// Consumers waiting for something to claim.
    changed: Event,
}

impl MemoryBackend {
    /// A backend holding up to [`DEFAULT_MEMORY_CAPACITY`] messages.
    pub fn new() -> Self {
        MemoryBackend::with_capacity(DEFAULT_MEMORY_CAPACITY)
    }

    /// A backend holding up to `capacity` messages (at least 1).
    pub fn with_capacity(capacity: usize) -> Self {
        MemoryBackend {
            state: Mutex::new(State::new()),
            inbox: Mutex::new(Inbox::default()),
            held: AtomicUsize::new(0),
            capacity: capacity.max(1),
            room: Event::new(),
            changed: Event::new(),
        }
    }

    /// The most messages it holds before appends wait.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The state, with the sends waiting in the inbox moved in.
    fn state(&self) -> MutexGuard<'_, State> {
        // No user code runs under these locks; a poisoned lock still guards whole data.
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut inbox = self.inbox();
        if !inbox.messages.is_empty() {
            state.append_stored(&mut inbox.messages, &mut ());
            // Count them as held before sends can see the inbox empty: room is
            // judged from `held` and the inbox together, under the inbox's lock.
            self.held.store(state.len(), Ordering::Release);
        }
        drop(inbox);
        state
    }

    fn inbox(&self) -> MutexGuard<'_, Inbox> {
        self.inbox.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends the batch if it fits (or the backend is empty); `None` if it must wait.
    fn try_append(&self, messages: &mut Option<Vec<NewMessage>>) -> Option<Vec<u64>> {
        let wanted = messages.as_ref().map_or(0, Vec::len);
        let mut inbox = self.inbox();
        if !self.fits(&inbox, wanted) {
            return None;
        }
        let batch = messages.take().unwrap_or_default();
        let was_empty = inbox.messages.is_empty();
        let ids = batch
            .into_iter()
            .map(|message| inbox.push(message))
            .collect();
        drop(inbox);
        if was_empty {
            self.changed.notify(usize::MAX);
        }
        Some(ids)
    }

    /// [`try_append`](Self::try_append) for one message, with no batch to build.
    fn try_append_one(&self, message: NewMessage) -> Result<u64, NewMessage> {
        let mut inbox = self.inbox();
        if !self.fits(&inbox, 1) {
            return Err(message);
        }
        let was_empty = inbox.messages.is_empty();
        let id = inbox.push(message);
        drop(inbox);
        if was_empty {
            self.changed.notify(usize::MAX);
        }
        Ok(id)
    }

    /// Whether `wanted` more messages fit (or the backend is empty).
    fn fits(&self, inbox: &Inbox, wanted: usize) -> bool {
        let held = self.held.load(Ordering::Acquire) + inbox.messages.len();
        held + wanted <= self.capacity || held == 0
    }

    /// Runs `op` on the state, then wakes appenders if messages were dropped.
    fn with<T>(&self, op: impl FnOnce(&mut State, &mut ()) -> T) -> T {
        let mut changes = ();
        let (out, freed) = {
            let mut state = self.state();
            let before = state.len();
            let out = op(&mut state, &mut changes);
            let after = state.len();
            self.held.store(after, Ordering::Release);
            (out, after < before)
        };
        if freed {
            self.room.notify(usize::MAX);
        }
        out
    }
}

/// Sends not yet moved into the state.
#[derive(Debug, Default)]
struct Inbox {
    next_id: u64,
    messages: Vec<StoredMessage>,
}

impl Inbox {
    /// Gives `message` the next id and keeps it.
    fn push(&mut self, message: NewMessage) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.messages.push(StoredMessage {
            id,
            payload: message.payload,
            enqueued_at: message.enqueued_at,
            not_before: message.not_before,
            context: message.context,
        });
        id
    }
}

impl Default for MemoryBackend {
    fn default() -> Self {
        MemoryBackend::new()
    }
}

impl fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryBackend")
            .field("capacity", &self.capacity)
            .field("held", &self.state().len())
            .finish()
    }
}

impl Backend for MemoryBackend {
    fn append(&self, messages: Vec<NewMessage>) -> BackendFuture<'_, Vec<u64>> {
        async move {
            let mut messages = Some(messages);
            loop {
                if let Some(ids) = self.try_append(&mut messages) {
                    return Ok(ids);
                }
                // Listen, then try again: room made in between is not missed.
                let listener = self.room.listen();
                if let Some(ids) = self.try_append(&mut messages) {
                    return Ok(ids);
                }
                listener.await;
            }
        }
        .boxed()
    }

    fn append_one(&self, message: NewMessage) -> BackendFuture<'_, u64> {
        // The common case, room now, needs no async state machine.
        let mut message = match self.try_append_one(message) {
            Ok(id) => return std::future::ready(Ok(id)).boxed(),
            Err(message) => message,
        };
        async move {
            loop {
                let listener = self.room.listen();
                match self.try_append_one(message) {
                    Ok(id) => return Ok(id),
                    Err(back) => message = back,
                }
                listener.await;
            }
        }
        .boxed()
    }

    fn append_now(&self, message: NewMessage) -> Result<u64, NewMessage> {
        self.try_append_one(message)
    }

    fn create_group<'a>(&'a self, group: &'a str, start: StartFrom) -> BackendFuture<'a, bool> {
        let created = self.with(|state, changes| state.create_group(group, start, changes));
        if created {
            self.changed.notify(usize::MAX);
        }
        std::future::ready(Ok(created)).boxed()
    }

    fn claim<'a>(
        &'a self,
        group: &'a str,
        _consumer: &'a str,
        max: usize,
        now: SystemTime,
        lease_until: SystemTime,
    ) -> BackendFuture<'a, Claim> {
        let claim = self.with(|state, changes| state.claim(group, max, now, lease_until, changes));
        std::future::ready(claim).boxed()
    }

    fn ack<'a>(&'a self, group: &'a str, ids: &'a [u64]) -> BackendFuture<'a, ()> {
        let done = self.with(|state, changes| state.ack(group, ids, changes));
        std::future::ready(done).boxed()
    }

    fn nack<'a>(
        &'a self,
        group: &'a str,
        id: u64,
        attempt: u32,
        retry_at: SystemTime,
        error: Option<String>,
    ) -> BackendFuture<'a, ()> {
        let done =
            self.with(|state, changes| state.nack(group, id, attempt, retry_at, error, changes));
        self.changed.notify(usize::MAX);
        std::future::ready(done).boxed()
    }

    fn release<'a>(
        &'a self,
        group: &'a str,
        id: u64,
        attempt: u32,
        now: SystemTime,
    ) -> BackendFuture<'a, ()> {
        let done = self.with(|state, changes| state.release(group, id, attempt, now, changes));
        self.changed.notify(usize::MAX);
        std::future::ready(done).boxed()
    }

    fn extend_lease<'a>(
        &'a self,
        group: &'a str,
        id: u64,
        attempt: u32,
        lease_until: SystemTime,
    ) -> BackendFuture<'a, bool> {
        let done = self
            .with(|state, changes| state.extend_lease(group, id, attempt, lease_until, changes));
        std::future::ready(done).boxed()
    }

    fn dead_letter<'a>(
        &'a self,
        group: &'a str,
        id: u64,
        attempt: u32,
        error: String,
        now: SystemTime,
    ) -> BackendFuture<'a, ()> {
        let done =
            self.with(|state, changes| state.dead_letter(group, id, attempt, error, now, changes));
        std::future::ready(done).boxed()
    }

    fn dead_letters<'a>(
        &'a self,
        group: &'a str,
        limit: usize,
    ) -> BackendFuture<'a, Vec<DeadRecord>> {
        std::future::ready(self.state().dead_letters(group, limit)).boxed()
    }

    fn requeue<'a>(&'a self, group: &'a str, id: u64, now: SystemTime) -> BackendFuture<'a, bool> {
        let done = self.with(|state, changes| state.requeue(group, id, now, changes));
        self.changed.notify(usize::MAX);
        std::future::ready(done).boxed()
    }

    fn groups(&self) -> BackendFuture<'_, Vec<String>> {
        std::future::ready(Ok(self.state().groups())).boxed()
    }

    fn held(&self) -> BackendFuture<'_, u64> {
        std::future::ready(Ok(self.state().len() as u64)).boxed()
    }

    fn counts<'a>(&'a self, group: &'a str, now: SystemTime) -> BackendFuture<'a, GroupCounts> {
        std::future::ready(self.state().counts(group, now)).boxed()
    }

    fn changed(&self) -> BoxFuture<'static, ()> {
        self.changed.listen().boxed()
    }
}
