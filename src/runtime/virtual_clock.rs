//! [`VirtualRuntime`]: a deterministic executor on a virtual clock, for tests.
//!
//! The semantics are documented on the type, where rustdoc shows them.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;
use futures_util::task::{ArcWake, waker, waker_ref};

use super::{Runtime, Sleep};

/// The default deadlock grace period of [`VirtualRuntime::block_on`].
const DEFAULT_DEADLOCK_GRACE: Duration = Duration::from_secs(5);

/// A deterministic executor on a virtual clock, for tests.
///
/// [`VirtualRuntime`] runs its tasks on the thread that drives it, and its clock only
/// moves when told to. A test that sleeps for an hour finishes in microseconds, and two
/// runs of the same test see the same interleaving and the same timestamps.
///
/// # Semantics
///
/// * **Time stands still** until [`advance`](VirtualRuntime::advance) or
///   [`advance_to`](VirtualRuntime::advance_to) moves it, or
///   [`block_on`](VirtualRuntime::block_on) auto-advances it. Running tasks never moves
///   the clock. [`now`](Runtime::now) is a start `Instant` taken when the runtime was
///   created plus the virtual elapsed time; [`system_time`](Runtime::system_time) is a
///   fixed start date (by default 2000-01-01T00:00:00Z, see
///   [`DEFAULT_START_SINCE_EPOCH`](Self::DEFAULT_START_SINCE_EPOCH)) plus the
///   same elapsed time.
/// * **Tasks** are queued on the runtime's own run queue and polled, first woken first
///   polled, by whichever of [`run_until_stalled`](VirtualRuntime::run_until_stalled),
///   `advance` or `block_on` is driving it. Nothing runs in the background: a task
///   spawned and never driven never runs. `block_on` polls its own future whenever it
///   has been woken, taking turns with the tasks so that neither starves the other.
/// * **Timers** are registered when [`sleep_until`](Runtime::sleep_until) is called (a
///   deadline that is not in the future gives a sleep that is ready at once). They fire
///   in deadline order, and timers with the same deadline fire in the order they were
///   registered. When a timer fires, the clock reads exactly its deadline.
/// * **Quiescence between timers**: after each timer fires, every runnable task runs
///   until none is runnable before the next timer fires. So a task woken by one timer
///   that sleeps again with a deadline before the next timer's sees its own sleep fire
///   first, exactly as on a real clock.
/// * **Cancellation**: dropping a sleep before it fires cancels its timer; a cancelled
///   timer is not counted by [`pending_timers`](VirtualRuntime::pending_timers) and
///   auto-advance never moves the clock to its deadline.
/// * **Other threads** may wake tasks, spawn tasks and create sleeps at any time. A
///   woken task is queued and runs the next time the runtime is driven. `block_on`
///   waits (in real time) for such wakeups only when nothing can run and no timer is
///   pending; while a timer is pending it auto-advances instead, so a test that mixes
///   real threads with virtual time must make its main future wait on the thread's
///   result rather than on a timer.
/// * **Re-entrancy**: no lock is held while a future is polled, so a task or the main
///   future of `block_on` may itself call `advance`, `run_until_stalled` or `spawn`.
/// * **Panics**: a task spawned with [`RuntimeExt::spawn`](super::RuntimeExt::spawn)
///   reports its panic through its [`JoinHandle`](super::JoinHandle). A raw
///   [`spawn_boxed`](Runtime::spawn_boxed) task that panics is dropped and the panic is
///   resumed in whatever is driving the runtime, so the test fails loudly.
///
/// # Example
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use std::time::Duration;
///
/// use riverbed::runtime::{RuntimeExt, VirtualRuntime};
///
/// let rt = VirtualRuntime::new();
/// let log = Arc::new(Mutex::new(Vec::new()));
/// for (name, millis) in [("b", 20), ("a", 10), ("c", 20)] {
///     let (task_rt, log) = (rt.clone(), log.clone());
///     drop(rt.spawn(async move {
///         task_rt.sleep(Duration::from_millis(millis)).await;
///         log.lock().unwrap().push((name, task_rt.elapsed()));
///     }));
/// }
///
/// // The tasks run and register their timers; the clock does not move.
/// rt.run_until_stalled();
/// assert_eq!(rt.pending_timers(), 3);
/// assert_eq!(rt.elapsed(), Duration::ZERO);
///
/// rt.advance(Duration::from_millis(15));
/// assert_eq!(*log.lock().unwrap(), [("a", Duration::from_millis(10))]);
/// assert_eq!(rt.elapsed(), Duration::from_millis(15));
///
/// // Equal deadlines fire in registration order: "b" slept first.
/// rt.advance(Duration::from_millis(15));
/// assert_eq!(
///     *log.lock().unwrap(),
///     [
///         ("a", Duration::from_millis(10)),
///         ("b", Duration::from_millis(20)),
///         ("c", Duration::from_millis(20)),
///     ]
/// );
/// assert_eq!(rt.task_count(), 0);
///
/// // `block_on` moves the clock to the next timer whenever nothing else can run.
/// let waited = rt.block_on(async {
///     let start = rt.elapsed();
///     rt.sleep(Duration::from_secs(3600)).await;
///     rt.elapsed() - start
/// });
/// assert_eq!(waited, Duration::from_secs(3600));
/// ```
///
/// # Dropping
///
/// Tasks still pending when the last clone is dropped are dropped with it (their
/// [`JoinHandle`](super::JoinHandle)s then report
/// [`JoinError::Aborted`](super::JoinError::Aborted)), except tasks that themselves hold
/// a clone of the runtime: those keep it, and each other, alive.
#[derive(Clone)]
pub struct VirtualRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    /// `now()` at elapsed zero.
    start: Instant,
    /// `system_time()` at elapsed zero.
    start_system: SystemTime,
    clock: Mutex<Clock>,
    queue: Mutex<VecDeque<Arc<Task>>>,
    /// Signalled, with `queue` locked, whenever something may have become runnable.
    wakeup: Condvar,
    /// Every live (spawned, not yet finished) task, by id.
    tasks: Mutex<HashMap<u64, Arc<Task>>>,
    next_task: AtomicU64,
    deadlock_grace: Mutex<Duration>,
}

