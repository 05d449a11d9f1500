//! [`Inner`]: the state a [`ReactiveStream`](super::ReactiveStream) shares with its
//! subscriptions, in a file of its own so that neither reaches into the other.

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, OnceLock};

use super::chain::Chain;
use crate::broadcast::Core;
use crate::stats::Counter;

/// How a stream ended.
#[derive(Debug, Clone)]
pub(crate) enum Terminal<E> {
    Completed,
    Failed(E),
}

/// What a new subscriber receives before live items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Subject {
    /// Nothing: only what is emitted after it subscribes.
    Plain,
    /// The last `n` items (a replay subject).
    Replay(usize),
    /// The current value (a behaviour subject): the last item, or the initial one.
    Latest,
}

pub(crate) struct Inner<T, E> {
    pub(crate) name: Arc<str>,
    pub(crate) core: Arc<Core<T>>,
    pub(crate) subject: Subject,
    pub(crate) capacity: usize,
    /// The transformers every item goes through, once, before it is shared.
    pub(crate) chain: Chain<T>,
    /// Set once, before the core closes: a subscriber that reaches the end reads it.
    pub(crate) terminal: OnceLock<Terminal<E>>,
    /// Live `ReactiveStream` handles; the stream completes when the last one goes.
    pub(crate) handles: AtomicUsize,
    pub(crate) counters: Counters,
}

/// The stream's own counts (the core counts deliveries and drops).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) emitted: Counter,
    pub(crate) transformed_away: Counter,
    pub(crate) transformer_panics: Counter,
    pub(crate) handled: Counter,
    pub(crate) handler_failures: Counter,
    pub(crate) handler_panics: Counter,
}

impl<T, E> Inner<T, E> {
    pub(crate) fn terminal(&self) -> Option<&Terminal<E>> {
        self.terminal.get()
    }
}
