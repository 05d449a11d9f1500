//! [`DistinctUntilChangedByKey`]: drops an item whose key equals the last emitted one's.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::{FusedStream, Stream, ready};
use pin_project_lite::pin_project;

pin_project! {
    /// Stream for [`distinct_until_changed_by_key`]: the items whose key differs from
    /// the key of the item emitted before.
    ///
    /// [`distinct_until_changed_by_key`]: super::ReactiveExt::distinct_until_changed_by_key
    #[must_use = "streams do nothing unless polled"]
    pub struct DistinctUntilChangedByKey<S, K, F> {
        #[pin]
        stream: S,
        f: F,
        last: Option<K>,
    }
}

impl<S, K, F> DistinctUntilChangedByKey<S, K, F> {
    pub(crate) fn new(stream: S, f: F) -> Self {
        DistinctUntilChangedByKey {
            stream,
            f,
            last: None,
        }
    }
}

impl<S, K, F> Stream for DistinctUntilChangedByKey<S, K, F>
where
    S: Stream,
    F: FnMut(&S::Item) -> K,
    K: PartialEq,
{
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let mut this = self.project();
        loop {
            let Some(item) = ready!(this.stream.as_mut().poll_next(cx)) else {
                return Poll::Ready(None);
            };
            let key = (this.f)(&item);
            if this.last.as_ref() != Some(&key) {
                *this.last = Some(key);
                return Poll::Ready(Some(item));
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let (lower, upper) = self.stream.size_hint();
        // The first item to come is always emitted.
        let lower = if self.last.is_none() { lower.min(1) } else { 0 };
        (lower, upper)
    }
}

impl<S, K, F> FusedStream for DistinctUntilChangedByKey<S, K, F>
where
    S: FusedStream,
    F: FnMut(&S::Item) -> K,
    K: PartialEq,
{
    fn is_terminated(&self) -> bool {
        self.stream.is_terminated()
    }
}

impl<S, K: fmt::Debug, F> fmt::Debug for DistinctUntilChangedByKey<S, K, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DistinctUntilChangedByKey")
            .field("last", &self.last)
            .finish_non_exhaustive()
    }
}
