//! The `EventBus` promises, one test per promise, on every runtime flavour.

mod common;

use std::borrow::Borrow;
use std::future::IntoFuture;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use common::{matrix, timed_matrix};
use futures::future::FutureExt;
use futures::stream::{Stream, StreamExt};
use futures::task::ArcWake;
use riverbed::bus::{
    BusStats, Envelope, Event, EventBus, EventId, Filter, Kind, KindCount, Lagged, Overflow,
    SubscribeError, SubscribeOptions, Subscription,
};
use riverbed::runtime::{RuntimeExt, SharedRuntime};
use serde::{Deserialize, Serialize};

type Bus = EventBus<u32, &'static str>;
/// What a subscription yields.
type Received<P, K> = <Subscription<P, K> as Stream>::Item;

/// Everything `sub` has ready now, without waiting, and whether its stream has ended.
fn ready<P: Clone + Send + Sync + 'static, K: Kind>(
    sub: &mut Subscription<P, K>,
) -> (Vec<Received<P, K>>, bool) {
    let mut out = Vec::new();
    loop {
        match sub.next().now_or_never() {
            Some(Some(item)) => out.push(item),
            Some(None) => return (out, true),
            None => return (out, false),
        }
    }
}

/// `(seq, payload)` of each event, lag reports kept as they are.
fn brief(items: &[Received<u32, &'static str>]) -> Vec<Result<(u64, u32), Lagged>> {
    items
        .iter()
        .map(|item| item.as_ref().map(|e| (e.seq, e.payload)).map_err(|l| *l))
        .collect()
}

/// Reads `sub` until it ends.
async fn drain<P: Clone + Send + Sync + 'static, K: Kind>(
    mut sub: Subscription<P, K>,
) -> Vec<Received<P, K>> {
    let mut out = Vec::new();
    while let Some(item) = sub.next().await {
        out.push(item);
    }
    assert!(
        sub.next().await.is_none(),
        "an ended subscription stays ended"
    );
    out
}

/// A waker that counts how often it is woken.
#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl CountingWaker {
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl ArcWake for CountingWaker {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        arc_self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Polls `sub` once with a waker that counts its wakeups.
fn poll_counted(
    sub: &mut Subscription<u32, &'static str>,
    counter: &Arc<CountingWaker>,
) -> Poll<Option<Received<u32, &'static str>>> {
    let waker = futures::task::waker(Arc::clone(counter));
    let mut cx = Context::from_waker(&waker);
    Pin::new(sub).poll_next(&mut cx)
}

/// A payload that counts its live copies, to see when the bus lets go of events.
struct Tracked(Arc<AtomicUsize>);

impl Tracked {
    fn new(live: &Arc<AtomicUsize>) -> Self {
        live.fetch_add(1, Ordering::SeqCst);
        Tracked(Arc::clone(live))
    }
}

