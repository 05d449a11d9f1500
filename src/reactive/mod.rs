//! Reactive streams: operators usable on any `Stream` ([`ReactiveExt`]).
//!
//! The operators here add what `futures::StreamExt` does not have (time, combining and
//! stateful operators); they do not repeat what it has (`map`, `filter`, `zip`,
//! `chunks`, ...). Import both traits and mix them freely.
//!
//! The time operators and sources ([`interval`], [`timer`]) run on the clock of a
//! [`Runtime`](crate::runtime::Runtime) handed to them, exactly on the virtual clock;
//! the rules they share (arrival, half-open windows, opaque items, timers, memory) are
//! in the [`ops`] module docs.

pub mod ops;

pub use ops::ReactiveExt;
// Time sources and settings
pub use ops::{ThrottleConfig, interval, timer};
