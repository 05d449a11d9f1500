//! The reactive operators, one file each; [`ReactiveExt`] puts them on every `Stream`.

use futures_core::Stream;

/// Reactive operators on any [`Stream`]: time, combining and stateful operators that
/// `futures::StreamExt` does not offer. Time comes from a
/// [`Runtime`](crate::runtime::Runtime) handed in, so every operator behaves the same
/// under tokio, smol or the virtual clock.
pub trait ReactiveExt: Stream {}

impl<S: Stream + ?Sized> ReactiveExt for S {}
