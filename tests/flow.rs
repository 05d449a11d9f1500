//! The flow contract, one test body for every kind of flow, on every runtime.
//!
//! Each body runs against a bus handler flow, a reactive subscriber flow, a queue
//! consumer and a pipeline flow, all started through the object-safe `Flow` trait: a
//! stop lets running handlers finish within the grace period, cancels the rest at the
//! deadline, and the report says so honestly; errors and panics are counted alike.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::timed_matrix;
use futures::FutureExt;
use futures::StreamExt;
use futures::future::BoxFuture;
use riverbed::FlowContext;
use riverbed::bus::{EventBus, Filter};
use riverbed::flow::{BoxFlow, Flow, FlowEnd, FlowFactory};
use riverbed::pipeline::{ErrorPolicy, Pipeline};
use riverbed::queue::{MessageQueue, StartFrom};
use riverbed::reactive::ReactiveStream;
use riverbed::resilience::RetryPolicy;
use riverbed::runtime::{RuntimeExt, SharedRuntime};

/// The four kinds of flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bus,
    Reactive,
    Queue,
    Pipeline,
}

const KINDS: [Kind; 4] = [Kind::Bus, Kind::Reactive, Kind::Queue, Kind::Pipeline];

/// What a handler does with item `n`; shared by the four handler shapes.
type Script = Arc<dyn Fn(u32) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// A flow of one kind, and how to feed its source.
struct Fixture {
    flow: BoxFlow,
    feed: Box<dyn Fn(u32) -> BoxFuture<'static, ()>>,
    /// Ends the source, where the source can end (not a queue's).
    end: Box<dyn Fn()>,
    /// The queue, to see what went back to the group.
    queue: Option<MessageQueue<u32>>,
}

fn fixture(kind: Kind, rt: &SharedRuntime, script: Script) -> Fixture {
    match kind {
        Kind::Bus => {
            let bus: EventBus<u32, &'static str> = EventBus::builder().clock(rt.clone()).build();
            let flow = bus
                .on(Filter::all(), move |event| script(event.payload))
                .concurrency(2)
                .name("flow");
            let (feeder, closer) = (bus.clone(), bus);
            Fixture {
                flow: Box::new(flow),
                feed: Box::new(move |n| {
                    let bus = feeder.clone();
                    async move {
                        bus.emit("item", n).await.unwrap();
                    }
                    .boxed()
                }),
                end: Box::new(move || closer.close()),
                queue: None,
            }
        }
        Kind::Reactive => {
            let stream: ReactiveStream<u32> = ReactiveStream::new("items");
            let flow = stream.on(move |n| script(n)).concurrency(2).name("flow");
            let (feeder, closer) = (stream.clone(), stream);
            Fixture {
                flow: Box::new(flow),
                feed: Box::new(move |n| {
                    let stream = feeder.clone();
                    async move { stream.emit(n).await.unwrap() }.boxed()
                }),
                end: Box::new(move || closer.complete().unwrap()),
                queue: None,
            }
        }
        Kind::Queue => {
            // One attempt: a failure goes to dead letters at once, counted once.
            let queue: MessageQueue<u32> = MessageQueue::builder("items", rt)
                .retry(RetryPolicy::default().max_attempts(1))
                .build();
            let flow = queue
                .consumer("g", move |n: u32| script(n))
                .workers(2)
                .claim_batch(1)
                .start_from(StartFrom::Earliest)
                .name("flow");
            let feeder = queue.clone();
            Fixture {
                flow: Box::new(flow),
                feed: Box::new(move |n| {
                    let queue = feeder.clone();
                    async move {
                        queue.send(n).await.unwrap();
                    }
                    .boxed()
                }),
                end: Box::new(|| {}),
                queue: Some(queue),
            }
        }
        Kind::Pipeline => {
            let (tx, rx) = async_channel::unbounded::<u32>();
            let flow = Pipeline::<u32>::new("flow")
                .stage_with(
                    move |n: u32, _ctx: FlowContext| {
                        let run = script(n);
                        async move { run.await.map(|()| Some(n)) }
                    },
                    |stage| stage.concurrency(2).on_error(ErrorPolicy::skip()),
                )
                .flow_from(rx);
            let closer = tx.clone();
            Fixture {
                flow: Box::new(flow),
                feed: Box::new(move |n| {
                    let tx = tx.clone();
                    async move { tx.send(n).await.unwrap() }.boxed()
                }),
                end: Box::new(move || {
                    closer.close();
                }),
                queue: None,
            }
        }
    }
}

/// The grace period: exact on the virtual clock, generous on real ones, where the
/// test waits it out once per flow for the handler that never finishes.
fn grace(rt: &SharedRuntime) -> Duration {
    if is_virtual(rt) {
        Duration::from_secs(5)
    } else {
        Duration::from_millis(800)
    }
}

