//! [`Inner`]: what every part of a queue shares — the producer, the delivery streams
//! and the consumers — kept apart from all of them so that none reaches into another.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::backend::Backend;
use super::stats::GroupMetrics;
use crate::retry::RetryPolicy;
use crate::runtime::SharedRuntime;

/// What every part of a queue shares.
pub(crate) struct Inner<C> {
    pub(crate) name: Arc<str>,
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) codec: C,
    pub(crate) runtime: SharedRuntime,
    pub(crate) retry: RetryPolicy,
    pub(crate) lease: Duration,
    metrics: Mutex<HashMap<Arc<str>, Arc<GroupMetrics>>>,
}

impl<C> Inner<C> {
    pub(crate) fn new(
        name: Arc<str>,
        backend: Arc<dyn Backend>,
        codec: C,
        runtime: SharedRuntime,
        retry: RetryPolicy,
        lease: Duration,
    ) -> Self {
        Inner {
            name,
            backend,
            codec,
            runtime,
            retry,
            lease,
            metrics: Mutex::new(HashMap::new()),
        }
    }

    /// Wall-clock time on the queue's runtime.
    pub(crate) fn now(&self) -> SystemTime {
        self.runtime.system_time()
    }

    /// The runtime instant at which the wall-clock time `at` comes.
    pub(crate) fn instant_at(&self, at: SystemTime) -> Instant {
        let ahead = at.duration_since(self.now()).unwrap_or(Duration::ZERO);
        self.runtime.now() + ahead
    }

    pub(crate) fn metrics(&self, group: &str) -> Arc<GroupMetrics> {
        let mut metrics = self.metrics.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = metrics.get(group) {
            return Arc::clone(m);
        }
        let name: Arc<str> = Arc::from(group);
        let m = Arc::new(GroupMetrics::default());
        metrics.insert(name, Arc::clone(&m));
        m
    }
}
