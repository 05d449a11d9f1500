//! The guarded call: a handler's error or panic becomes a [`Verdict`], never an unwind
//! into the driver.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::FutureExt;
use futures_util::future::CatchUnwind;
use pin_project_lite::pin_project;

use super::HandlerOutcome;
use crate::runtime::panic_text;

/// How one handler invocation ended.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// It returned `()` or `Ok(())`.
    Done,
    /// It returned an error: its message.
    Failed(String),
    /// It panicked, before or while its future ran: the panic's message.
    Panicked(String),
}

impl Verdict {
    /// The failure's message and whether it was a panic; `None` when it succeeded.
    pub(crate) fn failure(&self) -> Option<(&str, bool)> {
        match self {
            Verdict::Done => None,
            Verdict::Failed(message) => Some((message, false)),
            Verdict::Panicked(message) => Some((message, true)),
        }
    }

    /// The verdict as the result a queue answers with: the failure's message.
    pub(crate) fn into_result(self) -> Result<(), String> {
        match self {
            Verdict::Done => Ok(()),
            Verdict::Failed(message) | Verdict::Panicked(message) => Err(message),
        }
    }
}

pin_project! {
    /// A handler's future with panics caught; from [`call`].
    #[must_use = "futures do nothing unless polled"]
    pub(crate) struct Guarded<Fut> {
        // The panic of the handler's synchronous part, if it panicked there.
        early: Option<String>,
        #[pin]
        future: Option<CatchUnwind<AssertUnwindSafe<Fut>>>,
    }
}

/// A flow's handler: called with an item and its context `X`. Implemented by
/// [`ItemOnly`] (a closure that takes the item alone) and [`WithContext`] (one that
/// takes the context too); the flows build these for you.
pub trait HandlerFn<T, X>: Send + Sync + 'static {
    /// The future of one invocation.
    type Future: Future<Output: HandlerOutcome> + Send + 'static;

    /// Calls the handler; `cx` makes the context, for handlers that take it (so a
    /// handler that does not costs nothing for it).
    fn call(&self, item: T, cx: impl FnOnce() -> X) -> Self::Future;
}

/// A handler closure that takes the item alone (`on`, `consumer`).
#[derive(Debug, Clone)]
pub struct ItemOnly<F>(pub(crate) F);

/// A handler closure that takes the item and its context (`on_with_context`,
/// `consumer_with_context`).
#[derive(Debug, Clone)]
pub struct WithContext<F>(pub(crate) F);

impl<T, X, F, Fut> HandlerFn<T, X> for ItemOnly<F>
where
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output: HandlerOutcome> + Send + 'static,
{
    type Future = Fut;

    fn call(&self, item: T, _cx: impl FnOnce() -> X) -> Fut {
        (self.0)(item)
    }
}

impl<T, X, F, Fut> HandlerFn<T, X> for WithContext<F>
where
    F: Fn(T, X) -> Fut + Send + Sync + 'static,
    Fut: Future<Output: HandlerOutcome> + Send + 'static,
{
    type Future = Fut;

    fn call(&self, item: T, cx: impl FnOnce() -> X) -> Fut {
        (self.0)(item, cx())
    }
}

/// Calls `handler` with every panic caught: the synchronous part now, the future's
/// as it is polled.
pub(crate) fn call<T, X, H>(handler: &H, item: T, cx: impl FnOnce() -> X) -> Guarded<H::Future>
where
    H: HandlerFn<T, X> + ?Sized,
{
    match catch_unwind(AssertUnwindSafe(|| handler.call(item, cx))) {
        Ok(future) => Guarded {
            early: None,
            future: Some(AssertUnwindSafe(future).catch_unwind()),
        },
        Err(panic) => Guarded {
            early: Some(panic_text(None, panic.as_ref())),
            future: None,
        },
    }
}

impl<Fut> Future for Guarded<Fut>
where
    Fut: Future,
    Fut::Output: HandlerOutcome,
{
    type Output = Verdict;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Verdict> {
        let this = self.project();
        let Some(future) = this.future.as_pin_mut() else {
            let message = this.early.take().unwrap_or_else(|| "panicked".to_owned());
            return Poll::Ready(Verdict::Panicked(message));
        };
        Poll::Ready(match std::task::ready!(future.poll(cx)) {
            Ok(outcome) => match outcome.into_result() {
                Ok(()) => Verdict::Done,
                Err(error) => Verdict::Failed(error.to_string()),
            },
            Err(panic) => Verdict::Panicked(panic_text(None, panic.as_ref())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<Fut: Future<Output = Verdict>>(future: Fut) -> Verdict {
        futures_executor_lite(future)
    }

    /// A minimal `block_on` for futures that never wait.
    fn futures_executor_lite<Fut: Future>(future: Fut) -> Fut::Output {
        let mut future = std::pin::pin!(future);
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        loop {
            if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                return out;
            }
        }
    }

    #[test]
    fn success_error_and_both_kinds_of_panic_are_told_apart() {
        let handler = WithContext(|n: u32, _: ()| {
            assert!(n != 4, "four, before the future");
            async move {
                match n {
                    1 => Ok(()),
                    2 => Err("two"),
                    _ => panic!("three"),
                }
            }
        });
        assert!(matches!(run(call(&handler, 1, || ())), Verdict::Done));
        assert!(matches!(run(call(&handler, 2, || ())), Verdict::Failed(m) if m == "two"));
        assert!(
            matches!(run(call(&handler, 3, || ())), Verdict::Panicked(m) if m == "panicked: three")
        );
        assert!(
            matches!(run(call(&handler, 4, || ())), Verdict::Panicked(m) if m == "panicked: four, before the future")
        );
    }
}
