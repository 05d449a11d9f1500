//! [`DedupeWithinByKey`]: drops an item whose key was emitted less than a window ago.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::hash::Hash;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_core::{FusedStream, Stream, ready};
use pin_project_lite::pin_project;

use crate::runtime::SharedRuntime;

pin_project! {
    /// Stream for
    /// [`ReactiveExt::dedupe_within_by_key`](super::ReactiveExt::dedupe_within_by_key):
    /// the items whose key was not emitted in the last `window`.
    #[must_use = "streams do nothing unless polled"]
    pub struct DedupeWithinByKey<S, K, F> {
        #[pin]
        stream: S,
        f: F,
        window: Duration,
        rt: SharedRuntime,
        // The keys emitted less than `window` ago, oldest first, with the instant each
        // was emitted; `keys` holds the same keys, for lookup.
        emitted: VecDeque<(Instant, K)>,
        keys: HashSet<K>,
        max_keys: Option<usize>,
    }
}

impl<S, K, F> DedupeWithinByKey<S, K, F> {
    pub(crate) fn new(stream: S, window: Duration, rt: &SharedRuntime, f: F) -> Self {
        DedupeWithinByKey {
            stream,
            f,
            window,
            rt: rt.clone(),
            emitted: VecDeque::new(),
            keys: HashSet::new(),
            max_keys: None,
        }
    }

    /// Remembers at most `max` keys (at least one): when a new key would exceed it, the
    /// oldest key is forgotten before its window ends, so a duplicate of it is no
    /// longer dropped. This bounds memory whatever the rate of distinct items.
    pub fn max_keys(mut self, max: usize) -> Self {
        self.max_keys = Some(max.max(1));
        self
    }

    /// How many keys are remembered now: those emitted less than `window` before the
    /// last item arrived (fewer if [`max_keys`](Self::max_keys) is set).
    pub fn remembered(&self) -> usize {
        self.emitted.len()
    }
}

impl<S, K, F> Stream for DedupeWithinByKey<S, K, F>
where
    S: Stream,
    F: FnMut(&S::Item) -> K,
    K: Hash + Eq + Clone,
{
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let mut this = self.project();
        loop {
            let Some(item) = ready!(this.stream.as_mut().poll_next(cx)) else {
                this.emitted.clear();
                this.keys.clear();
                return Poll::Ready(None);
            };
            let now = this.rt.now();
            // Forget the keys whose window has ended, before looking this one up.
            while let Some((at, _)) = this.emitted.front() {
                if now.saturating_duration_since(*at) < *this.window {
                    break;
                }
                if let Some((_, key)) = this.emitted.pop_front() {
                    this.keys.remove(&key);
                }
            }
            let key = (this.f)(&item);
            if this.keys.contains(&key) {
                continue;
            }
            if this.max_keys.is_some_and(|max| this.emitted.len() >= max)
                && let Some((_, oldest)) = this.emitted.pop_front()
            {
                this.keys.remove(&oldest);
            }
            // A zero window remembers nothing.
            if !this.window.is_zero() {
                this.keys.insert(key.clone());
                this.emitted.push_back((now, key));
            }
            return Poll::Ready(Some(item));
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let (lower, upper) = self.stream.size_hint();
        // With nothing remembered, the first item to come is emitted.
        let lower = if self.emitted.is_empty() {
            lower.min(1)
        } else {
            0
        };
        (lower, upper)
    }
}

impl<S, K, F> FusedStream for DedupeWithinByKey<S, K, F>
where
    S: FusedStream,
    F: FnMut(&S::Item) -> K,
    K: Hash + Eq + Clone,
{
    fn is_terminated(&self) -> bool {
        self.stream.is_terminated()
    }
}

impl<S, K, F> fmt::Debug for DedupeWithinByKey<S, K, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DedupeWithinByKey")
            .field("window", &self.window)
            .field("remembered", &self.emitted.len())
            .field("max_keys", &self.max_keys)
            .finish_non_exhaustive()
    }
}
