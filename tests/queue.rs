//! The `MessageQueue` promises: behaviour on every runtime flavour, exact times on the
//! virtual clock.

#[path = "shared/answers.rs"]
mod answers;
mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use common::matrix;
use futures::future::FutureExt;
use futures::{SinkExt, StreamExt};
use riverbed::FlowContext;
use riverbed::queue::backend::NewMessage;
use riverbed::queue::{
    Backend, Deliveries, Delivery, MemoryBackend, MessageQueue, Postcard, QueueError, StartFrom,
};
use riverbed::resilience::{Jitter, RetryPolicy};
use riverbed::runtime::{Runtime, RuntimeExt, SharedRuntime, VirtualRuntime};
use serde::{Deserialize, Serialize};

type Jobs = MessageQueue<u32>;

/// The next delivery, which must come.
async fn next<M: serde::de::DeserializeOwned + Send + 'static>(
    stream: &mut Deliveries<M, Postcard>,
) -> Delivery<M> {
    stream
        .next()
        .await
        .expect("a queue stream does not end")
        .expect("no backend error")
}

/// What `stream` has ready now, without waiting (answering nothing).
fn ready_now<M: serde::de::DeserializeOwned + Send + 'static>(
    stream: &mut Deliveries<M, Postcard>,
) -> Vec<Delivery<M>> {
    let mut out = Vec::new();
    while let Some(Some(Ok(delivery))) = stream.next().now_or_never() {
        out.push(delivery);
    }
    out
}

fn policy(attempts: u32, delay_ms: u64) -> RetryPolicy {
    RetryPolicy::constant(Duration::from_millis(delay_ms)).max_attempts(attempts)
}

