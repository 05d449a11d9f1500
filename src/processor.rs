//! The [`Processor`] trait, its implementation for async closures, and the small
//! adapters that build processors from simpler closures.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::{BoxError, FlowContext};

/// What a processor returns for one item: `Ok(Some(out))` continues with `out`,
/// `Ok(None)` filters the item out (counted), `Err(error)` goes to the stage's error
/// policy.
pub type Outcome<T> = Result<Option<T>, BoxError>;

/// One step of a pipeline: takes an item and its context, returns an [`Outcome`].
///
/// The returned future owns what it needs (`'static`), so a stage can run several
/// items at once or spawn them on a runtime; a processor that keeps state shares it
/// through `&self` (use atomics or locks inside).
///
/// Async closures taking the item and a [`FlowContext`] (by value: it is cheap to
/// clone) and returning `Result<Option<Out>, E>` are processors as they are:
///
/// ```
/// use riverbed::FlowContext;
/// use riverbed::pipeline::Processor;
///
/// let parse = |line: String, _ctx: FlowContext| async move {
///     if line.is_empty() {
///         return Ok(None); // filtered out
///     }
///     line.trim().parse::<u32>().map(Some) // a parse error goes to the error policy
/// };
///
/// # futures::executor::block_on(async {
/// let ctx = FlowContext::new();
/// assert_eq!(parse.process(" 42 ".to_string(), &ctx).await.unwrap(), Some(42));
/// assert_eq!(parse.process(String::new(), &ctx).await.unwrap(), None);
/// assert!(parse.process("x".to_string(), &ctx).await.is_err());
/// # });
/// ```
///
/// A named type implements it like any trait (the seed's `DataValidationProcessor`):
///
/// ```
/// use std::future::{ready, Ready};
/// use riverbed::FlowContext;
/// use riverbed::pipeline::{Outcome, Processor};
///
/// struct Validate {
///     max: u32,
/// }
///
/// impl Processor<u32> for Validate {
///     type Out = u32;
///     type Future = Ready<Outcome<u32>>;
///
///     fn process(&self, item: u32, _ctx: &FlowContext) -> Self::Future {
///         ready(if item <= self.max {
///             Ok(Some(item))
///         } else {
///             Err(format!("{item} is over {}", self.max).into())
///         })
///     }
/// }
/// ```
pub trait Processor<In>: Send + Sync + 'static {
    /// What it produces for an item.
    type Out: Send + 'static;
    /// The future of one item's outcome.
    type Future: Future<Output = Outcome<Self::Out>> + Send + 'static;

    /// Processes one item.
    fn process(&self, item: In, ctx: &FlowContext) -> Self::Future;
}

impl<In, Out, E, F, Fut> Processor<In> for F
where
    F: Fn(In, FlowContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<Out>, E>> + Send + 'static,
    E: Into<BoxError>,
    Out: Send + 'static,
{
    type Out = Out;
    type Future = OutcomeFuture<Fut>;

    fn process(&self, item: In, ctx: &FlowContext) -> Self::Future {
        OutcomeFuture {
            future: self(item, ctx.clone()),
        }
    }
}

impl<In, P: Processor<In> + ?Sized> Processor<In> for Arc<P> {
    type Out = P::Out;
    type Future = P::Future;

    fn process(&self, item: In, ctx: &FlowContext) -> Self::Future {
        (**self).process(item, ctx)
    }
}

pin_project! {
    /// The future of a closure processor: boxes its error.
    #[must_use = "futures do nothing unless polled"]
    pub struct OutcomeFuture<Fut> {
        #[pin]
        future: Fut,
    }
}

impl<Out, E, Fut> Future for OutcomeFuture<Fut>
where
    Fut: Future<Output = Result<Option<Out>, E>>,
    E: Into<BoxError>,
{
    type Output = Outcome<Out>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project()
            .future
            .poll(cx)
            .map(|r| r.map_err(Into::into))
    }
}

impl<Fut> fmt::Debug for OutcomeFuture<Fut> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutcomeFuture").finish_non_exhaustive()
    }
}

/// Declares an adapter: a struct around a closure, its `Debug`, and its constructor.
macro_rules! adapter {
    ($(#[$doc:meta])* $name:ident, $ctor:ident, $(#[$ctor_doc:meta])*) => {
        $(#[$doc])*
        pub struct $name<F, In> {
            f: F,
            _in: PhantomData<fn(In)>,
        }

        impl<F, In> fmt::Debug for $name<F, In> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name)).finish_non_exhaustive()
            }
        }

        $(#[$ctor_doc])*
        pub fn $ctor<In, F>(f: F) -> $name<F, In> {
            $name {
                f,
                _in: PhantomData,
            }
        }
    };
}

adapter!(
    /// A processor that transforms every item; from [`map`].
    Map,
    map,
    /// A processor from an async function of the item that always continues.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// use riverbed::{FlowContext, pipeline::{map, Processor}};
    /// let double = map(|n: u32| async move { n * 2 });
    /// assert_eq!(double.process(21, &FlowContext::new()).await.unwrap(), Some(42));
    /// # });
    /// ```
);

adapter!(
    /// A processor that keeps the items a predicate accepts; from [`filter`].
    Filter,
    filter,
    /// A processor from an async predicate: accepted items continue unchanged, the
    /// others are filtered out.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// use riverbed::{FlowContext, pipeline::{filter, Processor}};
    /// let even = filter(|n: &u32| std::future::ready(n % 2 == 0));
    /// let ctx = FlowContext::new();
    /// assert_eq!(even.process(4, &ctx).await.unwrap(), Some(4));
    /// assert_eq!(even.process(3, &ctx).await.unwrap(), None);
    /// # });
    /// ```
);

