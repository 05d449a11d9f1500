//! [`FlowStreamExt`]: pipeline combinators on any `Stream`.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::{FusedStream, Stream};

use super::Processor;
use super::batch::Batch;
use super::stage::{Flowing, Stage};
use crate::FlowContext;

/// Pipeline combinators on any [`Stream`].
///
/// A pipeline carries [`Flowing`] items (a value with its [`FlowContext`], or the
/// error that stopped an earlier stage): [`flow`](Self::flow) or
/// [`flow_in`](Self::flow_in) put plain items in, [`pipe`](Self::pipe) adds a stage,
/// [`values`](Self::values) takes the values out again.
///
/// ```
/// use futures::StreamExt;
/// use riverbed::pipeline::{filter, map, try_map, FlowStreamExt};
///
/// # futures::executor::block_on(async {
/// let out: Vec<_> = futures::stream::iter(["1", "2", "x", "4"])
///     .flow()
///     .pipe(try_map(|s: &'static str| async move { s.parse::<u32>() }))
///     .on_error(riverbed::pipeline::ErrorPolicy::skip())
///     .pipe(filter(|n: &u32| std::future::ready(n % 2 == 0)))
///     .pipe(map(|n: u32| async move { n * 10 }))
///     .values()
///     .collect()
///     .await;
/// assert_eq!(out.into_iter().map(Result::unwrap).collect::<Vec<_>>(), [20, 40]);
/// # });
/// ```
pub trait FlowStreamExt: Stream {
    /// Gives each item a context of its own (`FlowContext::new()`).
    fn flow(self) -> NewContexts<Self>
    where
        Self: Sized,
    {
        NewContexts { stream: self }
    }

    /// Gives each item a clone of `ctx` (cheap: the context is shared).
    fn flow_in(self, ctx: FlowContext) -> FlowIn<Self>
    where
        Self: Sized,
    {
        FlowIn::new(self, ctx)
    }

    /// Adds a stage that runs `processor` on every item; configure it with the
    /// [`Stage`] builder methods (name, concurrency, ordering, error policy, runtime).
    fn pipe<In, P>(self, processor: P) -> Stage<Self, P, In>
    where
        Self: Stream<Item = Flowing<In>> + Sized,
        P: Processor<In>,
        In: Send + 'static,
    {
        Stage::new(self, processor)
    }

    /// Groups items into batches of `size` (the last one may be smaller).
    fn batch<T>(self, size: usize) -> Batch<Self, T>
    where
        Self: Stream<Item = Flowing<T>> + Sized,
    {
        Batch::new(self, size, None)
    }

    /// Groups items into batches of `size`, emitting a smaller batch once `max_wait`
    /// has passed since its first item arrived, on `runtime`'s clock.
    fn batch_timeout<T>(
        self,
        size: usize,
        max_wait: std::time::Duration,
        runtime: &crate::runtime::SharedRuntime,
    ) -> Batch<Self, T>
    where
        Self: Stream<Item = Flowing<T>> + Sized,
    {
        Batch::new(self, size, Some((max_wait, std::sync::Arc::clone(runtime))))
    }

    /// The values without their contexts (errors stay).
    fn values<T>(self) -> Values<Self>
    where
        Self: Stream<Item = Flowing<T>> + Sized,
    {
        Values { stream: self }
    }
}

impl<S: Stream + ?Sized> FlowStreamExt for S {}

pin_project_lite::pin_project! {
    /// Items with a shared context; from [`FlowStreamExt::flow_in`].
    #[must_use = "streams do nothing unless polled"]
    #[derive(Debug)]
    pub struct FlowIn<S> {
        #[pin]
        stream: S,
        ctx: FlowContext,
    }
}

impl<S> FlowIn<S> {
    pub(crate) fn new(stream: S, ctx: FlowContext) -> Self {
        FlowIn { stream, ctx }
    }
}

impl<S: Stream> Stream for FlowIn<S> {
    type Item = Flowing<S::Item>;

    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        this.stream
            .poll_next(cx)
            .map(|item| item.map(|item| Ok((item, this.ctx.clone()))))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.stream.size_hint()
    }
}

impl<S: FusedStream> FusedStream for FlowIn<S> {
    fn is_terminated(&self) -> bool {
        self.stream.is_terminated()
    }
}

pin_project_lite::pin_project! {
    /// Items each with a new context; from [`FlowStreamExt::flow`].
    #[must_use = "streams do nothing unless polled"]
    #[derive(Debug)]
    pub struct NewContexts<S> {
        #[pin]
        stream: S,
    }
}

impl<S: Stream> Stream for NewContexts<S> {
    type Item = Flowing<S::Item>;

    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.project()
            .stream
            .poll_next(cx)
            .map(|item| item.map(|item| Ok((item, FlowContext::new()))))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.stream.size_hint()
    }
}

impl<S: FusedStream> FusedStream for NewContexts<S> {
    fn is_terminated(&self) -> bool {
        self.stream.is_terminated()
    }
}

pin_project_lite::pin_project! {
    /// The values of a pipeline without their contexts (errors stay); from
    /// [`FlowStreamExt::values`].
    #[must_use = "streams do nothing unless polled"]
    #[derive(Debug)]
    pub struct Values<S> {
        #[pin]
        stream: S,
    }
}

impl<S, T> Stream for Values<S>
where
    S: Stream<Item = Flowing<T>>,
{
    type Item = Result<T, super::StageError>;

    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.project()
            .stream
            .poll_next(cx)
            .map(|item| item.map(|item| item.map(|(value, _ctx)| value)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.stream.size_hint()
    }
}

impl<S, T> FusedStream for Values<S>
where
    S: FusedStream<Item = Flowing<T>>,
{
    fn is_terminated(&self) -> bool {
        self.stream.is_terminated()
    }
}
