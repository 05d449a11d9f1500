//! Property tests: random sequences of bus operations, checked against a model, on
//! every runtime flavour.
//!
//! Each case is a list of operations — publish, subscribe, drop a subscription, poll
//! one or all of what a subscription has ready, close — run against an `EventBus` and
//! against a model of what every subscriber must have received. Subscribers use the
//! `Block` policy with a small capacity, so publishing often finds a subscriber full;
//! the model predicts exactly when, and the test then drains and retries.
//!
//! `RIVERBED_PROPTEST_CASES` sets the number of cases per flavour (default 64).

mod common;

use std::collections::VecDeque;

use common::Flavor;
use futures::future::FutureExt;
use futures::stream::StreamExt;
use proptest::prelude::*;
use riverbed::bus::{Event, EventBus, Filter, SubscribeOptions, Subscription};

/// Events that may wait in the bus for one subscriber.
const CAPACITY: usize = 3;
/// Kinds are `0..KINDS`.
const KINDS: u8 = 3;

type Bus = EventBus<u32, u8>;

#[derive(Debug, Clone)]
enum FilterSpec {
    All,
    Kind(u8),
    Kinds(Vec<u8>),
}

impl FilterSpec {
    fn matches(&self, kind: u8) -> bool {
        match self {
            FilterSpec::All => true,
            FilterSpec::Kind(k) => *k == kind,
            FilterSpec::Kinds(ks) => ks.contains(&kind),
        }
    }

    fn filter(&self) -> Filter<u32, u8> {
        match self {
            FilterSpec::All => Filter::all(),
            FilterSpec::Kind(k) => Filter::kind(*k),
            FilterSpec::Kinds(ks) => Filter::kinds(ks.iter().copied()),
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// Publish an event of this kind; with `wait`, through `publish` polled once,
    /// else through `try_publish`.
    Publish {
        kind: u8,
        wait: bool,
    },
    Subscribe(FilterSpec),
    /// Drop the subscription at this index (modulo the number alive).
    DropSub(usize),
    /// Take everything the subscription at this index has ready.
    Drain(usize),
    /// Take one item from the subscription at this index, if it has one ready.
    PollOne(usize),
    Close,
}

fn filter_spec() -> impl Strategy<Value = FilterSpec> {
    prop_oneof![
        Just(FilterSpec::All),
        (0..KINDS).prop_map(FilterSpec::Kind),
        prop::collection::vec(0..KINDS, 0..3).prop_map(FilterSpec::Kinds),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (0..KINDS, any::<bool>()).prop_map(|(kind, wait)| Op::Publish { kind, wait }),
        3 => filter_spec().prop_map(Op::Subscribe),
        1 => any::<usize>().prop_map(Op::DropSub),
        3 => any::<usize>().prop_map(Op::Drain),
        3 => any::<usize>().prop_map(Op::PollOne),
        1 => Just(Op::Close),
    ]
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op(), 0..80)
}

/// One subscriber, real and modelled.
struct Subscriber {
    sub: Subscription<u32, u8>,
    filter: FilterSpec,
    /// `next_seq` when it subscribed.
    from: u64,
    /// Whether it subscribed before the bus closed (and so counts as a subscriber).
    registered: bool,
    /// Events waiting for it in the bus, as the model sees them.
    queued: VecDeque<(u64, u32)>,
    /// Events it has taken from the bus but not yet yielded.
    taken: VecDeque<(u64, u32)>,
    received: Vec<(u64, u32)>,
    ended: bool,
}

impl Subscriber {
    /// What the model says the next poll returns: `Some(Some(event))`, `Some(None)`
    /// (ended) or `None` (pending).
    fn expect_next(&mut self, closed: bool) -> Option<Option<(u64, u32)>> {
        if self.taken.is_empty() {
            // The subscription takes the whole waiting batch at once.
            self.taken = std::mem::take(&mut self.queued);
        }
        match self.taken.pop_front() {
            Some(event) => Some(Some(event)),
            None if closed => Some(None),
            None => None,
        }
    }

    /// Polls once and checks the result against the model; `false` when nothing was
    /// ready.
    fn poll_once(&mut self, closed: bool) -> bool {
        let expected = self.expect_next(closed);
        let got = match self.sub.next().now_or_never() {
            Some(Some(Ok(event))) => Some(Some((event.seq, event.payload))),
            Some(Some(Err(lagged))) => panic!("a Block subscriber lagged: {lagged}"),
            Some(None) => Some(None),
            None => None,
        };
        assert_eq!(
            got, expected,
            "subscriber {:?} from seq {}",
            self.filter, self.from
        );
        match got {
            Some(Some(event)) => {
                assert!(!self.ended, "an event after the end");
                self.received.push(event);
                true
            }
            Some(None) => {
                self.ended = true;
                false
            }
            None => false,
        }
    }

