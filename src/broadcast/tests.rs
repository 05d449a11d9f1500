//! The broadcast core against a model of its promises, over random sequences of
//! subscribes (live or replaying the history, each policy, with and without a
//! filter), publishes, reads, unsubscribes and a close: every publish's result,
//! every item and `Lagged` each subscriber reads, in order, and the core's counts.
//!
//! The model keeps, per subscriber, what it has claimed (its window, served first)
//! and what waits for it in the core, to which its policy applies at publish time:
//! a `Block` subscriber with its capacity of matching items waiting refuses the
//! publish for everyone; `DropOldest` drops the oldest waiting item, `DropNewest` the
//! new one, each counted into one `Lagged` at the gap. A read serves the window; an
//! empty window claims everything waiting at once.

use std::collections::VecDeque;
use std::sync::Arc;
use std::task::{Context, Poll};

use proptest::prelude::*;

use super::chunk::Counts;
use super::ring::{Core, Matcher, TryPublishError};
use super::subscribe::SubscribeSpec;
use super::{Lagged, Overflow, Receiver, SubscribeError};

const HISTORY: usize = 6;

#[derive(Debug, Clone)]
enum Op {
    Subscribe {
        overflow: Overflow,
        capacity: usize,
        /// Only items `n % 3 == r` when set.
        filter: Option<u32>,
        /// Replay the history from `next_seq - back`, when set.
        back: Option<u64>,
    },
    Publish,
    Read(usize),
    Drop(usize),
    Close,
}

fn op() -> impl Strategy<Value = Op> {
    let overflow = prop_oneof![
        Just(Overflow::Block),
        Just(Overflow::DropOldest),
        Just(Overflow::DropNewest)
    ];
    prop_oneof![
        2 => (overflow, 1usize..4, proptest::option::of(0u32..3), proptest::option::of(0u64..9))
            .prop_map(|(overflow, capacity, filter, back)| Op::Subscribe { overflow, capacity, filter, back }),
        8 => Just(Op::Publish),
        8 => (0usize..6).prop_map(Op::Read),
        1 => (0usize..6).prop_map(Op::Drop),
        1 => Just(Op::Close),
    ]
}

type Item = Result<u32, Lagged>;

/// What one subscriber should see.
struct Model {
    overflow: Overflow,
    capacity: usize,
    filter: Option<u32>,
    /// Claimed: served before anything else.
    window: VecDeque<Item>,
    /// Waiting in the core, matching items only.
    waiting: VecDeque<u32>,
    /// Dropped by DropOldest before `waiting`, by DropNewest after it.
    missed: u64,
}

impl Model {
    fn wants(&self, n: u32) -> bool {
        self.filter.is_none_or(|r| n % 3 == r)
    }

    fn is_full(&self) -> bool {
        self.waiting.len() >= self.capacity
    }

    /// A published item reaches this subscriber.
    fn offer(&mut self, n: u32) {
        if !self.wants(n) {
            return;
        }
        if self.is_full() {
            match self.overflow {
                Overflow::Block => unreachable!("a full Block subscriber refuses the publish"),
                Overflow::DropOldest => {
                    self.waiting.pop_front();
                    self.missed += 1;
                    self.waiting.push_back(n);
                }
                Overflow::DropNewest => self.missed += 1,
            }
        } else {
            self.waiting.push_back(n);
        }
    }

    /// Moves everything waiting into the window, with the gap where it is; the drops
    /// are counted now at the latest (the core may count them earlier, as its ring
    /// forgets items).
    fn claim(&mut self, counts: &mut Counts) {
        let lag = (self.missed > 0).then_some(Err(Lagged {
            missed: self.missed,
        }));
        match self.overflow {
            Overflow::DropOldest => counts.dropped_oldest += self.missed,
            Overflow::DropNewest => counts.dropped_newest += self.missed,
            Overflow::Block => {}
        }
        self.missed = 0;
        if self.overflow == Overflow::DropOldest {
            self.window.extend(lag);
        }
        self.window.extend(self.waiting.drain(..).map(Ok));
        if self.overflow == Overflow::DropNewest {
            self.window.extend(lag);
        }
    }

    fn read(&mut self, closed: bool, counts: &mut Counts) -> Poll<Option<Item>> {
        if self.window.is_empty() {
            self.claim(counts);
        }
        match self.window.pop_front() {
            Some(item) => Poll::Ready(Some(item)),
            None if closed => Poll::Ready(None),
            None => Poll::Pending,
        }
    }
}

fn spec(overflow: Overflow, capacity: usize, filter: Option<u32>) -> SubscribeSpec<u32> {
    SubscribeSpec {
        matcher: filter.map(|r| Box::new(move |n: &u32| n % 3 == r) as Matcher<u32>),
        overflow,
        capacity,
    }
}

