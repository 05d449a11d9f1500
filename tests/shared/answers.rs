//! Answers only answer for their own delivery, on every backend: the bodies here run
//! against the memory backend (`tests/queue.rs`) and the durable one
//! (`tests/queue_durable.rs`), on the virtual clock.

use std::sync::Arc;
use std::time::Duration;

use riverbed::queue::{Backend, MessageQueue, QueueError};

use crate::behaviour::next;
use riverbed::resilience::RetryPolicy;
use riverbed::runtime::SharedRuntime;

type Jobs = MessageQueue<u32>;

fn queue(rt: &SharedRuntime, backend: Arc<dyn Backend>) -> Jobs {
    MessageQueue::builder("jobs", rt)
        .shared_backend(backend)
        .lease(Duration::from_secs(10))
        .retry(RetryPolicy::constant(Duration::from_secs(1)).max_attempts(5))
        .build()
}

/// One message, a 10 s lease, not answered: it is delivered again at 10 s. Then the
/// first (expired) delivery's acknowledgement is a late answer that changes nothing
/// and is not counted as one; the second's acknowledges the message, once.
pub async fn a_late_ack_is_reported_and_not_counted(rt: SharedRuntime, backend: Arc<dyn Backend>) {
    let queue = queue(&rt, backend);
    let mut first_worker = queue.consume("g").await.unwrap().claim_batch(1);
    let mut second_worker = queue.consume("g").await.unwrap().claim_batch(1);
    queue.send(7).await.unwrap();
    let first = next(&mut first_worker).await;
    let start = rt.system_time();
    let second = next(&mut second_worker).await;
    assert_eq!(
        rt.system_time().duration_since(start).unwrap(),
        Duration::from_secs(10)
    );
    assert_eq!((second.lease().id(), second.lease().attempt()), (0, 2));

    assert_eq!(
        first.ack().await.unwrap_err(),
        QueueError::LateAnswer { id: 0, attempt: 1 }
    );
    // The late answer did not take the message from the delivery that holds it.
    let g = queue.stats().await.unwrap().group("g").unwrap().clone();
    assert_eq!(
        (g.in_flight, g.acked, g.late_answers, g.latency.count),
        (1, 0, 1, 0)
    );

    second.ack().await.unwrap();
    let g = queue.stats().await.unwrap().group("g").unwrap().clone();
    assert_eq!(
        (g.in_flight, g.depth, g.acked, g.late_answers),
        (0, 0, 1, 1)
    );
    assert_eq!(g.latency.count, 1, "one message, one latency sample");
}

/// `nack`, `retry`, `reject` and `extend_lease` of an expired delivery say so too and
/// change nothing: the message stays with the delivery that holds it, nothing is
/// retried, nothing dead-lettered.
pub async fn every_late_answer_is_reported(rt: SharedRuntime, backend: Arc<dyn Backend>) {
    let queue = queue(&rt, backend);
    let mut slow = queue.consume("g").await.unwrap().claim_batch(1);
    let mut other = queue.consume("g").await.unwrap().claim_batch(1);
    queue.send_batch([1, 2, 3, 4]).await.unwrap();
    let mut stale = Vec::new();
    for _ in 0..4 {
        stale.push(next(&mut slow).await);
    }
    // All four leases run out at 10 s; the other worker takes them all again.
    let mut current = Vec::new();
    for _ in 0..4 {
        current.push(next(&mut other).await);
    }
    assert!(current.iter().all(|d| d.lease().attempt() == 2));
    let mut stale = stale.into_iter();
    let late = |id| QueueError::LateAnswer { id, attempt: 1 };

    let mut extended = stale.next().unwrap();
    assert!(
        !extended
            .extend_lease(Duration::from_secs(30))
            .await
            .unwrap()
    );
    assert_eq!(extended.nack(Duration::ZERO).await.unwrap_err(), late(0));
    assert_eq!(
        stale.next().unwrap().retry("late").await.unwrap_err(),
        late(1)
    );
    assert_eq!(
        stale.next().unwrap().reject("late").await.unwrap_err(),
        late(2)
    );
    // Dropped unanswered, a stale delivery retries nothing either.
    drop(stale.next().unwrap());

    let g = queue.stats().await.unwrap().group("g").unwrap().clone();
    assert_eq!((g.in_flight, g.delayed, g.depth), (4, 0, 0), "{g:?}");
    assert_eq!(
        (g.nacked, g.dead_lettered, g.dead_letters, g.late_answers),
        (0, 0, 0, 4)
    );
    assert!(queue.dead_letters("g", 10).await.unwrap().is_empty());
    // Nothing of the late answers reached the current deliveries: they answer as usual.
    for delivery in current {
        delivery.ack().await.unwrap();
    }
    let g = queue.stats().await.unwrap().group("g").unwrap().clone();
    assert_eq!((g.in_flight, g.acked, g.late_answers), (0, 4, 4));
}

/// A requeued message never reuses a delivery's number: a late answer of a delivery
/// from before it was dead-lettered does not answer for the one after the requeue.
pub async fn a_late_answer_does_not_reach_across_a_requeue(
    rt: SharedRuntime,
    backend: Arc<dyn Backend>,
) {
    let queue = queue(&rt, backend);
    let mut slow = queue.consume("g").await.unwrap().claim_batch(1);
    let mut other = queue.consume("g").await.unwrap().claim_batch(1);
    queue.send(7).await.unwrap();
    let stale = next(&mut slow).await;
    // Its lease runs out; the other worker gets it and gives up on it.
    let second = next(&mut other).await;
    assert_eq!(second.lease().attempt(), 2);
    second.reject("poison").await.unwrap();
    assert!(queue.requeue("g", 0).await.unwrap());
    let third = next(&mut other).await;
    assert_eq!(third.lease().attempt(), 3);

    assert_eq!(
        stale.ack().await.unwrap_err(),
        QueueError::LateAnswer { id: 0, attempt: 1 }
    );
    let g = queue.stats().await.unwrap().group("g").unwrap().clone();
    assert_eq!((g.in_flight, g.acked, g.late_answers), (1, 0, 1));
    third.ack().await.unwrap();
    let g = queue.stats().await.unwrap().group("g").unwrap().clone();
    assert_eq!((g.in_flight, g.acked), (0, 1));
}
