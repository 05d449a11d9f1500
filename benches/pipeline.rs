//! Pipeline benchmarks, each group with its peers or floors in the same run.
//!
//! * `pipeline_3_stages`: three trivial stages (parse a `u64` from a `String` → add 1 →
//!   format back to a `String`) over 1,000,000 items per iteration. Sides:
//!   - `riverbed_stats_on`: three `pipe` stages, default statistics;
//!   - `riverbed_stats_off`: the same with `.without_stats()` on every stage;
//!   - `streamext_chain`: the floor, a hand-written `futures::StreamExt::then` chain
//!     running the same async closures, no contexts involved;
//!   - `streamext_chain_with_context`: the same chain with each item carrying a clone
//!     of one `FlowContext` beside it, as riverbed's items do (like for like);
//!   - `async_channel_tasks`: the same three stages as three spawned tokio tasks joined
//!     by bounded `async-channel`s of capacity 1024.
//!
//!   The riverbed input is `stream::iter(strings).flow_in(ctx)` with one shared
//!   `FlowContext`, read out with `.values()`. The input strings are built before the
//!   clock starts; every side must produce exactly 1,000,000 outputs (checked on every
//!   iteration). The riverbed and `StreamExt` sides run on the bench thread (inside the
//!   runtime's `block_on`); the channel side runs on the two workers, with the bench
//!   thread reading the last channel.
//! * `pipeline_concurrency`: one stage whose processor awaits a simulated I/O
//!   (`tokio::time::sleep(50 µs)`) over 2,000 items, concurrency 1 vs 8, ordered,
//!   default statistics. tokio's timer has a 1 ms granularity, so each simulated I/O
//!   actually lasts about 1 ms; what matters is the ratio between concurrency 8 and 1.
//!
//! * `pipeline_input`: 200,000 `u64`s fed by a spawned producer task through a bounded
//!   input of 1,024 items into one `add` stage, read out on the bench thread. Sides:
//!   - `riverbed_named_feed`: a named `Pipeline` (`start()`, `PipelineInput::feed`,
//!     one context clone per item);
//!   - `futures_mpsc_input` / `async_channel_input`: the same stage fed through a
//!     hand-made `futures::channel::mpsc` or `async-channel` receiver
//!     (`rx.flow_in(ctx)`), the two candidates for the named pipeline's input channel.
//!
//! Throughput is in items per second. Everything runs on a tokio multi-thread runtime
//! with 2 workers.
//!
//! Run: `cargo bench --bench pipeline` (add `-- --quick` for a fast pass).

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{
    BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group,
    criterion_main,
};
use futures::{Stream, StreamExt, stream};
use riverbed::FlowContext;
use riverbed::pipeline::{FlowStreamExt, Flowing, Pipeline, Processor, Stage, map};

#[path = "support/timing.rs"]
#[allow(dead_code)] // the benches that count delivered items use the rest
mod timing;
use timing::{runtime, time_counted, time_counted_with};

/// Items per iteration of `pipeline_3_stages`.
const ITEMS: u64 = 1_000_000;
/// Items per iteration of `pipeline_concurrency`.
const IO_ITEMS: u64 = 2_000;
/// The simulated I/O of `pipeline_concurrency` (tokio rounds it up to ~1 ms).
const IO: Duration = Duration::from_micros(50);
/// Items per iteration of `pipeline_input`.
const FEED_ITEMS: u64 = 200_000;
/// Capacity of each channel of `async_channel_tasks`, and of the input of `pipeline_input`.
const CAPACITY: usize = 1024;

/// The input of one iteration, built before the clock starts.
fn input(n: u64) -> Vec<String> {
    (0..n).map(|i| i.to_string()).collect()
}

fn parse(s: String) -> u64 {
    s.parse().expect("a number")
}

fn add(n: u64) -> u64 {
    n + 1
}

fn format(n: u64) -> String {
    n.to_string()
}

/// The stage as it is, or with its statistics turned off.
fn stats_if<S, P, In>(stage: Stage<S, P, In>, on: bool) -> Stage<S, P, In>
where
    S: Stream<Item = Flowing<In>>,
    P: Processor<In>,
    In: Send + 'static,
{
    if on { stage } else { stage.without_stats() }
}