struct Clock {
    elapsed: Duration,
    /// Deadline (as elapsed time) and id of each registered timer; ids grow with
    /// registration order. Cancelled timers stay here until popped or compacted.
    heap: BinaryHeap<Reverse<(Duration, u64)>>,
    /// The live timers and the waker of the last poll of each.
    timers: HashMap<u64, Option<Waker>>,
    next_timer: u64,
}

/// Locks `mutex`, ignoring poisoning: no invariant of this module spans a panic.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl VirtualRuntime {
    /// Wall-clock start of a runtime made by [`new`](Self::new), as time since the Unix
    /// epoch: 2000-01-01T00:00:00Z.
    pub const DEFAULT_START_SINCE_EPOCH: Duration = Duration::from_secs(946_684_800);

    /// A runtime whose clock reads zero elapsed time and whose
    /// [`system_time`](Runtime::system_time) starts at 2000-01-01T00:00:00Z
    /// ([`DEFAULT_START_SINCE_EPOCH`](Self::DEFAULT_START_SINCE_EPOCH) after the Unix
    /// epoch).
    pub fn new() -> Self {
        Self::with_start_time(UNIX_EPOCH + Self::DEFAULT_START_SINCE_EPOCH)
    }

    /// A runtime whose [`system_time`](Runtime::system_time) starts at `start`.
    pub fn with_start_time(start: SystemTime) -> Self {
        VirtualRuntime {
            inner: Arc::new(Inner {
                start: Instant::now(),
                start_system: start,
                clock: Mutex::new(Clock {
                    elapsed: Duration::ZERO,
                    heap: BinaryHeap::new(),
                    timers: HashMap::new(),
                    next_timer: 0,
                }),
                queue: Mutex::new(VecDeque::new()),
                wakeup: Condvar::new(),
                tasks: Mutex::new(HashMap::new()),
                next_task: AtomicU64::new(0),
                deadlock_grace: Mutex::new(DEFAULT_DEADLOCK_GRACE),
            }),
        }
    }

    /// How far the virtual clock has moved since the runtime was created.
    pub fn elapsed(&self) -> Duration {
        lock(&self.inner.clock).elapsed
    }

    /// The number of timers registered and neither fired nor cancelled.
    pub fn pending_timers(&self) -> usize {
        lock(&self.inner.clock).timers.len()
    }

    /// The number of spawned tasks that have not finished yet.
    pub fn task_count(&self) -> usize {
        lock(&self.inner.tasks).len()
    }

    /// How long [`block_on`](Self::block_on) waits, in real time, for a wakeup from
    /// another thread before it reports a deadlock. Defaults to 5 seconds.
    pub fn deadlock_grace(&self) -> Duration {
        *lock(&self.inner.deadlock_grace)
    }

    /// Sets the [deadlock grace period](Self::deadlock_grace), for every clone of this
    /// runtime.
    pub fn set_deadlock_grace(&self, grace: Duration) {
        *lock(&self.inner.deadlock_grace) = grace;
    }

    /// Polls runnable tasks until none is runnable. The clock does not move.
    ///
    /// # Panics
    ///
    /// Resumes the panic of a task spawned with [`Runtime::spawn_boxed`] that panicked
    /// (tasks spawned with [`RuntimeExt::spawn`](super::RuntimeExt::spawn) report theirs
    /// through their `JoinHandle` instead).
    pub fn run_until_stalled(&self) {
        while self.run_one() {}
    }

    /// Moves the clock forward by `duration`, firing the timers that fall due.
    ///
    /// First runs every runnable task. Then fires, one at a time and in deadline order,
    /// every timer whose deadline is at most `elapsed() + duration`, with the clock set
    /// to that deadline, and runs the woken tasks until none is runnable before firing
    /// the next (so timers registered meanwhile with a deadline in range fire too). Then
    /// sets the clock to `elapsed() + duration` and runs every runnable task again.
    ///
    /// # Panics
    ///
    /// As [`run_until_stalled`](Self::run_until_stalled).
    pub fn advance(&self, duration: Duration) {
        let target = self.elapsed().saturating_add(duration);
        self.advance_to_elapsed(target);
    }

    /// Moves the clock forward to `deadline`, as [`advance`](Self::advance) does. A
    /// deadline that is not in the future only runs the runnable tasks.
    ///
    /// # Panics
    ///
    /// As [`run_until_stalled`](Self::run_until_stalled).
    pub fn advance_to(&self, deadline: Instant) {
        let target = deadline.saturating_duration_since(self.inner.start);
        self.advance_to_elapsed(target);
    }

    fn advance_to_elapsed(&self, target: Duration) {
        self.run_until_stalled();
        while self.fire_next(Some(target)) {
            self.run_until_stalled();
        }
        {
            let mut clock = lock(&self.inner.clock);
            // A nested advance may have moved it further already.
            clock.elapsed = clock.elapsed.max(target);
        }
        self.run_until_stalled();
    }

    /// Runs `future` to completion on the current thread, together with the spawned
    /// tasks, and returns its output.
    ///
    /// Whenever neither the future nor any task can make progress, the clock
    /// auto-advances to the next pending timer and fires it, as a paused tokio clock
    /// does. When no timer is pending either, only another thread can make progress
    /// possible: `block_on` waits for a wakeup in real time, up to the
    /// [deadlock grace period](Self::deadlock_grace).
    ///
    /// The future need not be `Send`. Tasks still pending when it completes stay queued
    /// for the next time the runtime is driven.
    ///
    /// # Panics
    ///
    /// Panics with a message naming a deadlock if the future is pending, no task is
    /// runnable, no timer is pending and nothing wakes the runtime within the deadlock
    /// grace period. Resumes the panic of `future`, and of a raw
    /// [`spawn_boxed`](Runtime::spawn_boxed) task, as
    /// [`run_until_stalled`](Self::run_until_stalled) does.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        let mut future = pin!(future);
        let main = Arc::new(MainWaker {
            woken: AtomicBool::new(true),
            inner: Arc::downgrade(&self.inner),
        });
        let waker = waker(main.clone());
        let mut cx = Context::from_waker(&waker);
        loop {
            if main.woken.swap(false, Ordering::AcqRel) {
                if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                    return output;
                }
                // A main future that keeps waking itself must not starve the tasks.
                self.run_one();
            } else if !self.run_one() && !self.fire_next(None) {
                self.wait_for_wakeup(&main);
            }
        }
    }

    /// Waits, in real time, until a task is runnable, the main future is woken or a
    /// timer is pending; panics after the deadlock grace period.
    fn wait_for_wakeup(&self, main: &MainWaker) {
        let grace = self.deadlock_grace();
        let started = Instant::now();
        let mut queue = lock(&self.inner.queue);
        loop {
            if !queue.is_empty() || main.woken.load(Ordering::Acquire) || self.pending_timers() > 0
            {
                return;
            }
            let waited = started.elapsed();
            if waited >= grace {
                drop(queue);
                panic!(
                    "VirtualRuntime::block_on: deadlock: the main future is pending, no task \
                     is runnable ({} pending), no timer is pending, and nothing woke the \
                     runtime within the grace period of {grace:?}",
                    self.task_count(),
                );
            }
            queue = self
                .inner
                .wakeup
                .wait_timeout(queue, grace - waited)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Polls the task at the head of the run queue; `false` if there is none.
    fn run_one(&self) -> bool {
        let Some(task) = lock(&self.inner.queue).pop_front() else {
            return false;
        };
        let mut future = {
            let mut slot = lock(&task.slot);
            slot.queued = false;
            match slot.future.take() {
                Some(future) => {
                    slot.running = true;
                    future
                }
                // Finished, or dropped with the runtime.
                None => return true,
            }
        };
        let polled = {
            let waker = waker_ref(&task);
            let mut cx = Context::from_waker(&waker);
            panic::catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx)))
        };
        match polled {
            Ok(Poll::Pending) => {
                let requeue = {
                    let mut slot = lock(&task.slot);
                    slot.running = false;
                    slot.future = Some(future);
                    // Woken while it ran: the wake left the queueing to us.
                    slot.queued
                };
                if requeue {
                    self.inner.enqueue(task);
                }
            }
            Ok(Poll::Ready(())) => {
                self.inner.finish(&task);
                drop(future);
            }
            Err(payload) => {
                self.inner.finish(&task);
                drop(future);
                panic::resume_unwind(payload);
            }
        }
        true
    }

    /// Fires the next live timer whose deadline is at most `limit` (any, if `None`),
    /// setting the clock to its deadline; `false` if there is none.
    fn fire_next(&self, limit: Option<Duration>) -> bool {
        let waker = {
            let mut clock = lock(&self.inner.clock);
            loop {
                let Some(&Reverse((deadline, id))) = clock.heap.peek() else {
                    return false;
                };
                if !clock.timers.contains_key(&id) {
                    // Cancelled.
                    clock.heap.pop();
                    continue;
                }
                if limit.is_some_and(|limit| deadline > limit) {
                    return false;
                }
                clock.heap.pop();
                clock.elapsed = clock.elapsed.max(deadline);
                break clock.timers.remove(&id).flatten();
            }
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        true
    }
}