fn poll(receiver: &mut Receiver<u32, ()>) -> Poll<Option<Item>> {
    let waker = futures_util::task::noop_waker();
    receiver.poll_recv(&mut Context::from_waker(&waker))
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let core: Arc<Core<u32, ()>> = Arc::new(Core::new(HISTORY, None, ()));
    let mut subs: Vec<(Receiver<u32, ()>, Model)> = Vec::new();
    // Everything published, by sequence number (the history is the last HISTORY).
    let mut published: Vec<u32> = Vec::new();
    let mut counts = Counts::default();
    let mut closed = false;
    // Drops of subscribers that left before they claimed them: the core counts
    // them if its ring forgot the items first, else never (nobody was told).
    let mut unclaimed_drops = Counts::default();
    for op in ops {
        match op {
            Op::Subscribe {
                overflow,
                capacity,
                filter,
                back,
            } => {
                let next = published.len() as u64;
                let mut model = Model {
                    overflow,
                    capacity,
                    filter,
                    window: VecDeque::new(),
                    waiting: VecDeque::new(),
                    missed: 0,
                };
                let receiver = match back {
                    None => core.subscribe(spec(overflow, capacity, filter)),
                    Some(back) => {
                        let from = next.saturating_sub(back);
                        let oldest = next.saturating_sub(HISTORY as u64);
                        match core.subscribe_from(spec(overflow, capacity, filter), from) {
                            Ok(receiver) => {
                                prop_assert!(from >= oldest, "replay from {from}, oldest {oldest}");
                                let replayed: Vec<Item> = published[from as usize..]
                                    .iter()
                                    .copied()
                                    .filter(|&n| model.wants(n))
                                    .map(Ok)
                                    .collect();
                                model.window.extend(replayed);
                                receiver
                            }
                            Err(error) => {
                                prop_assert_eq!(
                                    error,
                                    SubscribeError::Evicted {
                                        requested: from,
                                        oldest
                                    }
                                );
                                continue;
                            }
                        }
                    }
                };
                subs.push((receiver, model));
            }
            Op::Publish => {
                let n = published.len() as u32;
                let refused = subs
                    .iter()
                    .any(|(_, m)| m.overflow == Overflow::Block && m.wants(n) && m.is_full());
                match core.try_publish(n, &mut |_, _| {}) {
                    Ok(seq) => {
                        prop_assert!(!closed && !refused, "published while it should not");
                        prop_assert_eq!(seq, u64::from(n));
                        published.push(n);
                        counts.published += 1;
                        for (_, model) in &mut subs {
                            model.offer(n);
                        }
                    }
                    Err(TryPublishError::Closed(back)) => {
                        prop_assert!(closed);
                        prop_assert_eq!(back, n);
                    }
                    Err(TryPublishError::Full(back)) => {
                        prop_assert!(!closed && refused, "refused with room");
                        prop_assert_eq!(back, n);
                    }
                }
            }
            Op::Read(pick) => {
                if subs.is_empty() {
                    continue;
                }
                let index = pick % subs.len();
                let (receiver, model) = &mut subs[index];
                let expected = model.read(closed, &mut counts);
                let got = poll(receiver);
                prop_assert_eq!(&got, &expected, "subscriber {}", index);
                if let Poll::Ready(Some(Ok(_))) = got {
                    counts.delivered += 1;
                }
            }
            Op::Drop(pick) => {
                if !subs.is_empty() {
                    let index = pick % subs.len();
                    let (_, model) = subs.remove(index);
                    match model.overflow {
                        Overflow::DropOldest => unclaimed_drops.dropped_oldest += model.missed,
                        Overflow::DropNewest => unclaimed_drops.dropped_newest += model.missed,
                        Overflow::Block => {}
                    }
                }
            }
            Op::Close => {
                core.close();
                closed = true;
            }
        }
    }
    // Everything each subscriber still has comes out, in order, then the end.
    core.close();
    for (index, (receiver, model)) in subs.iter_mut().enumerate() {
        loop {
            let expected = model.read(true, &mut counts);
            let got = poll(receiver);
            prop_assert_eq!(&got, &expected, "draining subscriber {}", index);
            match got {
                Poll::Ready(Some(Ok(_))) => counts.delivered += 1,
                Poll::Ready(None) => break,
                _ => {}
            }
        }
    }
    drop(subs);
    let core_counts = core.inspect(|_, counts, _, _| *counts);
    prop_assert_eq!(core_counts.published, counts.published);
    prop_assert_eq!(core_counts.delivered, counts.delivered);
    let within = |got: u64, at_least: u64, unsure: u64| at_least <= got && got <= at_least + unsure;
    prop_assert!(
        within(
            core_counts.dropped_oldest,
            counts.dropped_oldest,
            unclaimed_drops.dropped_oldest
        ),
        "dropped oldest {} for {} (+{} unclaimed)",
        core_counts.dropped_oldest,
        counts.dropped_oldest,
        unclaimed_drops.dropped_oldest
    );
    prop_assert!(
        within(
            core_counts.dropped_newest,
            counts.dropped_newest,
            unclaimed_drops.dropped_newest
        ),
        "dropped newest {} for {} (+{} unclaimed)",
        core_counts.dropped_newest,
        counts.dropped_newest,
        unclaimed_drops.dropped_newest
    );
    Ok(())
}

fn cases() -> u32 {
    std::env::var("RIVERBED_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn the_core_keeps_its_promises(ops in proptest::collection::vec(op(), 1..300)) {
        run(ops)?;
    }
}