matrix! {
    /// The producer's `FlowContext` travels with the message: a delivery and a
    /// consumer's handler see its flow id, user id and attributes, on every attempt; a
    /// message sent without one has none.
    async fn the_producers_context_travels_with_the_message(rt) {
        let queue = Jobs::new("jobs", &rt);
        let mut workers = queue.consume("workers").await.unwrap();
        let ctx = FlowContext::new().with_user_id("ada").with_attribute("order", "17");
        queue.send(1).with_context(ctx.clone()).await.unwrap();
        queue.send(2).await.unwrap();
        let first = next(&mut workers).await;
        assert_eq!(first.context(), Some(&ctx));
        first.retry("once more").await.unwrap();
        let second = next(&mut workers).await;
        assert_eq!(*second.message(), 2);
        assert_eq!(second.context(), None);
        second.ack().await.unwrap();
        drop(workers);

        // The retried message, now in a handler's context.
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        let report = queue
            .consumer_with_context("workers", move |n: u32, cx| {
                record.lock().unwrap().push((
                    n,
                    cx.attempt(),
                    cx.flow_context().map(|c| (c.flow_id().to_owned(), c.user_id().map(str::to_owned))),
                    cx.flow_context().and_then(|c| c.attribute("order").map(str::to_owned)),
                ));
                cx.stop().stop_flow();
                async {}
            })
            .claim_batch(1)
            .await;
        assert!(report.is_stopped(), "{report:?}");
        assert_eq!(
            *seen.lock().unwrap(),
            [(1, 2, Some((ctx.flow_id().to_owned(), Some("ada".to_owned()))), Some("17".to_owned()))]
        );
    }

    async fn send_consume_ack_and_stats(rt) {
        let queue = Jobs::new("jobs", &rt);
        let mut workers = queue.consume("workers").await.unwrap();
        let ids = queue.send_batch([1, 2, 3]).await.unwrap();
        assert_eq!(ids, [0, 1, 2]);
        for expected in 1..=3 {
            let delivery = next(&mut workers).await;
            assert_eq!(*delivery.message(), expected);
            assert_eq!(delivery.lease().attempt(), 1);
            delivery.ack().await.unwrap();
        }
        let stats = queue.stats().await.unwrap();
        let group = stats.group("workers").unwrap();
        assert_eq!((group.depth, group.in_flight, group.delivered, group.acked), (0, 0, 3, 3));
        assert_eq!(group.latency.count, 3);
    }

    async fn workers_of_one_group_compete_and_groups_fan_out(rt) {
        let queue = Jobs::new("jobs", &rt);
        let mut a = queue.consume("billing").await.unwrap().claim_batch(1);
        let mut b = queue.consume("billing").await.unwrap().claim_batch(1);
        let mut audit = queue.consume("audit").await.unwrap();
        queue.send_batch(0..10).await.unwrap();
        let mut billed = Vec::new();
        for _ in 0..5 {
            for stream in [&mut a, &mut b] {
                let delivery = next(stream).await;
                billed.push(*delivery.message());
                delivery.ack().await.unwrap();
            }
        }
        billed.sort_unstable();
        assert_eq!(billed, (0..10).collect::<Vec<_>>(), "each message once per group");
        assert!(ready_now(&mut a).is_empty() && ready_now(&mut b).is_empty());
        let mut audited = Vec::new();
        for _ in 0..10 {
            let delivery = next(&mut audit).await;
            audited.push(*delivery.message());
            delivery.ack().await.unwrap();
        }
        assert_eq!(audited, (0..10).collect::<Vec<_>>(), "every group gets every message");
    }

    async fn a_later_group_starts_where_its_creator_says(rt) {
        let queue = Jobs::new("jobs", &rt);
        let mut first = queue.consume("first").await.unwrap();
        queue.send_batch([1, 2]).await.unwrap();
        let mut latest = queue.consume_from("latest", StartFrom::Latest).await.unwrap();
        // A group's first consumer starts from the earliest message by default.
        let mut earliest = queue.consume("earliest").await.unwrap();
        queue.send(3).await.unwrap();
        assert_eq!(*next(&mut latest).await.message(), 3);
        let mut from_start = Vec::new();
        for _ in 0..3 {
            let delivery = next(&mut earliest).await;
            from_start.push(*delivery.message());
            delivery.ack().await.unwrap();
        }
        assert_eq!(from_start, [1, 2, 3]);
        for _ in 0..3 {
            next(&mut first).await.ack().await.unwrap();
        }
    }

    /// Jobs sent before any worker ran wait for it: kept while no group exists,
    /// counted as held, and handed to the first consumer.
    async fn jobs_sent_before_any_group_wait_for_the_first_consumer(rt) {
        let queue = Jobs::new("jobs", &rt);
        queue.send_batch([1, 2, 3]).await.unwrap();
        let stats = queue.stats().await.unwrap();
        assert_eq!((stats.held, stats.groups.len()), (3, 0));
        let mut workers = queue.consume("workers").await.unwrap();
        let mut got = Vec::new();
        for _ in 0..3 {
            let delivery = next(&mut workers).await;
            got.push(*delivery.message());
            delivery.ack().await.unwrap();
        }
        assert_eq!(got, [1, 2, 3]);
        assert_eq!(queue.stats().await.unwrap().held, 0);
    }

    async fn memory_backend_applies_backpressure(rt) {
        let queue: Jobs = MessageQueue::builder("jobs", &rt)
            .backend(MemoryBackend::with_capacity(2))
            .build();
        let mut workers = queue.consume("workers").await.unwrap();
        queue.send(1).await.unwrap();
        queue.send(2).await.unwrap();
        // Full: the third send waits until a message is done.
        let third = {
            let queue = queue.clone();
            rt.spawn(async move { queue.send(3).await.map_err(|e| e.to_string()) })
        };
        let first = next(&mut workers).await;
        assert_eq!(*first.message(), 1);
        assert!(!third.is_finished());
        first.ack().await.unwrap();
        third.await.unwrap().unwrap();
        assert_eq!(*next(&mut workers).await.message(), 2);
    }

    async fn handler_mode_acks_retries_and_dead_letters(rt) {
        let queue: Jobs = MessageQueue::builder("jobs", &rt).retry(policy(3, 0)).build();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&calls);
        let consumer = queue
            .consumer("work", move |n: u32| {
                log.lock().unwrap().push(n);
                async move {
                    match n {
                        13 => panic!("thirteen"),
                        7 => Err("seven is bad".to_string()),
                        _ => Ok(()),
                    }
                }
            })
            .workers(3);
        let stop = consumer.stop_handle();
        let flow = consumer.spawn(&rt);
        queue.create_group("work", StartFrom::Latest).await.unwrap();
        queue.send_batch([1, 7, 2, 13, 3]).await.unwrap();
        // Drain what is there (retries come back at once: no backoff), then stop.
        stop.stop_when_idle(Duration::from_secs(5));
        assert!(flow.await.unwrap().is_stopped());
        let calls = calls.lock().unwrap().clone();
        assert_eq!(calls.iter().filter(|&&n| n == 7).count(), 3, "3 attempts");
        assert_eq!(calls.iter().filter(|&&n| n == 13).count(), 3);
        assert_eq!(calls.iter().filter(|&&n| n == 1).count(), 1);
        let dead = queue.dead_letters("work", 10).await.unwrap();
        let mut summary: Vec<_> = dead
            .iter()
            .map(|d| (d.message.clone().unwrap(), d.attempts, d.error.clone()))
            .collect();
        summary.sort();
        assert_eq!(
            summary,
            [
                (7, 3, "seven is bad".to_string()),
                (13, 3, "handler panicked: thirteen".to_string())
            ]
        );
        let stats = queue.stats().await.unwrap();
        let work = stats.group("work").unwrap();
        assert_eq!((work.acked, work.dead_lettered, work.dead_letters), (3, 2, 2));
        assert_eq!(work.nacked, 4);
        // Workers count deliveries and latencies per batch; the stop flushes them.
        assert_eq!(work.delivered, calls.len() as u64);
        assert_eq!((work.redelivered, work.latency.count), (0, 3));
    }

    async fn dead_letters_can_be_requeued(rt) {
        let queue: Jobs = MessageQueue::builder("jobs", &rt).retry(RetryPolicy::never()).build();
        let mut stream = queue.consume("g").await.unwrap();
        queue.send_batch([5, 6]).await.unwrap();
        let five = next(&mut stream).await;
        five.retry("no luck").await.unwrap();
        let six = next(&mut stream).await;
        six.ack().await.unwrap();
        let dead = queue.dead_letters("g", 10).await.unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!((dead[0].message.clone().unwrap(), dead[0].error.as_str()), (5, "no luck"));
        assert!(queue.requeue("g", dead[0].id).await.unwrap());
        assert!(!queue.requeue("g", dead[0].id).await.unwrap(), "requeued once");
        let again = next(&mut stream).await;
        assert_eq!((*again.message(), again.lease().attempt()), (5, 1));
        assert_eq!(again.lease().last_error(), Some("no luck"));
        again.ack().await.unwrap();
        assert!(queue.dead_letters("g", 10).await.unwrap().is_empty());
    }

    async fn a_payload_that_does_not_decode_goes_to_dead_letters(rt) {
        #[derive(Serialize, Deserialize, Debug, PartialEq)]
        struct Order {
            sku: String,
            quantity: u32,
        }
        let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
        let orders: MessageQueue<Order> =
            MessageQueue::builder("orders", &rt).shared_backend(Arc::clone(&backend)).build();
        let raw: MessageQueue<Vec<u8>> =
            MessageQueue::builder("orders", &rt).shared_backend(backend).build();
        let mut stream = orders.consume("shipping").await.unwrap();
        // Bytes that are not an `Order`, then a good one: the bad one does not block it.
        raw.send(vec![0xff; 3]).await.unwrap();
        orders.send(Order { sku: "A-1".into(), quantity: 2 }).await.unwrap();
        let good = next(&mut stream).await;
        assert_eq!(good.message(), &Order { sku: "A-1".into(), quantity: 2 });
        good.ack().await.unwrap();
        let dead = orders.dead_letters("shipping", 10).await.unwrap();
        assert_eq!(dead.len(), 1);
        assert!(dead[0].error.starts_with("decode error: postcard codec:"), "{}", dead[0].error);
        assert!(dead[0].message.is_err());
        assert_eq!(dead[0].attempts, 1);
    }

    /// A message whose stored flow context does not decode is not handed out with a
    /// made-up context: it goes to dead letters, saying so, and the next one comes.
    async fn a_context_that_does_not_decode_goes_to_dead_letters(rt) {
        let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
        let queue: Jobs =
            MessageQueue::builder("jobs", &rt).shared_backend(Arc::clone(&backend)).build();
        let mut stream = queue.consume("g").await.unwrap();
        let raw = NewMessage {
            payload: postcard::to_stdvec(&5u32).unwrap().into(),
            enqueued_at: rt.system_time(),
            not_before: None,
            context: Some(vec![0xff; 3].into()),
        };
        backend.append(vec![raw]).await.unwrap();
        queue.send(6).await.unwrap();
        let good = next(&mut stream).await;
        assert_eq!(*good.message(), 6);
        good.ack().await.unwrap();
        let dead = queue.dead_letters("g", 10).await.unwrap();
        assert_eq!(dead.len(), 1);
        assert!(
            dead[0].error.starts_with("decode error: postcard codec: its flow context:"),
            "{}",
            dead[0].error
        );
        assert_eq!(dead[0].message.as_ref().ok(), Some(&5));
    }

    async fn a_delivery_dropped_without_an_answer_comes_back(rt) {
        let queue: Jobs = MessageQueue::builder("jobs", &rt).retry(policy(3, 0)).build();
        let mut stream = queue.consume("g").await.unwrap();
        queue.send(9).await.unwrap();
        drop(next(&mut stream).await);
        let again = next(&mut stream).await;
        assert_eq!((*again.message(), again.lease().attempt()), (9, 2));
        assert_eq!(again.lease().last_error(), Some("dropped without an answer"));
        again.ack().await.unwrap();
    }

    async fn any_stream_forwards_into_the_queue_sink(rt) {
        let queue = Jobs::new("jobs", &rt);
        let mut stream = queue.consume("g").await.unwrap();
        let mut sink = queue.sink(16);
        sink.send_all(&mut futures::stream::iter((0..40).map(Ok))).await.unwrap();
        sink.close().await.unwrap();
        let mut seen = Vec::new();
        for _ in 0..40 {
            let delivery = next(&mut stream).await;
            seen.push(*delivery.message());
            delivery.ack().await.unwrap();
        }
        assert_eq!(seen, (0..40).collect::<Vec<_>>());
    }

    async fn consumers_on_many_tasks_handle_each_message_once(rt) {
        let queue: Jobs = MessageQueue::builder("jobs", &rt)
            .backend(MemoryBackend::with_capacity(64))
            .build();
        queue.create_group("g", StartFrom::Latest).await.unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut flows = Vec::new();
        let mut stops = Vec::new();
        for _ in 0..3 {
            let log = Arc::clone(&seen);
            let consumer = queue
                .consumer("g", move |n: u32| {
                    log.lock().unwrap().push(n);
                    async {}
                })
                .workers(4);
            stops.push(consumer.stop_handle());
            flows.push(consumer.spawn(&rt));
        }
        // More than the capacity: sends wait for acknowledgements.
        for n in 0..500 {
            queue.send(n).await.unwrap();
        }
        for stop in &stops {
            stop.stop_when_idle(Duration::from_secs(5));
        }
        for flow in flows {
            assert!(flow.await.unwrap().is_stopped());
        }
        let mut seen = seen.lock().unwrap().clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..500).collect::<Vec<_>>());
    }
}