impl Clone for Tracked {
    fn clone(&self) -> Self {
        Tracked::new(&self.0)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The sequence numbers of `events`.
fn seqs<E: Borrow<Envelope<u32, &'static str>>>(events: &[E]) -> Vec<u64> {
    events.iter().map(|e| e.borrow().seq).collect()
}

matrix! {
    /// Every subscriber sees exactly the events its filter matches, in publish order,
    /// each once; a filter that rejects everything receives nothing.
    async fn filters_order_and_once(rt) {
        let bus: Bus = EventBus::new();
        let all = bus.subscribe(Filter::all());
        let one = bus.subscribe(Filter::kind("a"));
        let set = bus.subscribe(Filter::kinds(["b", "c"]));
        let pred = bus.subscribe(Filter::predicate(|e: &Envelope<u32, &str>| e.payload.is_multiple_of(5)));
        let none = bus.subscribe(Filter::kind("never"));

        let kinds = ["a", "b", "c", "d"];
        let mut published = Vec::new();
        for n in 0..60u32 {
            let kind = kinds[(n as usize * 7 + n as usize / 3) % kinds.len()];
            let receipt = bus.emit(kind, n).await.unwrap();
            assert_eq!(receipt.seq, u64::from(n));
            published.push((receipt.seq, kind, n));
        }
        // Subscribed after the first 60: sees none of them.
        let late = bus.subscribe(Filter::all());
        bus.emit("a", 60).await.unwrap();
        published.push((60, "a", 60));
        bus.close();

        let expect = |keep: &dyn Fn(&str, u32) -> bool| -> Vec<Result<(u64, u32), Lagged>> {
            published
                .iter()
                .filter(|(_, k, p)| keep(k, *p))
                .map(|&(s, _, p)| Ok((s, p)))
                .collect()
        };
        let got_all = drain(all).await;
        assert_eq!(brief(&got_all), expect(&|_, _| true));
        // The envelope carries what was published.
        for (event, &(seq, kind, payload)) in got_all.iter().zip(&published) {
            let event = event.as_ref().unwrap();
            assert_eq!((event.seq, event.kind, event.payload), (seq, kind, payload));
            assert_eq!(event.source, None);
        }
        assert_eq!(brief(&drain(one).await), expect(&|k, _| k == "a"));
        assert_eq!(brief(&drain(set).await), expect(&|k, _| k == "b" || k == "c"));
        assert_eq!(brief(&drain(pred).await), expect(&|_, p| p % 5 == 0));
        assert_eq!(brief(&drain(none).await), []);
        assert_eq!(brief(&drain(late).await), [Ok((60, 60))]);
        // Every filter above matched something, so the checks are not vacuous.
        for kind in kinds {
            assert!(published.iter().any(|&(_, k, _)| k == kind), "{kind} never published");
        }
    }

    /// A subscriber is woken only by events its filter accepts.
    async fn targeted_wakeups(rt) {
        let bus: Bus = EventBus::new();
        let mut one = bus.subscribe(Filter::kind("wanted"));
        let mut set = bus.subscribe(Filter::kinds(["wanted", "also"]));
        let mut pred = bus.subscribe(Filter::predicate(|e: &Envelope<u32, &str>| e.kind == "wanted"));
        let mut all = bus.subscribe(Filter::all());
        let counters: Vec<Arc<CountingWaker>> = (0..4).map(|_| Arc::default()).collect();
        let subs = [&mut one, &mut set, &mut pred, &mut all];

        for (sub, counter) in subs.into_iter().zip(&counters) {
            assert!(poll_counted(sub, counter).is_pending());
        }
        for n in 0..100 {
            bus.try_publish(("noise", n)).unwrap();
        }
        assert_eq!(counters[0].count(), 0, "kind filter woken by a rejected event");
        assert_eq!(counters[1].count(), 0, "kinds filter woken by a rejected event");
        assert_eq!(counters[2].count(), 0, "predicate filter woken by a rejected event");
        // The catch-all subscriber matched all 100 but is woken once per park.
        assert_eq!(counters[3].count(), 1);

        bus.try_publish(("wanted", 100)).unwrap();
        for counter in &counters[..3] {
            assert_eq!(counter.count(), 1);
        }
        for (sub, counter) in [&mut one, &mut set, &mut pred].into_iter().zip(&counters) {
            match poll_counted(sub, counter) {
                Poll::Ready(Some(Ok(event))) => assert_eq!((event.seq, event.payload), (100, 100)),
                other => panic!("expected the wanted event, got {other:?}"),
            }
            // Parked again: more noise does not wake it.
            assert!(poll_counted(sub, counter).is_pending());
        }
        for n in 0..10 {
            bus.try_publish(("noise", n)).unwrap();
        }
        for counter in &counters[..3] {
            assert_eq!(counter.count(), 1);
        }
        let (noise, ended) = ready(&mut all);
        assert_eq!(noise.len(), 111);
        assert!(!ended);
    }

    /// `Block`: `try_publish` hands the event back when the subscriber is full, and
    /// `publish` waits until it reads; nothing is lost.
    async fn block_backpressure(rt) {
        let bus: Bus = EventBus::new();
        let mut sub = bus
            .subscribe_with(Filter::kind("a"), SubscribeOptions::new().capacity(2))
            .unwrap();
        assert_eq!((sub.overflow(), sub.capacity()), (Overflow::Block, 2));
        bus.try_publish(("a", 0)).unwrap();
        bus.try_publish(("a", 1)).unwrap();
        assert_eq!(sub.len(), 2);

        let err = bus.try_publish(Event::new("a", 2).source("test")).unwrap_err();
        assert!(err.is_full());
        assert!(!err.is_closed());
        let event = err.into_inner();
        assert_eq!((event.kind, event.payload, event.source.as_deref()), ("a", 2, Some("test")));
        assert_eq!(bus.next_seq(), 2, "a refused event takes no sequence number");

        let mut waiting = Box::pin(bus.publish(event));
        assert!(futures::poll!(waiting.as_mut()).is_pending(), "publish must wait for room");
        assert!(futures::poll!(waiting.as_mut()).is_pending(), "still no room");

        let reader = rt.spawn(async move {
            let mut got = Vec::new();
            while got.len() < 20 {
                let event = sub.next().await.expect("not closed yet").expect("Block never lags");
                got.push((event.seq, event.payload, event.source.clone()));
            }
            got
        });
        let receipt = waiting.await.unwrap();
        assert_eq!(receipt.seq, 2);
        for n in 3..20 {
            bus.publish(("a", n)).await.unwrap();
        }
        let got = reader.await.unwrap();
        let payloads: Vec<u32> = got.iter().map(|(_, p, _)| *p).collect();
        assert_eq!(payloads, (0..20).collect::<Vec<_>>());
        let seqs: Vec<u64> = got.iter().map(|(s, _, _)| *s).collect();
        assert_eq!(seqs, (0..20).collect::<Vec<_>>());
        assert_eq!(got[2].2.as_deref(), Some("test"));
        let stats = bus.stats();
        assert_eq!((stats.published, stats.delivered, stats.dropped()), (20, 20, 0));
    }

    /// `DropOldest`: the subscriber is told how many it missed, before the newest.
    async fn drop_oldest(rt) {
        let bus: Bus = EventBus::new();
        let options = SubscribeOptions::new().capacity(2).overflow(Overflow::DropOldest);
        let mut sub = bus.subscribe_with(Filter::all(), options).unwrap();
        assert_eq!(sub.overflow(), Overflow::DropOldest);
        for n in 0..5 {
            // Never refused, never waits.
            bus.try_publish(("a", n)).unwrap();
        }
        let (items, ended) = ready(&mut sub);
        assert_eq!(brief(&items), [Err(Lagged { missed: 3 }), Ok((3, 3)), Ok((4, 4))]);
        assert!(!ended);
        let stats = bus.stats();
        assert_eq!(stats.published, 5);
        assert_eq!((stats.dropped_oldest, stats.dropped_newest), (3, 0));

        // It goes on: in order, no spurious lag.
        bus.publish(("a", 5)).await.unwrap();
        bus.publish(("a", 6)).await.unwrap();
        assert_eq!(brief(&ready(&mut sub).0), [Ok((5, 5)), Ok((6, 6))]);
        // And lags again, exactly.
        for n in 7..10 {
            bus.publish(("a", n)).await.unwrap();
        }
        assert_eq!(brief(&ready(&mut sub).0), [Err(Lagged { missed: 1 }), Ok((8, 8)), Ok((9, 9))]);
        assert_eq!(bus.stats().dropped_oldest, 4);
        bus.close();
        assert_eq!(ready(&mut sub), (vec![], true));
    }

    /// `DropNewest`: the subscriber keeps what it had and is told how many it missed
    /// after it.
    async fn drop_newest(rt) {
        let bus: Bus = EventBus::new();
        let options = SubscribeOptions::new().capacity(2).overflow(Overflow::DropNewest);
        let mut sub = bus.subscribe_with(Filter::all(), options).unwrap();
        assert_eq!(sub.overflow(), Overflow::DropNewest);
        for n in 0..5 {
            bus.try_publish(("a", n)).unwrap();
        }
        let (items, ended) = ready(&mut sub);
        assert_eq!(brief(&items), [Ok((0, 0)), Ok((1, 1)), Err(Lagged { missed: 3 })]);
        assert!(!ended);
        let stats = bus.stats();
        assert_eq!((stats.published, stats.delivered), (5, 2));
        assert_eq!((stats.dropped_oldest, stats.dropped_newest), (0, 3));
        assert_eq!(stats.dropped(), 3);

        bus.publish(("a", 5)).await.unwrap();
        bus.publish(("a", 6)).await.unwrap();
        assert_eq!(brief(&ready(&mut sub).0), [Ok((5, 5)), Ok((6, 6))]);
        for n in 7..10 {
            bus.publish(("a", n)).await.unwrap();
        }
        assert_eq!(brief(&ready(&mut sub).0), [Ok((7, 7)), Ok((8, 8)), Err(Lagged { missed: 1 })]);
        assert_eq!(bus.stats().dropped_newest, 4);
        bus.close();
        assert_eq!(ready(&mut sub), (vec![], true));
    }

    /// `history(filter, limit)`: the last `limit` matching events, oldest first, within
    /// the history bound.
    async fn history_by_count(rt) {
        let bus: Bus = EventBus::builder().history(10).build();
        for n in 0..15u32 {
            bus.emit(if n % 3 == 0 { "a" } else { "b" }, n).await.unwrap();
        }
        assert_eq!(seqs(&bus.history(&Filter::all(), 100)), (5..15).collect::<Vec<_>>());
        assert_eq!(seqs(&bus.history(&Filter::all(), 4)), [11, 12, 13, 14]);
        assert_eq!(seqs(&bus.history(&Filter::kind("a"), 100)), [6, 9, 12]);
        assert_eq!(seqs(&bus.history(&Filter::kind("a"), 2)), [9, 12]);
        assert_eq!(seqs(&bus.history(&Filter::kinds(["a", "z"]), 1)), [12]);
        let even = Filter::predicate(|e: &Envelope<u32, &str>| e.payload.is_multiple_of(2));
        assert_eq!(seqs(&bus.history(&even, 100)), [6, 8, 10, 12, 14]);
        assert_eq!(seqs(&bus.history(&Filter::kind("z"), 100)), Vec::<u64>::new());
        assert_eq!(seqs(&bus.history(&Filter::all(), 0)), Vec::<u64>::new());
        let newest = bus.history(&Filter::all(), 1);
        assert_eq!((newest[0].kind, newest[0].payload), ("b", 14));
        let stats = bus.stats();
        assert_eq!((stats.history_len, stats.history_capacity), (10, 10));

        // Without history, nothing is kept.
        let bare: Bus = EventBus::new();
        bare.emit("a", 1).await.unwrap();
        assert!(bare.history(&Filter::all(), 10).is_empty());
        assert_eq!(bare.stats().history_len, 0);
    }

    /// `subscribe_from` replays the history, then continues live: no gap, no duplicate.
    async fn subscribe_from_replays_then_live(rt) {
        let bus: Bus = EventBus::builder().history(100).build();
        for n in 0..10 {
            bus.emit(if n % 2 == 0 { "even" } else { "odd" }, n).await.unwrap();
        }
        let all = bus.subscribe_from(4, Filter::all()).unwrap();
        let odd = bus.subscribe_from(4, Filter::kind("odd")).unwrap();
        let oldest = bus.subscribe_from(0, Filter::all()).unwrap();
        for n in 10..15 {
            bus.emit(if n % 2 == 0 { "even" } else { "odd" }, n).await.unwrap();
        }
        bus.close();
        let expect = |from: u32, keep: &dyn Fn(u32) -> bool| -> Vec<Result<(u64, u32), Lagged>> {
            (from..15).filter(|&n| keep(n)).map(|n| Ok((u64::from(n), n))).collect()
        };
        assert_eq!(brief(&drain(all).await), expect(4, &|_| true));
        assert_eq!(brief(&drain(odd).await), expect(4, &|n| n % 2 == 1));
        assert_eq!(brief(&drain(oldest).await), expect(0, &|_| true));
        // Read, replayed events count as delivered: 11 + 5 + 15.
        assert_eq!(bus.stats().delivered, 31);
    }

    /// Asking for what the history does not hold is a typed error.
    async fn subscribe_from_errors(rt) {
        let bus: Bus = EventBus::builder().history(5).build();
        // Empty history: only `next_seq` (0) is valid.
        assert!(bus.subscribe_from(0, Filter::all()).is_ok());
        assert_eq!(
            bus.subscribe_from(1, Filter::all()).unwrap_err(),
            SubscribeError::Ahead { requested: 1, next: 0 }
        );
        for n in 0..10 {
            bus.emit("a", n).await.unwrap();
        }
        // Seqs 5..10 remain.
        assert_eq!(
            bus.subscribe_from(2, Filter::all()).unwrap_err(),
            SubscribeError::Evicted { requested: 2, oldest: 5 }
        );
        assert_eq!(
            bus.subscribe_from(4, Filter::kind("a")).unwrap_err(),
            SubscribeError::Evicted { requested: 4, oldest: 5 }
        );
        assert_eq!(
            bus.subscribe_from(11, Filter::all()).unwrap_err(),
            SubscribeError::Ahead { requested: 11, next: 10 }
        );
        let err = SubscribeError::Evicted { requested: 2, oldest: 5 };
        assert_eq!(err.to_string(), "cannot replay from seq 2: the history starts at seq 5");
        // A failed attempt registers nothing.
        assert_eq!(bus.subscriber_count(), 0);

        let from_oldest = bus.subscribe_from(5, Filter::all()).unwrap();
        // `seq == next_seq` is live only.
        let live = bus.subscribe_from(10, Filter::all()).unwrap();
        bus.emit("a", 10).await.unwrap();
        bus.close();
        assert_eq!(
            brief(&drain(from_oldest).await),
            (5..11).map(|n| Ok((n, n as u32))).collect::<Vec<_>>()
        );
        assert_eq!(brief(&drain(live).await), [Ok((10, 10))]);

        // With no history at all, everything published is evicted; the oldest
        // replayable seq is the next one.
        let bare: Bus = EventBus::new();
        for n in 0..3 {
            bare.emit("a", n).await.unwrap();
        }
        assert_eq!(
            bare.subscribe_from(0, Filter::all()).unwrap_err(),
            SubscribeError::Evicted { requested: 0, oldest: 3 }
        );
        let mut live = bare.subscribe_from(3, Filter::all()).unwrap();
        bare.emit("a", 3).await.unwrap();
        assert_eq!(brief(&ready(&mut live).0), [Ok((3, 3))]);

        // Capacity zero is refused, with or without replay.
        let zero = SubscribeOptions::new().capacity(0);
        assert_eq!(
            bus.subscribe_with(Filter::all(), zero).unwrap_err(),
            SubscribeError::ZeroCapacity
        );
        assert_eq!(
            bare.subscribe_from_with(3, Filter::all(), zero).unwrap_err(),
            SubscribeError::ZeroCapacity
        );
    }

    /// Dropping a subscription unsubscribes it and lets go of its waiting events.
    async fn drop_unsubscribes(rt) {
        let bus: EventBus<Tracked, &'static str> = EventBus::new();
        assert_eq!(bus.subscriber_count(), 0);
        let a = bus.subscribe(Filter::all());
        let b = bus.subscribe(Filter::kind("x"));
        assert_eq!((bus.subscriber_count(), bus.stats().subscribers), (2, 2));

        let live = Arc::new(AtomicUsize::new(0));
        for _ in 0..3 {
            bus.emit("x", Tracked::new(&live)).await.unwrap();
        }
        drop(a);
        assert_eq!(bus.subscriber_count(), 1);
        assert_eq!(live.load(Ordering::SeqCst), 3, "b still holds the three events");
        drop(b);
        assert_eq!((bus.subscriber_count(), bus.stats().subscribers), (0, 0));
        assert_eq!(live.load(Ordering::SeqCst), 0, "nobody holds the events any more");

        // With no subscribers (and no history), publishing keeps nothing.
        bus.emit("x", Tracked::new(&live)).await.unwrap();
        assert_eq!(live.load(Ordering::SeqCst), 0);
    }

    /// A bus with no subscribers holds no more than its history bound.
    async fn no_subscribers_bounded_by_history(rt) {
        let bus: EventBus<Tracked, &'static str> = EventBus::builder().history(8).build();
        let live = Arc::new(AtomicUsize::new(0));
        for _ in 0..1000 {
            bus.emit("x", Tracked::new(&live)).await.unwrap();
        }
        assert_eq!(live.load(Ordering::SeqCst), 8);
        assert_eq!(bus.stats().history_len, 8);
        // Subscribers that left give back what they held.
        let sub = bus.subscribe(Filter::all());
        for _ in 0..100 {
            bus.emit("x", Tracked::new(&live)).await.unwrap();
        }
        drop(sub);
        assert_eq!(live.load(Ordering::SeqCst), 8);
    }

    /// A publisher blocked on a full `Block` subscriber completes when that
    /// subscriber is dropped.
    async fn drop_releases_blocked_publisher(rt) {
        let bus: Bus = EventBus::new();
        let full = bus.subscribe_with(Filter::all(), SubscribeOptions::new().capacity(1)).unwrap();
        bus.try_publish(("a", 0)).unwrap();
        let mut waiting = Box::pin(bus.publish(("a", 1)));
        assert!(futures::poll!(waiting.as_mut()).is_pending());
        drop(full);
        assert_eq!(waiting.await.unwrap().seq, 1);

        // The same with the publisher in another task.
        let full = bus.subscribe_with(Filter::all(), SubscribeOptions::new().capacity(1)).unwrap();
        bus.try_publish(("a", 2)).unwrap();
        let publisher = {
            let bus = bus.clone();
            rt.spawn(async move { bus.publish(("a", 3)).await.map(|r| r.seq) })
        };
        drop(full);
        assert_eq!(publisher.await.unwrap().unwrap(), 3);
        assert_eq!(bus.subscriber_count(), 0);
    }

    /// After `close`, publishing fails and hands the event back; subscribers drain what
    /// they were sent, then end.
    async fn close_drains_then_ends(rt) {
        let bus: Bus = EventBus::new();
        let mut sub = bus.subscribe(Filter::all());
        for n in 0..3 {
            bus.emit("a", n).await.unwrap();
        }
        assert!(!bus.is_closed());
        bus.close();
        assert!(bus.is_closed());
        assert!(sub.is_closed());

        let event = bus.emit("a", 7).await.unwrap_err().into_inner();
        assert_eq!((event.kind, event.payload), ("a", 7));
        let err = bus.publish(Event::new("b", 8).source("late")).await.unwrap_err();
        assert_eq!(err.to_string(), "the event bus is closed");
        let event = err.into_inner();
        assert_eq!((event.kind, event.payload, event.source.as_deref()), ("b", 8, Some("late")));
        let chosen = EventId(42);
        let err = bus.try_publish(Event::new("c", 9).id(chosen)).unwrap_err();
        assert!(err.is_closed() && !err.is_full());
        let event = err.into_inner();
        assert_eq!((event.kind, event.payload, event.id), ("c", 9, Some(chosen)));
        bus.close(); // idempotent
        assert_eq!(bus.next_seq(), 3);
        assert_eq!(bus.stats().published, 3);

        let (items, ended) = ready(&mut sub);
        assert_eq!(brief(&items), [Ok((0, 0)), Ok((1, 1)), Ok((2, 2))]);
        assert!(ended);
        assert!(futures::stream::FusedStream::is_terminated(&sub));
        assert!(sub.next().await.is_none());

        // Subscribing to a closed bus gives a stream that has already ended.
        let mut after = bus.subscribe(Filter::all());
        assert!(after.next().await.is_none());
    }

    /// A publisher waiting on a full `Block` subscriber gets an error when the bus
    /// closes; the subscriber still gets what it was sent before.
    async fn close_fails_blocked_publisher(rt) {
        let bus: Bus = EventBus::new();
        let sub = bus.subscribe_with(Filter::all(), SubscribeOptions::new().capacity(1)).unwrap();
        bus.try_publish(("a", 0)).unwrap();
        let mut waiting = Box::pin(bus.publish(("a", 1)));
        assert!(futures::poll!(waiting.as_mut()).is_pending());

        // Another publisher, in a task, waits on the same subscriber.
        let publisher = {
            let bus = bus.clone();
            rt.spawn(async move {
                bus.publish(("a", 2)).await.map(|_| ()).unwrap_err().into_inner().payload
            })
        };
        bus.close();
        let event = waiting.await.unwrap_err().into_inner();
        assert_eq!(event.payload, 1);
        assert_eq!(publisher.await.unwrap(), 2);
        assert_eq!(brief(&drain(sub).await), [Ok((0, 0))]);
    }

    /// Dropping the last `EventBus` handle closes the bus.
    async fn last_handle_closes(rt) {
        let bus: Bus = EventBus::new();
        let clone = bus.clone();
        let sub = bus.subscribe(Filter::all());
        let reader = rt.spawn(drain(sub));
        clone.emit("a", 0).await.unwrap();
        drop(clone);
        assert!(!bus.is_closed(), "another handle is alive");
        bus.emit("a", 1).await.unwrap();
        drop(bus);
        let got = reader.await.unwrap();
        assert_eq!(brief(&got), [Ok((0, 0)), Ok((1, 1))]);
    }

    /// A handler run in place handles, in order, every matching event, those published
    /// before it was first polled included.
    async fn handler_in_place(rt) {
        let bus: Bus = EventBus::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let flow = {
            let seen = seen.clone();
            bus.on(Filter::kind("a"), move |e| {
                let seen = seen.clone();
                async move { seen.lock().unwrap().push((e.seq, e.payload)) }
            })
            .name("collector")
        };
        assert_eq!(bus.subscriber_count(), 1, "the handler subscribes at once");
        for n in 0..20 {
            bus.emit(if n % 4 == 0 { "b" } else { "a" }, n).await.unwrap();
        }
        bus.close();
        assert!(flow.await.is_finished());
        let expected: Vec<(u64, u32)> =
            (0..20).filter(|n| n % 4 != 0).map(|n| (u64::from(n), n)).collect();
        assert_eq!(*seen.lock().unwrap(), expected);
        let stats = bus.stats();
        let handler = &stats.handlers[0];
        assert_eq!(handler.name, "collector");
        assert_eq!((handler.handled, handler.failed, handler.panicked), (15, 0, 0));
        assert_eq!(handler.in_flight, 0);
        assert_eq!(handler.latency.count, 15);
        assert_eq!(bus.subscriber_count(), 0, "the ended flow unsubscribed");
    }

    /// Handler failures are also published as events on `handler_failures()`, in the
    /// order they happen, and the stream ends when the last bus handle goes.
    async fn handler_failures_are_events(rt) {
        let bus: Bus = EventBus::new();
        let mut failures = bus.handler_failures(16);
        let flow = bus
            .on(Filter::all(), |e| async move {
                match e.payload {
                    1 => Err("one is refused"),
                    3 => panic!("three is fatal"),
                    _ => Ok(()),
                }
            })
            .name("picky");
        for n in 0..5 {
            bus.emit("a", n).await.unwrap();
        }
        bus.close();
        assert!(flow.await.is_finished());
        let first = failures.next().await.unwrap().unwrap();
        assert_eq!(
            (first.handler.as_str(), first.seq, first.kind.as_str(), first.message.as_str()),
            ("picky", 1, "\"a\"", "one is refused")
        );
        assert!(!first.panicked);
        let second = failures.next().await.unwrap().unwrap();
        assert_eq!((second.seq, second.panicked), (3, true));
        assert!(second.message.contains("three is fatal"), "{}", second.message);
        drop(bus);
        assert!(failures.next().await.is_none());
    }

    /// An event handed back after close is the event as it was given: what the
    /// publisher left to the bus (id, timestamp) is still unset, what it chose is kept.
    async fn handed_back_event_is_as_given(rt) {
        let bus: Bus = EventBus::new();
        bus.close();
        let given = Event::new("a", 7).source("test");
        let back = bus.publish(given.clone()).await.unwrap_err().into_inner();
        assert_eq!(back, given);
        let chosen = Event::new("a", 8)
            .id(EventId(42))
            .timestamp(std::time::SystemTime::UNIX_EPOCH);
        assert_eq!(bus.try_publish(chosen.clone()).unwrap_err().into_inner(), chosen);
    }

    /// A spawned handler handles every matching event, in order at concurrency 1.
    async fn handler_spawned(rt) {
        let bus: Bus = EventBus::new();
        let (tx, rx) = async_channel::unbounded();
        let flow = bus.on(Filter::kinds(["a", "c"]), move |e| {
            let tx = tx.clone();
            async move { tx.send((e.seq, e.payload)).await.unwrap() }
        });
        // Published before the flow exists as a task.
        bus.emit("a", 0).await.unwrap();
        let handle = flow.spawn(&rt);
        for n in 1..30 {
            bus.emit(["a", "b", "c"][n as usize % 3], n).await.unwrap();
        }
        bus.close();
        assert!(handle.await.unwrap().is_finished());
        let mut got: Vec<(u64, u32)> = Vec::new();
        while let Ok(handled) = rx.try_recv() {
            got.push(handled);
        }
        let expected: Vec<(u64, u32)> =
            (0..30).filter(|n| n % 3 != 1).map(|n| (u64::from(n), n)).collect();
        assert_eq!(got, expected);
        let handler = &bus.stats().handlers[0];
        assert_eq!(handler.name, "handler-0");
        assert_eq!(handler.handled, 20);
    }

    /// At most `concurrency(n)` invocations run at once, in place.
    async fn handler_concurrency_in_place(rt) {
        concurrency_limit(&rt, false).await;
    }

    /// At most `concurrency(n)` invocations run at once, spawned.
    async fn handler_concurrency_spawned(rt) {
        concurrency_limit(&rt, true).await;
    }

    /// Failing and panicking handlers are counted and recorded; the flows and the
    /// other handlers go on. In place.
    async fn handler_failures_in_place(rt) {
        handler_failures(&rt, false).await;
    }

    /// As `handler_failures_in_place`, with the flows spawned.
    async fn handler_failures_spawned(rt) {
        handler_failures(&rt, true).await;
    }

    /// The statistics count what happened, and the snapshot round-trips through JSON.
    async fn stats_count_and_serialise(rt) {
        let bus: EventBus<u32, String> = EventBus::builder().history(4).build();
        let all = bus.subscribe(Filter::all());
        let only_a = bus.subscribe(Filter::kind("a".to_owned()));
        let flow = bus.on(Filter::kind("c".to_owned()), |e| async move {
            if e.payload == 2 { Err("c went wrong") } else { Ok(()) }
        }).name("c-checker");
        for (n, kind) in ["a", "b", "a", "c", "a", "c"].into_iter().enumerate() {
            bus.emit(kind.to_owned(), n as u32).await.unwrap();
        }
        bus.close();
        assert!(flow.await.is_finished());
        let read = |sub| async move { drain(sub).await.len() };
        assert_eq!((read(all).await, read(only_a).await), (6, 3));

        let stats = bus.stats();
        assert_eq!(stats.published, 6);
        // all: 6, only_a: 3, handler: 2.
        assert_eq!(stats.delivered, 11);
        assert_eq!((stats.dropped_oldest, stats.dropped_newest, stats.filter_panics), (0, 0, 0));
        assert_eq!(
            stats.per_kind,
            [("a", 3), ("c", 2), ("b", 1)]
                .map(|(kind, count)| KindCount { kind: kind.to_owned(), count })
        );
        assert_eq!(stats.subscribers, 0, "the ended flow and the readers have left");
        assert_eq!((stats.history_len, stats.history_capacity), (4, 4));
        assert_eq!((stats.handler_failures, stats.handler_panics), (0, 0));
        assert_eq!(stats.handlers[0].handled, 2, "seq 3 (payload 3) and seq 5 pass");

        let json = serde_json::to_value(&stats).unwrap();
        assert_eq!(json["published"], 6);
        assert_eq!(json["delivered"], 11);
        assert_eq!(json["per_kind"][0]["kind"], "a");
        assert_eq!(json["per_kind"][0]["count"], 3);
        assert_eq!(json["handlers"][0]["name"], "c-checker");
        let back: BusStats<String> = serde_json::from_value(json).unwrap();
        assert_eq!(back, stats);
        let text = serde_json::to_string(&stats).unwrap();
        assert_eq!(serde_json::from_str::<BusStats<String>>(&text).unwrap(), stats);
    }

    /// A predicate that panics rejects the event, is counted once per event and
    /// subscriber, and breaks nothing.
    async fn panicking_filter_rejects(rt) {
        let bus: Bus = EventBus::new();
        let picky = || {
            Filter::predicate(|e: &Envelope<u32, &str>| {
                assert_ne!(e.payload, 2, "the filter chokes on 2");
                true
            })
        };
        // One parked (it polled and waits), one busy (it never polled).
        let mut parked = bus.subscribe(picky());
        let mut busy = bus.subscribe(picky());
        let mut all = bus.subscribe(Filter::all());
        assert_eq!(ready(&mut parked), (vec![], false));
        for n in 0..5 {
            bus.publish(("a", n)).await.unwrap();
        }
        bus.close();
        let expected = [Ok((0, 0)), Ok((1, 1)), Ok((3, 3)), Ok((4, 4))];
        assert_eq!(brief(&ready(&mut parked).0), expected);
        assert_eq!(brief(&ready(&mut busy).0), expected);
        assert_eq!(ready(&mut all).0.len(), 5);
        assert_eq!(bus.stats().filter_panics, 2);
    }

    /// Subscribing from a sequence number after close replays the history, then ends.
    async fn subscribe_from_after_close(rt) {
        let bus: Bus = EventBus::builder().history(10).build();
        for n in 0..3 {
            bus.emit("a", n).await.unwrap();
        }
        bus.close();
        let replay = bus.subscribe_from(1, Filter::all()).unwrap();
        assert_eq!(brief(&drain(replay).await), [Ok((1, 1)), Ok((2, 2))]);
        assert_eq!(
            bus.subscribe_from(0, Filter::all()).map(|_| ()).map_err(|e| e.to_string()),
            Ok(())
        );
        assert_eq!(
            bus.subscribe_from(4, Filter::all()).unwrap_err(),
            SubscribeError::Ahead { requested: 4, next: 3 }
        );
    }

    /// `publish`/`try_publish` wait only for a *matching* full `Block` subscriber: an
    /// event that subscriber does not want goes through.
    async fn block_waits_only_for_matching_subscribers(rt) {
        let bus: Bus = EventBus::new();
        let mut sub = bus
            .subscribe_with(Filter::kind("a"), SubscribeOptions::new().capacity(2))
            .unwrap();
        bus.try_publish(("a", 0)).unwrap();
        bus.try_publish(("a", 1)).unwrap();
        assert!(bus.try_publish(("a", 2)).unwrap_err().is_full());
        for n in 2..10 {
            let receipt = bus.try_publish(("b", n)).expect("not held back by an `a` subscriber");
            assert_eq!(receipt.seq, u64::from(n));
        }
        assert_eq!(bus.publish(("b", 10)).now_or_never().unwrap().unwrap().seq, 10);
        assert_eq!(brief(&ready(&mut sub).0), [Ok((0, 0)), Ok((1, 1))]);
    }

    /// `BusStats::delivered` counts events subscribers have received: nothing until they
    /// read, one per subscriber and event read, replayed events included, events a
    /// `DropOldest` subscriber dropped excluded (they are in `dropped_oldest`). A
    /// subscriber that leaves keeps its count in the total.
    async fn delivered_counts_received(rt) {
        let bus: Bus = EventBus::builder().history(10).build();
        let mut all = bus.subscribe(Filter::all());
        let mut only_a = bus.subscribe(Filter::kind("a"));
        let mut oldest = bus
            .subscribe_with(
                Filter::all(),
                SubscribeOptions::new().capacity(2).overflow(Overflow::DropOldest),
            )
            .unwrap();
        for (n, kind) in ["a", "b", "a", "b", "a"].into_iter().enumerate() {
            bus.emit(kind, n as u32).await.unwrap();
        }
        assert_eq!(bus.stats().delivered, 0, "nobody has read anything yet");

        assert_eq!(ready(&mut all).0.len(), 5);
        assert_eq!(ready(&mut only_a).0.len(), 3);
        assert_eq!(
            brief(&ready(&mut oldest).0),
            [Err(Lagged { missed: 3 }), Ok((3, 3)), Ok((4, 4))]
        );
        let stats = bus.stats();
        assert_eq!((stats.delivered, stats.dropped_oldest), (5 + 3 + 2, 3));

        // Replayed events count once read; a subscriber that left keeps its count.
        let mut replay = bus.subscribe_from(1, Filter::all()).unwrap();
        assert_eq!(ready(&mut replay).0.len(), 4);
        drop((all, only_a, oldest, replay));
        assert_eq!(bus.stats().delivered, 10 + 4);
    }

    /// The seed's `AsyncEvent {event_id, event_type, timestamp, data, source}`, as an
    /// `EventBus<serde_json::Value, EventType>`.
    async fn seed_async_event(rt) {
        let bus: EventBus<serde_json::Value, EventType> = EventBus::new();
        let mut sub = bus.subscribe(Filter::kinds([EventType::UserAction, EventType::DataUpdate]));
        let first = bus
            .publish(
                Event::new(EventType::UserAction, serde_json::json!({"user": "alice", "clicks": 3}))
                    .source("web"),
            )
            .await
            .unwrap();
        bus.emit(EventType::SystemAlert, serde_json::json!("disk")).await.unwrap();
        let third = bus.emit(EventType::DataUpdate, serde_json::json!([1, 2, 3])).await.unwrap();
        assert_ne!(first.id, third.id);

        let (items, _) = ready(&mut sub);
        let events: Vec<_> = items.into_iter().map(Result::unwrap).collect();
        assert_eq!(events.len(), 2);
        let user: &Envelope<serde_json::Value, EventType> = events[0].borrow();
        assert_eq!((user.id, user.seq), (first.id, first.seq));
        assert_eq!(user.kind, EventType::UserAction);
        assert_eq!(user.source.as_deref(), Some("web"));

        let json = serde_json::to_value(user).unwrap();
        let id_text = first.id.to_string();
        assert_eq!(id_text.len(), 36);
        assert_eq!(json["id"], id_text.as_str());
        assert_eq!(json["seq"], 0);
        assert_eq!(json["kind"], "UserAction");
        assert_eq!(json["source"], "web");
        assert_eq!(json["payload"], serde_json::json!({"user": "alice", "clicks": 3}));
        // The timestamp is an RFC 3339 string in UTC, exact to the nanosecond.
        let stamp = json["timestamp"].as_str().expect("an RFC 3339 string");
        let seconds = user.timestamp.duration_since(std::time::UNIX_EPOCH).unwrap();
        assert!(stamp.ends_with('Z') && stamp.len() >= 20, "{stamp}");
        assert_eq!(&stamp[4..5], "-");
        assert_eq!(&stamp[10..11], "T");
        assert!(seconds.as_secs() > 1_700_000_000 && stamp.starts_with("20"), "{stamp}");
        let back: Envelope<serde_json::Value, EventType> = serde_json::from_value(json).unwrap();
        assert_eq!(back, *user);

        // No source: the key is left out and reads back as `None`.
        let update: &Envelope<serde_json::Value, EventType> = events[1].borrow();
        assert_eq!((update.id, update.seq), (third.id, 2));
        let text = serde_json::to_string(update).unwrap();
        assert!(!text.contains("source"), "{text}");
        let back: Envelope<serde_json::Value, EventType> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, *update);

        // EventId round-trips through JSON and text.
        let json = serde_json::to_string(&first.id).unwrap();
        assert_eq!(json, format!("\"{id_text}\""));
        assert_eq!(serde_json::from_str::<EventId>(&json).unwrap(), first.id);
        assert_eq!(id_text.parse::<EventId>().unwrap(), first.id);
        assert!(serde_json::from_str::<EventId>("\"not-an-id\"").is_err());

        // A publisher may choose the id; it is kept.
        let chosen: EventId = "0123456789abcdef0123456789abcdef".parse().unwrap();
        let receipt = bus
            .publish(Event::new(EventType::UserAction, serde_json::Value::Null).id(chosen))
            .await
            .unwrap();
        assert_eq!(receipt.id, chosen);
        assert_eq!(ready(&mut sub).0[0].as_ref().unwrap().id, chosen);
    }
}

