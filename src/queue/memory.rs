//! [`MemoryBackend`]: a bounded, in-process queue backend; fast, not durable.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use futures_util::FutureExt;

use super::backend::{BackendFuture, NewMessage, StoredMessage};
use super::local::{Commit, Local, LocalStore, backend_over_local};
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
    local: Local<Memory>,
}

/// What the memory backend keeps beside its state.
struct Memory {
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
}

impl LocalStore for Memory {
    type Journal = ();

    fn take_in(&self, state: &mut State) {
        let mut inbox = self.inbox();
        if !inbox.messages.is_empty() {
            state.append_stored(&mut inbox.messages, &mut ());
            // Count them as held before sends can see the inbox empty: room is
            // judged from `held` and the inbox together, under the inbox's lock.
            self.held.store(state.len(), Ordering::Release);
        }
    }

    fn submit(&self, state: &State, (): ()) -> Option<Commit> {
        self.held.store(state.len(), Ordering::Release);
        None
    }
}

impl Memory {
    fn inbox(&self) -> MutexGuard<'_, Inbox> {
        // No user code runs under this lock; a poisoned lock still guards whole data.
        self.inbox.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `wanted` more messages fit (or the backend is empty).
    fn fits(&self, inbox: &Inbox, wanted: usize) -> bool {
        let held = self.held.load(Ordering::Acquire) + inbox.messages.len();
        held + wanted <= self.capacity || held == 0
    }
}

impl MemoryBackend {
    /// A backend holding up to [`DEFAULT_MEMORY_CAPACITY`] messages.
    pub fn new() -> Self {
        MemoryBackend::with_capacity(DEFAULT_MEMORY_CAPACITY)
    }

    /// A backend holding up to `capacity` messages (at least 1).
    pub fn with_capacity(capacity: usize) -> Self {
        let memory = Memory {
            inbox: Mutex::new(Inbox::default()),
            held: AtomicUsize::new(0),
            capacity: capacity.max(1),
        };
        MemoryBackend {
            local: Local::new(State::new(), memory),
        }
    }

    /// The most messages it holds before appends wait.
    pub fn capacity(&self) -> usize {
        self.local.store.capacity
    }

    /// Appends the batch if it fits (or the backend is empty); `None` if it must wait.
    fn try_append(&self, messages: &mut Option<Vec<NewMessage>>) -> Option<Vec<u64>> {
        let wanted = messages.as_ref().map_or(0, Vec::len);
        let memory = &self.local.store;
        let mut inbox = memory.inbox();
        if !memory.fits(&inbox, wanted) {
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
            self.local.changed.notify(usize::MAX);
        }
        Some(ids)
    }

    /// [`try_append`](Self::try_append) for one message, with no batch to build.
    fn try_append_one(&self, message: NewMessage) -> Result<u64, NewMessage> {
        let memory = &self.local.store;
        let mut inbox = memory.inbox();
        if !memory.fits(&inbox, 1) {
            return Err(message);
        }
        let was_empty = inbox.messages.is_empty();
        let id = inbox.push(message);
        drop(inbox);
        if was_empty {
            self.local.changed.notify(usize::MAX);
        }
        Ok(id)
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
            .field("capacity", &self.capacity())
            .field("held", &self.local.lock().len())
            .finish()
    }
}

backend_over_local!(MemoryBackend, |this| this.local, {
    fn append(&self, messages: Vec<NewMessage>) -> BackendFuture<'_, Vec<u64>> {
        async move {
            let mut messages = Some(messages);
            loop {
                if let Some(ids) = self.try_append(&mut messages) {
                    return Ok(ids);
                }
                // Listen, then try again: room made in between is not missed.
                let listener = self.local.room.listen();
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
                let listener = self.local.room.listen();
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
});