/// Runs `body` on a fresh virtual clock, with the time it started.
fn on_virtual_clock<F, Fut>(body: F)
where
    F: FnOnce(SharedRuntime, SystemTime) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let clock = VirtualRuntime::new();
    let rt: SharedRuntime = Arc::new(clock.clone());
    let start = rt.system_time();
    clock.block_on(body(rt, start));
}

/// Milliseconds of virtual time since `start`.
fn ms_since(rt: &SharedRuntime, start: SystemTime) -> u128 {
    rt.system_time().duration_since(start).unwrap().as_millis()
}

#[test]
fn delayed_messages_come_at_their_time() {
    on_virtual_clock(|rt, start| async move {
        let queue = Jobs::new("jobs", &rt);
        let mut stream = queue.consume("g").await.unwrap();
        queue
            .send_delayed(1, Duration::from_millis(500))
            .await
            .unwrap();
        queue.send(2).await.unwrap();
        queue
            .send_delayed(3, Duration::from_millis(200))
            .await
            .unwrap();
        let mut seen = Vec::new();
        for _ in 0..3 {
            let delivery = next(&mut stream).await;
            seen.push((*delivery.message(), ms_since(&rt, start)));
            delivery.ack().await.unwrap();
        }
        assert_eq!(seen, [(2, 0), (3, 200), (1, 500)]);
    });
}

