//! The queue's behaviour on every backend: each body takes the runtime and the
//! backend, and runs from `tests/queue.rs` (memory) and `tests/queue_durable.rs`
//! (durable, a fresh store each) on every runtime of the matrix.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::FutureExt;
use futures::{SinkExt, StreamExt};
use riverbed::FlowContext;
use riverbed::queue::backend::NewMessage;
use riverbed::queue::{Backend, Deliveries, Delivery, MessageQueue, Postcard, StartFrom};
use riverbed::resilience::RetryPolicy;
use riverbed::runtime::{Runtime, SharedRuntime};
use serde::{Deserialize, Serialize};

type Jobs = MessageQueue<u32>;

/// The names of the bodies below, for the test files to run each on their backend:
/// `$with!(any: …)` gets the bodies for every runtime, `$with!(workers: …)` those
/// whose handler flows run several workers at once (on the virtual clock a durable
/// backend's commits, waited for on another thread, let their lease timers fire
/// early; see `DurableBackend`).
#[macro_export]
macro_rules! queue_behaviour {
    ($with:ident) => {
        $with!(
            any:
            the_producers_context_travels_with_the_message,
            send_consume_ack_and_stats,
            workers_of_one_group_compete_and_groups_fan_out,
            a_later_group_starts_where_its_creator_says,
            jobs_sent_before_any_group_wait_for_the_first_consumer,
            dead_letters_can_be_requeued,
            a_payload_that_does_not_decode_goes_to_dead_letters,
            a_context_that_does_not_decode_goes_to_dead_letters,
            a_delivery_dropped_without_an_answer_comes_back,
            any_stream_forwards_into_the_queue_sink,
        );
        $with!(
            workers:
            handler_mode_acks_retries_and_dead_letters,
            consumers_on_many_tasks_handle_each_message_once,
        );
    };
}

fn jobs(rt: &SharedRuntime, backend: &Arc<dyn Backend>) -> Jobs {
    jobs_retrying(rt, backend, RetryPolicy::default())
}

/// A queue of jobs on `backend` that retries failures as `retry` says.
fn jobs_retrying(rt: &SharedRuntime, backend: &Arc<dyn Backend>, retry: RetryPolicy) -> Jobs {
    MessageQueue::builder("jobs", rt)
        .shared_backend(Arc::clone(backend))
        .retry(retry)
        .build()
}

/// The next delivery, which must come.
pub async fn next<M: serde::de::DeserializeOwned + Send + 'static>(
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

pub async fn the_producers_context_travels_with_the_message(
    rt: SharedRuntime,
    backend: Arc<dyn Backend>,
) {
    let queue = jobs(&rt, &backend);
    let mut workers = queue.consume("workers").await.unwrap();
    let ctx = FlowContext::new()
        .with_user_id("ada")
        .with_attribute("order", "17");
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
                cx.flow_context()
                    .map(|c| (c.flow_id().to_owned(), c.user_id().map(str::to_owned))),
                cx.flow_context()
                    .and_then(|c| c.attribute("order").map(str::to_owned)),
            ));
            cx.stop().stop_flow();
            async {}
        })
        .claim_batch(1)
        .await;
    assert!(report.is_stopped(), "{report:?}");
    assert_eq!(
        *seen.lock().unwrap(),
        [(
            1,
            2,
            Some((ctx.flow_id().to_owned(), Some("ada".to_owned()))),
            Some("17".to_owned())
        )]
    );
}

pub async fn send_consume_ack_and_stats(rt: SharedRuntime, backend: Arc<dyn Backend>) {
    let queue = jobs(&rt, &backend);
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
    assert_eq!(
        (group.depth, group.in_flight, group.delivered, group.acked),
        (0, 0, 3, 3)
    );
    assert_eq!(group.latency.count, 3);
}

pub async fn workers_of_one_group_compete_and_groups_fan_out(
    rt: SharedRuntime,
    backend: Arc<dyn Backend>,
) {
    let queue = jobs(&rt, &backend);
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
    assert_eq!(
        billed,
        (0..10).collect::<Vec<_>>(),
        "each message once per group"
    );
    assert!(ready_now(&mut a).is_empty() && ready_now(&mut b).is_empty());
    let mut audited = Vec::new();
    for _ in 0..10 {
        let delivery = next(&mut audit).await;
        audited.push(*delivery.message());
        delivery.ack().await.unwrap();
    }
    assert_eq!(
        audited,
        (0..10).collect::<Vec<_>>(),
        "every group gets every message"
    );
}

