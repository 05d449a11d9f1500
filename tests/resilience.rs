//! The resilience layers on every runtime flavour: exact times on the virtual clock,
//! lower bounds and orderings on the real ones.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{matrix, timed_matrix};
use futures::FutureExt;
use futures::channel::oneshot;
use riverbed::pipeline::Processor;
use riverbed::resilience::{
    BreakerConfig, BreakerEvent, BreakerState, BulkheadFull, CircuitOpen, Jitter, ProcessorExt,
    RateLimitConfig, RateLimitMode, RateLimited, RetriesExhausted, RetryPolicy, TimedOut,
};
use riverbed::runtime::{RuntimeExt, SharedRuntime};
use riverbed::{BoxError, FlowContext};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn is_virtual(rt: &SharedRuntime) -> bool {
    format!("{rt:?}").starts_with("VirtualRuntime")
}

/// `actual` is exactly `expected` on the virtual clock, and at least that elsewhere.
#[track_caller]
fn assert_time(rt: &SharedRuntime, actual: Duration, expected: Duration) {
    if is_virtual(rt) {
        assert_eq!(actual, expected);
    } else {
        assert!(actual >= expected, "{actual:?} < {expected:?}");
    }
}

/// `actual` is exactly `expected` on the virtual clock, and at most that elsewhere
/// (time has passed since it was computed).
#[track_caller]
fn assert_remaining(rt: &SharedRuntime, actual: Duration, expected: Duration) {
    if is_virtual(rt) {
        assert_eq!(actual, expected);
    } else {
        assert!(actual <= expected, "{actual:?} > {expected:?}");
    }
}

/// `d` on the virtual clock; 25 times longer on real runtimes, so that a machine that
/// stalls a test thread for a few hundred milliseconds cannot make a "still open" or
/// "still limited" check see the period already over.
fn span(rt: &SharedRuntime, d: Duration) -> Duration {
    if is_virtual(rt) { d } else { d * 25 }
}

fn ctx() -> FlowContext {
    FlowContext::new()
}

/// A processor that fails its first `failures` calls, then doubles its input; it
/// records the instant of every call.
#[derive(Clone)]
struct Flaky {
    failures: usize,
    calls: Arc<Mutex<Vec<Instant>>>,
    rt: SharedRuntime,
}

impl Flaky {
    fn new(failures: usize, rt: &SharedRuntime) -> Self {
        Flaky {
            failures,
            calls: Arc::default(),
            rt: rt.clone(),
        }
    }

    fn calls(&self) -> Vec<Instant> {
        self.calls.lock().unwrap().clone()
    }
}

impl Processor<u32> for Flaky {
    type Out = u32;
    type Future = futures::future::Ready<riverbed::pipeline::Outcome<u32>>;

    fn process(&self, item: u32, _ctx: &FlowContext) -> Self::Future {
        let mut calls = self.calls.lock().unwrap();
        calls.push(self.rt.now());
        futures::future::ready(if calls.len() <= self.failures {
            Err(format!("failure {}", calls.len()).into())
        } else {
            Ok(Some(item * 2))
        })
    }
}

fn gaps(instants: &[Instant]) -> Vec<Duration> {
    instants.windows(2).map(|w| w[1] - w[0]).collect()
}

/// A processor whose every call waits for its own go signal: `true` succeeds.
fn gated() -> impl Processor<oneshot::Receiver<bool>, Out = ()> {
    |go: oneshot::Receiver<bool>, _ctx: FlowContext| async move {
        match go.await {
            Ok(true) => Ok(Some(())),
            _ => Err("told to fail"),
        }
    }
}

/// A go signal already given.
fn ready_call(succeed: bool) -> oneshot::Receiver<bool> {
    let (tx, rx) = oneshot::channel();
    tx.send(succeed).unwrap();
    rx
}

fn downcast<E: std::error::Error + 'static>(err: &BoxError) -> &E {
    err.downcast_ref::<E>()
        .unwrap_or_else(|| panic!("unexpected error: {err}"))
}

// ---------------------------------------------------------------------------------
// Retry

