//! [`StartWith`]: given items first, then the stream's own.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::{FusedStream, Stream};
use futures_util::StreamExt;
use futures_util::stream::{self, Chain, Iter};
use pin_project_lite::pin_project;

pin_project! {
    /// Stream for [`ReactiveExt::start_with`](super::ReactiveExt::start_with): the given
    /// items, then the items of the stream. A named
    /// `futures::stream::iter(items).chain(stream)`.
    #[derive(Debug)]
    #[must_use = "streams do nothing unless polled"]
    pub struct StartWith<S, I> {
        #[pin]
        inner: Chain<Iter<I>, S>,
    }
}

impl<S, I> StartWith<S, I>
where
    S: Stream,
    I: Iterator<Item = S::Item>,
{
    pub(crate) fn new(stream: S, items: I) -> Self {
        StartWith {
            inner: stream::iter(items).chain(stream),
        }
    }
}

impl<S, I> Stream for StartWith<S, I>
where
    S: Stream,
    I: Iterator<Item = S::Item>,
{
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.project().inner.poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<S, I> FusedStream for StartWith<S, I>
where
    S: FusedStream,
    I: Iterator<Item = S::Item>,
{
    fn is_terminated(&self) -> bool {
        self.inner.is_terminated()
    }
}
