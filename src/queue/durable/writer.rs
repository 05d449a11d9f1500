//! The writer: group commit of the backend's changes.
//!
//! An operation encodes its changes as rows of the **next batch** while it holds the
//! state's lock, so the rows are in the order the state made the changes, and leaves
//! a channel to hear back. (Rows written once per batch — the batch's segment of
//! messages, each run's last state, the cursors — are gathered the same way and
//! sealed when the batch is taken.) The **commit thread** takes the whole next batch whenever it
//! is free, commits it (one `fsync` for the whole group under `SyncAll`) and completes
//! every operation in it, while the next batch gathers. So encoding runs on the
//! threads that make the changes, in parallel with the `fsync` of the previous group,
//! and a group holds everything that came during a commit. The thread is a plain
//! `std::thread`, so the writer works the same under any executor.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;

use fjall::PersistMode;
use futures_channel::oneshot;

use super::store::{self, Store};
use crate::queue::backend::BackendError;
use crate::queue::state::Change;
use crate::runtime::panic_message;

/// Where an operation hears that its changes are durable (or not).
type Done = oneshot::Sender<Result<(), BackendError>>;

/// What the backend's handles and the commit thread share.
#[derive(Debug)]
pub(super) struct Writer {
    next: Mutex<Next>,
    /// The commit thread waits here for work, a release or a close.
    wake: Condvar,
    mode: PersistMode,
    /// fjall commits made.
    pub commits: AtomicU64,
    /// Operations completed (committed, or failed).
    pub operations: AtomicU64,
    /// The first storage failure: every later operation fails with it.
    pub failure: OnceLock<String>,
}

/// The next batch, and the store its rows are encoded for.
struct Next {
    store: Store,
    group: store::Group,
    dones: Vec<Done>,
    /// Commits wait while this is set (a test hook: see `DurableBackend::hold_commits`).
    held: bool,
    /// The backend is dropped: commit what is left, then stop.
    closing: bool,
    /// The next commit fails with this instead of writing (a test hook: see
    /// `DurableBackend::fail_next_commit`).
    injected: Option<String>,
}

impl std::fmt::Debug for Next {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Next")
            .field("operations", &self.dones.len())
            .field("held", &self.held)
            .field("closing", &self.closing)
            .finish_non_exhaustive()
    }
}

impl Writer {
    /// A writer over `store` and its commit thread.
    pub(super) fn start(
        store: Store,
        mode: PersistMode,
    ) -> std::io::Result<(Arc<Writer>, JoinHandle<()>)> {
        let writer = Arc::new(Writer {
            next: Mutex::new(Next {
                group: store.group(mode),
                store,
                dones: Vec::new(),
                held: false,
                closing: false,
                injected: None,
            }),
            wake: Condvar::new(),
            mode,
            commits: AtomicU64::new(0),
            operations: AtomicU64::new(0),
            failure: OnceLock::new(),
        });
        let thread = {
            let writer = Arc::clone(&writer);
            std::thread::Builder::new()
                .name("riverbed-commit".into())
                .spawn(move || writer.run())?
        };
        Ok((writer, thread))
    }

    fn next(&self) -> MutexGuard<'_, Next> {
        self.next.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds an operation's `changes` to the next batch; the receiver hears once they
    /// are committed. Called under the state's lock, which orders the rows.
    pub(super) fn submit(&self, changes: &[Change]) -> oneshot::Receiver<Result<(), BackendError>> {
        let (done, committed) = oneshot::channel();
        let mut next = self.next();
        if next.closing {
            drop(next);
            let failure = self.fail("the store is closed".to_owned());
            self.complete(vec![done], &Err(failure));
            return committed;
        }
        if self.failure.get().is_none() {
            let Next { store, group, .. } = &mut *next;
            match std::panic::catch_unwind(AssertUnwindSafe(|| store.add(group, changes))) {
                Ok(Ok(())) => {}
                Ok(Err(message)) => drop(self.fail(message)),
                Err(panic) => drop(self.fail(panicked("encoding", &*panic))),
            }
        }
        next.dones.push(done);
        if next.dones.len() == 1 {
            self.wake.notify_one();
        }
        committed
    }

    /// Holds or releases commits (the test hook).
    pub(super) fn hold(&self, held: bool) {
        self.next().held = held;
        self.wake.notify_one();
    }

    /// Makes the next commit fail with `message` (the test hook).
    pub(super) fn fail_next_commit(&self, message: String) {
        self.next().injected = Some(message);
    }

    /// Stops the commit thread once it has committed what is left.
    pub(super) fn close(&self) {
        let mut next = self.next();
        next.closing = true;
        next.held = false;
        drop(next);
        self.wake.notify_one();
    }

    /// Records a failure; returns the first one, which is reported from then on.
    pub(super) fn fail(&self, message: String) -> String {
        let _first = self.failure.set(message);
        self.failure.get().cloned().unwrap_or_default()
    }

    fn complete(&self, dones: Vec<Done>, outcome: &Result<(), String>) {
        self.operations
            .fetch_add(dones.len() as u64, Ordering::Relaxed);
        for done in dones {
            // An operation whose future was dropped does not listen any more.
            let _unheard = done.send(outcome.clone().map_err(BackendError::Storage));
        }
    }

    /// The commit thread: takes the next batch whenever there is one, commits it and
    /// completes its operations; when closed, commits what is left, syncs a relaxed
    /// store and closes it.
    fn run(&self) {
        loop {
            let mut next = self.next();
            while next.held || (next.dones.is_empty() && !next.closing) {
                next = self.wake.wait(next).unwrap_or_else(|p| p.into_inner());
            }
            if next.dones.is_empty() {
                break; // Closing, and nothing is left.
            }
            let fresh = next.store.group(self.mode);
            let full = std::mem::replace(&mut next.group, fresh);
            let dones = std::mem::take(&mut next.dones);
            if let Some(message) = next.injected.take() {
                self.fail(message);
            }
            let batch = match self.failure.get() {
                Some(_) => None,
                None => next.store.finish(full).unwrap_or_else(|message| {
                    self.fail(message);
                    None
                }),
            };
            drop(next);
            let outcome = match (self.failure.get(), batch) {
                (Some(failure), _) => Err(failure.clone()),
                (None, None) => Ok(()),
                (None, Some(batch)) => {
                    match std::panic::catch_unwind(AssertUnwindSafe(|| store::commit(batch))) {
                        Ok(Ok(())) => {
                            self.commits.fetch_add(1, Ordering::Relaxed);
                            Ok(())
                        }
                        Ok(Err(message)) => Err(self.fail(message)),
                        Err(panic) => Err(self.fail(panicked("committing", &*panic))),
                    }
                }
            };
            self.complete(dones, &outcome);
        }
        let next = self.next();
        if self.mode != PersistMode::SyncAll
            && self.failure.get().is_none()
            && let Err(message) = next.store.sync()
        {
            self.fail(message);
        }
    }
}

fn panicked(doing: &str, panic: &(dyn std::any::Any + Send)) -> String {
    format!(
        "the store panicked while {doing}: {}",
        panic_message(panic).unwrap_or("no message")
    )
}
