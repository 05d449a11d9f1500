//! The durable backend: the queue's promises on disk, group commit, restarts with every
//! kind of entry, and damaged stores reported as typed errors.
//!
//! Behaviour runs on every runtime flavour, since the writer is a plain thread. Exact
//! times run on the virtual clock with one stream at a time: `block_on` auto-advances
//! the clock whenever a timer is pending and nothing can run, and a commit is waited
//! for in real time, so a test that left a second stream waiting on a timer while
//! another awaits a commit would see that timer fire early. Handler flows with several
//! workers (which wait on timers while others commit) run on the real runtimes only.
#![cfg(feature = "durable")]

#[path = "shared/answers.rs"]
mod answers;
#[path = "shared/behaviour.rs"]
#[macro_use]
mod behaviour;

use behaviour::next;
mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::matrix;
use futures::StreamExt;
use futures::future::FutureExt;
use riverbed::FlowContext;
use riverbed::queue::backend::NewMessage;
use riverbed::queue::{
    Backend, BackendError, Durability, DurableBackend, DurableOptions, MessageQueue, OpenError,
    QueueError, SendError, StartFrom,
};
use riverbed::resilience::{Jitter, RetryPolicy};
use riverbed::runtime::{Runtime, RuntimeExt, SharedRuntime, VirtualRuntime};
use tempfile::TempDir;

type Jobs = MessageQueue<u32>;

fn policy(attempts: u32, delay_ms: u64) -> RetryPolicy {
    RetryPolicy::constant(Duration::from_millis(delay_ms)).max_attempts(attempts)
}

fn open(dir: &Path) -> DurableBackend {
    DurableBackend::open(dir).expect("open the store")
}

fn queue_on(rt: &SharedRuntime, backend: &DurableBackend) -> Jobs {
    MessageQueue::builder("jobs", rt)
        .backend(backend.clone())
        .build()
}

/// `group`'s (depth, in flight, delayed, dead letters) now.
async fn counts(queue: &Jobs, group: &str) -> (u64, u64, u64, u64) {
    let stats = queue.stats().await.unwrap();
    let g = stats.group(group).expect("the group exists");
    (g.depth, g.in_flight, g.delayed, g.dead_letters)
}