timed_matrix! {
    /// History entries older than `history_max_age` on the bus clock disappear.
    async fn history_max_age(rt) {
        let (age, past_age) = age_bounds(&rt);
        let bus: Bus = EventBus::builder()
            .history(100)
            .history_max_age(age)
            .clock(rt.clone())
            .build();
        let payloads = |bus: &Bus| -> Vec<u32> {
            bus.history(&Filter::all(), 100).iter().map(|e| e.payload).collect()
        };
        bus.emit("a", 0).await.unwrap();
        bus.emit("a", 1).await.unwrap();
        assert_eq!(payloads(&bus), [0, 1]);

        rt.sleep(past_age).await;
        // Expired even though nothing was published since.
        assert_eq!(payloads(&bus), Vec::<u32>::new());
        assert_eq!(bus.stats().history_len, 0);

        bus.emit("a", 2).await.unwrap();
        assert_eq!(payloads(&bus), [2]);
        rt.sleep(past_age).await;
        bus.emit("a", 3).await.unwrap();
        assert_eq!(payloads(&bus), [3]);
        assert_eq!(bus.stats().history_len, 1);

        // The count bound still applies under an age bound.
        let small: Bus = EventBus::builder()
            .history(2)
            .history_max_age(Duration::from_secs(3600))
            .clock(rt.clone())
            .build();
        for n in 0..5 {
            small.emit("a", n).await.unwrap();
        }
        assert_eq!(payloads(&small), [3, 4]);
    }

    /// `subscribe_from` does not replay entries the age bound has expired.
    async fn subscribe_from_skips_expired(rt) {
        let (age, past_age) = age_bounds(&rt);
        let bus: Bus = EventBus::builder()
            .history(100)
            .history_max_age(age)
            .clock(rt.clone())
            .build();
        bus.emit("a", 0).await.unwrap();
        bus.emit("a", 1).await.unwrap();
        rt.sleep(past_age).await;
        // Both are older than the age bound and nothing was published since: the
        // history holds nothing, so replaying from seq 1 is an error, not a stale replay.
        match bus.subscribe_from(1, Filter::all()) {
            Err(err) => assert_eq!(err, SubscribeError::Evicted { requested: 1, oldest: 2 }),
            Ok(mut sub) => {
                let (replayed, _) = ready(&mut sub);
                panic!("replayed expired events: {:?}", brief(&replayed));
            }
        }
        let mut sub = bus.subscribe_from(2, Filter::all()).unwrap();
        bus.emit("a", 2).await.unwrap();
        assert_eq!(brief(&ready(&mut sub).0), [Ok((2, 2))]);
        assert_eq!(seqs(&bus.history(&Filter::all(), 10)), [2]);
    }
}

