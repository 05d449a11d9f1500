//! What the operators over one upstream stream share: [`Upstream`], the stream with
//! its end and the operator's own end tracked once, and `upstream_operator!`, what
//! an operator has because of it (the stream's accessors, `FusedStream`).

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use pin_project_lite::pin_project;

pin_project! {
    /// An operator's upstream stream, with whether it has ended (it is not polled
    /// again after) and whether the operator itself has ended (its `FusedStream`
    /// state).
    #[derive(Debug)]
    pub(crate) struct Upstream<S> {
        #[pin]
        stream: S,
        ended: bool,
        finished: bool,
    }
}

impl<S> Upstream<S> {
    pub(crate) fn new(stream: S) -> Self {
        Upstream {
            stream,
            ended: false,
            finished: false,
        }
    }

    /// Whether the upstream has ended.
    pub(crate) fn has_ended(&self) -> bool {
        self.ended
    }

    /// Ends the operator: it yields nothing more.
    pub(crate) fn finish<T>(self: Pin<&mut Self>) -> Poll<Option<T>> {
        self.end();
        Poll::Ready(None)
    }

    /// Ends the operator after the item it is about to yield.
    pub(crate) fn end(self: Pin<&mut Self>) {
        *self.project().finished = true;
    }

    /// Whether the operator has ended.
    pub(crate) fn is_finished(&self) -> bool {
        self.finished
    }

    pub(crate) fn get_ref(&self) -> &S {
        &self.stream
    }

    pub(crate) fn get_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    pub(crate) fn get_pin_mut(self: Pin<&mut Self>) -> Pin<&mut S> {
        self.project().stream
    }

    pub(crate) fn into_inner(self) -> S {
        self.stream
    }
}

impl<S: Stream> Upstream<S> {
    /// The next item of the upstream; `Ready(None)` once it has ended, from then on
    /// without polling it again.
    pub(crate) fn poll_item(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = self.project();
        if *this.ended {
            return Poll::Ready(None);
        }
        let next = this.stream.poll_next(cx);
        if let Poll::Ready(None) = next {
            *this.ended = true;
        }
        next
    }

    /// The operator's size hint: nothing once it has ended, else `hint` of what the
    /// upstream may still yield (nothing once it has ended).
    pub(crate) fn size_hint_with(
        &self,
        hint: impl FnOnce((usize, Option<usize>)) -> (usize, Option<usize>),
    ) -> (usize, Option<usize>) {
        match (self.finished, self.ended) {
            (true, _) => (0, Some(0)),
            (false, true) => hint((0, Some(0))),
            (false, false) => hint(self.stream.size_hint()),
        }
    }
}

/// Declares what an operator over an [`Upstream`] field named `upstream` has because
/// of it, so that its own file holds its state and its logic only:
///
/// * `Stream`, with `Item = $item`: `poll_next` yields nothing once the operator
///   finished, else runs the operator's `step(self: Pin<&mut Self>, cx)`; `size_hint`
///   is `(0, Some(0))` once it finished, else the operator's `hint(&self, upstream)`
///   of what the upstream may still yield (nothing once it ended);
/// * `FusedStream`: ended when the operator finished;
/// * `Debug`: the operator's name, its `debug_fields(&self, &mut DebugStruct)`, and
///   whether it is done;
/// * `get_ref`, `get_mut`, `get_pin_mut` and `into_inner`, the upstream stream.
///
/// Invoked in the operator's module, which can call the `project` that
/// `pin_project!` generates. After the item type come the doc comments of
/// `into_inner`: they say what becomes of what the operator holds.
macro_rules! upstream_operator {
    ($op:ident $(<$r:ident: $rule:path>)?, $item:ty, $(#[$into_inner_doc:meta])+) => {
        impl<S: ::futures_core::Stream $(, $r: $rule)?> ::futures_core::Stream for $op<S $(, $r)?> {
            type Item = $item;

            fn poll_next(
                self: ::std::pin::Pin<&mut Self>,
                cx: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<Option<Self::Item>> {
                if self.upstream.is_finished() {
                    return ::std::task::Poll::Ready(None);
                }
                self.step(cx)
            }

            fn size_hint(&self) -> (usize, Option<usize>) {
                self.upstream.size_hint_with(|upstream| self.hint(upstream))
            }
        }

        impl<S: ::futures_core::Stream $(, $r: $rule)?> ::futures_core::FusedStream for $op<S $(, $r)?> {
            fn is_terminated(&self) -> bool {
                self.upstream.is_finished()
            }
        }

        impl<S: ::futures_core::Stream $(, $r: $rule)?> ::std::fmt::Debug for $op<S $(, $r)?> {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                let mut d = f.debug_struct(stringify!($op));
                self.debug_fields(&mut d);
                d.field("done", &self.upstream.is_finished())
                    .finish_non_exhaustive()
            }
        }

        impl<S: ::futures_core::Stream $(, $r: $rule)?> $op<S $(, $r)?> {
            /// The upstream stream.
            pub fn get_ref(&self) -> &S {
                self.upstream.get_ref()
            }

            /// The upstream stream, mutably; taking items from it directly bypasses
            /// the operator.
            pub fn get_mut(&mut self) -> &mut S {
                self.upstream.get_mut()
            }

            /// The upstream stream, pinned; taking items from it directly bypasses
            /// the operator.
            pub fn get_pin_mut(self: ::std::pin::Pin<&mut Self>) -> ::std::pin::Pin<&mut S> {
                self.project().upstream.get_pin_mut()
            }

            $(#[$into_inner_doc])+
            pub fn into_inner(self) -> S {
                self.upstream.into_inner()
            }
        }
    };
}

pub(crate) use upstream_operator;