matrix! {
    async fn send_consume_ack_and_counts(rt) {
        let dir = TempDir::new().unwrap();
        let backend = open(dir.path());
        let queue = queue_on(&rt, &backend);
        let mut workers = queue.consume("workers").await.unwrap();
        let ids = queue.send_batch([1, 2, 3]).await.unwrap();
        assert_eq!(ids, [0, 1, 2]);
        for expected in 1..=3 {
            let delivery = next(&mut workers).await;
            assert_eq!((*delivery.message(), delivery.lease().attempt()), (expected, 1));
            delivery.ack().await.unwrap();
        }
        assert_eq!(counts(&queue, "workers").await, (0, 0, 0, 0));
        let stats = backend.stats();
        assert!(stats.commits >= 1 && stats.operations >= stats.commits, "{stats:?}");
    }

    /// The producer's `FlowContext` is stored with the message and comes back with it
    /// after the store is reopened.
    async fn the_producers_context_survives_a_restart(rt) {
        let dir = TempDir::new().unwrap();
        let ctx = FlowContext::new().with_user_id("ada").with_attribute("order", "17");
        {
            let backend = open(dir.path());
            let queue = queue_on(&rt, &backend);
            queue.create_group("g", StartFrom::Earliest).await.unwrap();
            queue.send(1).with_context(ctx.clone()).await.unwrap();
            queue.send(2).await.unwrap();
        }
        let backend = open(dir.path());
        let queue = queue_on(&rt, &backend);
        let mut stream = queue.consume("g").await.unwrap();
        let first = next(&mut stream).await;
        assert_eq!((*first.message(), first.context()), (1, Some(&ctx)));
        let second = next(&mut stream).await;
        assert_eq!((*second.message(), second.context()), (2, None));
    }

    /// Messages a consumer claimed ahead and never handed out go back uncounted, and
    /// stay so across a restart.
    async fn claimed_ahead_messages_go_back_uncounted(rt) {
        let dir = TempDir::new().unwrap();
        {
            let backend = open(dir.path());
            let queue = queue_on(&rt, &backend);
            let mut ahead = queue.consume("g").await.unwrap().claim_batch(3);
            queue.send_batch([1, 2, 3]).await.unwrap();
            let first = next(&mut ahead).await;
            assert_eq!(ahead.claimed_ahead(), 2);
            drop(ahead);
            first.ack().await.unwrap();
        }
        let backend = open(dir.path());
        let queue = queue_on(&rt, &backend);
        let mut again = queue.consume("g").await.unwrap();
        for expected in [2, 3] {
            let delivery = next(&mut again).await;
            assert_eq!((*delivery.message(), delivery.lease().attempt()), (expected, 1));
            delivery.ack().await.unwrap();
        }
    }

    /// Many sends queued while the writer is busy share one commit, and none of them
    /// resolves before it: they take effect at once, and are acknowledged once durable.
    async fn concurrent_sends_share_one_commit(rt) {
        let dir = TempDir::new().unwrap();
        let backend = open(dir.path());
        let queue = queue_on(&rt, &backend);
        queue.create_group("g", StartFrom::Latest).await.unwrap();
        let before = backend.stats();
        let hold = backend.hold_commits();
        let mut sends: Vec<_> = (0..100).map(|n| queue.send(n).boxed()).collect();
        for send in &mut sends {
            assert!(futures::poll!(send).is_pending(), "not durable yet");
        }
        // In the state already, for everyone to see.
        assert_eq!(counts(&queue, "g").await, (100, 0, 0, 0));
        drop(hold);
        let ids = futures::future::join_all(sends).await;
        let ids: Vec<u64> = ids.into_iter().map(Result::unwrap).collect();
        assert_eq!(ids, (0..100).collect::<Vec<_>>());
        let after = backend.stats();
        assert_eq!(after.operations - before.operations, 100);
        assert_eq!(after.commits - before.commits, 1, "one commit for the whole group");
    }

    async fn a_restart_keeps_what_was_not_acknowledged(rt) {
        let dir = TempDir::new().unwrap();
        {
            let backend = open(dir.path());
            let queue: Jobs = MessageQueue::builder("jobs", &rt)
                .backend(backend)
                .retry(RetryPolicy::never())
                .build();
            let mut stream = queue.consume("g").await.unwrap().claim_batch(1);
            queue.send_batch(0..6).await.unwrap();
            next(&mut stream).await.ack().await.unwrap(); // 0: done
            next(&mut stream).await.reject("bad input").await.unwrap(); // 1: dead
            next(&mut stream).await.ack().await.unwrap(); // 2: done
            // 3, 4, 5 never delivered to the group.
        }
        let backend = open(dir.path());
        let queue: Jobs = MessageQueue::builder("jobs", &rt).backend(backend).build();
        assert_eq!(counts(&queue, "g").await, (3, 0, 0, 1));
        let mut stream = queue.consume("g").await.unwrap();
        for expected in 3..6 {
            let delivery = next(&mut stream).await;
            assert_eq!((*delivery.message(), delivery.lease().attempt()), (expected, 1));
            delivery.ack().await.unwrap();
        }
        let dead = queue.dead_letters("g", 10).await.unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!((dead[0].message.clone().unwrap(), dead[0].error.as_str()), (1, "bad input"));
        assert!(queue.requeue("g", dead[0].id).await.unwrap());
        let again = next(&mut stream).await;
        assert_eq!((*again.message(), again.lease().last_error()), (1, Some("bad input")));
        again.ack().await.unwrap();
        assert_eq!(counts(&queue, "g").await, (0, 0, 0, 0));
        // Ids go on from where they were.
        assert_eq!(queue.send(6).await.unwrap(), 6);
    }

    async fn the_durable_backend_applies_backpressure(rt) {
        let dir = TempDir::new().unwrap();
        let backend =
            DurableBackend::open_with(dir.path(), DurableOptions::new().capacity(2)).unwrap();
        assert_eq!(backend.options().get_capacity(), Some(2));
        let queue = queue_on(&rt, &backend);
        let mut workers = queue.consume("workers").await.unwrap().claim_batch(1);
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

    async fn relaxed_durability_survives_a_reopen(rt) {
        let dir = TempDir::new().unwrap();
        let relaxed = DurableOptions::new().durability(Durability::Relaxed);
        {
            let backend = DurableBackend::open_with(dir.path(), relaxed).unwrap();
            assert_eq!(backend.options().get_durability(), Durability::Relaxed);
            let queue = queue_on(&rt, &backend);
            let mut stream = queue.consume("g").await.unwrap();
            queue.send_batch([10, 11]).await.unwrap();
            next(&mut stream).await.ack().await.unwrap();
            assert!(backend.stats().commits >= 3, "group, send, claim and ack commit");
        }
        let backend = DurableBackend::open_with(dir.path(), relaxed).unwrap();
        let queue = queue_on(&rt, &backend);
        let mut stream = queue.consume("g").await.unwrap();
        let delivery = next(&mut stream).await;
        assert_eq!(*delivery.message(), 11);
        delivery.ack().await.unwrap();
    }

    /// Changes queued when the last handle goes are committed before the store closes.
    async fn dropping_the_backend_commits_what_is_queued(rt) {
        let dir = TempDir::new().unwrap();
        {
            let backend = open(dir.path());
            backend.create_group("g", StartFrom::Latest).await.unwrap();
            let hold = backend.hold_commits();
            let message = NewMessage {
                payload: postcard::to_stdvec(&7u32).unwrap().into(),
                enqueued_at: rt.system_time(),
                not_before: None,
                context: None,
            };
            // Takes effect when called; the future is dropped unawaited.
            drop(backend.append(vec![message]));
            drop(hold);
        }
        let backend = open(dir.path());
        let queue = queue_on(&rt, &backend);
        let mut stream = queue.consume("g").await.unwrap();
        assert_eq!(*next(&mut stream).await.message(), 7);
    }

    async fn a_time_before_1970_is_refused_and_changes_nothing(rt) {
        let dir = TempDir::new().unwrap();
        let backend = open(dir.path());
        backend.create_group("g", StartFrom::Latest).await.unwrap();
        let ancient = NewMessage {
            payload: vec![1].into(),
            enqueued_at: UNIX_EPOCH - Duration::from_secs(1),
            not_before: None,
            context: None,
        };
        let error = backend.append(vec![ancient]).await.unwrap_err();
        assert_eq!(error, BackendError::TimeOutOfRange(UNIX_EPOCH - Duration::from_secs(1)));
        assert_eq!(backend.counts("g", rt.system_time()).await.unwrap().depth, 0);
        // The backend goes on.
        let fine = NewMessage {
            payload: vec![2].into(),
            enqueued_at: rt.system_time(),
            not_before: None,
            context: None,
        };
        assert_eq!(backend.append(vec![fine]).await.unwrap(), [0]);
    }
}

matrix! {
    /// A storage failure (a full disk, an I/O error) fails the operations of the
    /// commit that failed and every later one, with a typed error, and hangs nothing;
    /// the store, reopened, holds what was committed before it.
    async fn a_storage_failure_fails_operations_and_reopening_recovers(rt) {
        let dir = TempDir::new().unwrap();
        {
            let backend = open(dir.path());
            let queue = queue_on(&rt, &backend);
            let mut stream = queue.consume("g").await.unwrap();
            queue.send(1).await.unwrap();
            backend.fail_next_commit("no space left on device");
            let error = queue.send(2).await.unwrap_err();
            assert!(
                matches!(&error, SendError::Backend(BackendError::Storage(m)) if m == "no space left on device"),
                "{error}"
            );
            // Later operations fail at once, reads included.
            assert!(matches!(queue.send(3).await, Err(SendError::Backend(BackendError::Storage(_)))));
            assert!(matches!(stream.next().await, Some(Err(QueueError::Backend(BackendError::Storage(_))))));
            assert!(queue.stats().await.is_err());
        }
        let backend = open(dir.path());
        let queue = queue_on(&rt, &backend);
        let mut stream = queue.consume("g").await.unwrap();
        let delivery = next(&mut stream).await;
        assert_eq!(*delivery.message(), 1, "what was committed before the failure");
        delivery.ack().await.unwrap();
        assert_eq!(counts(&queue, "g").await, (0, 0, 0, 0), "the failed send is not there");
    }
}

/// As [`matrix!`], on the real runtimes only: for handler flows whose workers wait on
/// timers while others wait for commits (see the module docs).
macro_rules! real_runtimes {
    ($($(#[$attr:meta])* async fn $name:ident($rt:ident) $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn body($rt: SharedRuntime) $body

            #[cfg(feature = "tokio")]
            #[test]
            $(#[$attr])*
            fn tokio_ct() {
                common::run(common::Flavor::TokioCt, body);
            }

            #[cfg(feature = "tokio")]
            #[test]
            $(#[$attr])*
            fn tokio_mt() {
                common::run(common::Flavor::TokioMt, body);
            }

            #[cfg(feature = "smol")]
            #[test]
            $(#[$attr])*
            fn smol() {
                common::run(common::Flavor::Smol, body);
            }

            #[test]
            $(#[$attr])*
            fn futures() {
                common::run(common::Flavor::Futures, body);
            }
        }
    )*};
}

real_runtimes! {
    /// Handler flows with several workers: every message handled, the failing ones
    /// dead-lettered after their attempts, and all of it still there after a restart.
    async fn handler_flows_ack_retry_and_dead_letter_across_a_restart(rt) {
        let dir = TempDir::new().unwrap();
        let handled = Arc::new(Mutex::new(Vec::new()));
        {
            let backend = open(dir.path());
            let queue: Jobs = MessageQueue::builder("jobs", &rt)
                .backend(backend.clone())
                .retry(policy(3, 0))
                .build();
            queue.create_group("work", StartFrom::Latest).await.unwrap();
            let log = Arc::clone(&handled);
            let consumer = queue
                .consumer("work", move |n: u32| {
                    log.lock().unwrap().push(n);
                    async move { if n % 50 == 7 { Err(format!("{n} is bad")) } else { Ok(()) } }
                })
                .workers(4)
                .claim_batch(8);
            let stop = consumer.stop_handle();
            let flow = consumer.spawn(&rt);
            let sends: Vec<_> = (0..200).map(|n| queue.send(n)).collect();
            for sent in futures::future::join_all(sends).await {
                sent.unwrap();
            }
            stop.stop_when_idle(Duration::from_secs(5));
            assert!(flow.await.unwrap().is_stopped());
            assert!(
                backend.stats().commits < backend.stats().operations,
                "operations share commits: {:?}",
                backend.stats()
            );
        }
        let mut handled = handled.lock().unwrap().clone();
        handled.sort_unstable();
        let mut expected: Vec<u32> = (0..200).collect();
        expected.extend((0..200).filter(|n| n % 50 == 7).flat_map(|n| [n, n]));
        expected.sort_unstable();
        assert_eq!(handled, expected, "each once, the bad ones three times");

        let backend = open(dir.path());
        let queue = queue_on(&rt, &backend);
        assert_eq!(counts(&queue, "work").await, (0, 0, 0, 4));
        let dead = queue.dead_letters("work", 10).await.unwrap();
        let dead: Vec<(u32, u32, String)> = dead
            .into_iter()
            .map(|d| (d.message.unwrap(), d.attempts, d.error))
            .collect();
        let want: Vec<(u32, u32, String)> =
            [7, 57, 107, 157].into_iter().map(|n| (n, 3, format!("{n} is bad"))).collect();
        assert_eq!(dead, want);
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

/// A restart with one message of each kind: acknowledged, leased and unanswered (as
/// a crash leaves it), dead-lettered, delayed, waiting for a retry, and another
/// group's position. Each comes back as it should, at its exact time.
#[test]
fn a_restart_keeps_every_kind_of_entry_at_its_time() {
    on_virtual_clock(|rt, start| async move {
        let dir = TempDir::new().unwrap();
        let secs = Duration::from_secs;
        {
            let backend = open(dir.path());
            let queue = queue_on(&rt, &backend);
            queue.create_group("g", StartFrom::Latest).await.unwrap();
            queue
                .create_group("audit", StartFrom::Latest)
                .await
                .unwrap();
            queue.send_batch([100, 101, 102]).await.unwrap(); // ids 0, 1, 2
            queue.send_delayed(103, secs(60)).await.unwrap(); // id 3
            queue.send(104).await.unwrap(); // id 4
            // The group's consumer, through the backend itself: nothing answers for
            // it when the process "crashes".
            let now = rt.system_time();
            let claim = backend
                .claim("g", "c", 10, now, now + secs(10))
                .await
                .unwrap();
            let claimed: Vec<u64> = claim.messages.iter().map(|c| c.message.id).collect();
            assert_eq!(claimed, [0, 1, 2, 4]);
            assert_eq!(
                backend.ack("g", &[(0, 1)]).await.unwrap(),
                Vec::<u64>::new()
            );
            assert!(
                backend
                    .dead_letter("g", 2, 1, "poisoned".into(), now)
                    .await
                    .unwrap()
            );
            assert!(
                backend
                    .nack("g", 4, 1, now + secs(20), Some("later".into()))
                    .await
                    .unwrap()
            );
            // Message 1 stays leased until 10 s. The audit group read 0 and 1.
            let audit = backend
                .claim("audit", "a", 2, now, now + secs(10))
                .await
                .unwrap();
            assert_eq!(audit.messages.len(), 2);
            assert_eq!(
                backend.ack("audit", &[(0, 1), (1, 1)]).await.unwrap(),
                Vec::<u64>::new()
            );
        }
        let backend = open(dir.path());
        let queue = queue_on(&rt, &backend);
        // (depth, in flight, delayed, dead)
        assert_eq!(counts(&queue, "g").await, (0, 1, 2, 1));
        assert_eq!(counts(&queue, "audit").await, (2, 0, 1, 0));

        // The audit group goes on after what it read.
        let mut audit = queue.consume("audit").await.unwrap().claim_batch(2);
        for expected in [102, 104] {
            let delivery = next(&mut audit).await;
            assert_eq!((*delivery.message(), ms_since(&rt, start)), (expected, 0));
            delivery.ack().await.unwrap();
        }
        drop(audit);

        let mut g = queue.consume("g").await.unwrap();
        let mut seen = Vec::new();
        for _ in 0..3 {
            let delivery = next(&mut g).await;
            let lease = delivery.lease();
            seen.push((
                *delivery.message(),
                lease.attempt(),
                lease.last_error().map(str::to_owned),
                ms_since(&rt, start),
            ));
            delivery.ack().await.unwrap();
        }
        assert_eq!(
            seen,
            [
                (101, 2, None, 10_000),                 // its lease ran out
                (104, 2, Some("later".into()), 20_000), // its retry came
                (103, 1, None, 60_000),                 // its delay came
            ]
        );
        let dead = queue.dead_letters("g", 10).await.unwrap();
        assert_eq!(
            (dead.len(), dead[0].id, dead[0].error.as_str()),
            (1, 2, "poisoned")
        );
        assert_eq!(dead[0].message, Ok(102));
        assert_eq!(
            queue.stats().await.unwrap().group("g").unwrap().redelivered,
            1
        );
    });
}

#[test]
fn backoff_and_lease_expiry_times_are_exact() {
    on_virtual_clock(|rt, start| async move {
        let dir = TempDir::new().unwrap();
        let retry = RetryPolicy::exponential(Duration::from_millis(100))
            .max_attempts(4)
            .jitter(Jitter::None);
        let queue: Jobs = MessageQueue::builder("jobs", &rt)
            .backend(open(dir.path()))
            .retry(retry)
            .lease(Duration::from_secs(5))
            .build();
        let mut stream = queue.consume("g").await.unwrap();
        queue.send(1).await.unwrap();
        let mut times = Vec::new();
        for _ in 0..2 {
            let delivery = next(&mut stream).await;
            times.push((delivery.lease().attempt(), ms_since(&rt, start)));
            delivery.retry("failing").await.unwrap();
        }
        // The third attempt is held unanswered: its lease runs out 5 s later.
        let mut held = next(&mut stream).await;
        times.push((held.lease().attempt(), ms_since(&rt, start)));
        let again = next(&mut stream).await;
        times.push((again.lease().attempt(), ms_since(&rt, start)));
        assert_eq!(times, [(1, 0), (2, 100), (3, 300), (4, 5_300)]);
        assert!(
            !held.extend_lease(Duration::from_secs(1)).await.unwrap(),
            "lease lost"
        );
        drop(held);
        again.ack().await.unwrap();
        assert_eq!(counts(&queue, "g").await, (0, 0, 0, 0));
    });
}

/// A store in a new directory holding `messages` (sent, none consumed), group `g`.
fn store_with(messages: &[Vec<u8>]) -> TempDir {
    let dir = TempDir::new().unwrap();
    let rt: SharedRuntime = Arc::new(VirtualRuntime::new());
    futures::executor::block_on(async {
        let backend = open(dir.path());
        let queue: MessageQueue<Vec<u8>> =
            MessageQueue::builder("raw", &rt).backend(backend).build();
        queue.create_group("g", StartFrom::Latest).await.unwrap();
        for message in messages {
            queue.send(message.clone()).await.unwrap();
        }
    });
    dir
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The store engine's journal files (`<n>.jnl` in the store's directory).
fn journals(dir: &Path) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "jnl"))
        .collect()
}

/// A distinctive payload, easy to find in a file.
fn marker(n: u8) -> Vec<u8> {
    let mut payload = b"riverbed-durable-test-payload-".to_vec();
    payload.extend(std::iter::repeat_n(b'a' + n, 64));
    payload
}

/// Opening must fail; the error, for its checks.
fn open_err(dir: &Path) -> OpenError {
    match DurableBackend::open(dir) {
        Ok(backend) => panic!("opened a store that should not open: {backend:?}"),
        Err(error) => error,
    }
}

#[test]
fn overwritten_journal_bytes_are_a_corrupted_store() {
    let dir = store_with(&[marker(0), marker(1), marker(2)]);
    let pattern = marker(1);
    let mut hits = 0;
    for file in journals(dir.path()) {
        let mut bytes = std::fs::read(&file).unwrap();
        if let Some(at) = bytes.windows(pattern.len()).position(|w| w == pattern) {
            // Inside the payload: the batch's checksum no longer matches.
            bytes[at + 40..at + 48].copy_from_slice(b"XXXXXXXX");
            std::fs::write(&file, bytes).unwrap();
            hits += 1;
        }
    }
    assert_eq!(hits, 1, "the payload is in one journal");
    let error = open_err(dir.path());
    assert!(error.is_corrupted(), "{error}");
    assert!(error.to_string().contains("checksum"), "{error}");
    assert_eq!(error.path(), dir.path());
}

#[test]
fn a_truncated_data_file_is_a_corrupted_store() {
    let dir = store_with(&(0..200).map(|n| marker(n as u8 % 20)).collect::<Vec<_>>());
    // Move the journal into data files (tables), as a long-running store does.
    let mut messages = None;
    {
        let db = fjall::Database::builder(dir.path()).open().unwrap();
        for name in db.list_keyspace_names() {
            let keyspace = db
                .keyspace(&name, fjall::KeyspaceCreateOptions::default)
                .unwrap();
            keyspace.rotate_memtable_and_wait().unwrap();
            if &*name == "messages" {
                messages = Some(keyspace.path().to_owned());
            }
        }
    }
    let tables: Vec<PathBuf> = files_under(&messages.expect("a messages keyspace"))
        .into_iter()
        .filter(|f| f.parent().is_some_and(|p| p.ends_with("tables")))
        .collect();
    assert!(!tables.is_empty(), "the messages are in data files");
    for segment in &tables {
        let len = std::fs::metadata(segment).unwrap().len();
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(segment)
            .unwrap();
        file.set_len(len / 2).unwrap();
    }
    let error = open_err(dir.path());
    assert!(error.is_corrupted(), "{error}");
    eprintln!("{error}");
}

#[test]
fn a_truncated_journal_tail_loses_only_the_torn_batch() {
    let dir = store_with(&[marker(0), marker(1), marker(2)]);
    let journal = journals(dir.path())
        .into_iter()
        .find(|f| {
            std::fs::read(f)
                .unwrap()
                .windows(10)
                .any(|w| w == &marker(2)[..10])
        })
        .expect("the journal holds the messages");
    // Cut inside the last message's batch, as a crash in the middle of a write does.
    let bytes = std::fs::read(&journal).unwrap();
    let pattern = marker(2);
    let at = bytes
        .windows(pattern.len())
        .position(|w| w == pattern)
        .unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&journal)
        .unwrap()
        .set_len((at + 10) as u64)
        .unwrap();
    let rt: SharedRuntime = Arc::new(VirtualRuntime::new());
    futures::executor::block_on(async {
        let backend = open(dir.path());
        let queue: MessageQueue<Vec<u8>> =
            MessageQueue::builder("raw", &rt).backend(backend).build();
        let mut stream = queue.consume("g").await.unwrap();
        for expected in [marker(0), marker(1)] {
            let delivery = next(&mut stream).await;
            assert_eq!(delivery.message(), &expected);
            delivery.ack().await.unwrap();
        }
        let stats = queue.stats().await.unwrap();
        assert_eq!(stats.group("g").unwrap().depth, 0, "the torn send is gone");
        // A store that lost its tail goes on with the next id.
        assert_eq!(queue.send(marker(3)).await.unwrap(), 2);
    });
}

/// The journal's first batch damaged where fjall 2 asserted (its first item's tag):
/// fjall 2 panicked there, and the backend's guard reported the panic as damage.
/// fjall 3 reads a batch start inside a batch and cuts the journal there, so the
/// store has lost its format row: still a corrupted store, now without a panic.
#[test]
fn a_damaged_first_journal_batch_is_a_corrupted_store() {
    let dir = store_with(&[marker(0)]);
    let journal = journals(dir.path())
        .into_iter()
        .find(|f| std::fs::metadata(f).unwrap().len() > 0)
        .expect("a journal");
    let mut bytes = std::fs::read(&journal).unwrap();
    // The journal starts with a batch: a start tag (1), an item count (4 bytes), a
    // sequence number (8 bytes), then the first item's tag (2), made a start tag.
    assert_eq!(bytes[0], 1, "a batch starts the journal");
    assert_eq!(bytes[13], 2, "an item follows the batch's start");
    bytes[13] = 1;
    std::fs::write(&journal, bytes).unwrap();
    let error = open_err(dir.path());
    assert!(error.is_corrupted(), "{error}");
    assert!(error.to_string().contains("format row"), "{error}");
}

/// The files of a store, and what they hold.
fn contents(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    files_under(dir)
        .into_iter()
        .map(|f| {
            let bytes = std::fs::read(&f).unwrap();
            (f, bytes)
        })
        .collect()
}

/// riverbed's stores were fjall 2's files before they were fjall 3's, and fjall 3
/// reads none of fjall 2's: such a store is a format error, and left as it was.
#[test]
fn a_store_in_fjall_2_files_is_refused_untouched() {
    let dir = TempDir::new().unwrap();
    {
        let keyspace = fjall2::Config::new(dir.path()).open().unwrap();
        let meta = keyspace
            .open_partition("meta", fjall2::PartitionCreateOptions::default())
            .unwrap();
        meta.insert("format", "riverbed queue store 4").unwrap();
        keyspace.persist(fjall2::PersistMode::SyncAll).unwrap();
    }
    std::fs::write(
        dir.path().join("riverbed-queue"),
        "riverbed queue store 1\n",
    )
    .unwrap();
    let before = contents(dir.path());
    for _ in 0..2 {
        match open_err(dir.path()) {
            OpenError::Format {
                path,
                found,
                expected,
            } => {
                assert_eq!(path, dir.path());
                assert_eq!((found.as_str(), expected.as_str()), ("fjall 2", "fjall 3"));
            }
            other => panic!("expected a format error, got {other}"),
        }
    }
    assert!(contents(dir.path()) == before, "the store changed");
}

/// The store engine locks its directory while a process has it open: another
/// process (here the engine itself, opened directly) is refused with an I/O error.
#[test]
fn a_store_another_process_has_open_is_refused() {
    let dir = store_with(&[marker(0)]);
    let db = fjall::Database::builder(dir.path()).open().unwrap();
    let error = open_err(dir.path());
    match &error {
        OpenError::Io { source, .. } => {
            assert_eq!(source.kind(), std::io::ErrorKind::ResourceBusy, "{error}");
        }
        other => panic!("expected an I/O error, got {other}"),
    }
    drop(db);
    drop(open(dir.path()));
}

/// Writes a row behind the backend's back.
fn write_raw(dir: &Path, keyspace: &str, key: &[u8], value: &[u8]) {
    let db = fjall::Database::builder(dir).open().unwrap();
    let handle = db
        .keyspace(keyspace, fjall::KeyspaceCreateOptions::default)
        .unwrap();
    handle.insert(key, value).unwrap();
    db.persist(fjall::PersistMode::SyncAll).unwrap();
}

/// A value as the backend seals it: an FNV-1a checksum of the keyspace's number, the
/// key's length, the key and the value, appended big-endian.
fn sealed(keyspace: u8, key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let length = (key.len() as u64).to_be_bytes();
    for &byte in [&[keyspace][..], &length, key, value].into_iter().flatten() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut out = value.to_vec();
    out.extend_from_slice(&hash.to_be_bytes());
    out
}

#[test]
fn a_row_that_fails_its_checksum_is_a_corrupted_store() {
    let dir = store_with(&[marker(0)]);
    write_raw(
        dir.path(),
        "messages",
        &5u64.to_be_bytes(),
        b"not a message at all",
    );
    let error = open_err(dir.path());
    assert!(error.is_corrupted(), "{error}");
    assert!(error.to_string().contains("checksum"), "{error}");
}

#[test]
fn a_row_that_does_not_decode_is_a_corrupted_store() {
    let dir = store_with(&[marker(0)]);
    // Group "g"'s cursor, with a sound checksum around bytes that are no number.
    write_raw(dir.path(), "groups", b"g", &sealed(1, b"g", &[0xff; 12]));
    let error = open_err(dir.path());
    assert!(error.is_corrupted(), "{error}");
    assert!(
        error.to_string().contains("cursor does not decode"),
        "{error}"
    );
}

#[test]
fn rows_that_contradict_each_other_are_a_corrupted_store() {
    let dir = store_with(&[marker(0), marker(1)]);
    // A pending entry of a group that does not exist.
    write_raw(
        dir.path(),
        "pending",
        b"ghost\0\0\0\0\0\0\0\0\0",
        &sealed(2, b"ghost\0\0\0\0\0\0\0\0\0", b"x"),
    );
    let error = open_err(dir.path());
    assert!(error.is_corrupted(), "{error}");
    assert!(
        error.to_string().contains("unknown group \"ghost\""),
        "{error}"
    );
}

#[test]
fn a_run_past_its_group_s_cursor_is_a_corrupted_store() {
    // Group "g" is at message 0 (it read nothing); a run of its messages 0..3 says
    // otherwise. The run record in postcard: length 3, until the epoch (seconds,
    // nanoseconds), one word of lease bits, all three set.
    let dir = store_with(&[marker(0), marker(1), marker(2)]);
    let key = b"g\0\0\0\0\0\0\0\0\0";
    let run = [3, 0, 0, 1, 0b111];
    write_raw(dir.path(), "runs", key, &sealed(5, key, &run));
    let error = open_err(dir.path());
    assert!(error.is_corrupted(), "{error}");
    assert!(
        error.to_string().contains("message 0 of group \"g\""),
        "{error}"
    );
}

#[test]
fn a_directory_that_is_not_a_store_is_refused() {
    let dir = TempDir::new().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
    let error = open_err(dir.path());
    assert!(matches!(error, OpenError::NotAStore { .. }), "{error}");
    assert!(error.to_string().contains("notes.txt"), "{error}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("notes.txt")).unwrap(),
        "mine",
        "left alone"
    );

    let file = dir.path().join("notes.txt");
    let error = open_err(&file);
    assert!(matches!(error, OpenError::NotAStore { .. }), "{error}");
    assert!(error.to_string().contains("not a directory"), "{error}");

    // Another program's fjall store.
    let other = TempDir::new().unwrap();
    {
        let db = fjall::Database::builder(other.path()).open().unwrap();
        let users = db
            .keyspace("users", fjall::KeyspaceCreateOptions::default)
            .unwrap();
        users.insert("alice", "admin").unwrap();
        db.persist(fjall::PersistMode::SyncAll).unwrap();
    }
    let error = open_err(other.path());
    assert!(matches!(error, OpenError::NotAStore { .. }), "{error}");
    assert!(error.to_string().contains("riverbed-queue"), "{error}");
}

/// The store engine does not create its files atomically: a crash while a store is
/// being created can leave a keyspace it cannot open again. Nothing is stored
/// before the creation finishes, so a creation cut short starts over.
#[test]
fn a_creation_cut_short_starts_over() {
    let dir = store_with(&[]);
    // As a kill during the creation leaves it: the marker says so, and the keyspaces'
    // version pointers are created but not written yet.
    std::fs::write(
        dir.path().join("riverbed-queue"),
        "riverbed queue store 1, being created\n",
    )
    .unwrap();
    let pointers: Vec<PathBuf> = files_under(&dir.path().join("keyspaces"))
        .into_iter()
        .filter(|f| f.file_name().is_some_and(|n| n == "current"))
        .collect();
    assert!(!pointers.is_empty());
    for pointer in pointers {
        std::fs::write(pointer, b"").unwrap();
    }
    let rt: SharedRuntime = Arc::new(VirtualRuntime::new());
    futures::executor::block_on(async {
        let backend = open(dir.path());
        assert!(backend.groups().await.unwrap().is_empty(), "a new store");
        let queue = queue_on(&rt, &backend);
        let mut stream = queue.consume("g").await.unwrap();
        queue.send(5).await.unwrap();
        assert_eq!(*next(&mut stream).await.message(), 5);
    });
    assert_eq!(
        std::fs::read_to_string(dir.path().join("riverbed-queue")).unwrap(),
        "riverbed queue store 1\n",
        "ready"
    );
    drop(open(dir.path()));
}

#[test]
fn a_store_opens_once_per_process() {
    let dir = TempDir::new().unwrap();
    let backend = open(dir.path());
    let error = open_err(dir.path());
    assert!(matches!(error, OpenError::InUse { .. }), "{error}");
    // Under another spelling of the same directory too.
    let error = open_err(&dir.path().join("keyspaces").join(".."));
    assert!(matches!(error, OpenError::InUse { .. }), "{error}");
    // A clone is the way to share it; once every handle is gone, it opens again.
    let clone = backend.clone();
    drop(backend);
    assert!(matches!(open_err(dir.path()), OpenError::InUse { .. }));
    drop(clone);
    drop(open(dir.path()));
}

#[test]
fn a_missing_or_empty_directory_becomes_a_store() {
    let dir = TempDir::new().unwrap();
    let nested = dir.path().join("a").join("queue");
    let backend = open(&nested);
    assert_eq!(backend.path(), nested);
    drop(backend);
    // And it opens again, empty.
    let backend = open(&nested);
    let groups = futures::executor::block_on(backend.groups()).unwrap();
    assert!(groups.is_empty());
}

/// Runs each shared behaviour body on a fresh durable store: on every runtime, but
/// the bodies with several workers at once on the real runtimes only.
macro_rules! on_durable {
    (any: $($name:ident),* $(,)?) => {
        on_durable!(@ matrix: $($name),*);
    };
    (workers: $($name:ident),* $(,)?) => {
        on_durable!(@ real_runtimes: $($name),*);
    };
    (@ $runtimes:ident: $($name:ident),*) => {
        $runtimes! {
            $(
                async fn $name(rt) {
                    let dir = TempDir::new().unwrap();
                    behaviour::$name(rt.clone(), Arc::new(open(dir.path()))).await
                }
            )*
        }
    };
}

queue_behaviour!(on_durable);

/// Runs `body` on a fresh durable store under a fresh virtual clock.
fn on_durable_virtual_clock<F, Fut>(body: F)
where
    F: FnOnce(SharedRuntime, Arc<dyn Backend>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = TempDir::new().unwrap();
    let clock = VirtualRuntime::new();
    let rt: SharedRuntime = Arc::new(clock.clone());
    clock.block_on(body(rt, Arc::new(open(dir.path()))));
}

/// Late answers on the durable backend: the shared bodies of `tests/shared/answers.rs`.
#[test]
fn a_late_ack_is_reported_and_not_counted() {
    on_durable_virtual_clock(answers::a_late_ack_is_reported_and_not_counted);
}

#[test]
fn a_late_answer_does_not_reach_across_a_requeue() {
    on_durable_virtual_clock(answers::a_late_answer_does_not_reach_across_a_requeue);
}

#[test]
fn every_late_answer_is_reported() {
    on_durable_virtual_clock(answers::every_late_answer_is_reported);
}
