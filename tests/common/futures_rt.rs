//! A [`Runtime`] written outside the crate, over `futures::executor::ThreadPool` and
//! `futures-timer`: the proof that the trait is open to any executor.

use std::time::Instant;

use futures::executor::ThreadPool;
use futures::future::BoxFuture;
use futures_timer::Delay;
use riverbed::runtime::{Runtime, Sleep};

/// Spawns onto a futures thread pool; times with `futures-timer`.
#[derive(Debug, Clone)]
pub struct FuturesRuntime {
    pool: ThreadPool,
}

impl FuturesRuntime {
    /// A runtime over a new pool of `threads` threads.
    pub fn new(threads: usize) -> Self {
        let pool = ThreadPool::builder()
            .pool_size(threads)
            .name_prefix("riverbed-futures-")
            .create()
            .expect("create a futures thread pool");
        FuturesRuntime { pool }
    }
}

impl Runtime for FuturesRuntime {
    fn spawn_boxed(&self, task: BoxFuture<'static, ()>) {
        self.pool.spawn_ok(task);
    }

    fn sleep_until(&self, deadline: Instant) -> Sleep {
        let delay = Delay::new(deadline.saturating_duration_since(Instant::now()));
        Box::pin(delay)
    }

    fn now(&self) -> Instant {
        Instant::now()
    }
}