pub async fn a_later_group_starts_where_its_creator_says(
    rt: SharedRuntime,
    backend: Arc<dyn Backend>,
) {
    let queue = jobs(&rt, &backend);
    let mut first = queue.consume("first").await.unwrap();
    queue.send_batch([1, 2]).await.unwrap();
    let mut latest = queue
        .consume_from("latest", StartFrom::Latest)
        .await
        .unwrap();
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

pub async fn jobs_sent_before_any_group_wait_for_the_first_consumer(
    rt: SharedRuntime,
    backend: Arc<dyn Backend>,
) {
    let queue = jobs(&rt, &backend);
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

pub async fn handler_mode_acks_retries_and_dead_letters(
    rt: SharedRuntime,
    backend: Arc<dyn Backend>,
) {
    let queue = jobs_retrying(&rt, &backend, policy(3, 0));
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
    assert_eq!(
        (work.acked, work.dead_lettered, work.dead_letters),
        (3, 2, 2)
    );
    assert_eq!(work.nacked, 4);
    // Workers count deliveries and latencies per batch; the stop flushes them.
    assert_eq!(work.delivered, calls.len() as u64);
    assert_eq!((work.redelivered, work.latency.count), (0, 3));
}

pub async fn dead_letters_can_be_requeued(rt: SharedRuntime, backend: Arc<dyn Backend>) {
    let queue = jobs_retrying(&rt, &backend, RetryPolicy::never());
    let mut stream = queue.consume("g").await.unwrap();
    queue.send_batch([5, 6]).await.unwrap();
    let five = next(&mut stream).await;
    five.retry("no luck").await.unwrap();
    let six = next(&mut stream).await;
    six.ack().await.unwrap();
    let dead = queue.dead_letters("g", 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].message.clone().unwrap(), dead[0].error.as_str()),
        (5, "no luck")
    );
    assert!(queue.requeue("g", dead[0].id).await.unwrap());
    assert!(
        !queue.requeue("g", dead[0].id).await.unwrap(),
        "requeued once"
    );
    // The delivery count goes on (a delivery's number is never reused); the retry
    // policy starts over: with no retries, one more failure is dead again.
    let again = next(&mut stream).await;
    assert_eq!((*again.message(), again.lease().attempt()), (5, 2));
    assert_eq!(again.lease().last_error(), Some("no luck"));
    again.retry("still no luck").await.unwrap();
    let dead = queue.dead_letters("g", 10).await.unwrap();
    assert_eq!((dead.len(), dead[0].attempts), (1, 2));
    assert!(queue.requeue("g", dead[0].id).await.unwrap());
    let third = next(&mut stream).await;
    assert_eq!(third.lease().attempt(), 3);
    third.ack().await.unwrap();
    assert!(queue.dead_letters("g", 10).await.unwrap().is_empty());
}

pub async fn a_payload_that_does_not_decode_goes_to_dead_letters(
    rt: SharedRuntime,
    backend: Arc<dyn Backend>,
) {
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Order {
        sku: String,
        quantity: u32,
    }
    let orders: MessageQueue<Order> = MessageQueue::builder("orders", &rt)
        .shared_backend(Arc::clone(&backend))
        .build();
    let raw: MessageQueue<Vec<u8>> = MessageQueue::builder("orders", &rt)
        .shared_backend(backend)
        .build();
    let mut stream = orders.consume("shipping").await.unwrap();
    // Bytes that are not an `Order`, then a good one: the bad one does not block it.
    raw.send(vec![0xff; 3]).await.unwrap();
    orders
        .send(Order {
            sku: "A-1".into(),
            quantity: 2,
        })
        .await
        .unwrap();
    let good = next(&mut stream).await;
    assert_eq!(
        good.message(),
        &Order {
            sku: "A-1".into(),
            quantity: 2
        }
    );
    good.ack().await.unwrap();
    let dead = orders.dead_letters("shipping", 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].error.starts_with("decode error: postcard codec:"),
        "{}",
        dead[0].error
    );
    assert!(dead[0].message.is_err());
    assert_eq!(dead[0].attempts, 1);
}

pub async fn a_context_that_does_not_decode_goes_to_dead_letters(
    rt: SharedRuntime,
    backend: Arc<dyn Backend>,
) {
    let queue: Jobs = MessageQueue::builder("jobs", &rt)
        .shared_backend(Arc::clone(&backend))
        .shared_backend(Arc::clone(&backend))
        .build();
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
        dead[0]
            .error
            .starts_with("decode error: postcard codec: its flow context:"),
        "{}",
        dead[0].error
    );
    assert_eq!(dead[0].message.as_ref().ok(), Some(&5));
}

pub async fn a_delivery_dropped_without_an_answer_comes_back(
    rt: SharedRuntime,
    backend: Arc<dyn Backend>,
) {
    let queue = jobs_retrying(&rt, &backend, policy(3, 0));
    let mut stream = queue.consume("g").await.unwrap();
    queue.send(9).await.unwrap();
    drop(next(&mut stream).await);
    let again = next(&mut stream).await;
    assert_eq!((*again.message(), again.lease().attempt()), (9, 2));
    assert_eq!(
        again.lease().last_error(),
        Some("dropped without an answer")
    );
    again.ack().await.unwrap();
}

pub async fn any_stream_forwards_into_the_queue_sink(rt: SharedRuntime, backend: Arc<dyn Backend>) {
    let queue = jobs(&rt, &backend);
    let mut stream = queue.consume("g").await.unwrap();
    let mut sink = queue.sink(16);
    sink.send_all(&mut futures::stream::iter((0..40).map(Ok)))
        .await
        .unwrap();
    sink.close().await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..40 {
        let delivery = next(&mut stream).await;
        seen.push(*delivery.message());
        delivery.ack().await.unwrap();
    }
    assert_eq!(seen, (0..40).collect::<Vec<_>>());
}

pub async fn consumers_on_many_tasks_handle_each_message_once(
    rt: SharedRuntime,
    backend: Arc<dyn Backend>,
) {
    let queue: Jobs = MessageQueue::builder("jobs", &rt)
        .shared_backend(Arc::clone(&backend))
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