#[test]
fn nack_and_backoff_redeliver_at_exact_times() {
    on_virtual_clock(|rt, start| async move {
        let retry = RetryPolicy::exponential(Duration::from_millis(100))
            .max_attempts(4)
            .jitter(Jitter::None);
        let queue: Jobs = MessageQueue::builder("jobs", &rt).retry(retry).build();
        let mut stream = queue.consume("g").await.unwrap();
        queue.send(1).await.unwrap();
        let mut times = Vec::new();
        // Three failures with the policy's backoff: 100, 200, 400 ms apart.
        for _ in 0..3 {
            let delivery = next(&mut stream).await;
            times.push((delivery.lease().attempt(), ms_since(&rt, start)));
            delivery.retry("failing").await.unwrap();
        }
        // The fourth and last attempt is nacked with an explicit delay: the policy
        // has no attempt left, so it goes to dead letters instead.
        let last = next(&mut stream).await;
        times.push((last.lease().attempt(), ms_since(&rt, start)));
        last.nack(Duration::from_millis(50)).await.unwrap();
        assert_eq!(times, [(1, 0), (2, 100), (3, 300), (4, 700)]);
        let dead = queue.dead_letters("g", 1).await.unwrap();
        assert_eq!(
            (dead[0].attempts, dead[0].error.as_str()),
            (4, "nacked on attempt 4")
        );
        assert_eq!(
            dead[0].dead_at.duration_since(start).unwrap().as_millis(),
            700
        );

        // An explicit nack delay is used as given while attempts remain.
        queue.send(2).await.unwrap();
        let first = next(&mut stream).await;
        let sent = ms_since(&rt, start);
        first.nack(Duration::from_millis(250)).await.unwrap();
        let again = next(&mut stream).await;
        assert_eq!(ms_since(&rt, start) - sent, 250);
        again.ack().await.unwrap();
    });
}