    fn drain(&mut self, closed: bool) {
        while self.poll_once(closed) {}
    }
}

struct Model {
    bus: Bus,
    subs: Vec<Subscriber>,
    /// Every event published: `(seq, kind, payload)`.
    log: Vec<(u64, u8, u32)>,
    closed: bool,
    /// One per registered subscriber each event matched.
    matched: u64,
    /// Events received by subscribers since dropped.
    received_by_dropped: u64,
    next_payload: u32,
    /// Publishes that found a subscriber full.
    waits: usize,
}

impl Model {
    fn new() -> Self {
        Model {
            bus: EventBus::new(),
            subs: Vec::new(),
            log: Vec::new(),
            closed: false,
            matched: 0,
            received_by_dropped: 0,
            next_payload: 0,
            waits: 0,
        }
    }

    fn next_seq(&self) -> u64 {
        self.log.len() as u64
    }

    /// Whether a matching subscriber has no room, so a publish of `kind` must wait.
    fn full_for(&self, kind: u8) -> bool {
        self.subs
            .iter()
            .any(|s| s.registered && s.filter.matches(kind) && s.queued.len() >= CAPACITY)
    }

    fn published(&mut self, seq: u64, kind: u8, payload: u32) {
        assert_eq!(seq, self.next_seq(), "sequence numbers are consecutive");
        self.log.push((seq, kind, payload));
        for s in &mut self.subs {
            if s.registered && s.filter.matches(kind) {
                s.queued.push_back((seq, payload));
                self.matched += 1;
            }
        }
    }

    fn publish(&mut self, kind: u8, wait: bool) {
        let payload = self.next_payload;
        self.next_payload += 1;
        if self.closed {
            let event = if wait {
                let result = self.bus.publish(Event::new(kind, payload)).now_or_never();
                let err = result.expect("publishing on a closed bus does not wait");
                err.expect_err("the bus is closed").into_inner()
            } else {
                let err = self.bus.try_publish((kind, payload)).unwrap_err();
                assert!(err.is_closed());
                err.into_inner()
            };
            assert_eq!((event.kind, event.payload), (kind, payload));
            return;
        }
        let must_wait = self.full_for(kind);
        let outcome = if wait {
            self.bus
                .publish((kind, payload))
                .now_or_never()
                .map(|r| r.unwrap())
        } else {
            match self.bus.try_publish((kind, payload)) {
                Ok(receipt) => Some(receipt),
                Err(err) => {
                    assert!(err.is_full(), "refused but not full: {err}");
                    let event = err.into_inner();
                    assert_eq!((event.kind, event.payload), (kind, payload));
                    None
                }
            }
        };
        if must_wait {
            assert!(
                outcome.is_none(),
                "kind {kind}: a matching subscriber holds {CAPACITY} unread events, yet the \
                 publish did not wait"
            );
        }
        let receipt = match outcome {
            Some(receipt) => receipt,
            None => {
                self.waits += 1;
                // Nothing was published by the refused or abandoned attempt.
                assert_eq!(self.bus.next_seq(), self.next_seq());
                // With every subscriber drained, there is room for anything.
                let closed = self.closed;
                for s in &mut self.subs {
                    s.drain(closed);
                }
                self.bus
                    .try_publish((kind, payload))
                    .expect("room after draining every subscriber")
            }
        };
        self.published(receipt.seq, kind, payload);
    }

    fn index(&self, i: usize) -> Option<usize> {
        (!self.subs.is_empty()).then(|| i % self.subs.len())
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Publish { kind, wait } => self.publish(*kind, *wait),
            Op::Subscribe(filter) => {
                let sub = self
                    .bus
                    .subscribe_with(filter.filter(), SubscribeOptions::new().capacity(CAPACITY))
                    .unwrap();
                self.subs.push(Subscriber {
                    sub,
                    filter: filter.clone(),
                    from: self.next_seq(),
                    registered: !self.closed,
                    queued: VecDeque::new(),
                    taken: VecDeque::new(),
                    received: Vec::new(),
                    ended: false,
                });
            }
            Op::DropSub(i) => {
                if let Some(i) = self.index(*i) {
                    let gone = self.subs.swap_remove(i);
                    self.check_received(&gone);
                    self.received_by_dropped += gone.received.len() as u64;
                }
            }
            Op::Drain(i) => {
                if let Some(i) = self.index(*i) {
                    let closed = self.closed;
                    self.subs[i].drain(closed);
                }
            }
            Op::PollOne(i) => {
                if let Some(i) = self.index(*i) {
                    let closed = self.closed;
                    self.subs[i].poll_once(closed);
                }
            }
            Op::Close => {
                self.bus.close();
                self.closed = true;
            }
        }
        self.check_counts();
    }

