//! The broadcast vocabulary shared by the [`EventBus`](crate::bus::EventBus) and the
//! [`ReactiveStream`](crate::reactive::ReactiveStream): how a subscriber is set up
//! ([`SubscribeOptions`]: capacity and [`Overflow`] policy), what it is told when its
//! policy dropped items ([`Lagged`]), and why a subscription can be refused
//! ([`SubscribeError`]).
//!
//! Both run on one fan-out core: one shared ring of published items with a cursor per
//! subscriber, one write per publish whatever the number of subscribers, reads without
//! the lock, gap-free replay from a bounded history, and wakeups only for the
//! subscribers an item is for. A `Block` subscriber holds the publisher back when it
//! has its capacity of matching items unread; a `DropOldest` or `DropNewest` one never
//! does, and learns exactly how many items it missed through a [`Lagged`] item where
//! the gap is.
//!
//! # How it works
//!
//! * **One write per publish.** A published item is pushed once into the ring's open
//!   chunk; every 64 items (or earlier, when a subscriber finds enough waiting in it)
//!   the chunk is sealed and shared, immutable, through an `Arc`. The
//!   publisher's work does not grow with the number of active subscribers.
//! * **Reads without the lock.** A subscriber claims everything published since its
//!   cursor under the lock — `Arc` clones of the sealed chunks that hold it, and a copy
//!   of the few items (fewer than 8) still in the open chunk — then filters
//!   and clones the items out on its own task, without the lock. No per-item atomics
//!   on either side, and chunks the ring forgets are freed outside the lock.
//! * **All-or-nothing, in order.** One lock guards the ring's ends and the subscriber
//!   registry. Under it the publisher assigns the sequence number, checks that every
//!   `Overflow::Block` subscriber has room, and appends. Every subscriber therefore
//!   sees items in sequence order.
//! * **Gap-free replay.** The history is its own exact, bounded deque (a clone per
//!   publish, only when a history is configured). Subscribing from a sequence number
//!   copies the history from there and places the cursor at the end of the ring in the
//!   same critical section, so replay runs straight into live delivery with nothing
//!   missed or repeated.
//! * **Targeted wakeups.** Only *parked* subscribers (those that read everything and
//!   wait) are looked at by the publisher: the ones whose filter accepts the new item
//!   are woken; for the others the publisher moves their cursor past it, so they are
//!   neither woken nor held back by items they would not read.
//! * **Backpressure and loss.** The ring keeps the largest subscriber capacity (and
//!   nothing at all while there are no subscribers). A `Block` subscriber may have at
//!   most its capacity of matching items unclaimed; the publisher waits otherwise (on
//!   one `event_listener::Event`, notified when a `Block` subscriber claims, leaves,
//!   or the core closes). `DropOldest` and `DropNewest` subscribers never hold the
//!   publisher back: when one falls behind, what its policy keeps is kept for it and
//!   what it drops is counted exactly (matching items only), and it learns the count
//!   through a `Lagged` item at the point of the gap.
//!
//! Capacity is counted in matching items published after the subscriber's cursor. A
//! claimed batch is the subscriber's own (it is never dropped), so up to twice the
//! capacity may be unread at once. For an unfiltered `Block` subscriber the publisher
//! checks room with one comparison (a cached lower bound over all of them); for a
//! filtered one it runs the filter, so that only events the subscriber would receive
//! can hold the publisher back.
//!
//! ```
//! use riverbed::broadcast::{Overflow, SubscribeOptions};
//! use riverbed::reactive::ReactiveStream;
//!
//! let stream = ReactiveStream::<u32>::new("readings");
//! let lossy = stream
//!     .subscribe_with(SubscribeOptions::new().capacity(16).overflow(Overflow::DropOldest))
//!     .unwrap();
//! # drop(lossy);
//! ```

mod chunk;
#[cfg(all(test, riverbed_loom))]
mod loom_tests;
mod receiver;
mod ring;
mod subscribe;
mod sync;
#[cfg(test)]
mod tests;
mod vocabulary;

pub(crate) use chunk::{Counts, Ledger};
pub(crate) use receiver::Receiver;
pub(crate) use ring::{Core, Matcher, TryPublishError};
pub(crate) use subscribe::SubscribeSpec;
pub(crate) use sync::EventListener as SpaceListener;
pub use vocabulary::{Lagged, Overflow, SubscribeError, SubscribeOptions};