/// As `futures`' own futures: polling a send after it finished is the caller's bug,
/// and panics, rather than making up a storage failure.
#[test]
#[should_panic(expected = "`SendFuture` polled after completion")]
fn a_send_polled_after_it_finished_panics_as_futures_do() {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    let rt: SharedRuntime = Arc::new(VirtualRuntime::new());
    let queue = Jobs::new("jobs", &rt);
    let mut send = queue.send(1);
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    assert!(matches!(
        Pin::new(&mut send).poll(&mut cx),
        Poll::Ready(Ok(0))
    ));
    let _ = Pin::new(&mut send).poll(&mut cx);
}

/// A send error says what caused it, through `source()`.
#[test]
fn a_send_error_gives_its_cause() {
    use std::error::Error;

    struct Unencodable;
    impl Serialize for Unencodable {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("no bytes for this"))
        }
    }
    impl<'de> Deserialize<'de> for Unencodable {
        fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
            Ok(Unencodable)
        }
    }
    impl std::fmt::Debug for Unencodable {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Unencodable")
        }
    }

    on_virtual_clock(|rt, _| async move {
        let queue: MessageQueue<Unencodable> = MessageQueue::new("odd", &rt);
        let error = queue.send(Unencodable).await.unwrap_err();
        let cause = error.source().expect("the codec's error");
        let codec = cause
            .downcast_ref::<riverbed::queue::CodecError>()
            .expect("a CodecError");
        assert_eq!(codec.codec, "postcard");
        assert!(error.into_inner().is_some(), "the message is handed back");
    });
}