timed_matrix! {
    /// Delays follow the policy exactly, and the last error comes back wrapped.
    async fn retry_schedule_and_exhaustion(rt) {
        let flaky = Flaky::new(usize::MAX, &rt);
        let policy = RetryPolicy::exponential(ms(10)).max_attempts(4).jitter(Jitter::None);
        let retry = flaky.clone().retry(policy, &rt);
        let err = retry.process(1, &ctx()).await.unwrap_err();
        let exhausted = downcast::<RetriesExhausted>(&err);
        assert_eq!(exhausted.attempts, 4);
        assert_eq!(exhausted.source.to_string(), "failure 4");
        assert!(std::error::Error::source(exhausted).is_some());
        assert_eq!(retry.retries(), 3);
        let calls = flaky.calls();
        assert_eq!(calls.len(), 4);
        for (gap, expected) in gaps(&calls).into_iter().zip([10, 20, 40]) {
            assert_time(&rt, gap, ms(expected));
        }
    }

    /// A call that fails, then succeeds, returns the success after the delays.
    async fn retry_until_success(rt) {
        let flaky = Flaky::new(2, &rt);
        let retry = flaky.clone().retry(RetryPolicy::constant(ms(7)).max_attempts(5), &rt);
        let start = rt.now();
        assert_eq!(retry.process(21, &ctx()).await.unwrap(), Some(42));
        assert_time(&rt, rt.now() - start, ms(14));
        assert_eq!(flaky.calls().len(), 3);
        assert_eq!(retry.retries(), 2);
    }
}

matrix! {
    /// `Ok(None)` and `Ok(Some)` are final; one attempt means no retry.
    async fn retry_leaves_successes_and_filtered_items_alone(rt) {
        let calls = Arc::new(AtomicUsize::new(0));
        let filter_odd = {
            let calls = calls.clone();
            move |n: u32, _ctx: FlowContext| {
                calls.fetch_add(1, Ordering::SeqCst);
                async move { Ok::<_, BoxError>(n.is_multiple_of(2).then_some(n)) }
            }
        };
        let retry = filter_odd.retry(RetryPolicy::constant(ms(1)).max_attempts(5), &rt);
        assert_eq!(retry.process(3, &ctx()).await.unwrap(), None);
        assert_eq!(retry.process(4, &ctx()).await.unwrap(), Some(4));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(retry.retries(), 0);

        let once = Flaky::new(1, &rt).retry(RetryPolicy::never(), &rt);
        let err = once.process(1, &ctx()).await.unwrap_err();
        assert_eq!(downcast::<RetriesExhausted>(&err).attempts, 1);
        assert_eq!(once.retries(), 0);
    }
}

timed_matrix! {
    /// With a predicate, only the errors it accepts are retried; others come back
    /// as they are, at once.
    async fn retry_only_what_the_predicate_accepts(rt) {
        let flaky = Flaky::new(usize::MAX, &rt);
        let retry = flaky
            .clone()
            .retry(RetryPolicy::constant(ms(3)).max_attempts(5), &rt)
            .when(|error| error.to_string() != "failure 2");
        let start = rt.now();
        let err = retry.process(1, &ctx()).await.unwrap_err();
        assert!(err.downcast_ref::<RetriesExhausted>().is_none());
        assert_eq!(err.to_string(), "failure 2");
        assert_eq!(flaky.calls().len(), 2);
        assert_eq!(retry.retries(), 1);
        assert_time(&rt, rt.now() - start, ms(3));
    }
}

// ---------------------------------------------------------------------------------
// Timeout

/// A processor that sleeps `ms` milliseconds on the runtime, then returns them.
fn sleeper(rt: &SharedRuntime) -> impl Processor<u64, Out = u64> + use<> {
    let rt = rt.clone();
    move |n: u64, _ctx: FlowContext| {
        let nap = rt.sleep(ms(n));
        async move {
            nap.await;
            Ok::<_, BoxError>(Some(n))
        }
    }
}

timed_matrix! {
    /// A slow call fails with `TimedOut` when the limit passes.
    async fn timeout_fires(rt) {
        let limited = sleeper(&rt).timeout(ms(20), &rt);
        let start = rt.now();
        let err = limited.process(1_000, &ctx()).await.unwrap_err();
        assert_eq!(downcast::<TimedOut>(&err), &TimedOut { after: ms(20) });
        assert_eq!(err.to_string(), "timed out after 20ms");
        let took = rt.now() - start;
        assert_time(&rt, took, ms(20));
        assert!(took < ms(1_000));
        assert_eq!(limited.timeouts(), 1);
    }

    /// A call within the limit returns its outcome.
    async fn timeout_does_not_fire_in_time(rt) {
        let limited = sleeper(&rt).timeout(ms(50), &rt);
        let start = rt.now();
        assert_eq!(limited.process(10, &ctx()).await.unwrap(), Some(10));
        assert_time(&rt, rt.now() - start, ms(10));
        assert_eq!(limited.timeouts(), 0);
    }
}