fn is_virtual(rt: &SharedRuntime) -> bool {
    format!("{rt:?}").starts_with("VirtualRuntime")
}

/// Item 0 finishes when the gate opens, item 1 never finishes, the rest finish at
/// once; each start is announced.
fn stuck_script(
    started: async_channel::Sender<u32>,
    gate: async_channel::Receiver<()>,
    finished: Arc<Mutex<Vec<u32>>>,
) -> Script {
    Arc::new(move |n| {
        let (started, gate, finished) = (started.clone(), gate.clone(), finished.clone());
        async move {
            started.send(n).await.unwrap();
            match n {
                0 => gate.recv().await.unwrap(),
                1 => std::future::pending::<()>().await,
                _ => {}
            }
            finished.lock().unwrap().push(n);
            Ok(())
        }
        .boxed()
    })
}

async fn stop_with_grace(kind: Kind, rt: &SharedRuntime) {
    let (started_tx, started) = async_channel::unbounded();
    let (open, gate) = async_channel::bounded(1);
    let finished = Arc::new(Mutex::new(Vec::new()));
    let script = stuck_script(started_tx, gate, Arc::clone(&finished));
    let Fixture {
        flow, feed, queue, ..
    } = fixture(kind, rt, script);
    let stop = flow.stop_handle();
    let stats = flow.stats();
    let running = rt.spawn(flow.start(Some(rt.clone())));
    for n in 0..3 {
        feed(n).await;
    }
    // Both handlers run (the limit is two); item 2 waits in the source.
    let mut first_two = vec![started.recv().await.unwrap(), started.recv().await.unwrap()];
    first_two.sort_unstable();
    assert_eq!(first_two, [0, 1], "{kind:?}");
    assert_eq!(stats.snapshot().in_flight, 2, "{kind:?}");

    let asked: Instant = rt.now();
    let grace = grace(rt);
    stop.stop(grace);
    // Within the grace period, item 0 is let go and finishes.
    open.send(()).await.unwrap();
    let report = running.await.unwrap();
    let took = rt.now().saturating_duration_since(asked);

    assert_eq!(report.end, FlowEnd::Stopped, "{kind:?}");
    let s = &report.stats;
    assert_eq!(
        (s.handled, s.cancelled, s.failed, s.panicked, s.in_flight),
        (1, 1, 0, 0, 0),
        "{kind:?}: {s:?}"
    );
    assert_eq!(*finished.lock().unwrap(), [0], "{kind:?}");
    assert!(started.try_recv().is_err(), "{kind:?}: item 2 was taken");
    if is_virtual(rt) {
        // Cancelled exactly at the deadline.
        assert_eq!(took, grace, "{kind:?}");
    } else {
        assert!(took >= grace, "{kind:?}: cancelled after {took:?}");
    }
    assert_eq!(stats.snapshot(), report.stats, "{kind:?}");
    if let Some(queue) = queue {
        // The cancelled message and the one never taken are back in the group, as
        // first deliveries: nothing lost, nothing counted against them.
        let mut back = queue.consume("g").await.unwrap();
        let mut seen = Vec::new();
        for _ in 0..2 {
            let delivery = back.next().await.unwrap().unwrap();
            seen.push((*delivery.message(), delivery.lease().attempt()));
            delivery.ack().await.unwrap();
        }
        seen.sort_unstable();
        assert_eq!(seen, [(1, 1), (2, 1)]);
    }
}

async fn failures_are_counted_alike(kind: Kind, rt: &SharedRuntime) {
    let script: Script = Arc::new(|n| {
        async move {
            match n {
                1 => Err("one fails".to_owned()),
                2 => panic!("two panics"),
                _ => Ok(()),
            }
        }
        .boxed()
    });
    let Fixture {
        flow, feed, end, ..
    } = fixture(kind, rt, script);
    let stop = flow.stop_handle();
    let running = rt.spawn(flow.start(Some(rt.clone())));
    for n in 0..5 {
        feed(n).await;
    }
    end();
    if kind == Kind::Queue {
        // A queue has no end: drain it, then stop.
        stop.stop_when_idle(Duration::from_secs(5));
    }
    let report = running.await.unwrap();
    let expected = if kind == Kind::Queue {
        FlowEnd::Stopped
    } else {
        FlowEnd::Finished
    };
    assert_eq!(report.end, expected, "{kind:?}");
    let s = &report.stats;
    assert_eq!(
        (s.handled, s.failed, s.panicked, s.cancelled),
        (3, 1, 1, 0),
        "{kind:?}: {s:?}"
    );
    let mut messages: Vec<(&str, bool)> = s
        .recent_failures
        .iter()
        .map(|f| (f.message.as_str(), f.panicked))
        .collect();
    messages.sort_unstable();
    assert_eq!(
        messages,
        [("one fails", false), ("panicked: two panics", true)],
        "{kind:?}"
    );
    let name = s.name.as_str();
    assert!(s.recent_failures.iter().all(|f| f.flow == name), "{kind:?}");
    if kind == Kind::Pipeline {
        // A pipeline names the item by its context's flow id and the stage.
        for failure in &s.recent_failures {
            assert!(
                failure.item.starts_with("flow ") && failure.item.contains(", stage \""),
                "{failure:?}"
            );
        }
    }
}