#[test]
fn a_late_ack_is_reported_and_not_counted() {
    on_virtual_clock(|rt, _| {
        answers::a_late_ack_is_reported_and_not_counted(rt, Arc::new(MemoryBackend::new()))
    });
}

#[test]
fn every_late_answer_is_reported() {
    on_virtual_clock(|rt, _| {
        answers::every_late_answer_is_reported(rt, Arc::new(MemoryBackend::new()))
    });
}

#[test]
fn an_expired_lease_is_delivered_again_at_its_end() {
    on_virtual_clock(|rt, start| async move {
        let queue: Jobs = MessageQueue::builder("jobs", &rt)
            .lease(Duration::from_secs(10))
            .build();
        let mut slow = queue.consume("g").await.unwrap().claim_batch(1);
        let mut other = queue.consume("g").await.unwrap().claim_batch(1);
        queue.send(42).await.unwrap();
        let mut held = next(&mut slow).await;
        // Extend once, by 5 s from 3 s in: the lease now ends at 8 s.
        rt.sleep(Duration::from_secs(3)).await;
        assert!(held.extend_lease(Duration::from_secs(5)).await.unwrap());
        let again = next(&mut other).await;
        assert_eq!(ms_since(&rt, start), 8_000);
        assert_eq!((*again.message(), again.lease().attempt()), (42, 2));
        // The old lease is gone: extending it fails, and dropping it unanswered does
        // not disturb the new delivery.
        assert!(!held.extend_lease(Duration::from_secs(1)).await.unwrap());
        drop(held);
        again.ack().await.unwrap();
        let stats = queue.stats().await.unwrap();
        assert_eq!(stats.group("g").unwrap().redelivered, 1);
    });
}

