//! The synchronisation the broadcast core is built on: the standard library's and
//! `event-listener`'s, or `loom`'s when the crate is built with `--cfg riverbed_loom`
//! for the model-checked tests (`loom_tests.rs`), which then explore every
//! interleaving of the core's locks and atomics.
//!
//! Under loom the publishers' `space` event is [`model::Event`], the same contract as
//! `event-listener`'s for what the core uses (a listener made before a `notify` is
//! woken by it, polled or not; `notify` wakes every listener): `event-listener`'s
//! standard build takes its own lock around wakeups, which loom cannot see into and
//! would deadlock on, and its loom build needs `--cfg loom` (below).
//!
//! (A cfg of our own rather than `loom`: under `--cfg loom` every dependency that
//! knows loom switches to its own loom build, and several need features turned on to
//! build that way at all.)

#[cfg(riverbed_loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, Ordering};
#[cfg(riverbed_loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};
#[cfg(not(riverbed_loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
#[cfg(not(riverbed_loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};

#[cfg(riverbed_loom)]
pub(crate) use self::model::{Event, EventListener};
#[cfg(not(riverbed_loom))]
pub(crate) use event_listener::{Event, EventListener};

#[cfg(riverbed_loom)]
mod model {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::{Context, Poll, Waker};

    use super::Mutex;

    /// How many notifies so far, and who waits for the next.
    #[derive(Default)]
    struct State {
        notified: u64,
        waiting: Vec<Waker>,
    }

    /// The loom model of `event_listener::Event`, as the core uses it.
    pub(crate) struct Event {
        state: Arc<Mutex<State>>,
    }

    impl Event {
        pub(crate) fn new() -> Self {
            Event {
                state: Arc::new(Mutex::new(State::default())),
            }
        }

        /// A listener woken by the next `notify`.
        pub(crate) fn listen(&self) -> EventListener {
            let seen = self.state.lock().unwrap().notified;
            EventListener {
                state: Arc::clone(&self.state),
                seen,
            }
        }

        /// Wakes every listener (the core only ever notifies all of them).
        pub(crate) fn notify(&self, _count: usize) -> usize {
            let waiting = {
                let mut state = self.state.lock().unwrap();
                state.notified += 1;
                std::mem::take(&mut state.waiting)
            };
            let woken = waiting.len();
            for waker in waiting {
                waker.wake();
            }
            woken
        }
    }

    /// The loom model of `event_listener::EventListener`: ready once a `notify`
    /// came after its `listen`.
    pub(crate) struct EventListener {
        state: Arc<Mutex<State>>,
        seen: u64,
    }

    impl Future for EventListener {
        type Output = ();

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            let mut state = self.state.lock().unwrap();
            if state.notified != self.seen {
                return Poll::Ready(());
            }
            state.waiting.push(cx.waker().clone());
            Poll::Pending
        }
    }
}