/// Riverbed: three stages, with or without statistics.
async fn riverbed_3_stages(strings: Vec<String>, ctx: &FlowContext, stats: bool) -> u64 {
    let parsed = stream::iter(strings)
        .flow_in(ctx.clone())
        .pipe(map(|s: String| async move { parse(s) }))
        .name("parse");
    let added = stats_if(parsed, stats)
        .pipe(map(|n: u64| async move { add(n) }))
        .name("add");
    let formatted = stats_if(added, stats)
        .pipe(map(|n: u64| async move { format(n) }))
        .name("format");
    let stage3 = stats_if(formatted, stats);
    let stats_handle = stage3.stats();
    let count = stage3
        .values()
        .fold(0u64, |count, out| {
            black_box(out.expect("no stage fails"));
            std::future::ready(count + 1)
        })
        .await;
    if stats {
        assert_eq!(
            stats_handle.snapshot().emitted,
            count,
            "stats counted every item"
        );
    }
    count
}

/// The floor: the same async closures chained with `StreamExt::then`.
async fn streamext_chain(strings: Vec<String>) -> u64 {
    stream::iter(strings)
        .then(|s| async move { parse(s) })
        .then(|n| async move { add(n) })
        .then(|n| async move { format(n) })
        .fold(0u64, |count, out| {
            black_box(out);
            std::future::ready(count + 1)
        })
        .await
}

/// The floor with contexts: the same `then` chain, each item carrying a clone of the
/// one context beside it as riverbed's items do (one `Arc` increment per item, one
/// decrement at the end).
async fn streamext_chain_with_context(strings: Vec<String>, ctx: &FlowContext) -> u64 {
    let ctx = ctx.clone();
    stream::iter(strings)
        .map(move |s| (s, ctx.clone()))
        .then(|(s, ctx)| async move { (parse(s), ctx) })
        .then(|(n, ctx)| async move { (add(n), ctx) })
        .then(|(n, ctx)| async move { (format(n), ctx) })
        .fold(0u64, |count, (out, _ctx)| {
            black_box(out);
            std::future::ready(count + 1)
        })
        .await
}

/// Three spawned tasks joined by bounded channels; the caller reads the last one.
async fn async_channel_tasks(strings: Vec<String>) -> u64 {
    let (parsed_tx, parsed_rx) = async_channel::bounded::<u64>(CAPACITY);
    let (added_tx, added_rx) = async_channel::bounded::<u64>(CAPACITY);
    let (out_tx, out_rx) = async_channel::bounded::<String>(CAPACITY);
    let parse_task = tokio::spawn(async move {
        for s in strings {
            parsed_tx.send(parse(s)).await.expect("send");
        }
    });
    let add_task = tokio::spawn(async move {
        while let Ok(n) = parsed_rx.recv().await {
            added_tx.send(add(n)).await.expect("send");
        }
    });
    let format_task = tokio::spawn(async move {
        while let Ok(n) = added_rx.recv().await {
            out_tx.send(format(n)).await.expect("send");
        }
    });
    let mut count = 0u64;
    while let Ok(out) = out_rx.recv().await {
        black_box(out);
        count += 1;
    }
    for task in [parse_task, add_task, format_task] {
        task.await.expect("stage task");
    }
    count
}

/// Reads a one-stage flow to its end, checking every output.
async fn drain_values<T, E: std::fmt::Debug, S: Stream<Item = Result<T, E>> + Unpin>(
    out: S,
) -> u64 {
    out.fold(0u64, |count, out| {
        black_box(out.expect("no stage fails"));
        std::future::ready(count + 1)
    })
    .await
}

/// A named pipeline fed through its own input by a spawned producer.
async fn riverbed_named_feed(ctx: &FlowContext) -> u64 {
    let pipeline = Pipeline::<u64>::new("feed")
        .input_capacity(CAPACITY)
        .stage(map(|n: u64| async move { add(n) }));
    let (mut input, output) = pipeline.start();
    let ctx = ctx.clone();
    let producer = tokio::spawn(async move {
        for n in 0..FEED_ITEMS {
            input
                .feed(n, ctx.clone())
                .await
                .expect("the pipeline reads");
        }
    });
    let count = drain_values(output.values()).await;
    producer.await.expect("producer");
    count
}

/// The same stage fed through a channel's receiver `rx`, a spawned `producer` sending
/// into it.
async fn fed_stage<R>(
    ctx: &FlowContext,
    rx: R,
    producer: impl Future<Output = ()> + Send + 'static,
) -> u64
where
    R: Stream<Item = u64> + Send + 'static,
{
    let producer = tokio::spawn(producer);
    let out = rx
        .flow_in(ctx.clone())
        .pipe(map(|n: u64| async move { add(n) }))
        .values();
    let count = drain_values(Box::pin(out)).await;
    producer.await.expect("producer");
    count
}