    fn check_counts(&self) {
        assert_eq!(self.bus.next_seq(), self.next_seq());
        assert_eq!(self.bus.is_closed(), self.closed);
        let stats = self.bus.stats();
        assert_eq!(stats.published, self.next_seq());
        // Counted when matched or when read: between what was read and what matched.
        let received: u64 = self.received_by_dropped
            + self
                .subs
                .iter()
                .map(|s| s.received.len() as u64)
                .sum::<u64>();
        assert!(
            (received..=self.matched).contains(&stats.delivered),
            "delivered {} outside {received}..={}",
            stats.delivered,
            self.matched
        );
        assert_eq!(stats.dropped(), 0);
        if !self.closed {
            let registered = self.subs.iter().filter(|s| s.registered).count();
            assert_eq!(self.bus.subscriber_count(), registered);
            assert_eq!(stats.subscribers, registered);
        }
    }

    /// What `sub` has received is a prefix of what it must receive: the matching
    /// events published after it subscribed (and, as the log ends at close, before
    /// close).
    fn check_received(&self, sub: &Subscriber) {
        let expected: Vec<(u64, u32)> = if sub.registered {
            self.log
                .iter()
                .filter(|&&(seq, kind, _)| seq >= sub.from && sub.filter.matches(kind))
                .map(|&(seq, _, payload)| (seq, payload))
                .collect()
        } else {
            Vec::new()
        };
        assert!(
            expected.starts_with(&sub.received),
            "received {:?}, expected a prefix of {expected:?}",
            sub.received
        );
        if sub.ended {
            assert_eq!(sub.received, expected, "ended before receiving everything");
        }
    }

    /// Closes the bus, drains every subscriber and checks each received exactly what
    /// it must, then ended. Returns what each received, and how many publishes waited.
    fn finish(mut self) -> (Vec<Vec<(u64, u32)>>, usize) {
        self.bus.close();
        self.closed = true;
        for s in &mut self.subs {
            s.drain(true);
        }
        for s in &self.subs {
            assert!(s.ended, "a subscriber did not end after close");
            self.check_received(s);
        }
        self.check_counts();
        let subs = std::mem::take(&mut self.subs);
        let received = subs.iter().map(|s| s.received.clone()).collect();
        drop(subs);
        assert_eq!(self.bus.subscriber_count(), 0);
        (received, self.waits)
    }
}

fn check(ops: &[Op]) -> (Vec<Vec<(u64, u32)>>, usize) {
    let mut model = Model::new();
    for op in ops {
        model.apply(op);
    }
    model.finish()
}

fn run_case(flavor: Flavor, ops: Vec<Op>) {
    common::run(flavor, move |_rt| async move {
        check(&ops);
    });
}

fn config() -> ProptestConfig {
    let cases = std::env::var("RIVERBED_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[cfg(feature = "tokio")]
    #[test]
    fn model_tokio_ct(ops in ops()) {
        run_case(Flavor::TokioCt, ops);
    }

    #[cfg(feature = "tokio")]
    #[test]
    fn model_tokio_mt(ops in ops()) {
        run_case(Flavor::TokioMt, ops);
    }

    #[cfg(feature = "smol")]
    #[test]
    fn model_smol(ops in ops()) {
        run_case(Flavor::Smol, ops);
    }

    #[test]
    fn model_futures(ops in ops()) {
        run_case(Flavor::Futures, ops);
    }

    #[test]
    fn model_virtual(ops in ops()) {
        run_case(Flavor::Virtual, ops);
    }
}

/// The model at work on a known sequence: a subscriber fills up and the publish waits,
/// one is dropped, the bus closes, one subscribes after close.
#[test]
fn model_fixed_sequence() {
    use FilterSpec::{All, Kind, Kinds};
    use Op::{Close, Drain, DropSub, PollOne, Publish, Subscribe};
    let p = |kind| Publish {
        kind,
        wait: kind % 2 == 0,
    };
    let ops = vec![
        Subscribe(All),
        Subscribe(Kind(1)),
        p(0),
        p(1),
        p(2),
        // Full for kind 0 now (All holds 3): the model drains and retries.
        p(0),
        Subscribe(Kinds(vec![0, 2])),
        PollOne(1),
        p(2),
        DropSub(1),
        Drain(0),
        p(1),
        Close,
        p(0),
        Subscribe(All),
        PollOne(0),
    ];
    let (received, waits) = check(&ops);
    let all = (0..6).map(|n| (n, n as u32)).collect::<Vec<_>>();
    assert_eq!(received, [all, vec![(4, 4)], vec![]]);
    assert_eq!(waits, 1);
}
