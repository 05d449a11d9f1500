//! [`DistinctUntilChanged`]: drops an item equal to the last emitted one.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::{FusedStream, Stream};
use pin_project_lite::pin_project;

use super::DistinctUntilChangedByKey;

/// The key of [`DistinctUntilChanged`]: the item itself.
type CloneItem<T> = fn(&T) -> T;

pin_project! {
    /// Stream for
    /// [`ReactiveExt::distinct_until_changed`](super::ReactiveExt::distinct_until_changed):
    /// the items that differ from the item emitted before.
    #[must_use = "streams do nothing unless polled"]
    pub struct DistinctUntilChanged<S: Stream> {
        #[pin]
        inner: DistinctUntilChangedByKey<S, S::Item, CloneItem<S::Item>>,
    }
}

impl<S> DistinctUntilChanged<S>
where
    S: Stream,
    S::Item: Clone,
{
    pub(crate) fn new(stream: S) -> Self {
        DistinctUntilChanged {
            inner: DistinctUntilChangedByKey::new(stream, S::Item::clone as CloneItem<S::Item>),
        }
    }
}

impl<S> Stream for DistinctUntilChanged<S>
where
    S: Stream,
    S::Item: Clone + PartialEq,
{
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        self.project().inner.poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<S> FusedStream for DistinctUntilChanged<S>
where
    S: FusedStream,
    S::Item: Clone + PartialEq,
{
    fn is_terminated(&self) -> bool {
        self.inner.is_terminated()
    }
}

impl<S> fmt::Debug for DistinctUntilChanged<S>
where
    S: Stream,
    S::Item: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DistinctUntilChanged")
            .field("inner", &self.inner)
            .finish()
    }
}