// ---------------------------------------------------------------------------------
// Circuit breaker

/// Calls the breaker with an already decided outcome.
async fn call<P>(breaker: &P, succeed: bool) -> Result<Option<()>, BoxError>
where
    P: Processor<oneshot::Receiver<bool>, Out = ()>,
{
    breaker.process(ready_call(succeed), &ctx()).await
}

fn breaker_config(open_for: Duration) -> BreakerConfig {
    BreakerConfig::default()
        .no_failure_rate()
        .open_for(open_for)
}

timed_matrix! {
    /// N failures in a row open it (a success resets the count); while open it fails
    /// fast with the time left.
    async fn breaker_opens_on_consecutive_failures(rt) {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = {
            let calls = calls.clone();
            let inner = gated();
            move |go: oneshot::Receiver<bool>, ctx: FlowContext| {
                calls.fetch_add(1, Ordering::SeqCst);
                inner.process(go, &ctx)
            }
        };
        let breaker = counted.circuit_breaker(
            breaker_config(span(&rt, ms(40))).consecutive_failures(3),
            &rt,
        );
        for succeed in [false, false, true, false, false] {
            let _ = call(&breaker, succeed).await;
        }
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert!(call(&breaker, false).await.is_err());
        assert_eq!(breaker.state(), BreakerState::Open);
        assert_eq!(breaker.opened(), 1);
        assert_eq!(calls.load(Ordering::SeqCst), 6);

        let err = call(&breaker, true).await.unwrap_err();
        assert_remaining(&rt, downcast::<CircuitOpen>(&err).retry_in, span(&rt, ms(40)));
        rt.sleep(span(&rt, ms(15))).await;
        let err = call(&breaker, true).await.unwrap_err();
        assert_remaining(&rt, downcast::<CircuitOpen>(&err).retry_in, span(&rt, ms(25)));
        assert_eq!(calls.load(Ordering::SeqCst), 6, "fails fast without calling");
        assert_eq!(breaker.rejected(), 2);
    }

    /// The failure rate over a sliding window opens it, once enough calls are known.
    async fn breaker_opens_on_failure_rate(rt) {
        let config = BreakerConfig::default()
            .consecutive_failures(0)
            .failure_rate(0.75, 4, 4)
            .open_for(ms(30));
        // 100% failures, but too few calls to count.
        let breaker = gated().circuit_breaker(config.clone(), &rt);
        for succeed in [false, false, false] {
            let _ = call(&breaker, succeed).await;
        }
        assert_eq!(breaker.state(), BreakerState::Closed, "3 < min_calls");
        // 50% as the window fills and slides: below the rate.
        let breaker = gated().circuit_breaker(config, &rt);
        for succeed in [false, true, false, true, false] {
            let _ = call(&breaker, succeed).await;
            assert_eq!(breaker.state(), BreakerState::Closed);
        }
        // The window [ok, failed, ok, failed] slides to [failed, ok, failed, failed]: 75%.
        let _ = call(&breaker, false).await;
        assert_eq!(breaker.state(), BreakerState::Open);
        let err = call(&breaker, true).await.unwrap_err();
        assert_remaining(&rt, downcast::<CircuitOpen>(&err).retry_in, ms(30));
    }

    /// After `open_for` at most `half_open_probes` calls go through; when all succeed
    /// the breaker closes.
    async fn breaker_half_open_probes_then_closes(rt) {
        let events = Arc::new(Mutex::new(Vec::<BreakerEvent>::new()));
        let breaker = gated()
            .circuit_breaker(
                breaker_config(ms(30)).consecutive_failures(1).half_open_probes(2),
                &rt,
            )
            .on_state_change({
                let events = events.clone();
                move |event| events.lock().unwrap().push(event)
            });
        let opened_at = rt.now();
        let _ = call(&breaker, false).await;
        assert_eq!(breaker.state(), BreakerState::Open);
        rt.sleep(ms(30)).await;
        let half_open_at = rt.now();

        let (go1, rx1) = oneshot::channel();
        let (go2, rx2) = oneshot::channel();
        let probe1 = breaker.process(rx1, &ctx());
        let probe2 = breaker.process(rx2, &ctx());
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        let err = call(&breaker, true).await.unwrap_err();
        assert_eq!(downcast::<CircuitOpen>(&err).retry_in, Duration::ZERO);

        go1.send(true).unwrap();
        probe1.await.unwrap();
        assert_eq!(breaker.state(), BreakerState::HalfOpen, "one probe is not enough");
        go2.send(true).unwrap();
        probe2.await.unwrap();
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert_eq!(
            (breaker.opened(), breaker.half_opened(), breaker.closed(), breaker.rejected()),
            (1, 1, 1, 1)
        );
        assert!(call(&breaker, true).await.is_ok());

        let events = events.lock().unwrap().clone();
        let transitions: Vec<_> = events.iter().map(|e| (e.from, e.to)).collect();
        assert_eq!(
            transitions,
            [
                (BreakerState::Closed, BreakerState::Open),
                (BreakerState::Open, BreakerState::HalfOpen),
                (BreakerState::HalfOpen, BreakerState::Closed),
            ]
        );
        assert!(events.windows(2).all(|w| w[0].at <= w[1].at));
        if is_virtual(&rt) {
            assert_eq!(events[0].at, opened_at);
            assert_eq!(events[1].at, half_open_at);
            assert_eq!(events[1].at - events[0].at, ms(30));
        }
    }

    /// A failed probe opens the breaker again for a full `open_for`; the other probe's
    /// late result is ignored.
    async fn breaker_reopens_on_probe_failure(rt) {
        let open = span(&rt, ms(30));
        let breaker = gated().circuit_breaker(
            breaker_config(open).consecutive_failures(1).half_open_probes(2),
            &rt,
        );
        let _ = call(&breaker, false).await;
        rt.sleep(open).await;
        let (go1, rx1) = oneshot::channel();
        let (go2, rx2) = oneshot::channel();
        let probe1 = breaker.process(rx1, &ctx());
        let probe2 = breaker.process(rx2, &ctx());
        go1.send(false).unwrap();
        assert!(probe1.await.is_err());
        assert_eq!(breaker.state(), BreakerState::Open);
        assert_eq!(breaker.opened(), 2);
        let err = call(&breaker, true).await.unwrap_err();
        assert_remaining(&rt, downcast::<CircuitOpen>(&err).retry_in, open);

        go2.send(true).unwrap();
        probe2.await.unwrap();
        assert_eq!(breaker.state(), BreakerState::Open, "a stale success changes nothing");

        // After another pause, two successful probes close it.
        rt.sleep(open).await;
        assert!(call(&breaker, true).await.is_ok());
        assert!(call(&breaker, true).await.is_ok());
        assert_eq!(breaker.state(), BreakerState::Closed);
    }

    /// A probe dropped before it completes gives its slot back.
    async fn breaker_dropped_probe_frees_its_slot(rt) {
        let breaker = gated().circuit_breaker(
            breaker_config(ms(10)).consecutive_failures(1),
            &rt,
        );
        let _ = call(&breaker, false).await;
        rt.sleep(ms(10)).await;
        let (_go, rx) = oneshot::channel();
        let probe = breaker.process(rx, &ctx());
        assert!(call(&breaker, true).await.is_err(), "the only slot is taken");
        drop(probe);
        assert!(call(&breaker, true).await.is_ok());
        assert_eq!(breaker.state(), BreakerState::Closed);
    }
}