/// The age bound and a wait past it: 200 / 250 ms on the virtual clock; on real
/// runtimes 2 s / 2.05 s, so that a machine that stalls the test for a while cannot
/// make a fresh entry look expired.
fn age_bounds(rt: &SharedRuntime) -> (Duration, Duration) {
    if format!("{rt:?}").starts_with("VirtualRuntime") {
        (Duration::from_millis(200), Duration::from_millis(250))
    } else {
        (Duration::from_secs(2), Duration::from_millis(2050))
    }
}

/// The seed's event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
enum EventType {
    UserAction,
    SystemAlert,
    DataUpdate,
}

/// Runs a gated handler at concurrency 3 over 12 events and checks that exactly 3
/// invocations run at once.
async fn concurrency_limit(rt: &SharedRuntime, spawned: bool) {
    const LIMIT: usize = 3;
    const EVENTS: u32 = 12;
    let bus: Bus = EventBus::new();
    let current = Arc::new(AtomicUsize::new(0));
    let max = Arc::new(AtomicUsize::new(0));
    let (started_tx, started_rx) = async_channel::unbounded::<u32>();
    let (gate_tx, gate_rx) = async_channel::unbounded::<()>();
    let flow = {
        let (current, max) = (current.clone(), max.clone());
        bus.on(Filter::all(), move |e| {
            let (current, max) = (current.clone(), max.clone());
            let (started_tx, gate_rx) = (started_tx.clone(), gate_rx.clone());
            async move {
                let now = current.fetch_add(1, Ordering::SeqCst) + 1;
                max.fetch_max(now, Ordering::SeqCst);
                started_tx.send(e.payload).await.unwrap();
                gate_rx.recv().await.unwrap();
                current.fetch_sub(1, Ordering::SeqCst);
            }
        })
        .concurrency(LIMIT)
        .name("gated")
    };
    // All published before the flow runs.
    for n in 0..EVENTS {
        bus.emit("a", n).await.unwrap();
    }
    bus.close();

    let drive = async {
        if spawned {
            assert!(flow.spawn(rt).await.unwrap().is_finished());
        } else {
            assert!(flow.await.is_finished());
        }
    };
    let control = async {
        let mut started = Vec::new();
        for _ in 0..LIMIT {
            started.push(started_rx.recv().await.unwrap());
        }
        // LIMIT invocations wait at the gate.
        assert_eq!(current.load(Ordering::SeqCst), LIMIT);
        assert_eq!(bus.stats().handlers[0].in_flight, LIMIT as u64);
        // Each release lets exactly one more start.
        for _ in LIMIT..EVENTS as usize {
            gate_tx.send(()).await.unwrap();
            started.push(started_rx.recv().await.unwrap());
            assert!(current.load(Ordering::SeqCst) <= LIMIT);
        }
        for _ in 0..LIMIT {
            gate_tx.send(()).await.unwrap();
        }
        started
    };
    let ((), mut started) = futures::join!(drive, control);
    started.sort_unstable();
    assert_eq!(started, (0..EVENTS).collect::<Vec<_>>());
    assert_eq!(max.load(Ordering::SeqCst), LIMIT);
    assert_eq!(current.load(Ordering::SeqCst), 0);
    assert!(started_rx.is_empty());
    let handler = &bus.stats().handlers[0];
    assert_eq!(handler.name, "gated");
    assert_eq!((handler.handled, handler.in_flight), (u64::from(EVENTS), 0));
}