impl Default for VirtualRuntime {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for VirtualRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VirtualRuntime")
            .field("elapsed", &self.elapsed())
            .field("pending_timers", &self.pending_timers())
            .field("task_count", &self.task_count())
            .finish()
    }
}

impl Runtime for VirtualRuntime {
    fn spawn_boxed(&self, task: BoxFuture<'static, ()>) {
        let id = self.inner.next_task.fetch_add(1, Ordering::Relaxed);
        let task = Arc::new(Task {
            id,
            slot: Mutex::new(Slot {
                future: Some(task),
                queued: true,
                running: false,
            }),
            inner: Arc::downgrade(&self.inner),
        });
        lock(&self.inner.tasks).insert(id, task.clone());
        self.inner.enqueue(task);
    }

    fn sleep_until(&self, deadline: Instant) -> Sleep {
        let deadline = deadline.saturating_duration_since(self.inner.start);
        let id = {
            let mut clock = lock(&self.inner.clock);
            if deadline <= clock.elapsed {
                return Box::pin(std::future::ready(()));
            }
            let id = clock.next_timer;
            clock.next_timer += 1;
            clock.heap.push(Reverse((deadline, id)));
            clock.timers.insert(id, None);
            id
        };
        // A `block_on` waiting for another thread may now auto-advance instead.
        self.inner.notify();
        Box::pin(VirtualSleep {
            inner: Arc::downgrade(&self.inner),
            id,
        })
    }

