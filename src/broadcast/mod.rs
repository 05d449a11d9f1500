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

mod receiver;
mod ring;
mod vocabulary;

pub(crate) use receiver::Receiver;
pub(crate) use ring::{Core, Counts, Ledger, Matcher, SubscribeSpec, TryPublishError};
pub use vocabulary::{Lagged, Overflow, SubscribeError, SubscribeOptions};
