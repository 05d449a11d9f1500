//! The reactive operators, one file each; [`ReactiveExt`] puts them on every `Stream`.
//!
//! # Time operators
//!
//! The sources [`interval`] and [`timer`].
//! Each takes, as its last argument, the
//! [`SharedRuntime`](crate::runtime::SharedRuntime) whose clock it reads: none names an
//! executor, spawns a task or starts a timer thread, so each behaves the same under
//! tokio, smol, any executor with a [`Runtime`](crate::runtime::Runtime), or the
//! [`VirtualRuntime`](crate::runtime::VirtualRuntime), where its timings are exact. The
//! rules they share:
//!
//! * **Arrival.** An item arrives when the operator receives it from upstream: when the
//!   operator is polled and upstream yields it. Items received in one poll arrive at the
//!   same instant. Every operator polls upstream whenever it is polled, so a consumer
//!   that keeps polling sees upstream's own timing.
//! * **Half-open windows.** Every span of time is half-open: a window of `d` opened at
//!   `t` holds what arrives at or after `t` and before `t + d`; an item that arrives
//!   exactly at `t + d` comes after it. Decisions compare instants, and timers only wake
//!   the stream; so an outcome never depends on which of two timers due at the same
//!   instant fires first (a tie that is common on the virtual clock).
//! * **Items are opaque.** The operators never look inside an item: an `Err` of a
//!   stream of `Result`s is an item like any other, delayed, dropped or sampled by the
//!   same rules, and never a reason to stop. (To stop at the first error, put
//!   `take_while` or a `try_` combinator of `futures` after the operator.)
//! * **Completion.** What happens to an item still held when upstream ends is stated
//!   per operator; after upstream ends, no operator waits longer than its own rule
//!   says.
//! * **Timers.** A deadline is an `Instant` in a field: moving it costs nothing. A
//!   timer is created only when the stream is about to wait, and when it fires early
//!   (the deadline moved later meanwhile) it is re-armed. No operator creates a timer
//!   per item: a burst of a million items costs at most one.
//! * **Memory.** The sources hold nothing but their next deadline.

use futures_core::Stream;

// Time operators
mod interval;
mod timer;

pub use self::interval::{Interval, interval};
pub use self::timer::{Timer, timer};
// End of time operators

/// Reactive operators on any [`Stream`]: time, combining and stateful operators that
/// `futures::StreamExt` does not offer. Time comes from a
/// [`Runtime`](crate::runtime::Runtime) handed in, so every operator behaves the same
/// under tokio, smol or the virtual clock.
pub trait ReactiveExt: Stream {}

impl<S: Stream + ?Sized> ReactiveExt for S {}
