//! The writer thread: group commit of the backend's changes.
//!
//! Operations queue their changes on a channel, in the order the state made them (they
//! are queued under the state's lock). The thread takes everything queued, writes it
//! as one fjall batch, commits it once (one `fsync` for the whole group under
//! `SyncAll`), then completes every operation of the group. While it commits, the next
//! group gathers. It is a plain thread, so it works the same under any executor.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;

use fjall::PersistMode;
use futures_channel::oneshot;

use super::store::Store;
use crate::queue::backend::BackendError;
use crate::queue::state::Change;
use crate::runtime::panic_message;

/// One operation's changes, and where to say they are durable.
pub(super) struct Request {
    pub changes: Vec<Change>,
    pub done: oneshot::Sender<Result<(), BackendError>>,
}

/// What the writer shares with the backend's handles.
#[derive(Debug, Default)]
pub(super) struct WriterShared {
    /// fjall commits made.
    pub commits: AtomicU64,
    /// Operations completed (committed, or failed).
    pub operations: AtomicU64,
    /// The first storage failure: every later operation fails with it.
    pub failure: OnceLock<String>,
    /// Commits wait while this is set (a test hook: see `DurableBackend::hold_commits`).
    held: Mutex<bool>,
    released: Condvar,
}

impl WriterShared {
    pub(super) fn hold(&self, held: bool) {
        *self.held.lock().unwrap_or_else(|p| p.into_inner()) = held;
        self.released.notify_all();
    }

    fn wait_while_held(&self) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        while *held {
            held = self.released.wait(held).unwrap_or_else(|p| p.into_inner());
        }
    }

    pub(super) fn fail(&self, message: String) -> String {
        // The first failure is the one reported from then on.
        let _first = self.failure.set(message);
        self.failure.get().cloned().unwrap_or_default()
    }
}

/// Starts the writer thread over `store`.
pub(super) fn spawn(
    store: Store,
    mode: PersistMode,
    shared: Arc<WriterShared>,
) -> std::io::Result<(Sender<Request>, JoinHandle<()>)> {
    let (sender, receiver) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("riverbed-durable-writer".into())
        .spawn(move || run(store, mode, &receiver, &shared))?;
    Ok((sender, thread))
}

/// Commits groups until every sender is gone, then closes the store.
fn run(mut store: Store, mode: PersistMode, receiver: &Receiver<Request>, shared: &WriterShared) {
    while let Ok(first) = receiver.recv() {
        shared.wait_while_held();
        let mut group = vec![first];
        group.extend(receiver.try_iter());
        let outcome = match shared.failure.get() {
            Some(failure) => Err(failure.clone()),
            None => {
                let changes = group.iter().flat_map(|request| request.changes.iter());
                let committed =
                    std::panic::catch_unwind(AssertUnwindSafe(|| store.commit(changes, mode)));
                match committed {
                    Ok(Ok(wrote)) => {
                        if wrote {
                            shared.commits.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(())
                    }
                    Ok(Err(message)) => Err(shared.fail(message)),
                    Err(panic) => Err(shared.fail(format!(
                        "the store panicked while committing: {}",
                        panic_message(panic.as_ref()).unwrap_or("no message")
                    ))),
                }
            }
        };
        shared
            .operations
            .fetch_add(group.len() as u64, Ordering::Relaxed);
        for request in group {
            // An operation whose future was dropped does not listen any more.
            let _unheard = request
                .done
                .send(outcome.clone().map_err(BackendError::Storage));
        }
    }
    // Every handle is gone and everything queued is written.
    if mode != PersistMode::SyncAll && shared.failure.get().is_none() {
        if let Err(message) = store.sync() {
            shared.fail(message);
        }
    }
}
