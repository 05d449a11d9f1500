//! Reactive streams: operators usable on any `Stream` ([`ReactiveExt`]).
//!
//! The operators here add what `futures::StreamExt` does not have (time, combining and
//! stateful operators); they do not repeat what it has (`map`, `filter`, `zip`,
//! `chunks`, ...). Import both traits and mix them freely.

pub mod ops;

pub use ops::ReactiveExt;