/// Three handlers over events 1..=5: one returns an error on 2, one panics on 3 (in
/// its future) and 4 (before returning its future), one is fine.
async fn handler_failures(rt: &SharedRuntime, spawned: bool) {
    let bus: Bus = EventBus::new();
    let failing = bus
        .on(Filter::kind("tick"), |e| async move {
            if e.payload == 2 {
                Err("two is bad")
            } else {
                Ok(())
            }
        })
        .name("failing");
    let panicking = bus
        .on(Filter::kind("tick"), |e| {
            if e.payload == 4 {
                panic!("four, before the future");
            }
            async move {
                if e.payload == 3 {
                    panic!("three!");
                }
            }
        })
        .name("panicking");
    let seen = Arc::new(AtomicU64::new(0));
    let fine = {
        let seen = seen.clone();
        bus.on(Filter::kind("tick"), move |e| {
            let seen = seen.clone();
            async move {
                seen.fetch_add(1 << e.payload, Ordering::SeqCst);
            }
        })
    };
    for n in 1..=5 {
        bus.emit("tick", n).await.unwrap();
    }
    bus.close();
    if spawned {
        let handles = [failing.spawn(rt), panicking.spawn(rt), fine.spawn(rt)];
        for handle in handles {
            assert!(
                handle
                    .await
                    .expect("a flow survives its handler's failures")
                    .is_finished()
            );
        }
    } else {
        let reports = futures::join!(
            failing.into_future(),
            panicking.into_future(),
            fine.into_future()
        );
        assert!(reports.0.is_finished() && reports.1.is_finished() && reports.2.is_finished());
    }

    assert_eq!(
        seen.load(Ordering::SeqCst),
        0b11_1110,
        "the fine handler saw 1..=5"
    );
    let stats = bus.stats();
    assert_eq!((stats.handler_failures, stats.handler_panics), (1, 2));
    let [failing, panicking, fine] = &stats.handlers[..] else {
        panic!("three handlers expected, got {:?}", stats.handlers);
    };
    assert_eq!(
        (failing.handled, failing.failed, failing.panicked),
        (4, 1, 0)
    );
    assert_eq!(
        (panicking.handled, panicking.failed, panicking.panicked),
        (3, 0, 2)
    );
    assert_eq!((fine.handled, fine.failed, fine.panicked), (5, 0, 0));
    assert_eq!(fine.name, "handler-2");
    assert!(fine.recent_failures.is_empty());

    assert_eq!(failing.recent_failures.len(), 1);
    let failure = &failing.recent_failures[0];
    assert_eq!(failure.flow, "failing");
    assert_eq!(failure.item, "seq 1, kind \"tick\"");
    assert_eq!(failure.message, "two is bad");
    assert!(!failure.panicked);

    let failures: Vec<(&str, &str, bool)> = panicking
        .recent_failures
        .iter()
        .map(|f| (f.item.as_str(), f.message.as_str(), f.panicked))
        .collect();
    assert_eq!(
        failures,
        [
            ("seq 2, kind \"tick\"", "panicked: three!", true),
            (
                "seq 3, kind \"tick\"",
                "panicked: four, before the future",
                true
            )
        ]
    );
    assert!(
        panicking
            .recent_failures
            .iter()
            .all(|f| f.flow == "panicking")
    );
    assert_eq!(
        [failing.in_flight, panicking.in_flight, fine.in_flight],
        [0, 0, 0]
    );
}
