//! A `Runtime` over a tokio runtime handle, for benchmarks built without the crate's
//! `tokio` feature (which the bench commands do not turn on): spawns and sleeps on
//! tokio, reads `std::time::Instant::now()` as its clock, as `SmolRuntime` does.

use std::time::Instant;

use futures::future::BoxFuture;
use riverbed::runtime::{Runtime, Sleep};

/// Spawns and sleeps on a tokio runtime; reads the system's monotonic clock.
#[derive(Debug)]
pub struct BenchRuntime {
    /// The tokio runtime it spawns and sleeps on.
    pub handle: tokio::runtime::Handle,
}

impl Runtime for BenchRuntime {
    fn spawn_boxed(&self, task: BoxFuture<'static, ()>) {
        drop(self.handle.spawn(task));
    }

    fn sleep_until(&self, deadline: Instant) -> Sleep {
        let _context = self.handle.enter();
        Box::pin(tokio::time::sleep_until(deadline.into()))
    }

    fn now(&self) -> Instant {
        Instant::now()
    }
}