async fn a_handler_can_stop_its_own_flow(kind: Kind, rt: &SharedRuntime) {
    // Through the context form of each kind: the handler of item 1 asks for the stop.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let (flow, feed): (BoxFlow, Box<dyn Fn(u32) -> BoxFuture<'static, ()>>) = match kind {
        Kind::Bus => {
            let bus: EventBus<u32, &'static str> = EventBus::builder().clock(rt.clone()).build();
            let flow = bus.on_with_context(Filter::all(), move |event, stop| {
                record.lock().unwrap().push(event.payload);
                if event.payload == 1 {
                    stop.stop_flow();
                }
                async {}
            });
            (
                Box::new(flow),
                Box::new(move |n| {
                    let bus = bus.clone();
                    async move {
                        bus.emit("item", n).await.unwrap();
                    }
                    .boxed()
                }),
            )
        }
        Kind::Reactive => {
            let stream: ReactiveStream<u32> = ReactiveStream::new("items");
            let flow = stream.on_with_context(move |n, stop| {
                record.lock().unwrap().push(n);
                if n == 1 {
                    stop.stop_flow();
                }
                async {}
            });
            (
                Box::new(flow),
                Box::new(move |n| {
                    let stream = stream.clone();
                    async move { stream.emit(n).await.unwrap() }.boxed()
                }),
            )
        }
        Kind::Queue => {
            let queue: MessageQueue<u32> = MessageQueue::new("items", rt);
            let flow = queue
                .consumer_with_context("g", move |n: u32, cx| {
                    assert_eq!(cx.attempt(), 1);
                    record.lock().unwrap().push(n);
                    if n == 1 {
                        cx.stop().stop_flow();
                    }
                    async {}
                })
                .claim_batch(1)
                .start_from(StartFrom::Earliest);
            (
                Box::new(flow),
                Box::new(move |n| {
                    let queue = queue.clone();
                    async move {
                        queue.send(n).await.unwrap();
                    }
                    .boxed()
                }),
            )
        }
        // A pipeline's processors see their item's `FlowContext`; a stop comes
        // through the flow's handle only.
        Kind::Pipeline => return,
    };
    // Items 0 and 1 are fed before the flow runs, 2 after it stopped.
    feed(0).await;
    feed(1).await;
    let report = flow.start(Some(rt.clone())).await;
    assert_eq!(report.end, FlowEnd::Stopped, "{kind:?}");
    assert_eq!(report.stats.handled, 2, "{kind:?}");
    assert_eq!(*seen.lock().unwrap(), [0, 1], "{kind:?}");
}

timed_matrix! {
    /// Stop with grace: the running handler that finishes in time is handled, the one
    /// that does not is cancelled at the deadline, nothing else is taken.
    async fn stop_with_grace_is_the_same_for_every_flow(rt) {
        for kind in KINDS {
            stop_with_grace(kind, &rt).await;
        }
    }

    /// Errors and panics are counted, kept and survived the same way by every flow.
    async fn errors_and_panics_are_counted_alike(rt) {
        for kind in KINDS {
            failures_are_counted_alike(kind, &rt).await;
        }
    }

    /// A handler sees its flow's stop signal and can stop its own flow.
    async fn a_handler_stops_its_own_flow(rt) {
        for kind in KINDS {
            a_handler_can_stop_its_own_flow(kind, &rt).await;
        }
    }

    /// A factory makes fresh flows: the second runs after the first stopped.
    async fn a_factory_makes_a_fresh_flow_each_time(rt) {
        let stream: ReactiveStream<u32> = ReactiveStream::new("items");
        let total = Arc::new(Mutex::new(0));
        let (source, sum) = (stream.clone(), Arc::clone(&total));
        let factory = move || {
            let sum = Arc::clone(&sum);
            source.on(move |n| {
                *sum.lock().unwrap() += n;
                async {}
            })
        };
        for round in 1..=2 {
            let flow = factory.make();
            let stop = flow.stop_handle();
            let running = rt.spawn(flow.start(None));
            stream.emit(round).await.unwrap();
            stop.stop_when_idle(Duration::ZERO);
            let report = running.await.unwrap();
            assert!(report.is_stopped());
            assert_eq!(report.stats.handled, 1);
        }
        assert_eq!(*total.lock().unwrap(), 3);
    }
}