    fn now(&self) -> Instant {
        self.inner
            .start
            .checked_add(self.elapsed())
            .expect("virtual clock advanced past the representable range of Instant")
    }

    fn system_time(&self) -> SystemTime {
        self.inner
            .start_system
            .checked_add(self.elapsed())
            .expect("virtual clock advanced past the representable range of SystemTime")
    }
}

impl Inner {
    fn enqueue(&self, task: Arc<Task>) {
        lock(&self.queue).push_back(task);
        self.wakeup.notify_all();
    }

    fn notify(&self) {
        let _queue = lock(&self.queue);
        self.wakeup.notify_all();
    }

    /// Forgets a task that has finished.
    fn finish(&self, task: &Task) {
        {
            let mut slot = lock(&task.slot);
            slot.running = false;
            slot.queued = true; // never queue it again
        }
        let removed = lock(&self.tasks).remove(&task.id);
        drop(removed);
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Take every pending future out first, then drop them: their destructors may
        // wake other tasks, which must find them finished.
        let tasks = std::mem::take(self.tasks.get_mut().unwrap_or_else(PoisonError::into_inner));
        let futures: Vec<_> = tasks
            .values()
            .filter_map(|task| {
                let mut slot = lock(&task.slot);
                slot.queued = true;
                slot.future.take()
            })
            .collect();
        drop(futures);
    }
}

/// A spawned task: its future, parked in `slot` between polls.
struct Task {
    id: u64,
    slot: Mutex<Slot>,
    inner: Weak<Inner>,
}

struct Slot {
    /// `None` while the task is being polled, and once it has finished.
    future: Option<BoxFuture<'static, ()>>,
    /// In the run queue, or woken while running, or finished: a wake has nothing to do.
    queued: bool,
    /// Being polled; a wake then only sets `queued` and the poller requeues the task.
    running: bool,
}

