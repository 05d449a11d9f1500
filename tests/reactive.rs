//! The `ReactiveStream` promises, on every runtime flavour.

mod common;

use std::future::IntoFuture;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::matrix;
use futures::future::FutureExt;
use futures::stream::StreamExt;
use riverbed::broadcast::{Lagged, Overflow, SubscribeError, SubscribeOptions};
use riverbed::flow::FlowEnd;
use riverbed::reactive::{
    AlreadyTerminated, EmitError, ReactiveStream, StreamError, StreamState, Subscription,
    TryEmitError,
};
use riverbed::runtime::RuntimeExt;

type Numbers = ReactiveStream<u32, String>;
type Item = Result<u32, StreamError<String>>;

/// Everything `sub` has ready now, without waiting, and whether it has ended.
fn ready(sub: &mut Subscription<u32, String>) -> (Vec<Item>, bool) {
    let mut out = Vec::new();
    loop {
        match sub.next().now_or_never() {
            Some(Some(item)) => out.push(item),
            Some(None) => return (out, true),
            None => return (out, false),
        }
    }
}

/// Reads `sub` to its end, and checks that it stays ended.
async fn drain(mut sub: Subscription<u32, String>) -> Vec<Item> {
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

fn oks(values: impl IntoIterator<Item = u32>) -> Vec<Item> {
    values.into_iter().map(Ok).collect()
}

matrix! {
    async fn multicast_each_subscriber_sees_later_items_once_in_order(rt) {
        let stream = Numbers::new("numbers");
        let early = stream.subscribe();
        stream.emit(1).await.unwrap();
        let late = stream.subscribe();
        let third = stream.subscribe();
        for n in 2..=4 {
            stream.emit(n).await.unwrap();
        }
        assert_eq!(stream.subscriber_count(), 3);
        stream.complete().unwrap();
        let readers = [early, late, third].map(|sub| rt.spawn(drain(sub)));
        let mut seen = Vec::new();
        for reader in readers {
            seen.push(reader.await.unwrap());
        }
        assert_eq!(seen[0], oks(1..=4));
        assert_eq!(seen[1], oks(2..=4));
        assert_eq!(seen[2], oks(2..=4));
        let stats = stream.stats();
        assert_eq!((stats.emitted, stats.delivered), (4, 10));
        assert_eq!(stats.state, StreamState::Completed);
    }

    async fn transformers_run_once_per_item_in_order(rt) {
        let stream = Numbers::new("numbers");
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        stream.add_transformer(move |n: u32| {
            counted.fetch_add(1, Ordering::Relaxed);
            async move { n * 10 }
        });
        // Runs after the first: sees 10, 20, 30, 40 and drops the multiples of 20.
        stream.add_transformer(|n: u32| async move { (!n.is_multiple_of(20)).then_some(n + 1) });
        let subs: Vec<_> = (0..4).map(|_| stream.subscribe()).collect();
        for n in 1..=4 {
            stream.emit(n).await.unwrap();
        }
        stream.complete().unwrap();
        for sub in subs {
            assert_eq!(drain(sub).await, oks([11, 31]));
        }
        assert_eq!(calls.load(Ordering::Relaxed), 4, "once per item, not per subscriber");
        let stats = stream.stats();
        assert_eq!((stats.emitted, stats.transformed_away, stats.delivered), (2, 2, 8));
    }

    async fn sync_and_async_transformers_chain_past_the_fixed_slots(rt) {
        let stream = Numbers::new("numbers");
        // 40 steps, more than the chain keeps in its fixed slots: sync and async
        // alternate, each adds its position, in order.
        for step in 0..40u32 {
            if step % 2 == 0 {
                stream.add_sync_transformer(move |n: u32| n.wrapping_mul(2).wrapping_add(step % 3));
            } else {
                stream.add_transformer(move |n: u32| async move {
                    n.wrapping_mul(2).wrapping_add(step % 3)
                });
            }
        }
        stream.add_sync_transformer(|n: u32| n.is_multiple_of(2).then_some(n));
        let expected = |start: u32| {
            (0..40u32).fold(start, |n, step| n.wrapping_mul(2).wrapping_add(step % 3))
        };
        let mut sub = stream.subscribe();
        for start in 1..=4 {
            stream.emit(start).await.unwrap();
        }
        stream.complete().unwrap();
        let kept: Vec<u32> = (1..=4).map(expected).filter(|n| n % 2 == 0).collect();
        let mut seen = Vec::new();
        while let Some(item) = sub.next().await {
            seen.push(item.unwrap());
        }
        assert_eq!(seen, kept);
        assert_eq!(stream.stats().transformed_away, 4 - kept.len() as u64);
    }

    async fn replay_gives_the_last_n_then_live(rt) {
        let stream: Numbers = ReactiveStream::replay("ticks", 3);
        for n in 1..=5 {
            stream.emit(n).await.unwrap();
        }
        let mut late = stream.subscribe();
        assert_eq!(ready(&mut late), (oks([3, 4, 5]), false));
        stream.emit(6).await.unwrap();
        assert_eq!(ready(&mut late), (oks([6]), false));
        stream.complete().unwrap();
        // After the end, a new subscriber still gets the replay, then the end.
        let mut after = stream.subscribe();
        assert_eq!(ready(&mut after), (oks([4, 5, 6]), true));
        assert_eq!(ready(&mut late), (vec![], true));
    }

    async fn replay_hands_off_to_live_without_gap_while_emitting(rt) {
        let stream: Numbers = ReactiveStream::replay("ticks", 1000);
        let emitter = {
            let stream = stream.clone();
            rt.spawn(async move {
                for n in 0..500 {
                    stream.emit(n).await.unwrap();
                }
                stream.complete().unwrap();
            })
        };
        // Subscribing at any point sees 0..500 exactly: the replay covers the start.
        let sub = stream.subscribe();
        let seen = rt.spawn(drain(sub));
        emitter.await.unwrap();
        assert_eq!(seen.await.unwrap(), oks(0..500));
    }

    async fn latest_gives_the_current_value_first(rt) {
        let status: ReactiveStream<&'static str, String> =
            ReactiveStream::latest("status", "starting");
        let mut first = status.subscribe();
        assert_eq!(first.next().await, Some(Ok("starting")));
        status.emit("ready").await.unwrap();
        status.emit("busy").await.unwrap();
        let mut second = status.subscribe();
        assert_eq!(second.next().await, Some(Ok("busy")));
        assert_eq!(first.next().await, Some(Ok("ready")));
        assert_eq!(first.next().await, Some(Ok("busy")));
        assert!(second.next().now_or_never().is_none(), "nothing more yet");
    }

    async fn complete_ends_every_subscriber_once_and_refuses_more(rt) {
        let stream = Numbers::new("numbers");
        let a = stream.subscribe();
        let b = stream.subscribe();
        stream.emit(1).await.unwrap();
        stream.complete().unwrap();
        assert!(stream.is_terminated());
        assert_eq!(stream.emit(2).await, Err(EmitError::Terminated(2)));
        assert_eq!(stream.try_emit(3), Err(TryEmitError::Terminated(3)));
        assert_eq!(stream.complete(), Err(AlreadyTerminated));
        assert_eq!(stream.error("late".into()), Err(AlreadyTerminated));
        assert_eq!(drain(a).await, oks([1]));
        assert_eq!(drain(b).await, oks([1]));
        // A subscriber after the end of a plain stream ends at once.
        let mut after = stream.subscribe();
        assert_eq!(ready(&mut after), (vec![], true));
    }

    async fn error_reaches_every_subscriber_once_after_the_items(rt) {
        let stream = Numbers::new("numbers");
        let subs: Vec<_> = (0..3).map(|_| stream.subscribe()).collect();
        stream.emit(1).await.unwrap();
        stream.emit(2).await.unwrap();
        stream.error("boom".into()).unwrap();
        assert_eq!(stream.stats().state, StreamState::Failed);
        for sub in subs {
            let mut expected = oks([1, 2]);
            expected.push(Err(StreamError::Failed("boom".into())));
            assert_eq!(drain(sub).await, expected);
        }
        // Every handle of the stream refuses emits now.
        let other = stream.clone();
        assert_eq!(other.emit(3).await.unwrap_err().into_inner(), Some(3));
    }

    async fn terminal_while_emitters_run_leaves_a_clean_prefix(rt) {
        let stream = Numbers::new("numbers");
        let subs: Vec<_> = (0..2).map(|_| stream.subscribe()).collect();
        let readers: Vec<_> = subs.into_iter().map(|sub| rt.spawn(drain(sub))).collect();
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let emitters: Vec<_> = (0..2u32)
            .map(|e| {
                let stream = stream.clone();
                let accepted = Arc::clone(&accepted);
                rt.spawn(async move {
                    for i in 0..200u32 {
                        let n = e * 1000 + i;
                        match stream.emit(n).await {
                            Ok(()) => accepted.lock().unwrap().push(n),
                            Err(EmitError::Terminated(back)) => {
                                assert_eq!(back, n);
                                return;
                            }
                            Err(other) => panic!("unexpected {other:?}"),
                        }
                    }
                })
            })
            .collect();
        // Fail the stream once some items went through.
        let mut watch = stream.subscribe();
        for _ in 0..50 {
            watch.next().await.unwrap().unwrap();
        }
        stream.error("stop".into()).unwrap();
        drop(watch);
        for emitter in emitters {
            emitter.await.unwrap();
        }
        let mut accepted = accepted.lock().unwrap().clone();
        accepted.sort_unstable();
        for reader in readers {
            let mut seen = reader.await.unwrap();
            assert_eq!(seen.pop(), Some(Err(StreamError::Failed("stop".into()))));
            let mut values: Vec<u32> = seen.into_iter().map(Result::unwrap).collect();
            // Each emitter's items in its order...
            for e in 0..2 {
                let mine: Vec<u32> = values.iter().copied().filter(|n| n / 1000 == e).collect();
                assert!(mine.windows(2).all(|w| w[0] < w[1]), "in emit order");
            }
            // ...and exactly the accepted ones: nothing lost, nothing after the end.
            values.sort_unstable();
            assert_eq!(values, accepted);
        }
    }

    async fn dropping_the_last_handle_completes_the_stream(rt) {
        let stream = Numbers::new("numbers");
        let sub = stream.subscribe();
        let other = stream.clone();
        stream.emit(7).await.unwrap();
        drop(stream);
        other.emit(8).await.unwrap();
        drop(other);
        assert_eq!(drain(sub).await, oks([7, 8]));
    }

    async fn dropping_a_subscriber_frees_it_and_releases_the_emitter(rt) {
        let stream = Numbers::builder("numbers").capacity(2).build();
        let slow = stream.subscribe();
        let mut fast = stream.subscribe();
        stream.try_emit(1).unwrap();
        stream.try_emit(2).unwrap();
        assert_eq!(fast.next().await, Some(Ok(1)));
        assert_eq!(fast.next().await, Some(Ok(2)));
        // `slow` holds two unread items: Block backpressure.
        assert_eq!(stream.try_emit(3), Err(TryEmitError::Full(3)));
        assert_eq!(stream.subscriber_count(), 2);
        drop(slow);
        assert_eq!(stream.subscriber_count(), 1);
        stream.try_emit(3).unwrap();
        assert_eq!(fast.next().await, Some(Ok(3)));
    }

    async fn block_subscriber_makes_emit_wait(rt) {
        let stream = Numbers::builder("numbers").capacity(1).build();
        let mut sub = stream.subscribe();
        stream.emit(1).await.unwrap();
        let pending = {
            let stream = stream.clone();
            rt.spawn(async move { stream.emit(2).await })
        };
        assert_eq!(sub.next().await, Some(Ok(1)));
        assert_eq!(sub.next().await, Some(Ok(2)));
        pending.await.unwrap().unwrap();
    }

    async fn drop_oldest_subscriber_sees_the_miss_and_it_is_counted(rt) {
        let stream = Numbers::new("numbers");
        let options = SubscribeOptions::new().capacity(2).overflow(Overflow::DropOldest);
        let mut lossy = stream.subscribe_with(options).unwrap();
        assert_eq!(lossy.overflow(), Overflow::DropOldest);
        for n in 1..=5 {
            // A lossy subscriber never holds the emitter back.
            stream.try_emit(n).unwrap();
        }
        stream.complete().unwrap();
        let (items, ended) = ready(&mut lossy);
        assert!(ended);
        assert_eq!(
            items,
            vec![Err(StreamError::Lagged(Lagged { missed: 3 })), Ok(4), Ok(5)]
        );
        assert_eq!(stream.stats().dropped_oldest, 3);
    }

    /// A capacity of 0 is refused with a typed error, as on the bus.
    async fn zero_capacity_is_refused(rt) {
        let stream = Numbers::new("numbers");
        let zero = SubscribeOptions::new().capacity(0);
        assert_eq!(
            stream.subscribe_with(zero).unwrap_err(),
            SubscribeError::ZeroCapacity
        );
        assert_eq!(stream.subscriber_count(), 0);
        let one = stream.subscribe_with(SubscribeOptions::new().capacity(1)).unwrap();
        assert_eq!(stream.subscriber_count(), 1);
        drop(one);
    }

    async fn drop_newest_subscriber_keeps_what_it_had(rt) {
        let stream = Numbers::new("numbers");
        let options = SubscribeOptions::new().capacity(2).overflow(Overflow::DropNewest);
        let mut lossy = stream.subscribe_with(options).unwrap();
        for n in 1..=5 {
            stream.try_emit(n).unwrap();
        }
        let (items, _) = ready(&mut lossy);
        assert_eq!(
            items,
            vec![Ok(1), Ok(2), Err(StreamError::Lagged(Lagged { missed: 3 }))]
        );
        assert_eq!(stream.stats().dropped_newest, 3);
    }

    async fn try_emit_hands_the_item_back_when_a_transformer_would_wait(rt) {
        let stream = Numbers::new("numbers");
        let gate = Arc::new(futures::lock::Mutex::new(()));
        let held = gate.lock().await;
        let waiting = Arc::clone(&gate);
        stream.add_transformer(move |n: u32| {
            let waiting = Arc::clone(&waiting);
            async move {
                let _open = waiting.lock().await;
                n + 1
            }
        });
        let mut sub = stream.subscribe();
        assert_eq!(stream.try_emit(1), Err(TryEmitError::WouldWait(1)));
        drop(held);
        stream.try_emit(2).unwrap();
        assert_eq!(sub.next().await, Some(Ok(3)));
    }

    async fn a_panicking_transformer_is_a_typed_error(rt) {
        let stream = Numbers::new("numbers");
        stream.add_transformer(|n: u32| async move {
            assert!(n != 13, "unlucky");
            n
        });
        let mut sub = stream.subscribe();
        let error = stream.emit(13).await.unwrap_err();
        assert_eq!(
            error,
            EmitError::TransformerPanicked { message: Some("unlucky".into()) }
        );
        stream.emit(14).await.unwrap();
        assert_eq!(sub.next().await, Some(Ok(14)));
        assert_eq!(stream.stats().transformer_panics, 1);
    }

    async fn handler_flow_isolates_failures_and_reports_the_end(rt) {
        let stream = Numbers::new("numbers");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let flow = stream.on(move |n: u32| {
            let sink = Arc::clone(&sink);
            async move {
                assert!(n != 3, "three panics");
                if n == 2 {
                    return Err("two fails");
                }
                sink.lock().unwrap().push(n);
                Ok(())
            }
        });
        for n in 1..=5 {
            stream.emit(n).await.unwrap();
        }
        stream.error("done".into()).unwrap();
        let report = flow.await;
        assert_eq!(report.end, FlowEnd::Failed("done".to_string()));
        assert_eq!(
            (report.stats.handled, report.stats.failed, report.stats.panicked),
            (3, 1, 1)
        );
        assert_eq!(*seen.lock().unwrap(), [1, 4, 5]);
        let stats = stream.stats();
        assert_eq!(
            (stats.handled, stats.handler_failures, stats.handler_panics),
            (3, 1, 1)
        );
    }

    async fn a_handler_flow_stops_through_its_handle(rt) {
        let stream = Numbers::builder("numbers").capacity(1).build();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let (first_tx, first_rx) = futures::channel::oneshot::channel::<()>();
        let first_tx = Mutex::new(Some(first_tx));
        let flow = stream.on(move |n: u32| {
            sink.lock().unwrap().push(n);
            if let Some(tx) = first_tx.lock().unwrap().take() {
                let _ = tx.send(());
            }
            async {}
        });
        let handle = flow.stop_handle();
        assert!(!handle.is_stopping());
        let flow = rt.spawn(flow.into_future());
        stream.emit(1).await.unwrap();
        first_rx.await.unwrap();
        assert_eq!(stream.subscriber_count(), 1);
        handle.stop(Duration::ZERO);
        // The flow ends by itself, stopped: the stream is still open.
        let report = flow.await.unwrap();
        assert!(report.is_stopped());
        assert_eq!((report.stats.handled, report.stats.cancelled), (1, 0));
        assert!(handle.is_stopping());
        assert_eq!(stream.subscriber_count(), 0);
        // Nobody holds the emitter back any more, and nothing more is handled.
        for n in 2..=5 {
            stream.try_emit(n).unwrap();
        }
        assert_eq!(*seen.lock().unwrap(), [1]);
        assert_eq!(stream.stats().state, StreamState::Open);
        // A stream subscriber can say it too.
        let sub = stream.subscribe();
        assert_eq!(stream.subscriber_count(), 1);
        sub.unsubscribe();
        assert_eq!(stream.subscriber_count(), 0);
    }

    async fn spawned_handler_flow_runs_invocations_concurrently(rt) {
        let stream = Numbers::new("numbers");
        // Each invocation waits for the next one to start: only concurrency lets
        // them all finish.
        let started = Arc::new(AtomicUsize::new(0));
        let turnstile = Arc::new(event_listener::Event::new());
        let (count, bell) = (Arc::clone(&started), Arc::clone(&turnstile));
        let flow = stream
            .on(move |n: u32| {
                let (count, bell) = (Arc::clone(&count), Arc::clone(&bell));
                async move {
                    count.fetch_add(1, Ordering::SeqCst);
                    bell.notify(usize::MAX);
                    while count.load(Ordering::SeqCst) < 4 {
                        let listener = bell.listen();
                        if count.load(Ordering::SeqCst) >= 4 {
                            break;
                        }
                        listener.await;
                    }
                    let _ = n;
                }
            })
            .concurrency(4)
            .spawn(&rt);
        for n in 1..=4 {
            stream.emit(n).await.unwrap();
        }
        stream.complete().unwrap();
        assert!(flow.await.unwrap().is_finished());
        assert_eq!(stream.stats().handled, 4);
    }

    async fn concurrent_emitters_reach_every_subscriber_exactly_once(rt) {
        let stream = Numbers::builder("numbers").capacity(16).build();
        let readers: Vec<_> = (0..3)
            .map(|_| rt.spawn(drain(stream.subscribe())))
            .collect();
        let emitters: Vec<_> = (0..3u32)
            .map(|e| {
                let stream = stream.clone();
                rt.spawn(async move {
                    for i in 0..300 {
                        stream.emit(e * 1000 + i).await.unwrap();
                    }
                })
            })
            .collect();
        for emitter in emitters {
            emitter.await.unwrap();
        }
        stream.complete().unwrap();
        for reader in readers {
            let values: Vec<u32> = reader.await.unwrap().into_iter().map(Result::unwrap).collect();
            assert_eq!(values.len(), 900);
            for e in 0..3 {
                let mine: Vec<u32> = values.iter().copied().filter(|n| n / 1000 == e).collect();
                assert_eq!(mine, (0..300).map(|i| e * 1000 + i).collect::<Vec<_>>());
            }
        }
    }
}