adapter!(
    /// A processor that transforms or drops items; from [`filter_map`].
    FilterMap,
    filter_map,
    /// A processor from an async function returning `Option`: `None` filters the item
    /// out.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// use riverbed::{FlowContext, pipeline::{filter_map, Processor}};
    /// let parse = filter_map(|s: String| async move { s.parse::<u32>().ok() });
    /// let ctx = FlowContext::new();
    /// assert_eq!(parse.process("7".into(), &ctx).await.unwrap(), Some(7));
    /// assert_eq!(parse.process("x".into(), &ctx).await.unwrap(), None);
    /// # });
    /// ```
);

adapter!(
    /// A processor that transforms items or fails; from [`try_map`].
    TryMap,
    try_map,
    /// A processor from an async function returning `Result`: errors go to the stage's
    /// error policy.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// use riverbed::{FlowContext, pipeline::{try_map, Processor}};
    /// let parse = try_map(|s: String| async move { s.parse::<u32>() });
    /// let ctx = FlowContext::new();
    /// assert_eq!(parse.process("7".into(), &ctx).await.unwrap(), Some(7));
    /// assert!(parse.process("x".into(), &ctx).await.is_err());
    /// # });
    /// ```
);

impl<In, Out, F, Fut> Processor<In> for Map<F, In>
where
    In: 'static,
    F: Fn(In) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Out> + Send + 'static,
    Out: Send + 'static,
{
    type Out = Out;
    type Future = MapFuture<Fut>;

    fn process(&self, item: In, _ctx: &FlowContext) -> Self::Future {
        MapFuture {
            future: (self.f)(item),
        }
    }
}

impl<In, F, Fut> Processor<In> for Filter<F, In>
where
    In: Send + 'static,
    F: Fn(&In) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    type Out = In;
    type Future = FilterFuture<Fut, In>;

    fn process(&self, item: In, _ctx: &FlowContext) -> Self::Future {
        FilterFuture {
            future: (self.f)(&item),
            item: Some(item),
        }
    }
}

pin_project! {
    /// The future of [`Filter`].
    #[must_use = "futures do nothing unless polled"]
    pub struct FilterFuture<Fut, In> {
        #[pin]
        future: Fut,
        item: Option<In>,
    }
}

impl<Fut: Future<Output = bool>, In> Future for FilterFuture<Fut, In> {
    type Output = Outcome<In>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let keep = std::task::ready!(this.future.poll(cx));
        let item = this.item.take();
        Poll::Ready(Ok(if keep { item } else { None }))
    }
}

impl<Fut, In> fmt::Debug for FilterFuture<Fut, In> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FilterFuture").finish_non_exhaustive()
    }
}

impl<In, Out, F, Fut> Processor<In> for FilterMap<F, In>
where
    In: 'static,
    F: Fn(In) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Option<Out>> + Send + 'static,
    Out: Send + 'static,
{
    type Out = Out;
    type Future = FilterMapFuture<Fut>;

    fn process(&self, item: In, _ctx: &FlowContext) -> Self::Future {
        FilterMapFuture {
            future: (self.f)(item),
        }
    }
}

impl<In, Out, E, F, Fut> Processor<In> for TryMap<F, In>
where
    In: 'static,
    F: Fn(In) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Out, E>> + Send + 'static,
    E: Into<BoxError> + 'static,
    Out: Send + 'static,
{
    type Out = Out;
    type Future = TryMapFuture<Fut>;

    fn process(&self, item: In, _ctx: &FlowContext) -> Self::Future {
        TryMapFuture {
            future: (self.f)(item),
        }
    }
}

/// The futures of the adapters: the function's future, with its output turned into an
/// [`Outcome`] by a plain (inlined) conversion.
macro_rules! adapter_future {
    ($(#[$doc:meta])* $name:ident, |$out:ident: $from:ty| -> $to:ty { $convert:expr }, $($bounds:tt)*) => {
        pin_project! {
            $(#[$doc])*
            #[must_use = "futures do nothing unless polled"]
            pub struct $name<Fut> {
                #[pin]
                future: Fut,
            }
        }

        impl<Fut, $($bounds)*> Future for $name<Fut>
        where
            Fut: Future<Output = $from>,
        {
            type Output = $to;

            #[inline]
            fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
                self.project().future.poll(cx).map(|$out| $convert)
            }
        }

        impl<Fut> fmt::Debug for $name<Fut> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name)).finish_non_exhaustive()
            }
        }
    };
}

adapter_future!(
    /// The future of [`Map`]: the output goes on.
    MapFuture,
    |out: Out| -> Outcome<Out> { Ok(Some(out)) },
    Out
);

adapter_future!(
    /// The future of [`FilterMap`]: `Some` goes on, `None` filters the item out.
    FilterMapFuture,
    |out: Option<Out>| -> Outcome<Out> { Ok(out) },
    Out
);

adapter_future!(
    /// The future of [`TryMap`]: `Ok` goes on, `Err` goes to the stage's policy.
    TryMapFuture,
    |out: Result<Out, E>| -> Outcome<Out> { out.map(Some).map_err(Into::into) },
    Out, E: Into<BoxError>
);
