//! [`DedupeWithin`]: drops an item equal to one emitted less than a window ago.

use std::fmt;
use std::hash::Hash;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;

use super::DedupeWithinByKey;
use crate::runtime::SharedRuntime;

/// The key of [`DedupeWithin`]: the item itself.
type CloneItem<T> = fn(&T) -> T;

pin_project! {
    /// Stream for [`ReactiveExt::dedupe_within`](super::ReactiveExt::dedupe_within): the
    /// items not equal to one emitted in the last `window`.
    #[must_use = "streams do nothing unless polled"]
    pub struct DedupeWithin<S: Stream> {
        #[pin]
        inner: DedupeWithinByKey<S, S::Item, CloneItem<S::Item>>,
    }
}

impl<S> DedupeWithin<S>
where
    S: Stream,
    S::Item: Clone,
{
    pub(crate) fn new(stream: S, window: Duration, rt: &SharedRuntime) -> Self {
        DedupeWithin {
            inner: DedupeWithinByKey::new(stream, window, rt, S::Item::clone as CloneItem<_>),
        }
    }
}

impl<S: Stream> DedupeWithin<S> {
    /// Remembers at most `max` items (at least one): when a new item would exceed it,
    /// the oldest is forgotten before its window ends, so a duplicate of it is no
    /// longer dropped. This bounds memory whatever the rate of distinct items.
    pub fn max_keys(self, max: usize) -> Self {
        DedupeWithin {
            inner: self.inner.max_keys(max),
        }
    }

    /// How many items are remembered now: those emitted less than `window` before the
    /// last item arrived (fewer if [`max_keys`](Self::max_keys) is set).
    pub fn remembered(&self) -> usize {
        self.inner.remembered()
    }
}

impl<S> Stream for DedupeWithin<S>
where
    S: Stream,
    S::Item: Hash + Eq + Clone,
{
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        self.project().inner.poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<S> FusedStream for DedupeWithin<S>
where
    S: FusedStream,
    S::Item: Hash + Eq + Clone,
{
    fn is_terminated(&self) -> bool {
        self.inner.is_terminated()
    }
}

impl<S: Stream> fmt::Debug for DedupeWithin<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DedupeWithin")
            .field("inner", &self.inner)
            .finish()
    }
}