#[test]
fn breaker_config_round_trips_through_serde() {
    let config = BreakerConfig::default()
        .consecutive_failures(7)
        .failure_rate(0.25, 50, 10)
        .open_for(ms(1_500))
        .half_open_probes(3);
    let json = serde_json::to_string(&config).unwrap();
    // Durations are integer nanoseconds under `_ns` names.
    assert!(json.contains(r#""open_for_ns":1500000000"#), "{json}");
    assert_eq!(
        serde_json::from_str::<BreakerConfig>(&json).unwrap(),
        config
    );
    let limit = RateLimitConfig::per_second(3)
        .burst(2)
        .mode(RateLimitMode::Fail);
    let json = serde_json::to_string(&limit).unwrap();
    assert!(json.contains(r#""period_ns":1000000000"#), "{json}");
    assert_eq!(
        serde_json::from_str::<RateLimitConfig>(&json).unwrap(),
        limit
    );
    let retry = RetryPolicy::exponential(ms(100)).max_delay(ms(2_000));
    let json = serde_json::to_string(&retry).unwrap();
    assert!(json.contains(r#""initial_delay_ns":100000000"#), "{json}");
    assert!(json.contains(r#""max_delay_ns":2000000000"#), "{json}");
    assert_eq!(serde_json::from_str::<RetryPolicy>(&json).unwrap(), retry);
}

// ---------------------------------------------------------------------------------
// Rate limiter

/// A processor that records when it was called.
fn recorder(
    rt: &SharedRuntime,
) -> (
    impl Processor<u32, Out = u32> + use<>,
    Arc<Mutex<Vec<Instant>>>,
) {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let rt = rt.clone();
    let record = calls.clone();
    let processor = move |n: u32, _ctx: FlowContext| {
        record.lock().unwrap().push(rt.now());
        async move { Ok::<_, BoxError>(Some(n)) }
    };
    (processor, calls)
}

timed_matrix! {
    /// A burst goes through at once, then calls are `period / rate` apart.
    async fn rate_limit_burst_then_spacing(rt) {
        let start = rt.now();
        let (inner, calls) = recorder(&rt);
        let limited = inner.rate_limit(RateLimitConfig::new(5, ms(50)).burst(3), &rt);
        for n in 0..7 {
            limited.process(n, &ctx()).await.unwrap();
        }
        let calls = calls.lock().unwrap().clone();
        for (at, expected) in calls.iter().zip([0, 0, 0, 10, 20, 30, 40]) {
            assert_time(&rt, *at - start, ms(expected));
        }
        assert_eq!(limited.limited(), 4);
    }

    /// Concurrent callers are spaced the same way, in the order they arrived.
    async fn rate_limit_concurrent_callers(rt) {
        let start = rt.now();
        let (inner, calls) = recorder(&rt);
        let limited = inner.rate_limit(RateLimitConfig::new(1, ms(10)).burst(2), &rt);
        let outs = futures::future::join_all((0..5).map(|n| limited.process(n, &ctx()))).await;
        assert!(outs.into_iter().all(|out| out.is_ok()));
        let mut calls = calls.lock().unwrap().clone();
        calls.sort();
        for (at, expected) in calls.iter().zip([0, 0, 10, 20, 30]) {
            assert_time(&rt, *at - start, ms(expected));
        }
    }

    /// In failing mode a call over the limit fails at once with the time to wait,
    /// and uses nothing up.
    async fn rate_limit_fail_mode(rt) {
        let (inner, calls) = recorder(&rt);
        let period = span(&rt, ms(30));
        let config = RateLimitConfig::new(1, period).burst(2).mode(RateLimitMode::Fail);
        let limited = inner.rate_limit(config, &rt);
        limited.process(1, &ctx()).await.unwrap();
        limited.process(2, &ctx()).await.unwrap();
        let err = limited.process(3, &ctx()).await.unwrap_err();
        let retry_in = downcast::<RateLimited>(&err).retry_in;
        assert!(retry_in > Duration::ZERO);
        assert_remaining(&rt, retry_in, period);
        let err = limited.process(3, &ctx()).await.unwrap_err();
        assert_remaining(&rt, downcast::<RateLimited>(&err).retry_in, period);
        assert_eq!(calls.lock().unwrap().len(), 2);
        assert_eq!(limited.limited(), 2);

        rt.sleep(retry_in).await;
        limited.process(4, &ctx()).await.unwrap();
        assert_eq!(calls.lock().unwrap().len(), 3);
    }
}

// ---------------------------------------------------------------------------------
// Bulkhead

matrix! {
    /// At most `max_concurrent` run, `max_queue` wait, the rest are refused at once;
    /// waiters run in arrival order as slots free up.
    async fn bulkhead_bounds_and_queue(rt) {
        let started = Arc::new(Mutex::new(Vec::new()));
        let tracked = {
            let started = started.clone();
            let inner = gated();
            move |(id, go): (u32, oneshot::Receiver<bool>), ctx: FlowContext| {
                started.lock().unwrap().push(id);
                inner.process(go, &ctx)
            }
        };
        let bulkhead = tracked.bulkhead(2, 2);
        let mut gos = Vec::new();
        let mut calls = Vec::new();
        for id in 0..4 {
            let (go, rx) = oneshot::channel();
            gos.push(go);
            let mut call = bulkhead.process((id, rx), &ctx());
            assert!(call.as_mut().now_or_never().is_none());
            calls.push(call);
        }
        assert_eq!(*started.lock().unwrap(), [0, 1]);
        assert_eq!((bulkhead.in_flight(), bulkhead.queued()), (2, 2));

        let (_go, rx) = oneshot::channel();
        let err = bulkhead.process((9, rx), &ctx()).now_or_never().unwrap().unwrap_err();
        assert_eq!(downcast::<BulkheadFull>(&err), &BulkheadFull { max_concurrent: 2, max_queue: 2 });
        assert_eq!(bulkhead.rejected(), 1);

        let mut gos = gos.into_iter();
        let mut calls = calls.into_iter();
        gos.next().unwrap().send(true).unwrap();
        calls.next().unwrap().await.unwrap();
        assert_eq!((bulkhead.in_flight(), bulkhead.queued()), (2, 1));
        // Call 2 was handed the slot; it starts when polled.
        let mut call1 = calls.next().unwrap();
        let mut call2 = calls.next().unwrap();
        let call3 = calls.next().unwrap();
        assert!(call2.as_mut().now_or_never().is_none());
        assert_eq!(*started.lock().unwrap(), [0, 1, 2]);
        assert!(call1.as_mut().now_or_never().is_none());
        drop(gos.next()); // call 1 fails
        assert!(call1.await.is_err());
        gos.next().unwrap().send(true).unwrap();
        gos.next().unwrap().send(true).unwrap();
        call2.await.unwrap();
        call3.await.unwrap();
        assert_eq!(*started.lock().unwrap(), [0, 1, 2, 3]);
        assert_eq!((bulkhead.in_flight(), bulkhead.queued()), (0, 0));
    }

    /// A waiter dropped while queued leaves the queue; one dropped after it was handed
    /// a slot passes the slot on.
    async fn bulkhead_cancelled_waiter_gives_its_place_back(rt) {
        let bulkhead = gated().bulkhead(1, 1);
        let (go_a, a) = oneshot::channel();
        let mut a = bulkhead.process(a, &ctx());
        assert!(a.as_mut().now_or_never().is_none());

        let mut b = bulkhead.process(ready_call(true), &ctx());
        assert!(b.as_mut().now_or_never().is_none());
        assert_eq!(bulkhead.queued(), 1);
        drop(b);
        assert_eq!(bulkhead.queued(), 0);

        // Its place is free again: c queues instead of being refused.
        let mut c = bulkhead.process(ready_call(true), &ctx());
        assert!(c.as_mut().now_or_never().is_none());
        assert_eq!(bulkhead.queued(), 1);
        assert_eq!(bulkhead.rejected(), 0);

        // a finishes, c is handed the slot but dropped before it runs: d gets it.
        go_a.send(true).unwrap();
        a.await.unwrap();
        assert_eq!((bulkhead.in_flight(), bulkhead.queued()), (1, 0));
        let mut d = bulkhead.process(ready_call(true), &ctx());
        assert!(d.as_mut().now_or_never().is_none());
        drop(c);
        d.await.unwrap();
        assert_eq!((bulkhead.in_flight(), bulkhead.queued()), (0, 0));
    }
}

timed_matrix! {
    /// Under load from many tasks, no more than `max_concurrent` run at once.
    async fn bulkhead_bound_holds_under_load(rt) {
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let work = {
            let (running, peak, rt) = (running.clone(), peak.clone(), rt.clone());
            move |n: u32, _ctx: FlowContext| {
                let (running, peak) = (running.clone(), peak.clone());
                let nap = rt.sleep(ms(1));
                async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    nap.await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    Ok::<_, BoxError>(Some(n))
                }
            }
        };
        let bulkhead = Arc::new(work.bulkhead(3, 100));
        let tasks: Vec<_> = (0..24)
            .map(|n| {
                let bulkhead = bulkhead.clone();
                rt.spawn(async move { bulkhead.process(n, &FlowContext::new()).await })
            })
            .collect();
        for (n, task) in tasks.into_iter().enumerate() {
            assert_eq!(task.await.unwrap().unwrap(), Some(n as u32));
        }
        let peak = peak.load(Ordering::SeqCst);
        assert!((1..=3).contains(&peak), "peak {peak}");
        if is_virtual(&rt) {
            assert_eq!(peak, 3);
        }
        assert_eq!((bulkhead.in_flight(), bulkhead.queued()), (0, 0));
    }
}

// ---------------------------------------------------------------------------------
// Stacking

timed_matrix! {
    /// `.timeout().retry()` gives every attempt its own limit and retries timeouts.
    async fn timeout_inside_retry_retries_timeouts(rt) {
        let attempts = Arc::new(AtomicUsize::new(0));
        let slow_then_fast = {
            let (attempts, rt) = (attempts.clone(), rt.clone());
            move |n: u32, _ctx: FlowContext| {
                let attempt = attempts.fetch_add(1, Ordering::SeqCst);
                let nap = rt.sleep(if attempt < 2 { ms(1_000) } else { ms(1) });
                async move {
                    nap.await;
                    Ok::<_, BoxError>(Some(n))
                }
            }
        };
        let layered = slow_then_fast
            .timeout(ms(20), &rt)
            .retry(RetryPolicy::constant(ms(5)).max_attempts(3), &rt);
        let start = rt.now();
        assert_eq!(layered.process(7, &ctx()).await.unwrap(), Some(7));
        let took = rt.now() - start;
        assert_time(&rt, took, ms(20 + 5 + 20 + 5 + 1));
        assert!(took < ms(1_000));
        assert_eq!(layered.retries(), 2);
        assert_eq!(layered.get_ref().timeouts(), 2);

        // Out of attempts: the source of the final error is the timeout.
        attempts.store(0, Ordering::SeqCst);
        let strict = {
            let rt2 = rt.clone();
            (move |n: u64, _ctx: FlowContext| {
                let nap = rt2.sleep(ms(n));
                async move {
                    nap.await;
                    Ok::<_, BoxError>(Some(n))
                }
            })
            .timeout(ms(5), &rt)
            .retry(RetryPolicy::constant(ms(1)).max_attempts(2), &rt)
        };
        let err = strict.process(1_000, &ctx()).await.unwrap_err();
        let exhausted = downcast::<RetriesExhausted>(&err);
        assert_eq!(exhausted.source.downcast_ref(), Some(&TimedOut { after: ms(5) }));
    }

    /// Every layer stacks on every other, in any order.
    async fn all_layers_stack(rt) {
        let flaky = Flaky::new(1, &rt);
        let layered = flaky
            .clone()
            .rate_limit(RateLimitConfig::new(100, ms(100)).burst(10), &rt)
            .bulkhead(4, 16)
            .circuit_breaker(BreakerConfig::default(), &rt)
            .timeout(ms(100), &rt)
            .retry(RetryPolicy::constant(ms(2)), &rt);
        assert_eq!(layered.process(5, &ctx()).await.unwrap(), Some(10));
        assert_eq!(layered.retries(), 1);

        let reversed = Flaky::new(0, &rt)
            .retry(RetryPolicy::constant(ms(2)), &rt)
            .timeout(ms(100), &rt)
            .circuit_breaker(BreakerConfig::default(), &rt)
            .bulkhead(4, 16)
            .rate_limit(RateLimitConfig::per_second(1_000), &rt);
        assert_eq!(reversed.process(6, &ctx()).await.unwrap(), Some(12));
    }
}

matrix! {
    /// A breaker reports its state changes as events on a bus; a change the bus cannot
    /// take is counted, never waited for.
    async fn breaker_reports_to_a_bus(rt) {
        use futures::StreamExt;
        use riverbed::bus::{EventBus, Filter, SubscribeOptions};
        use riverbed::resilience::{BreakerConfig, BreakerEvent, BreakerState, ProcessorExt};

        let bus: EventBus<BreakerEvent, BreakerState> = EventBus::new();
        let mut changes = bus.subscribe(Filter::all());
        let _slow = bus
            .subscribe_with(Filter::all(), SubscribeOptions::new().capacity(1))
            .unwrap();
        let failing = |_n: u32, _ctx: FlowContext| async move { Err::<Option<u32>, _>("down") };
        let breaker = failing
            .circuit_breaker(BreakerConfig::default().consecutive_failures(1), &rt)
            .report_to(bus.clone(), "payments");
        let ctx = FlowContext::new();
        let _ = breaker.process(1, &ctx).await;
        let event = changes.next().await.unwrap().unwrap();
        assert_eq!((event.kind, event.payload.from), (BreakerState::Open, BreakerState::Closed));
        assert_eq!(event.source.as_deref(), Some("payments"));
        assert_eq!(breaker.unreported(), 0);
        // A change the bus cannot take (it is closed) is counted, and the call goes on.
        bus.close();
        let second = failing
            .circuit_breaker(BreakerConfig::default().consecutive_failures(1), &rt)
            .report_to(bus.clone(), "payments");
        assert!(second.process(2, &ctx).await.is_err());
        assert_eq!((second.state(), second.unreported()), (BreakerState::Open, 1));
    }
}

matrix! {
    /// The fallback answers when the primary fails, with the same item; a success or
    /// a filtered item of the primary is its answer; `when` limits what falls back;
    /// the fallback's own error is the answer's.
    async fn fallback_answers_when_the_primary_fails(rt) {
        let primary = |n: u32, _: FlowContext| async move {
            match n {
                0 => Ok(None),
                n if n % 2 == 1 => Err::<Option<u32>, BoxError>("odd".into()),
                7 => Err("fatal".into()),
                n => Ok(Some(n)),
            }
        };
        let fallback = |n: u32, _: FlowContext| async move {
            if n == 9 {
                Err::<Option<u32>, _>("fallback refuses nine")
            } else {
                Ok(Some(n * 100))
            }
        };
        let guarded = primary.fallback(fallback);
        let mut answers = Vec::new();
        for n in [0, 1, 2, 3, 9] {
            answers.push(guarded.process(n, &ctx()).await.map_err(|e| e.to_string()));
        }
        assert_eq!(
            answers,
            [
                Ok(None),
                Ok(Some(100)),
                Ok(Some(2)),
                Ok(Some(300)),
                Err("fallback refuses nine".to_string())
            ]
        );
        assert_eq!(guarded.used(), 3);
        let picky = (|n: u32, _: FlowContext| async move {
            Err::<Option<u32>, BoxError>(if n == 7 { "fatal".into() } else { "odd".into() })
        })
        .fallback(|n: u32, _: FlowContext| async move { Ok::<_, BoxError>(Some(n)) })
        .when(|error| error.to_string() != "fatal");
        assert_eq!(picky.process(1, &ctx()).await.unwrap(), Some(1));
        assert_eq!(picky.process(7, &ctx()).await.unwrap_err().to_string(), "fatal");
        assert_eq!(picky.used(), 1);
    }
}

/// Outside a circuit breaker, the fallback answers while the breaker is open: the
/// primary is not called then, and answers again once a probe closes the breaker.
/// Exact times on the virtual clock.
#[test]
fn fallback_answers_while_the_breaker_is_open() {
    use riverbed::runtime::VirtualRuntime;
    let clock = VirtualRuntime::new();
    let rt: SharedRuntime = Arc::new(clock.clone());
    let start = rt.now();
    let primary_calls = Arc::new(AtomicUsize::new(0));
    // The primary is down for the first 100 ms.
    let primary = {
        let (calls, clock) = (Arc::clone(&primary_calls), Arc::clone(&rt));
        move |n: u32, _: FlowContext| {
            calls.fetch_add(1, Ordering::SeqCst);
            let up = clock.now() - start >= ms(100);
            async move {
                if up {
                    Ok(Some(n))
                } else {
                    Err::<Option<u32>, BoxError>("down".into())
                }
            }
        }
    };
    let price = primary
        .circuit_breaker(
            BreakerConfig::default()
                .no_failure_rate()
                .consecutive_failures(2)
                .open_for(ms(50))
                .half_open_probes(1),
            &rt,
        )
        .fallback(|n: u32, _: FlowContext| async move { Ok::<_, BoxError>(Some(n + 1000)) });
    clock.block_on(async {
        let mut log = Vec::new();
        for step in 0..13 {
            let at = rt.now() - start;
            let answer = price.process(step, &ctx()).await.unwrap().unwrap();
            log.push((at.as_millis(), answer, price.get_ref().state()));
            rt.sleep(ms(10)).await;
        }
        use BreakerState::{Closed, Open};
        assert_eq!(
            log,
            [
                (0, 1000, Closed), // fails at the primary: the fallback answers
                (10, 1001, Open),  // the second failure opens the breaker
                (20, 1002, Open),  // open: rejected at once, the fallback answers
                (30, 1003, Open),
                (40, 1004, Open),
                (50, 1005, Open),
                (60, 1006, Open), // 50 ms after it opened: the probe fails, open again
                (70, 1007, Open),
                (80, 1008, Open),
                (90, 1009, Open),
                (100, 1010, Open),
                (110, 11, Closed), // the probe succeeds: the primary answers again
                (120, 12, Closed),
            ]
        );
        // Called for the two failures, the failed probe and the two answers after.
        assert_eq!(primary_calls.load(Ordering::SeqCst), 5);
        assert_eq!(price.used(), 11);
    });
}
