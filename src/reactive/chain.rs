//! The transformer chain of a [`ReactiveStream`](super::ReactiveStream): append-only,
//! read on every emit without a lock or a read-modify-write.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use crate::runtime::panic_message;

/// Transformers kept in fixed slots, read with one atomic load each; more go to a
/// locked list (read with a lock, and only by streams with that many).
const SLOTS: usize = 16;

/// One transformer, type-erased.
pub(crate) enum Step<T> {
    /// A plain function: runs in place, allocates nothing.
    Sync(Arc<dyn Fn(T) -> Option<T> + Send + Sync>),
    /// An async function: its future is boxed.
    Async(Arc<dyn Fn(T) -> BoxFuture<'static, Option<T>> + Send + Sync>),
}

impl<T> Clone for Step<T> {
    fn clone(&self) -> Self {
        match self {
            Step::Sync(f) => Step::Sync(Arc::clone(f)),
            Step::Async(f) => Step::Async(Arc::clone(f)),
        }
    }
}

/// A transformer panicked; its message, when it was a string.
pub(crate) struct Panicked(pub(crate) Option<String>);

pub(crate) struct Chain<T> {
    /// Transformers added so far; slots below it (and `more` past `SLOTS`) are set.
    len: AtomicUsize,
    slots: [OnceLock<Step<T>>; SLOTS],
    more: RwLock<Vec<Step<T>>>,
    /// Serialises additions.
    adding: Mutex<()>,
}

impl<T> Chain<T> {
    pub(crate) fn new() -> Self {
        Chain {
            len: AtomicUsize::new(0),
            slots: std::array::from_fn(|_| OnceLock::new()),
            more: RwLock::new(Vec::new()),
            adding: Mutex::new(()),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len.load(Ordering::Acquire) == 0
    }

    pub(crate) fn push(&self, step: Step<T>) {
        let _adding = self.adding.lock().unwrap_or_else(|p| p.into_inner());
        let len = self.len.load(Ordering::Relaxed);
        match self.slots.get(len) {
            Some(slot) => {
                // Nobody else sets this slot: additions are serialised.
                let _ = slot.set(step);
            }
            None => self
                .more
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .push(step),
        }
        // Published after the step is in place.
        self.len.store(len + 1, Ordering::Release);
    }

    /// Step `index`, if it was added.
    fn step(&self, index: usize) -> Option<Step<T>> {
        match self.slots.get(index) {
            Some(slot) => slot.get().cloned(),
            None => self
                .more
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(index - SLOTS)
                .cloned(),
        }
    }

    /// Runs the chain on `item`: the item to share, `None` if a transformer dropped it.
    pub(crate) async fn run(&self, mut item: T) -> Result<Option<T>, Panicked> {
        let len = self.len.load(Ordering::Acquire);
        for index in 0..len {
            // Slots are read in place; only steps past `SLOTS` are cloned out.
            let owned;
            let step = match self.slots.get(index).and_then(OnceLock::get) {
                Some(step) => step,
                None => match self.step(index) {
                    Some(step) => {
                        owned = step;
                        &owned
                    }
                    None => continue,
                },
            };
            let out = match step {
                Step::Sync(f) => catch_unwind(AssertUnwindSafe(|| f(item))),
                Step::Async(f) => match catch_unwind(AssertUnwindSafe(|| f(item))) {
                    Ok(future) => AssertUnwindSafe(future).catch_unwind().await,
                    Err(panic) => Err(panic),
                },
            };
            match out {
                Ok(Some(next)) => item = next,
                Ok(None) => return Ok(None),
                Err(panic) => {
                    return Err(Panicked(panic_message(panic.as_ref()).map(str::to_owned)));
                }
            }
        }
        Ok(Some(item))
    }
}
