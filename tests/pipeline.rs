//! Pipeline stages, on every runtime flavour.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{matrix, timed_matrix};
use futures::StreamExt;
use futures::channel::mpsc;
use riverbed::pipeline::{
    DeadLetter, DeadLetterSink, ErrorPolicy, FlowStreamExt, ProcessorPanicked, StageError, filter,
    map, try_map,
};
use riverbed::resilience::{Jitter, RetryPolicy};
use riverbed::{BoxError, FlowContext};

/// Yields to the executor `n` times: makes items finish in a chosen order.
async fn yield_times(n: u32) {
    for _ in 0..n {
        let mut yielded = false;
        futures::future::poll_fn(|cx| {
            if yielded {
                std::task::Poll::Ready(())
            } else {
                yielded = true;
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            }
        })
        .await;
    }
}

fn values<T>(items: Vec<Result<T, StageError>>) -> Vec<T> {
    items
        .into_iter()
        .map(|r| r.expect("no stage error"))
        .collect()
}

/// Items that take longer the smaller they are.
async fn slow_small(n: u32) -> u32 {
    yield_times(10 - n).await;
    n
}

matrix! {
    /// With concurrency, outputs keep input order unless the stage is unordered; the
    /// unordered one emits in completion order.
    async fn ordered_and_unordered(rt) {
        let ordered = futures::stream::iter(0..10u32)
            .flow()
            .pipe(map(slow_small))
            .concurrency(4)
            .values()
            .collect::<Vec<_>>()
            .await;
        assert_eq!(values(ordered), (0..10).collect::<Vec<_>>());

        let unordered = futures::stream::iter(0..4u32)
            .flow()
            .pipe(map(slow_small))
            .concurrency(4)
            .unordered()
            .values()
            .collect::<Vec<_>>()
            .await;
        assert_eq!(values(unordered), [3, 2, 1, 0]);
    }

    /// Filtered items are counted, and the stats add up.
    async fn filtering_and_stats(rt) {
        let stage = futures::stream::iter(0..10u32)
            .flow()
            .pipe(filter(|n: &u32| std::future::ready(n.is_multiple_of(3))))
            .name("thirds");
        let stats = stage.stats();
        let out = values(stage.values().collect::<Vec<_>>().await);
        assert_eq!(out, [0, 3, 6, 9]);
        let s = stats.snapshot();
        assert_eq!(s.name, "thirds");
        assert_eq!((s.received, s.emitted, s.filtered, s.in_flight), (10, 4, 6, 0));
        assert_eq!(s.latency.count, 1, "one item in 32 is timed: the 1st");

        let every = futures::stream::iter(0..10u32)
            .flow()
            .pipe(map(|n: u32| async move { n }))
            .latency_sampling(1)
            .name("every");
        let every_stats = every.stats();
        assert_eq!(every.values().count().await, 10);
        let timed = every_stats.snapshot();
        assert_eq!((timed.name.as_str(), timed.latency.count), ("every", 10));
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["filtered"], 6);
    }

    /// With statistics off, nothing is recorded and the items flow the same.
    async fn stats_can_be_turned_off(rt) {
        let stage = futures::stream::iter(0..5u32)
            .flow()
            .pipe(filter(|n: &u32| std::future::ready(*n != 2)))
            .name("quiet")
            .without_stats();
        let stats = stage.stats();
        assert_eq!(values(stage.values().collect::<Vec<_>>().await), [0, 1, 3, 4]);
        let s = stats.snapshot();
        assert_eq!(s.name, "quiet");
        assert_eq!((s.received, s.emitted, s.filtered, s.latency.count), (0, 0, 0, 0));
    }

    /// Skip drops failing items and counts them; the rest go on.
    async fn skip_policy(rt) {
        let stage = futures::stream::iter(["1", "x", "3", "y"])
            .flow()
            .pipe(try_map(|s: &'static str| async move { s.parse::<u32>() }))
            .on_error(ErrorPolicy::skip());
        let stats = stage.stats();
        assert_eq!(values(stage.values().collect::<Vec<_>>().await), [1, 3]);
        let s = stats.snapshot();
        assert_eq!((s.received, s.emitted, s.skipped, s.failed), (4, 2, 2, 0));
    }

    /// Fail (the default) emits the error with the stage's name, the item's context and
    /// the attempts, then ends; later stages pass it on and end too.
    async fn fail_policy_stops_the_pipeline(rt) {
        let seen = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&seen);
        let ctx = FlowContext::new().with_user_id("u-7");
        let out: Vec<_> = futures::stream::iter(["1", "2", "x", "4"])
            .flow_in(ctx.clone())
            .pipe(try_map(|s: &'static str| async move { s.parse::<u32>() }))
            .name("parse")
            .pipe(map(move |n: u32| {
                counted.fetch_add(1, Ordering::SeqCst);
                async move { n }
            }))
            .values()
            .collect()
            .await;
        assert_eq!(out.len(), 3);
        assert_eq!(*out[0].as_ref().unwrap(), 1);
        assert_eq!(*out[1].as_ref().unwrap(), 2);
        let error = out[2].as_ref().unwrap_err();
        assert_eq!(error.stage(), "parse");
        assert_eq!(error.attempts(), 1);
        assert_eq!(error.ctx().user_id(), Some("u-7"));
        assert!(error.error().downcast_ref::<std::num::ParseIntError>().is_some());
        assert!(error.to_string().contains("stage \"parse\" failed after 1 attempt"), "{error}");
        assert_eq!(seen.load(Ordering::SeqCst), 2, "\"4\" never reached the second stage");
    }

    /// Failed items go to the dead-letter sink with their error, context, stage and
    /// attempts; the others go on.
    async fn dead_letter_policy(rt) {
        let (tx, mut rx) = mpsc::unbounded::<DeadLetter<&'static str>>();
        let stage = futures::stream::iter(["1", "bad", "3"])
            .flow()
            .pipe(try_map(|s: &'static str| async move { s.parse::<u32>() }))
            .name("parse")
            .on_error(ErrorPolicy::dead_letter(DeadLetterSink::new(tx)));
        let stats = stage.stats();
        assert_eq!(values(stage.values().collect::<Vec<_>>().await), [1, 3]);
        let letter = rx.next().await.unwrap();
        assert_eq!((letter.item, &*letter.stage, letter.attempts), ("bad", "parse", 1));
        assert!(letter.error.downcast_ref::<std::num::ParseIntError>().is_some());
        assert_eq!(stats.snapshot().dead_lettered, 1);
    }

    /// A panicking processor fails only its item: counted as a panic and handled by
    /// the policy.
    async fn panics_are_item_errors(rt) {
        let stage = futures::stream::iter(0..5u32)
            .flow()
            .pipe(map(|n: u32| async move {
                assert_ne!(n, 2, "two is poison");
                n
            }))
            .on_error(ErrorPolicy::skip());
        let stats = stage.stats();
        assert_eq!(values(stage.values().collect::<Vec<_>>().await), [0, 1, 3, 4]);
        let s = stats.snapshot();
        assert_eq!((s.panics, s.skipped), (1, 1));

        let out: Vec<_> = futures::stream::iter(0..5u32)
            .flow()
            .pipe(map(|n: u32| async move {
                assert_ne!(n, 1, "one is poison");
                n
            }))
            .values()
            .collect()
            .await;
        let error = out[1].as_ref().unwrap_err();
        let panic = error.error().downcast_ref::<ProcessorPanicked>().unwrap();
        assert!(panic.message.as_deref().unwrap().contains("one is poison"));
    }

    /// Each item's context reaches the processor and comes out with the item.
    async fn context_travels_with_the_item(rt) {
        let ctx = FlowContext::new().with_user_id("alice").with_attribute("tenant", "t1");
        let flow_id = ctx.flow_id().to_owned();
        let out: Vec<_> = futures::stream::iter(0..3u32)
            .flow_in(ctx)
            .pipe(|n: u32, ctx: FlowContext| async move {
                let tenant = ctx.attribute("tenant").unwrap_or("?").to_owned();
                Ok::<_, std::convert::Infallible>(Some(format!("{tenant}:{n}")))
            })
            .pipe(map(|s: String| async move { s.len() }))
            .collect()
            .await;
        for item in out {
            let (len, ctx) = item.unwrap();
            assert_eq!(len, 4);
            assert_eq!((ctx.flow_id(), ctx.user_id()), (flow_id.as_str(), Some("alice")));
        }
    }

    /// A consumer that stops reading bounds what the stages pull: at most each stage's
    /// concurrency is in flight, plus the item being handed on.
    async fn backpressure_bounds_items_in_flight(rt) {
        let pulled = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&pulled);
        let source = futures::stream::iter(0..1000u32).inspect(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        // A stage holds its processor's future in place: pin it to poll it by hand.
        let mut pipeline = Box::pin(
            source
                .flow()
                .pipe(map(|n: u32| async move { n }))
                .concurrency(4)
                .pipe(map(|n: u32| async move { n + 1 }))
                .concurrency(2),
        );
        assert_eq!(pipeline.next().await.unwrap().unwrap().0, 1);
        let after_one = pulled.load(Ordering::SeqCst);
        assert!(after_one <= 1 + 4 + 2, "pulled {after_one} items for one output");
        for _ in 0..10 {
            pipeline.next().await.unwrap().unwrap();
        }
        assert!(pulled.load(Ordering::SeqCst) <= 11 + 4 + 2);
    }

    /// At concurrency 1 too, dropping the stage cancels the item in flight, and the
    /// statistics say so.
    async fn dropping_a_single_item_stage_counts_the_cancel(rt) {
        let mut stage = Box::pin(
            futures::stream::iter(0..3u32)
                .flow()
                .pipe(map(|n: u32| async move {
                    if n == 1 {
                        futures::future::pending::<()>().await;
                    }
                    n
                })),
        );
        let stats = stage.stats();
        assert_eq!(stage.next().await.unwrap().unwrap().0, 0);
        assert!(futures::poll!(stage.next()).is_pending());
        assert_eq!(stats.snapshot().in_flight, 1);
        drop(stage);
        let s = stats.snapshot();
        assert_eq!((s.received, s.emitted, s.cancelled, s.in_flight), (2, 1, 1, 0));
    }

    /// Dropping a pipeline drops the items in flight: no task or item outlives it.
    async fn dropping_cancels_in_flight_items(rt) {
        struct Alive(Arc<AtomicUsize>);
        impl Drop for Alive {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let alive = Arc::new(AtomicUsize::new(0));
        let tracker = Arc::clone(&alive);
        let mut stage = Box::pin(futures::stream::iter(0..100u32)
            .flow()
            .pipe(map(move |n: u32| {
                tracker.fetch_add(1, Ordering::SeqCst);
                let guard = Alive(Arc::clone(&tracker));
                async move {
                    let _guard = guard;
                    if n > 0 {
                        futures::future::pending::<()>().await;
                    }
                    n
                }
            }))
            .concurrency(8)
            .unordered());
        let stats = stage.stats();
        assert_eq!(stage.next().await.unwrap().unwrap().0, 0);
        // Eight are waiting: the first finished and the next one took its place.
        assert!(futures::poll!(stage.next()).is_pending());
        assert_eq!(alive.load(Ordering::SeqCst), 8);
        assert_eq!(stats.snapshot().in_flight, 8);
        drop(stage);
        assert_eq!(alive.load(Ordering::SeqCst), 0);
        let s = stats.snapshot();
        assert_eq!((s.in_flight, s.cancelled), (0, 8), "cancelled items are counted as such");
        assert_eq!(s.received, s.emitted + s.cancelled);
    }
}

timed_matrix! {
    /// Retry waits the policy's delays on the stage's runtime (exactly, on the virtual
    /// clock), then succeeds; retries are counted.
    async fn retry_waits_then_succeeds(rt) {
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&attempts);
        let clock = rt.clone();
        let stage = futures::stream::iter([7u32])
            .flow()
            .pipe(move |n: u32, _ctx: FlowContext| {
                let log = Arc::clone(&log);
                let clock = clock.clone();
                async move {
                    let mut log = log.lock().unwrap();
                    log.push(clock.now());
                    if log.len() < 3 {
                        Err("not yet")
                    } else {
                        Ok(Some(n))
                    }
                }
            })
            .on_error(ErrorPolicy::retry(
                RetryPolicy::exponential(Duration::from_millis(10))
                    .max_attempts(5)
                    .jitter(Jitter::None),
                ErrorPolicy::fail(),
            ))
            .runtime(&rt);
        let stats = stage.stats();
        assert_eq!(values(stage.values().collect::<Vec<_>>().await), [7]);
        let times = attempts.lock().unwrap().clone();
        let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps[0] >= Duration::from_millis(10) && gaps[1] >= Duration::from_millis(20));
        if format!("{rt:?}").starts_with("VirtualRuntime") {
            assert_eq!(gaps, [Duration::from_millis(10), Duration::from_millis(20)]);
        }
        let s = stats.snapshot();
        assert_eq!((s.retried, s.emitted, s.failed), (2, 1, 0));
    }

    /// When the attempts run out, the next policy decides with the last error.
    async fn retry_falls_through(rt) {
        let stage = futures::stream::iter(["x"])
            .flow()
            .pipe(try_map(|s: &'static str| async move { s.parse::<u32>() }))
            .name("parse")
            .on_error(ErrorPolicy::retry(
                RetryPolicy::constant(Duration::from_millis(5)).max_attempts(3),
                ErrorPolicy::fail(),
            ))
            .runtime(&rt);
        let stats = stage.stats();
        let out: Vec<_> = stage.values().collect().await;
        let error = out[0].as_ref().unwrap_err();
        assert_eq!(error.attempts(), 3);
        let s = stats.snapshot();
        assert_eq!((s.retried, s.failed), (2, 1));
    }

    /// `when` retries only the errors it accepts; any other error goes straight to the
    /// next policy with one attempt made, as the `Retry` layer's `when` does.
    async fn retry_when_chooses_the_errors(rt) {
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&calls);
        let stage = futures::stream::iter(["busy", "bad"])
            .flow()
            .pipe(move |s: &'static str, _ctx: FlowContext| {
                let n = seen.fetch_add(1, Ordering::SeqCst);
                async move {
                    match (s, n) {
                        // Transient: fails once, then succeeds.
                        ("busy", 0) => Err::<Option<u32>, BoxError>("busy".into()),
                        ("busy", _) => Ok(Some(1)),
                        _ => Err(s.parse::<u32>().unwrap_err().into()),
                    }
                }
            })
            .on_error(
                ErrorPolicy::retry(
                    RetryPolicy::constant(Duration::from_millis(5)).max_attempts(4),
                    ErrorPolicy::skip(),
                )
                .when(|error| !error.is::<std::num::ParseIntError>()),
            )
            .runtime(&rt);
        let stats = stage.stats();
        assert_eq!(values(stage.values().collect::<Vec<_>>().await), [1]);
        let s = stats.snapshot();
        assert_eq!((s.retried, s.emitted, s.skipped, s.failed), (1, 1, 1, 0));
        assert_eq!(calls.load(Ordering::SeqCst), 3, "the parse error was not retried");
    }
}

mod named {
    use super::*;
    use futures::FutureExt;
    use riverbed::pipeline::{FeedError, Pipeline};

    fn parse_and_scale() -> Pipeline<String, u32> {
        Pipeline::<String>::new("orders")
            .stage_with(
                try_map(|s: String| async move { s.parse::<u32>() }),
                |stage| stage.name("validate").on_error(ErrorPolicy::skip()),
            )
            .stage(map(|n: u32| async move { n * 100 }))
    }

    matrix! {
        /// Feed in, read out, statistics per stage; the output ends when the input is
        /// dropped.
        async fn feed_and_read(rt) {
            let pipeline = parse_and_scale();
            let stats = pipeline.stats();
            let (mut input, output) = pipeline.start();
            let feeder = async move {
                for line in ["1", "x", "3"] {
                    input.feed(line.to_string(), FlowContext::new()).await.unwrap();
                }
            };
            let (_, out) = futures::join!(feeder, output.values().collect::<Vec<_>>());
            assert_eq!(values(out), [100, 300]);
            let s = stats.snapshot();
            assert_eq!((s.name.as_str(), s.received(), s.emitted()), ("orders", 3, 2));
            assert_eq!(s.stages[0].name, "validate");
            assert_eq!(s.stages[1].name, "orders.1");
            assert_eq!((s.stages[0].skipped, s.stages[1].received), (1, 2));
        }

        /// Nothing runs until the output is polled, so feeding waits once the input
        /// holds its capacity: backpressure reaches the feeder.
        async fn feed_waits_when_full(rt) {
            let (mut input, output) = parse_and_scale().input_capacity(4).start();
            for n in 0..4 {
                input.feed(n.to_string(), FlowContext::new()).await.unwrap();
            }
            assert!(input.feed("4".into(), FlowContext::new()).now_or_never().is_none());
            assert_eq!(input.len(), 4);
            // Clones share the one bound: a second producer adds no room.
            let mut other = input.clone();
            assert!(other.feed("5".into(), FlowContext::new()).now_or_never().is_none());
            drop(output);
        }

        /// An item the `Sink` side accepted while the input was full goes in before
        /// what `feed` brings after it: one handle's items keep their order, whichever
        /// way each came in.
        async fn feed_after_an_unflushed_sink_item_keeps_the_order(rt) {
            use futures::SinkExt;

            let (mut input, output) = parse_and_scale().input_capacity(1).start();
            input.feed("1".into(), FlowContext::new()).await.unwrap();
            // The input is full: the sink takes "2" and holds it, not yet in.
            futures::future::poll_fn(|cx| input.poll_ready_unpin(cx)).await.unwrap();
            input.start_send_unpin(("2".into(), FlowContext::new())).unwrap();
            assert_eq!(input.len(), 1);
            let feeder = async move {
                input.feed("3".into(), FlowContext::new()).await.unwrap();
            };
            let (_, out) = futures::join!(feeder, output.values().collect::<Vec<_>>());
            assert_eq!(values(out), [100, 200, 300]);
        }

        /// The input is also a `Sink`: a stream forwarded in through a small input
        /// arrives whole and in order, the sink waiting whenever the input is full;
        /// once the output is gone the sink says `PipelineClosed`.
        async fn input_as_a_sink(rt) {
            use futures::SinkExt;
            use riverbed::pipeline::PipelineClosed;

            let (mut input, output) = parse_and_scale().input_capacity(2).start();
            let lines = futures::stream::iter(0..50u32)
                .map(|n| Ok::<_, PipelineClosed>((n.to_string(), FlowContext::new())));
            let mut lines = Box::pin(lines);
            let feeder = async move {
                input.send_all(&mut lines).await.unwrap();
                input.close().await.unwrap();
            };
            let (_, out) = futures::join!(feeder, output.values().collect::<Vec<_>>());
            assert_eq!(values(out), (0..50u32).map(|n| n * 100).collect::<Vec<_>>());

            let (mut input, output) = parse_and_scale().start();
            drop(output);
            assert_eq!(
                input.send(("1".into(), FlowContext::new())).await,
                Err(PipelineClosed)
            );
        }

        /// Dropping the output stops the pipeline; feeding then fails and hands the item
        /// and its context back.
        async fn feed_after_output_dropped(rt) {
            let (mut input, output) = parse_and_scale().start();
            drop(output);
            assert!(input.is_closed());
            let ctx = FlowContext::new().with_user_id("bob");
            let FeedError { item, ctx } = input.feed("7".into(), ctx).await.unwrap_err();
            assert_eq!((item.as_str(), ctx.user_id()), ("7", Some("bob")));
        }

        /// `run` drives the pipeline to its end: the count of outputs, or the error
        /// that stopped a stage.
        async fn run_counts_or_fails(rt) {
            let (mut input, output) = parse_and_scale().start();
            let feeder = async move {
                for n in 0..5 {
                    input.feed(n.to_string(), FlowContext::new()).await.unwrap();
                }
            };
            let (_, ran) = futures::join!(feeder, output.run());
            assert_eq!(ran.unwrap(), 5);

            let strict = Pipeline::<String>::new("strict")
                .stage(try_map(|s: String| async move { s.parse::<u32>() }));
            let (mut input, output) = strict.start();
            let feeder = async move {
                for s in ["1", "nope", "3"] {
                    if input.feed(s.to_string(), FlowContext::new()).await.is_err() {
                        break;
                    }
                }
            };
            let (_, ran) = futures::join!(feeder, output.run());
            let error = ran.unwrap_err();
            assert_eq!((error.stage(), error.attempts()), ("strict.0", 1));
        }

        /// Spawned on a runtime, the stages run in a task; dropping the output stops
        /// it, and feeding then fails.
        async fn spawned_pipeline(rt) {
            let (mut input, mut output, task) = parse_and_scale().spawn(&rt, 8);
            input.feed("2".into(), FlowContext::new()).await.unwrap();
            assert_eq!(output.next().await.unwrap().unwrap().0, 200);
            drop(output);
            // The task notices when it next hands an output over.
            input.feed("3".into(), FlowContext::new()).await.unwrap();
            task.await.unwrap();
            assert!(input.feed("4".into(), FlowContext::new()).await.is_err());
        }
    }
}

mod batching {
    use super::*;
    use riverbed::runtime::RuntimeExt;

    matrix! {
        /// Batches by count; the last one holds what is left; a batch carries its first
        /// item's context.
        async fn batch_by_count(rt) {
            let out: Vec<_> = futures::stream::iter(0..7u32)
                .flow()
                .batch(3)
                .collect()
                .await;
            let sizes: Vec<Vec<u32>> = out.iter().map(|b| b.as_ref().unwrap().0.clone()).collect();
            assert_eq!(sizes, [vec![0, 1, 2], vec![3, 4, 5], vec![6]]);

            let ctx = FlowContext::new().with_user_id("carol");
            let out: Vec<_> = futures::stream::iter(0..2u32).flow_in(ctx).batch(5).collect().await;
            assert_eq!(out[0].as_ref().unwrap().1.user_id(), Some("carol"));
        }

        /// An upstream error comes out after the batch in progress, then the stream ends.
        async fn batch_passes_errors_after_the_partial_batch(rt) {
            let out: Vec<_> = futures::stream::iter(["1", "2", "x", "4"])
                .flow()
                .pipe(try_map(|s: &'static str| async move { s.parse::<u32>() }))
                .batch(10)
                .collect()
                .await;
            assert_eq!(out.len(), 2);
            assert_eq!(out[0].as_ref().unwrap().0, [1, 2]);
            assert!(out[1].is_err());
        }
    }

    timed_matrix! {
        /// A partial batch is emitted `max_wait` after its first item (exactly, on the
        /// virtual clock), not when the next item happens to come.
        async fn batch_by_time(rt) {
            let clock = rt.clone();
            let (tx, rx) = futures::channel::mpsc::unbounded::<u32>();
            let start = rt.now();
            let producer = {
                let rt = rt.clone();
                async move {
                    tx.unbounded_send(1).unwrap();
                    tx.unbounded_send(2).unwrap();
                    rt.sleep(Duration::from_millis(50)).await;
                    tx.unbounded_send(3).unwrap();
                    // dropping tx ends the stream
                }
            };
            let consumer = async move {
                let mut batches = Vec::new();
                let mut stream = rx.flow().batch_timeout(10, Duration::from_millis(20), &clock);
                while let Some(batch) = stream.next().await {
                    batches.push((batch.unwrap().0, clock.now() - start));
                }
                batches
            };
            let (_, batches) = futures::join!(producer, consumer);
            assert_eq!(batches.len(), 2);
            assert_eq!(batches[0].0, [1, 2]);
            assert_eq!(batches[1].0, [3]);
            assert!(batches[0].1 >= Duration::from_millis(20));
            if format!("{rt:?}").starts_with("VirtualRuntime") {
                assert_eq!(batches[0].1, Duration::from_millis(20));
                assert_eq!(batches[1].1, Duration::from_millis(50), "the end flushes at once");
            }
        }
    }
}