#[test]
fn graceful_stop_finishes_running_handlers_and_returns_the_rest() {
    on_virtual_clock(|rt, _start| async move {
        let queue: Jobs = MessageQueue::builder("jobs", &rt)
            .retry(policy(5, 0))
            .build();
        queue.create_group("g", StartFrom::Latest).await.unwrap();
        queue.send_batch([1, 2, 3, 4]).await.unwrap();
        let finished = Arc::new(Mutex::new(BTreeSet::new()));
        let (log, clock) = (Arc::clone(&finished), Arc::clone(&rt));
        // Items 1 and 2 take 1 s, 3 and 4 take 10 s; two workers.
        let consumer = queue
            .consumer("g", move |n: u32| {
                let (log, clock) = (Arc::clone(&log), Arc::clone(&clock));
                async move {
                    let secs = if n <= 2 { 1 } else { 10 };
                    clock.sleep(Duration::from_secs(secs)).await;
                    log.lock().unwrap().insert(n);
                }
            })
            .workers(2)
            .claim_batch(2);
        let stop = consumer.stop_handle();
        let flow = consumer.spawn(&rt);
        // At 1.5 s: 1 and 2 are done, 3 and 4 are running. Stop with 2 s of grace.
        rt.sleep(Duration::from_millis(1_500)).await;
        stop.stop(Duration::from_secs(2));
        let report = flow.await.unwrap();
        assert!(report.is_stopped());
        assert_eq!((report.stats.handled, report.stats.cancelled), (2, 1));
        assert_eq!(*finished.lock().unwrap(), BTreeSet::from([1, 2]));
        // 3 was cancelled and 4, claimed ahead, never started: both went back,
        // neither delivery counted. Nothing is lost.
        let mut stream = queue.consume("g").await.unwrap();
        let mut back = Vec::new();
        for _ in 0..2 {
            let delivery = next(&mut stream).await;
            back.push((*delivery.message(), delivery.lease().attempt()));
            delivery.ack().await.unwrap();
        }
        back.sort_unstable();
        assert_eq!(back, [(3, 1), (4, 1)]);
    });
}

#[test]
fn queue_errors_are_typed() {
    on_virtual_clock(|rt, _| async move {
        let queue = Jobs::new("jobs", &rt);
        let error = queue.dead_letters("nobody", 1).await.unwrap_err();
        assert!(matches!(error, QueueError::Backend(_)));
        assert_eq!(error.to_string(), "no consumer group \"nobody\"");
    });
}

#[test]
fn a_long_delayed_message_does_not_hold_a_bounded_queue_back() {
    on_virtual_clock(|rt, start| async move {
        let queue: Jobs = MessageQueue::builder("jobs", &rt)
            .backend(MemoryBackend::with_capacity(4))
            .build();
        let mut stream = queue.consume("g").await.unwrap();
        queue
            .send_delayed(0, Duration::from_secs(3600))
            .await
            .unwrap();
        // Far more than the capacity flows past it, at once.
        for n in 1..=20 {
            queue.send(n).await.unwrap();
            let delivery = next(&mut stream).await;
            assert_eq!(*delivery.message(), n);
            delivery.ack().await.unwrap();
        }
        assert_eq!(ms_since(&rt, start), 0);
        let late = next(&mut stream).await;
        assert_eq!((*late.message(), ms_since(&rt, start)), (0, 3_600_000));
        late.ack().await.unwrap();
    });
}

#[test]
fn a_slow_worker_claims_no_more_than_it_handles_within_a_lease() {
    on_virtual_clock(|rt, _start| async move {
        let queue: Jobs = MessageQueue::builder("jobs", &rt)
            .lease(Duration::from_secs(8))
            .build();
        queue.create_group("g", StartFrom::Latest).await.unwrap();
        queue.send_batch(0..12).await.unwrap();
        let clock = Arc::clone(&rt);
        // One second per message: a lease holds 8, a quarter of it 2.
        let consumer = queue.consumer("g", move |_n: u32| {
            let clock = Arc::clone(&clock);
            async move { clock.sleep(Duration::from_secs(1)).await }
        });
        let stop = consumer.stop_handle();
        let flow = consumer.spawn(&rt);
        let mut most_in_flight = 0;
        for _ in 0..10 {
            rt.sleep(Duration::from_millis(1_100)).await;
            let stats = queue.stats().await.unwrap();
            most_in_flight = most_in_flight.max(stats.group("g").unwrap().in_flight);
        }
        stop.stop_when_idle(Duration::from_secs(5));
        assert!(flow.await.unwrap().is_stopped());
        let stats = queue.stats().await.unwrap();
        let g = stats.group("g").unwrap();
        assert!(most_in_flight <= 2, "claimed {most_in_flight} ahead");
        // With a claim of more than 8 ahead, leases would have run out: redeliveries.
        assert_eq!((g.acked, g.redelivered), (12, 0));
    });
}
