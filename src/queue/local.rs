//! [`Local`]: the one engine of the backends that keep the queue's [`State`] in this
//! process — the [`MemoryBackend`](super::MemoryBackend), and the durable backend,
//! which also journals every change to disk. A [`LocalStore`] says what differs; every
//! [`Backend`](super::Backend) operation is written once, here.

use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use event_listener::Event;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::backend::{BackendError, BackendFuture, StartFrom};
use super::state::{Journal, State};

/// What an operation waits for after it took effect in memory: the commit of its
/// changes.
pub(crate) type Commit = BoxFuture<'static, Result<(), BackendError>>;

/// What differs between the backends over a [`State`] in this process.
pub(crate) trait LocalStore: Send + Sync + 'static {
    /// Where an operation's changes go: `()` (kept nowhere, not even built) or a
    /// list of them for a journal.
    type Journal: Journal + Default;

    /// `Err` once the store failed: the state in memory may be ahead of it.
    fn healthy(&self) -> Result<(), BackendError> {
        Ok(())
    }

    /// Whether these points in time can be stored.
    fn storable(&self, _times: &[SystemTime]) -> Result<(), BackendError> {
        Ok(())
    }

    /// With the state locked, before an operation reads or changes it.
    fn take_in(&self, _state: &mut State) {}

    /// With the state still locked after an operation: takes its changes (in the
    /// order the state made them) and says what to wait for, if anything.
    fn submit(&self, state: &State, changes: Self::Journal) -> Option<Commit>;
}

/// A queue state in this process, its store, and the events that wake appenders
/// waiting for room and consumers waiting for something to claim.
pub(crate) struct Local<St> {
    state: Mutex<State>,
    /// Appenders waiting for room.
    pub(crate) room: Event,
    /// Consumers waiting for something to claim.
    pub(crate) changed: Event,
    pub(crate) store: St,
}

impl<St: LocalStore> Local<St> {
    pub(crate) fn new(state: State, store: St) -> Self {
        Local {
            state: Mutex::new(state),
            room: Event::new(),
            changed: Event::new(),
            store,
        }
    }

    /// The state, locked, with what the store had waiting taken in.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // No user code runs under this lock; a poisoned lock still guards whole data.
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        self.store.take_in(&mut state);
        state
    }

    /// Runs `op` on the state and hands its changes to the store, both under the
    /// lock; wakes appenders if messages were dropped. The future resolves with
    /// `op`'s result once the changes are committed.
    pub(crate) fn apply<T: Send + 'static>(
        &self,
        times: &[SystemTime],
        op: impl FnOnce(&mut State, &mut St::Journal) -> Result<T, BackendError>,
    ) -> BackendFuture<'static, T> {
        if let Err(error) = self.store.storable(times) {
            return std::future::ready(Err(error)).boxed();
        }
        let mut state = self.lock();
        if let Err(error) = self.store.healthy() {
            return std::future::ready(Err(error)).boxed();
        }
        let before = state.len();
        let mut changes = St::Journal::default();
        let out = op(&mut state, &mut changes);
        let freed = state.len() < before;
        let commit = self.store.submit(&state, changes);
        drop(state);
        if freed {
            self.room.notify(usize::MAX);
        }
        match commit {
            None => std::future::ready(out).boxed(),
            Some(commit) => async move {
                commit.await?;
                out
            }
            .boxed(),
        }
    }

    /// [`apply`](Self::apply), then wakes the consumers: the operation may have made
    /// something claimable.
    pub(crate) fn apply_and_wake<T: Send + 'static>(
        &self,
        times: &[SystemTime],
        op: impl FnOnce(&mut State, &mut St::Journal) -> Result<T, BackendError>,
    ) -> BackendFuture<'static, T> {
        let done = self.apply(times, op);
        self.changed.notify(usize::MAX);
        done
    }

    /// Reads the state (no change, nothing to wait for).
    pub(crate) fn read<T: Send + 'static>(
        &self,
        op: impl FnOnce(&State) -> Result<T, BackendError>,
    ) -> BackendFuture<'static, T> {
        let out = self.store.healthy().and_then(|()| op(&self.lock()));
        std::future::ready(out).boxed()
    }

    /// Creates `group` unless it exists, waking the consumers if it did.
    pub(crate) fn create_group(&self, group: &str, start: StartFrom) -> BackendFuture<'_, bool> {
        let mut created = false;
        let done = self.apply(&[], |state, changes| {
            created = state.create_group(group, start, changes);
            Ok(created)
        });
        if created {
            self.changed.notify(usize::MAX);
        }
        done
    }
}

