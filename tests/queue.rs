//! The `MessageQueue` promises: behaviour on every runtime flavour, exact times on the
//! virtual clock.

#[path = "shared/answers.rs"]
mod answers;
#[path = "shared/behaviour.rs"]
#[macro_use]
mod behaviour;

use behaviour::next;
mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use common::matrix;
use riverbed::queue::{MemoryBackend, MessageQueue, QueueError, StartFrom};
use riverbed::resilience::{Jitter, RetryPolicy};
use riverbed::runtime::{Runtime, RuntimeExt, SharedRuntime, VirtualRuntime};
use serde::{Deserialize, Serialize};

type Jobs = MessageQueue<u32>;

fn policy(attempts: u32, delay_ms: u64) -> RetryPolicy {
    RetryPolicy::constant(Duration::from_millis(delay_ms)).max_attempts(attempts)
}

matrix! {
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
}

/// Runs each shared behaviour body on the memory backend, on every runtime.
macro_rules! on_memory {
    ($kind:ident: $($name:ident),* $(,)?) => {
        matrix! {
            $(
                async fn $name(rt) {
                    behaviour::$name(rt.clone(), Arc::new(MemoryBackend::new())).await
                }
            )*
        }
    };
}

queue_behaviour!(on_memory);

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
fn a_late_answer_does_not_reach_across_a_requeue() {
    on_virtual_clock(|rt, _| {
        answers::a_late_answer_does_not_reach_across_a_requeue(rt, Arc::new(MemoryBackend::new()))
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
