//! The broadcast core's concurrent paths, model-checked with `loom`: every
//! interleaving of the core's lock and atomics between the threads of each test (up to
//! a preemption bound) is run, and each must keep the core's promises.
//!
//! Run (about a minute on two cores):
//! `RUSTFLAGS="--cfg riverbed_loom" cargo test --release --lib broadcast::loom_tests`;
//! `LOOM_MAX_PREEMPTIONS` (default here 3) raises the bound for a longer run by hand.
//!
//! The core's `space` event comes from `event-listener`, whose own loom tests cover
//! it; here it is the standard build, so its wakeups are real but its internals are
//! not explored.

use std::future::Future;
use std::sync::Arc;
use std::task::Poll;

use loom::thread;

use super::ring::Core;
use super::subscribe::SubscribeSpec;
use super::{Lagged, Overflow, Receiver};

type Item = Result<u32, Lagged>;

/// Runs `body` under every interleaving loom explores, within the preemption bound.
fn model(body: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    builder.check(body);
}

fn spec(overflow: Overflow, capacity: usize) -> SubscribeSpec<u32> {
    SubscribeSpec {
        matcher: None,
        overflow,
        capacity,
    }
}

/// The next item of `receiver`, waiting (parked, to be woken by the core) as needed.
fn next(receiver: &mut Receiver<u32, ()>) -> impl Future<Output = Option<Item>> + '_ {
    std::future::poll_fn(move |cx| receiver.poll_recv(cx))
}

/// Everything `receiver` yields until it ends.
fn drain(receiver: &mut Receiver<u32, ()>) -> Vec<Item> {
    loom::future::block_on(async {
        let mut seen = Vec::new();
        while let Some(item) = next(receiver).await {
            seen.push(item);
        }
        seen
    })
}

fn publish(core: &Core<u32, ()>, item: u32) {
    let published = core.try_publish(item, &mut |_, _| {});
    assert!(published.is_ok(), "item {item} was refused");
}

/// `subscribe_from` while a publisher publishes: the subscriber gets the history from
/// where it asked, then every live item, with no gap and no duplicate at the handoff,
/// whichever side of each publish the subscribe falls on; and it is woken for what is
/// published after it parked.
#[test]
fn subscribing_from_the_history_meets_live_publishing_without_a_gap() {
    model(|| {
        let core: Arc<Core<u32, ()>> = Arc::new(Core::new(4, None, ()));
        publish(&core, 0);
        let publisher = {
            let core = Arc::clone(&core);
            thread::spawn(move || {
                publish(&core, 1);
                publish(&core, 2);
            })
        };
        let mut receiver = core
            .subscribe_from(spec(Overflow::Block, 8), 0)
            .expect("0 is in the history");
        let seen = loom::future::block_on(async {
            let mut seen = Vec::new();
            for _ in 0..3 {
                seen.push(next(&mut receiver).await);
            }
            seen
        });
        assert_eq!(seen, [Some(Ok(0)), Some(Ok(1)), Some(Ok(2))]);
        publisher.join().unwrap();
        core.close();
        assert_eq!(drain(&mut receiver), []);
    });
}

/// A `Block` publisher waits on a slow subscriber that never reads; when that
/// subscriber is dropped, the publisher wakes and publishes, and the other subscriber
/// loses nothing.
#[test]
fn a_publisher_held_by_a_dropped_subscriber_wakes_and_nothing_is_lost() {
    model(|| {
        let core: Arc<Core<u32, ()>> = Arc::new(Core::new(0, None, ()));
        let slow = core.subscribe(spec(Overflow::Block, 1));
        let mut other = core.subscribe(spec(Overflow::Block, 4));
        publish(&core, 0); // `slow` is now full.
        let publisher = {
            let core = Arc::clone(&core);
            thread::spawn(move || {
                let published = loom::future::block_on(core.publish(1, |_, _| {}));
                assert_eq!(published, Ok(1));
            })
        };
        let dropper = thread::spawn(move || drop(slow));
        publisher.join().unwrap();
        dropper.join().unwrap();
        core.close();
        assert_eq!(drain(&mut other), [Ok(0), Ok(1)]);
    });
}

/// Close while subscribers are parked: each is woken, receives what was published
/// before the close, then ends; a publish after the close is refused.
#[test]
fn close_wakes_parked_subscribers_which_drain_then_end() {
    model(|| {
        let core: Arc<Core<u32, ()>> = Arc::new(Core::new(0, None, ()));
        let readers: Vec<_> = [Overflow::Block, Overflow::DropOldest]
            .into_iter()
            .map(|overflow| {
                let mut receiver = core.subscribe(spec(overflow, 2));
                thread::spawn(move || drain(&mut receiver))
            })
            .collect();
        publish(&core, 0);
        core.close();
        assert!(core.try_publish(1, &mut |_, _| {}).is_err());
        for reader in readers {
            assert_eq!(reader.join().unwrap(), [Ok(0)]);
        }
    });
}

/// A publish racing a close is either delivered (published before the close) or
/// refused, never half; a receiver that ended stays ended.
#[test]
fn a_publish_racing_a_close_is_delivered_or_refused_never_half() {
    model(|| {
        let core: Arc<Core<u32, ()>> = Arc::new(Core::new(0, None, ()));
        let mut receiver = core.subscribe(spec(Overflow::Block, 2));
        let publisher = {
            let core = Arc::clone(&core);
            thread::spawn(move || core.try_publish(7, &mut |_, _| {}).is_ok())
        };
        core.close();
        let delivered = publisher.join().unwrap();
        let seen = drain(&mut receiver);
        assert_eq!(seen, if delivered { vec![Ok(7)] } else { vec![] });
        let waker = futures_util::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        assert_eq!(receiver.poll_recv(&mut cx), Poll::Ready(None));
    });
}