/// Implements [`Backend`](super::Backend) for a backend type over a [`Local`] engine,
/// reached by the expression `$local` on `self`. The appends differ between backends:
/// the type's own `append` (and, where it has them, `append_one` and `append_now`)
/// come in the braces, and go into the `impl` as they are.
macro_rules! backend_over_local {
    ($backend:ty, |$this:ident| $local:expr, { $($appends:tt)* }) => {
        impl $crate::queue::Backend for $backend {
            $($appends)*

            fn create_group<'a>(
                &'a self,
                group: &'a str,
                start: $crate::queue::StartFrom,
            ) -> $crate::queue::backend::BackendFuture<'a, bool> {
                let $this = self;
                $local.create_group(group, start)
            }

            fn claim<'a>(
                &'a self,
                group: &'a str,
                _consumer: &'a str,
                max: usize,
                now: ::std::time::SystemTime,
                lease_until: ::std::time::SystemTime,
            ) -> $crate::queue::backend::BackendFuture<'a, $crate::queue::backend::Claim> {
                let $this = self;
                $local.apply(&[now, lease_until], |state, changes| {
                    state.claim(group, max, now, lease_until, changes)
                })
            }

            fn ack<'a>(
                &'a self,
                group: &'a str,
                entries: &'a [(u64, u32)],
            ) -> $crate::queue::backend::BackendFuture<'a, Vec<u64>> {
                let $this = self;
                $local.apply(&[], |state, changes| state.ack(group, entries, changes))
            }

            fn nack<'a>(
                &'a self,
                group: &'a str,
                id: u64,
                attempt: u32,
                retry_at: ::std::time::SystemTime,
                error: Option<String>,
            ) -> $crate::queue::backend::BackendFuture<'a, bool> {
                let $this = self;
                $local.apply_and_wake(&[retry_at], |state, changes| {
                    state.nack(group, id, attempt, retry_at, error, changes)
                })
            }

            fn release<'a>(
                &'a self,
                group: &'a str,
                id: u64,
                attempt: u32,
                now: ::std::time::SystemTime,
            ) -> $crate::queue::backend::BackendFuture<'a, bool> {
                let $this = self;
                $local.apply_and_wake(&[now], |state, changes| {
                    state.release(group, id, attempt, now, changes)
                })
            }

            fn extend_lease<'a>(
                &'a self,
                group: &'a str,
                id: u64,
                attempt: u32,
                lease_until: ::std::time::SystemTime,
            ) -> $crate::queue::backend::BackendFuture<'a, bool> {
                let $this = self;
                $local.apply(&[lease_until], |state, changes| {
                    state.extend_lease(group, id, attempt, lease_until, changes)
                })
            }

            fn dead_letter<'a>(
                &'a self,
                group: &'a str,
                id: u64,
                attempt: u32,
                error: String,
                now: ::std::time::SystemTime,
            ) -> $crate::queue::backend::BackendFuture<'a, bool> {
                let $this = self;
                $local.apply(&[now], |state, changes| {
                    state.dead_letter(group, id, attempt, error, now, changes)
                })
            }

            fn dead_letters<'a>(
                &'a self,
                group: &'a str,
                limit: usize,
            ) -> $crate::queue::backend::BackendFuture<'a, Vec<$crate::queue::backend::DeadRecord>> {
                let $this = self;
                $local.read(|state| state.dead_letters(group, limit))
            }

            fn requeue<'a>(
                &'a self,
                group: &'a str,
                id: u64,
                now: ::std::time::SystemTime,
            ) -> $crate::queue::backend::BackendFuture<'a, bool> {
                let $this = self;
                $local.apply_and_wake(&[now], |state, changes| state.requeue(group, id, now, changes))
            }

            fn groups(&self) -> $crate::queue::backend::BackendFuture<'_, Vec<String>> {
                let $this = self;
                $local.read(|state| Ok(state.groups()))
            }

            fn held(&self) -> $crate::queue::backend::BackendFuture<'_, u64> {
                let $this = self;
                $local.read(|state| Ok(state.len() as u64))
            }

            fn counts<'a>(
                &'a self,
                group: &'a str,
                now: ::std::time::SystemTime,
            ) -> $crate::queue::backend::BackendFuture<'a, $crate::queue::backend::GroupCounts> {
                let $this = self;
                $local.read(|state| state.counts(group, now))
            }

            fn changed(&self) -> ::futures_util::future::BoxFuture<'static, ()> {
                let $this = self;
                ::futures_util::FutureExt::boxed($local.changed.listen())
            }
        }
    };
}

pub(crate) use backend_over_local;