impl ArcWake for Task {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        {
            let mut slot = lock(&arc_self.slot);
            if slot.queued {
                return;
            }
            slot.queued = true;
            if slot.running {
                return;
            }
        }
        if let Some(inner) = arc_self.inner.upgrade() {
            inner.enqueue(arc_self.clone());
        }
    }
}

/// The waker of the main future of [`VirtualRuntime::block_on`].
struct MainWaker {
    woken: AtomicBool,
    inner: Weak<Inner>,
}

impl ArcWake for MainWaker {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        match arc_self.inner.upgrade() {
            Some(inner) => {
                // Under the queue lock, so a `block_on` about to wait cannot miss it.
                let _queue = lock(&inner.queue);
                arc_self.woken.store(true, Ordering::Release);
                inner.wakeup.notify_all();
            }
            None => arc_self.woken.store(true, Ordering::Release),
        }
    }
}

/// The timer future of [`VirtualRuntime`]; ready once its timer has fired.
struct VirtualSleep {
    inner: Weak<Inner>,
    id: u64,
}

impl Future for VirtualSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(inner) = self.inner.upgrade() else {
            // The runtime is gone: its clock will never move again.
            return Poll::Pending;
        };
        let replaced;
        {
            let mut clock = lock(&inner.clock);
            let Some(waker) = clock.timers.get_mut(&self.id) else {
                return Poll::Ready(());
            };
            if waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                return Poll::Pending;
            }
            replaced = waker.replace(cx.waker().clone());
        }
        // Dropped outside the lock.
        drop(replaced);
        Poll::Pending
    }
}