/// The stage fed through a `futures::channel::mpsc` receiver.
async fn futures_mpsc_input(ctx: &FlowContext) -> u64 {
    use futures::SinkExt;
    let (mut tx, rx) = futures::channel::mpsc::channel::<u64>(CAPACITY - 1);
    fed_stage(ctx, rx, async move {
        for n in 0..FEED_ITEMS {
            tx.send(n).await.expect("the stage reads");
        }
    })
    .await
}

/// The stage fed through an `async-channel` receiver.
async fn async_channel_input(ctx: &FlowContext) -> u64 {
    let (tx, rx) = async_channel::bounded::<u64>(CAPACITY);
    fed_stage(ctx, rx, async move {
        for n in 0..FEED_ITEMS {
            tx.send(n).await.expect("the stage reads");
        }
    })
    .await
}

/// One stage awaiting a simulated I/O per item, `concurrency` items at once, ordered.
async fn riverbed_io(ctx: &FlowContext, concurrency: usize) -> u64 {
    stream::iter(0..IO_ITEMS)
        .flow_in(ctx.clone())
        .pipe(map(|n: u64| async move {
            tokio::time::sleep(IO).await;
            n
        }))
        .name("io")
        .concurrency(concurrency)
        .values()
        .fold(0u64, |count, out| {
            black_box(out.expect("no stage fails"));
            std::future::ready(count + 1)
        })
        .await
}

/// Times one side of `pipeline_3_stages` (an async function of the input strings,
/// returning the number of outputs), on an input built before the clock starts.
fn stages_side<F, Fut>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    id: &str,
    rt: &tokio::runtime::Runtime,
    run: F,
) where
    F: Fn(Vec<String>) -> Fut,
    Fut: Future<Output = u64>,
{
    group.bench_function(id, |b| {
        time_counted_with(b, rt, ITEMS, || input(ITEMS), &run)
    });
}

fn three_stages(c: &mut Criterion) {
    let rt = runtime();
    let ctx = FlowContext::new();
    let ctx = &ctx;
    let mut group = c.benchmark_group("pipeline_3_stages");
    group
        .sample_size(10)
        .throughput(Throughput::Elements(ITEMS));
    stages_side(&mut group, "riverbed_stats_on", &rt, |strings| {
        riverbed_3_stages(strings, ctx, true)
    });
    stages_side(&mut group, "riverbed_stats_off", &rt, |strings| {
        riverbed_3_stages(strings, ctx, false)
    });
    stages_side(&mut group, "streamext_chain", &rt, streamext_chain);
    stages_side(&mut group, "streamext_chain_with_context", &rt, |strings| {
        streamext_chain_with_context(strings, ctx)
    });
    stages_side(&mut group, "async_channel_tasks", &rt, async_channel_tasks);
    group.finish();
}

fn concurrency(c: &mut Criterion) {
    let rt = runtime();
    let ctx = FlowContext::new();
    let ctx = &ctx;
    let mut group = c.benchmark_group("pipeline_concurrency");
    // An iteration at concurrency 1 takes about 2 s (2,000 × ~1 ms): flat sampling and
    // 20 s of measurement give one iteration per sample there.
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(20))
        .throughput(Throughput::Elements(IO_ITEMS));
    for n in [1usize, 8] {
        group.bench_function(BenchmarkId::new("riverbed", n), |b| {
            time_counted(b, &rt, IO_ITEMS, || riverbed_io(ctx, n))
        });
    }
    group.finish();
}

fn input_channel(c: &mut Criterion) {
    let rt = runtime();
    let ctx = FlowContext::new();
    let ctx = &ctx;
    let mut group = c.benchmark_group("pipeline_input");
    group
        .sample_size(10)
        .throughput(Throughput::Elements(FEED_ITEMS));
    group.bench_function("riverbed_named_feed", |b| {
        time_counted(b, &rt, FEED_ITEMS, || riverbed_named_feed(ctx))
    });
    group.bench_function("futures_mpsc_input", |b| {
        time_counted(b, &rt, FEED_ITEMS, || futures_mpsc_input(ctx))
    });
    group.bench_function("async_channel_input", |b| {
        time_counted(b, &rt, FEED_ITEMS, || async_channel_input(ctx))
    });
    group.finish();
}

criterion_group!(benches, three_stages, input_channel, concurrency);
criterion_main!(benches);