impl Drop for VirtualSleep {
    fn drop(&mut self) {
        let Some(inner) = self.inner.upgrade() else {
            return;
        };
        let removed = {
            let mut clock = lock(&inner.clock);
            let removed = clock.timers.remove(&self.id);
            // Cancelled timers linger in the heap until popped; keep them bounded.
            if removed.is_some() && clock.heap.len() > 64 + 2 * clock.timers.len() {
                let Clock { heap, timers, .. } = &mut *clock;
                heap.retain(|Reverse((_, id))| timers.contains_key(id));
            }
            removed
        };
        drop(removed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{JoinError, RuntimeExt};
    use futures_channel::oneshot;
    use std::sync::atomic::AtomicUsize;

    type Log = Arc<Mutex<Vec<(&'static str, Duration)>>>;

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    fn new_log() -> Log {
        Arc::new(Mutex::new(Vec::new()))
    }

    fn entries(log: &Log) -> Vec<(&'static str, Duration)> {
        log.lock().unwrap().clone()
    }

    /// Spawns a task that sleeps for each of `sleeps` in turn, logging `name` and the
    /// clock after each.
    fn sleeper(rt: &VirtualRuntime, log: &Log, name: &'static str, sleeps: &[u64]) {
        let (task_rt, log, sleeps) = (rt.clone(), log.clone(), sleeps.to_vec());
        drop(rt.spawn(async move {
            for millis in sleeps {
                task_rt.sleep(ms(millis)).await;
                log.lock().unwrap().push((name, task_rt.elapsed()));
            }
        }));
    }

    #[test]
    fn clock_starts_at_zero_and_a_fixed_date() {
        let rt = VirtualRuntime::new();
        assert_eq!(rt.elapsed(), Duration::ZERO);
        assert_eq!(
            rt.system_time(),
            UNIX_EPOCH + Duration::from_secs(946_684_800)
        );
        let start = rt.now();
        rt.advance(ms(1500));
        assert_eq!(rt.now() - start, ms(1500));
        assert_eq!(
            rt.system_time(),
            UNIX_EPOCH + Duration::from_secs(946_684_800) + ms(1500)
        );

        let chosen = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let rt = VirtualRuntime::with_start_time(chosen);
        rt.advance(ms(7));
        assert_eq!(rt.system_time(), chosen + ms(7));
        assert_eq!(VirtualRuntime::default().elapsed(), Duration::ZERO);
    }

    #[test]
    fn time_stands_still_until_advanced() {
        let rt = VirtualRuntime::new();
        let log = new_log();
        sleeper(&rt, &log, "a", &[10]);
        rt.run_until_stalled();
        rt.run_until_stalled();
        assert_eq!(rt.elapsed(), Duration::ZERO);
        assert!(entries(&log).is_empty());
        assert_eq!(rt.pending_timers(), 1);
        rt.advance(ms(9));
        assert!(entries(&log).is_empty());
        rt.advance(ms(1));
        assert_eq!(entries(&log), [("a", ms(10))]);
        assert_eq!(rt.pending_timers(), 0);
        assert_eq!(rt.task_count(), 0);
    }

    #[test]
    fn timers_fire_in_deadline_order_at_their_deadline() {
        let rt = VirtualRuntime::new();
        let log = new_log();
        sleeper(&rt, &log, "c", &[30]);
        sleeper(&rt, &log, "a", &[10]);
        sleeper(&rt, &log, "b", &[20]);
        rt.advance(ms(100));
        assert_eq!(entries(&log), [("a", ms(10)), ("b", ms(20)), ("c", ms(30))]);
        assert_eq!(rt.elapsed(), ms(100));
    }

    #[test]
    fn equal_deadlines_fire_in_registration_order() {
        let rt = VirtualRuntime::new();
        let log = new_log();
        for name in ["first", "second", "third", "fourth"] {
            sleeper(&rt, &log, name, &[10]);
        }
        rt.advance(ms(10));
        let names: Vec<_> = entries(&log).into_iter().map(|(name, _)| name).collect();
        assert_eq!(names, ["first", "second", "third", "fourth"]);
        assert!(entries(&log).iter().all(|&(_, at)| at == ms(10)));
    }

    #[test]
    fn a_sleep_started_by_a_timer_fires_before_a_later_timer() {
        let rt = VirtualRuntime::new();
        let log = new_log();
        // "a" wakes at 10 and sleeps until 15, before "b"'s timer at 20.
        sleeper(&rt, &log, "a", &[10, 5]);
        sleeper(&rt, &log, "b", &[20]);
        rt.advance(ms(30));
        assert_eq!(entries(&log), [("a", ms(10)), ("a", ms(15)), ("b", ms(20))]);
    }

    #[test]
    fn tasks_woken_by_a_timer_run_before_the_next_timer() {
        let rt = VirtualRuntime::new();
        let log = new_log();
        let (task_rt, task_log) = (rt.clone(), log.clone());
        drop(rt.spawn(async move {
            task_rt.sleep(ms(10)).await;
            // A chain of tasks, each spawned by the previous one, all at time 10.
            let (inner_rt, inner_log) = (task_rt.clone(), task_log.clone());
            task_rt
                .spawn(async move {
                    let log = inner_log.clone();
                    inner_rt
                        .spawn(async move { log.lock().unwrap().push(("grandchild", ms(10))) })
                        .await
                        .unwrap();
                    inner_log
                        .lock()
                        .unwrap()
                        .push(("child", inner_rt.elapsed()));
                })
                .await
                .unwrap();
        }));
        // Registered at the same deadline, after the first task's timer.
        sleeper(&rt, &log, "other", &[10]);
        rt.advance(ms(10));
        assert_eq!(
            entries(&log),
            [("grandchild", ms(10)), ("child", ms(10)), ("other", ms(10))]
        );
    }

    #[test]
    fn dropped_sleeps_are_cancelled() {
        let rt = VirtualRuntime::new();
        let sleep = rt.sleep(ms(10));
        let other = rt.sleep(ms(20));
        assert_eq!(rt.pending_timers(), 2);
        drop(sleep);
        assert_eq!(rt.pending_timers(), 1);
        drop(other);
        assert_eq!(rt.pending_timers(), 0);
        // Nothing fires, and auto-advance has nothing to jump to.
        rt.block_on(async {});
        assert_eq!(rt.elapsed(), Duration::ZERO);
    }

    #[test]
    fn auto_advance_skips_cancelled_timers() {
        let rt = VirtualRuntime::new();
        let long = rt.sleep(Duration::from_secs(3600));
        drop(long);
        rt.block_on(rt.sleep(ms(5)));
        assert_eq!(rt.elapsed(), ms(5));
        // A timeout whose future wins cancels its timer.
        let output = rt.block_on(rt.timeout(Duration::from_secs(60), async { 7 }));
        assert_eq!(output, Ok(7));
        assert_eq!(rt.pending_timers(), 0);
        rt.block_on(rt.sleep(ms(1)));
        assert_eq!(rt.elapsed(), ms(6));
    }

    #[test]
    fn many_cancelled_timers_do_not_accumulate() {
        let rt = VirtualRuntime::new();
        let keep = rt.sleep(ms(1));
        for _ in 0..1000 {
            drop(rt.sleep(Duration::from_secs(10)));
        }
        assert_eq!(rt.pending_timers(), 1);
        assert!(lock(&rt.inner.clock).heap.len() <= 64 + 2);
        drop(keep);
    }

    #[test]
    fn zero_and_past_sleeps_are_ready_at_once() {
        let rt = VirtualRuntime::new();
        rt.advance(ms(10));
        let past = rt.now() - ms(5);
        rt.block_on(async {
            rt.sleep(Duration::ZERO).await;
            rt.sleep_until(past).await;
        });
        assert_eq!(rt.elapsed(), ms(10));
        assert_eq!(rt.pending_timers(), 0);
    }

    #[test]
    fn advance_to_an_instant() {
        let rt = VirtualRuntime::new();
        let log = new_log();
        sleeper(&rt, &log, "a", &[10]);
        let target = rt.now() + ms(25);
        rt.advance_to(target);
        assert_eq!(rt.now(), target);
        assert_eq!(entries(&log), [("a", ms(10))]);
        // An instant in the past leaves the clock alone.
        rt.advance_to(target - ms(20));
        assert_eq!(rt.elapsed(), ms(25));
    }

    #[test]
    fn timeout_elapses_at_its_deadline() {
        let rt = VirtualRuntime::new();
        let result = rt.block_on(rt.timeout(ms(50), std::future::pending::<()>()));
        assert!(result.is_err());
        assert_eq!(rt.elapsed(), ms(50));
        let result = rt.block_on(rt.timeout(ms(50), rt.sleep(ms(20))));
        assert!(result.is_ok());
        assert_eq!(rt.elapsed(), ms(70));
    }

    #[test]
    fn spawn_and_join() {
        let rt = VirtualRuntime::new();
        let handle = rt.spawn(async { 40 + 2 });
        assert_eq!(rt.task_count(), 1);
        assert!(!handle.is_finished());
        rt.run_until_stalled();
        assert!(handle.is_finished());
        assert_eq!(rt.task_count(), 0);
        assert_eq!(rt.block_on(handle).unwrap(), 42);
    }

    #[test]
    fn abort_through_join_handle() {
        let rt = VirtualRuntime::new();
        let task_rt = rt.clone();
        let handle = rt.spawn(async move {
            task_rt.sleep(Duration::from_secs(60)).await;
            "finished"
        });
        rt.run_until_stalled();
        assert_eq!(rt.pending_timers(), 1);
        handle.abort();
        assert!(!handle.is_finished());
        rt.run_until_stalled();
        assert!(handle.is_finished());
        assert_eq!(rt.task_count(), 0);
        // The aborted task's sleep was dropped with it.
        assert_eq!(rt.pending_timers(), 0);
        assert!(rt.block_on(handle).unwrap_err().is_aborted());
        assert_eq!(rt.elapsed(), Duration::ZERO);
    }

    #[test]
    fn panics_are_caught_as_join_errors() {
        let rt = VirtualRuntime::new();
        let handle = rt.spawn(async {
            panic!("boom");
        });
        let other = rt.spawn(async { 1 });
        let err = rt.block_on(handle).unwrap_err();
        assert!(err.is_panic());
        assert_eq!(err.panic_message(), Some("boom"));
        assert!(matches!(err, JoinError::Panicked(_)));
        // The runtime keeps working.
        assert_eq!(rt.block_on(other).unwrap(), 1);
        assert_eq!(rt.task_count(), 0);
    }

    #[test]
    fn a_raw_task_panic_reaches_the_driver() {
        let rt = VirtualRuntime::new();
        rt.spawn_boxed(Box::pin(async { panic!("raw") }));
        let caught = panic::catch_unwind(AssertUnwindSafe(|| rt.run_until_stalled()));
        let payload = caught.unwrap_err();
        assert_eq!(crate::runtime::panic_message(payload.as_ref()), Some("raw"));
        assert_eq!(rt.task_count(), 0);
        rt.run_until_stalled();
    }

    #[test]
    fn block_on_auto_advances_to_the_next_timer() {
        let rt = VirtualRuntime::new();
        let log = new_log();
        sleeper(&rt, &log, "task", &[30, 30]);
        let out = rt.block_on(async {
            rt.sleep(ms(45)).await;
            rt.elapsed()
        });
        assert_eq!(out, ms(45));
        // Stopped as soon as the main future completed: the task's second sleep is
        // still pending.
        assert_eq!(entries(&log), [("task", ms(30))]);
        assert_eq!(rt.pending_timers(), 1);
        assert_eq!(rt.task_count(), 1);
        rt.block_on(rt.sleep(ms(100)));
        assert_eq!(entries(&log), [("task", ms(30)), ("task", ms(60))]);
    }

    #[test]
    fn block_on_a_non_send_future() {
        let rt = VirtualRuntime::new();
        let local = std::rc::Rc::new(5);
        let out = rt.block_on(async {
            rt.sleep(ms(1)).await;
            *local + 1
        });
        assert_eq!(out, 6);
    }

    #[test]
    fn wakeups_from_another_thread_reach_block_on() {
        let rt = VirtualRuntime::new();
        let (tx, rx) = oneshot::channel();
        let thread = std::thread::spawn(move || tx.send(7).unwrap());
        assert_eq!(rt.block_on(rx).unwrap(), 7);
        thread.join().unwrap();
        assert_eq!(rt.elapsed(), Duration::ZERO);
    }

    #[test]
    fn wakeups_from_another_thread_reach_tasks() {
        let rt = VirtualRuntime::new();
        let (tx, rx) = oneshot::channel::<u32>();
        let handle = rt.spawn(async move { rx.await.unwrap() * 2 });
        rt.run_until_stalled();
        assert_eq!(rt.task_count(), 1);
        let thread = std::thread::spawn(move || tx.send(21).unwrap());
        assert_eq!(rt.block_on(handle).unwrap(), 42);
        thread.join().unwrap();
    }

    #[test]
    fn tasks_spawned_from_another_thread_run() {
        let rt = VirtualRuntime::new();
        let (tx, rx) = oneshot::channel();
        let remote = rt.clone();
        let thread = std::thread::spawn(move || {
            drop(remote.spawn(async move { tx.send("hello").unwrap() }));
        });
        assert_eq!(rt.block_on(rx).unwrap(), "hello");
        thread.join().unwrap();
    }

    #[test]
    #[should_panic(expected = "deadlock")]
    fn block_on_reports_a_deadlock() {
        let rt = VirtualRuntime::new();
        rt.set_deadlock_grace(ms(20));
        assert_eq!(rt.deadlock_grace(), ms(20));
        rt.block_on(std::future::pending::<()>());
    }

    #[test]
    fn default_deadlock_grace_is_five_seconds() {
        assert_eq!(
            VirtualRuntime::new().deadlock_grace(),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn spawn_from_inside_tasks() {
        let rt = VirtualRuntime::new();
        let counter = Arc::new(AtomicUsize::new(0));
        let (task_rt, task_counter) = (rt.clone(), counter.clone());
        let handle = rt.spawn(async move {
            let mut children = Vec::new();
            for i in 0..10 {
                let counter = task_counter.clone();
                children.push(task_rt.spawn(async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    i
                }));
            }
            let mut sum = 0;
            for child in children {
                sum += child.await.unwrap();
            }
            sum
        });
        assert_eq!(rt.block_on(handle).unwrap(), 45);
        assert_eq!(counter.load(Ordering::SeqCst), 10);
        assert_eq!(rt.task_count(), 0);
    }

    #[test]
    fn advance_from_inside_a_task_and_the_main_future() {
        let rt = VirtualRuntime::new();
        let log = new_log();
        sleeper(&rt, &log, "sleeper", &[10]);
        let task_rt = rt.clone();
        let handle = rt.spawn(async move {
            task_rt.advance(ms(15));
            task_rt.run_until_stalled();
            task_rt.elapsed()
        });
        let out = rt.block_on(async {
            let inside_task = handle.await.unwrap();
            rt.advance(ms(5));
            rt.run_until_stalled();
            (inside_task, rt.elapsed())
        });
        assert_eq!(out, (ms(15), ms(20)));
        assert_eq!(entries(&log), [("sleeper", ms(10))]);
    }

    #[test]
    fn a_task_that_wakes_itself_is_polled_again() {
        let rt = VirtualRuntime::new();
        let polls = Arc::new(AtomicUsize::new(0));
        let task_polls = polls.clone();
        let handle = rt.spawn(futures_util::future::poll_fn(move |cx| {
            if task_polls.fetch_add(1, Ordering::SeqCst) < 3 {
                cx.waker().wake_by_ref();
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        }));
        rt.run_until_stalled();
        assert!(handle.is_finished());
        assert_eq!(polls.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn a_busy_main_future_does_not_starve_tasks() {
        let rt = VirtualRuntime::new();
        let flag = Arc::new(AtomicBool::new(false));
        let task_flag = flag.clone();
        drop(rt.spawn(async move { task_flag.store(true, Ordering::SeqCst) }));
        rt.block_on(futures_util::future::poll_fn(|cx| {
            if flag.load(Ordering::SeqCst) {
                Poll::Ready(())
            } else {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }));
        assert_eq!(rt.elapsed(), Duration::ZERO);
    }

    #[test]
    fn dropping_the_runtime_drops_pending_tasks() {
        let rt = VirtualRuntime::new();
        let handle = rt.spawn(std::future::pending::<()>());
        rt.run_until_stalled();
        drop(rt);
        assert!(handle.is_finished());
        let err = VirtualRuntime::new().block_on(handle).unwrap_err();
        assert!(err.is_aborted());
    }

    #[test]
    fn debug_shows_the_clock() {
        let rt = VirtualRuntime::new();
        let _sleep = rt.sleep(ms(1));
        let shown = format!("{rt:?}");
        assert!(shown.contains("pending_timers: 1"), "{shown}");
    }
}
