//! Statistics shared by every component: [`Counter`], [`Gauge`] and [`Histogram`].
//!
//! The event bus, pipeline stages, reactive streams, the message queue and the
//! orchestrator all count and time their work with these three types, so their
//! statistics read the same way and serialize to the same JSON.
//!
//! # Cheap to record, no locks
//!
//! Recording is a handful of relaxed atomic operations on memory the recorder already
//! owns — no lock, no allocation, no syscall:
//!
//! * [`Counter::inc`] and [`Gauge::inc`] are one `fetch_add`.
//! * [`Histogram::record_nanos`] computes a bucket index from the value's leading zeros
//!   (a few arithmetic instructions), then does one `fetch_add` on the bucket, one on
//!   the running sum, and a plain load for each of the minimum and the maximum; the
//!   `fetch_min`/`fetch_max` that follows is only issued when the value is a new
//!   extreme, which after warm-up is almost never.
//!
//! All operations use [`Ordering::Relaxed`]: statistics order nothing else.
//!
//! # Snapshot semantics
//!
//! Reading a [`Histogram`] ([`Histogram::snapshot`], [`Histogram::quantile`]) walks the
//! buckets while other threads may keep recording. A snapshot is therefore **not** an
//! atomic picture across fields: a value recorded during the walk may be counted in
//! `count` and the percentiles but not yet in `mean`, or the other way round. Each
//! field on its own is consistent — `count` and the percentiles come from the same
//! pass over the buckets, every recorded value is counted exactly once, and with no
//! concurrent writers a snapshot is exact (to the bucket precision below). The same
//! holds for [`Histogram::reset`] and [`Histogram::merge_from`], which are not atomic
//! with respect to concurrent recording either.
//!
//! # Histogram precision and memory
//!
//! [`Histogram`] uses log-linear buckets, like HdrHistogram: each power-of-two range
//! `[2^k, 2^(k+1))` nanoseconds is split into 16 equal sub-buckets, and values below
//! 32 ns get one bucket each. A reported quantile is the midpoint of the bucket holding
//! the true value (clamped to the recorded minimum and maximum), so it is within
//! **1/32 (3.125%)** of the true value, and exact below 32 ns. The buckets cover
//! 0 ns to 2^42 − 1 ns (about 73 minutes); larger values are counted in the top bucket
//! (their exact value still reaches `max` and `mean`, but quantiles that fall among
//! them are not within the bound). That is 624 buckets of 8 bytes: a `Histogram` is
//! 5,016 bytes (just under 5 KiB), fixed, with no allocation.
//!
//! # Serde
//!
//! [`HistogramSnapshot`] implements `Serialize` and `Deserialize`. Durations are
//! written as integer nanoseconds in fields suffixed `_ns`, which reads well in JSON
//! and round-trips exactly (the crate's one rule for durations; see
//! [Serialized forms](crate#serialized-forms)):
//!
//! ```json
//! {"count":3,"min_ns":1000,"max_ns":3000,"mean_ns":2000,
//!  "p50_ns":2000,"p90_ns":3000,"p99_ns":3000,"p999_ns":3000}
//! ```
//!
//! [`Counter`] and [`Gauge`] are read with `get()`; a component's own statistics
//! snapshot carries the plain numbers.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use riverbed::stats::{Counter, Gauge, Histogram};
//!
//! let delivered = Counter::new();
//! let in_flight = Gauge::new();
//! let latency = Histogram::new();
//!
//! for micros in [120, 80, 95, 400] {
//!     in_flight.inc();
//!     latency.record(Duration::from_micros(micros));
//!     delivered.inc();
//!     in_flight.dec();
//! }
//!
//! assert_eq!(delivered.get(), 4);
//! assert_eq!(in_flight.get(), 0);
//! let snap = latency.snapshot();
//! assert_eq!(snap.count, 4);
//! assert_eq!(snap.min, Duration::from_micros(80));
//! assert_eq!(snap.max, Duration::from_micros(400));
//! // Percentiles are within 1/32 of the true value.
//! let p50 = snap.p50.as_nanos() as f64;
//! assert!((p50 - 95_000.0).abs() <= 95_000.0 / 32.0);
//! ```

use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A monotonically increasing count, such as messages delivered.
///
/// One relaxed `AtomicU64`; share it by reference or inside an `Arc`. The count wraps
/// on overflow (after 2^64 increments).
///
/// # Example
///
/// ```
/// use riverbed::stats::Counter;
///
/// static PUBLISHED: Counter = Counter::new();
///
/// PUBLISHED.inc();
/// PUBLISHED.add(2);
/// assert_eq!(PUBLISHED.get(), 3);
/// ```
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// A counter at zero.
    pub const fn new() -> Self {
        Counter(AtomicU64::new(0))
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds one and returns the count before it: the caller's sequence number.
    #[inline]
    pub fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed)
    }

    /// Adds `n`.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current count.
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// [`next`](Self::next) for a counter that one writer at a time updates (readers
    /// may be anywhere): a relaxed load and store, no locked instruction. With two
    /// writers at once, counts could be lost (never undefined behaviour). Used by
    /// components whose counting all happens under one `&mut` borrow, such as a
    /// pipeline stage.
    #[inline]
    pub(crate) fn next_exclusive(&self) -> u64 {
        let n = self.0.load(Ordering::Relaxed);
        self.0.store(n.wrapping_add(1), Ordering::Relaxed);
        n
    }

    /// [`inc`](Self::inc) for one writer at a time; see
    /// [`next_exclusive`](Self::next_exclusive).
    #[inline]
    pub(crate) fn inc_exclusive(&self) {
        self.next_exclusive();
    }
}

/// A value that goes up and down, such as the number of messages in flight.
///
/// One relaxed `AtomicI64`. It is signed so that a momentary imbalance between
/// threads (a `dec` observed before the matching `inc`) reads as a small negative
/// number instead of wrapping to a huge one.
///
/// # Example
///
/// ```
/// use riverbed::stats::Gauge;
///
/// let in_flight = Gauge::new();
/// in_flight.inc();
/// in_flight.inc();
/// in_flight.dec();
/// assert_eq!(in_flight.get(), 1);
/// in_flight.set(10);
/// in_flight.sub(4);
/// assert_eq!(in_flight.get(), 6);
/// ```
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    /// A gauge at zero.
    pub const fn new() -> Self {
        Gauge(AtomicI64::new(0))
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Subtracts one.
    #[inline]
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }

    /// Adds `n` (which may be negative).
    #[inline]
    pub fn add(&self, n: i64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Subtracts `n`.
    #[inline]
    pub fn sub(&self, n: i64) {
        self.0.fetch_sub(n, Ordering::Relaxed);
    }

    /// Sets the value.
    #[inline]
    pub fn set(&self, value: i64) {
        self.0.store(value, Ordering::Relaxed);
    }

    /// The current value.
    #[inline]
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Sub-buckets per power of two, as a bit count: 2^4 = 16.
const SUB_BITS: u32 = 4;
const SUB_COUNT: usize = 1 << SUB_BITS;
/// The largest value with its own bucket: 2^42 − 1 ns, about 73 minutes.
const MAX_TRACKED: u64 = (1 << 42) - 1;
/// Bucket count: one bucket per value below 2 × 16, then 16 per power of two up to 2^41.
const BUCKETS: usize = bucket_index(MAX_TRACKED) + 1;

/// The bucket of `value`, which must be at most [`MAX_TRACKED`].
///
/// With `m` the position of the highest set bit of `value | 15` and `s = m − 4`
/// (at least 0), the index is `16·s + (value >> s)`: values below 32 map to
/// themselves, and each later power of two covers 16 indices.
#[inline]
const fn bucket_index(value: u64) -> usize {
    let msb = 63 - (value | (SUB_COUNT as u64 - 1)).leading_zeros();
    let shift = msb.saturating_sub(SUB_BITS);
    ((shift as usize) << SUB_BITS) + (value >> shift) as usize
}

/// The smallest value in bucket `index` and the bucket's width.
#[inline]
fn bucket_bounds(index: usize) -> (u64, u64) {
    if index < 2 * SUB_COUNT {
        return (index as u64, 1);
    }
    let shift = (index >> SUB_BITS) as u32 - 1;
    let sub = (index & (SUB_COUNT - 1)) as u64 | SUB_COUNT as u64;
    (sub << shift, 1 << shift)
}

/// The value reported for bucket `index`: its midpoint.
#[inline]
fn bucket_value(index: usize) -> u64 {
    let (low, width) = bucket_bounds(index);
    low + width / 2
}

/// Values recorded by one writer, to add to a [`Histogram`] in one go with
/// [`Histogram::record_batch`]: the buckets touched (a handful, for latencies of
/// one batch of messages) with their counts, the sum and the extremes.
#[derive(Debug)]
pub(crate) struct HistogramBatch {
    buckets: Vec<(usize, u64)>,
    sum: u64,
    min: u64,
    max: u64,
}

impl Default for HistogramBatch {
    fn default() -> Self {
        HistogramBatch {
            buckets: Vec::new(),
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }
}

impl HistogramBatch {
    /// Records a duration (saturating as [`Histogram::record`] does).
    #[inline]
    pub(crate) fn record(&mut self, duration: Duration) {
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        let index = bucket_index(nanos.min(MAX_TRACKED));
        // Values of one batch cluster: look among the last few buckets only (a
        // bucket listed twice is added twice, which is the same).
        match self
            .buckets
            .iter_mut()
            .rev()
            .take(4)
            .find(|(i, _)| *i == index)
        {
            Some((_, count)) => *count += 1,
            None => self.buckets.push((index, 1)),
        }
        self.sum = self.sum.wrapping_add(nanos);
        self.min = self.min.min(nanos);
        self.max = self.max.max(nanos);
    }
}

/// A lock-free latency histogram with log-linear buckets.
///
/// Records durations from 0 ns to about 73 minutes with quantiles within 1/32
/// (3.125%) of the true value; larger durations are counted in the top bucket. It
/// takes 5,016 bytes inline and never allocates. Recording is wait-free apart from the
/// rare `fetch_min`/`fetch_max` on a new extreme. See the [module docs](self) for the
/// bucket layout and for what a snapshot taken during concurrent recording means.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use riverbed::stats::Histogram;
///
/// let latency = Arc::new(Histogram::new());
/// let threads: Vec<_> = (0..4)
///     .map(|t| {
///         let latency = Arc::clone(&latency);
///         std::thread::spawn(move || {
///             for i in 1..=1000 {
///                 latency.record_nanos(t * 1000 + i);
///             }
///         })
///     })
///     .collect();
/// for thread in threads {
///     thread.join().unwrap();
/// }
///
/// let snap = latency.snapshot();
/// assert_eq!(snap.count, 4000);
/// assert_eq!(snap.min, Duration::from_nanos(1));
/// assert_eq!(snap.max, Duration::from_nanos(4000));
/// let p99 = latency.quantile(0.99).as_nanos() as f64;
/// assert!((p99 - 3960.0).abs() <= 3960.0 / 32.0);
///
/// let json = serde_json::to_string(&snap).unwrap();
/// assert!(json.starts_with(r#"{"count":4000,"min_ns":1,"max_ns":4000,"#));
/// ```
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    /// Sum of recorded values in nanoseconds (unclamped; wraps after 2^64 ns ≈ 584 years).
    sum: AtomicU64,
    /// `u64::MAX` while empty.
    min: AtomicU64,
    max: AtomicU64,
}

impl Histogram {
    /// An empty histogram.
    pub const fn new() -> Self {
        Histogram {
            buckets: [const { AtomicU64::new(0) }; BUCKETS],
            sum: AtomicU64::new(0),
            min: AtomicU64::new(u64::MAX),
            max: AtomicU64::new(0),
        }
    }

    /// Records a duration. Durations longer than `u64::MAX` nanoseconds (584 years)
    /// saturate.
    #[inline]
    pub fn record(&self, duration: Duration) {
        self.record_nanos(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Records a duration given in nanoseconds.
    #[inline]
    pub fn record_nanos(&self, nanos: u64) {
        let index = bucket_index(nanos.min(MAX_TRACKED));
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(nanos, Ordering::Relaxed);
        if nanos < self.min.load(Ordering::Relaxed) {
            self.min.fetch_min(nanos, Ordering::Relaxed);
        }
        if nanos > self.max.load(Ordering::Relaxed) {
            self.max.fetch_max(nanos, Ordering::Relaxed);
        }
    }

    /// [`record`](Self::record) for a histogram that one writer at a time updates
    /// (readers may be anywhere): relaxed loads and stores, no locked instruction; see
    /// `Counter::next_exclusive`.
    #[inline]
    pub(crate) fn record_exclusive(&self, duration: Duration) {
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        let bucket = &self.buckets[bucket_index(nanos.min(MAX_TRACKED))];
        bucket.store(bucket.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        let sum = self.sum.load(Ordering::Relaxed);
        self.sum.store(sum.saturating_add(nanos), Ordering::Relaxed);
        if nanos < self.min.load(Ordering::Relaxed) {
            self.min.store(nanos, Ordering::Relaxed);
        }
        if nanos > self.max.load(Ordering::Relaxed) {
            self.max.store(nanos, Ordering::Relaxed);
        }
    }

    /// Adds what `batch` gathered, and empties it: one atomic addition per bucket the
    /// batch touched instead of two per value.
    pub(crate) fn record_batch(&self, batch: &mut HistogramBatch) {
        for &(index, count) in &batch.buckets {
            self.buckets[index].fetch_add(count, Ordering::Relaxed);
        }
        if !batch.buckets.is_empty() {
            self.sum.fetch_add(batch.sum, Ordering::Relaxed);
            self.min.fetch_min(batch.min, Ordering::Relaxed);
            self.max.fetch_max(batch.max, Ordering::Relaxed);
        }
        batch.buckets.clear();
        batch.sum = 0;
        batch.min = u64::MAX;
        batch.max = 0;
    }

    /// The number of recorded values.
    ///
    /// This sums the buckets (624 relaxed loads, well under a microsecond): keeping a
    /// separate count would cost every `record` another atomic read-modify-write.
    pub fn count(&self) -> u64 {
        self.buckets
            .iter()
            .map(|bucket| bucket.load(Ordering::Relaxed))
            .sum()
    }

    /// The value at quantile `q` (0.0 = minimum, 0.5 = median, 1.0 = maximum), within
    /// 1/32 of the true value; zero when empty. The minimum and maximum are exact.
    ///
    /// The true value is the nearest-rank quantile: the `⌈q·n⌉`-th smallest of the `n`
    /// recorded values (at least the first). `q` is clamped to `[0, 1]`; NaN counts
    /// as 0.
    ///
    /// ```
    /// use std::time::Duration;
    /// use riverbed::stats::Histogram;
    ///
    /// let h = Histogram::new();
    /// for nanos in 1..=10 {
    ///     h.record_nanos(nanos);
    /// }
    /// // Values below 32 ns are exact.
    /// assert_eq!(h.quantile(0.5), Duration::from_nanos(5));
    /// assert_eq!(h.quantile(0.0), Duration::from_nanos(1));
    /// assert_eq!(h.quantile(1.0), Duration::from_nanos(10));
    /// ```
    pub fn quantile(&self, q: f64) -> Duration {
        let counts = self.load_buckets();
        let total = counts.iter().sum();
        let (min, max) = self.extremes(&counts, total);
        Duration::from_nanos(value_at_rank(&counts, total, rank(q, total), min, max))
    }

    /// Count, minimum, maximum, mean and the 50th, 90th, 99th and 99.9th percentiles.
    ///
    /// All fields are zero for an empty histogram. See the [module docs](self) for
    /// consistency under concurrent recording.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let counts = self.load_buckets();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return HistogramSnapshot::default();
        }
        let sum = self.sum.load(Ordering::Relaxed);
        let (min, max) = self.extremes(&counts, total);
        let at = |q| Duration::from_nanos(value_at_rank(&counts, total, rank(q, total), min, max));
        HistogramSnapshot {
            count: total,
            min: Duration::from_nanos(min),
            max: Duration::from_nanos(max),
            mean: Duration::from_nanos(sum / total),
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            p999: at(0.999),
        }
    }

    /// Empties the histogram.
    ///
    /// Values recorded concurrently with a reset may be partly kept (for example in
    /// the buckets but not in the sum).
    pub fn reset(&self) {
        for bucket in &self.buckets {
            bucket.store(0, Ordering::Relaxed);
        }
        self.sum.store(0, Ordering::Relaxed);
        self.min.store(u64::MAX, Ordering::Relaxed);
        self.max.store(0, Ordering::Relaxed);
    }

    /// Adds every value recorded in `other` to `self`, as if recorded here too.
    ///
    /// ```
    /// use riverbed::stats::Histogram;
    ///
    /// let (a, b) = (Histogram::new(), Histogram::new());
    /// a.record_nanos(10);
    /// b.record_nanos(20);
    /// a.merge_from(&b);
    /// assert_eq!(a.count(), 2);
    /// assert_eq!(a.snapshot().max.as_nanos(), 20);
    /// ```
    pub fn merge_from(&self, other: &Histogram) {
        for (mine, theirs) in self.buckets.iter().zip(&other.buckets) {
            let n = theirs.load(Ordering::Relaxed);
            if n != 0 {
                mine.fetch_add(n, Ordering::Relaxed);
            }
        }
        self.sum
            .fetch_add(other.sum.load(Ordering::Relaxed), Ordering::Relaxed);
        self.min
            .fetch_min(other.min.load(Ordering::Relaxed), Ordering::Relaxed);
        self.max
            .fetch_max(other.max.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    fn load_buckets(&self) -> [u64; BUCKETS] {
        std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed))
    }

    /// The recorded minimum and maximum, falling back to the occupied buckets when a
    /// concurrent `record` has counted a bucket but not yet updated the extremes.
    fn extremes(&self, counts: &[u64; BUCKETS], total: u64) -> (u64, u64) {
        if total == 0 {
            return (0, 0);
        }
        let mut min = self.min.load(Ordering::Relaxed);
        let mut max = self.max.load(Ordering::Relaxed);
        if min > max {
            let first = counts.iter().position(|&n| n != 0).unwrap_or(0);
            let last = counts.iter().rposition(|&n| n != 0).unwrap_or(0);
            min = min.min(bucket_bounds(first).0);
            max = max.max(bucket_value(last));
        }
        (min, max)
    }
}

/// The 1-based nearest rank of quantile `q` among `total` values.
fn rank(q: f64, total: u64) -> u64 {
    let q = if q.is_nan() { 0.0 } else { q.clamp(0.0, 1.0) };
    // Float-to-int `as` saturates, so this cannot overflow.
    ((q * total as f64).ceil() as u64).clamp(1, total.max(1))
}

/// The reported value of the `rank`-th smallest of the `total` values in `counts`: the
/// exact extreme at either end, otherwise the midpoint of the bucket holding it.
fn value_at_rank(counts: &[u64; BUCKETS], total: u64, rank: u64, min: u64, max: u64) -> u64 {
    if rank <= 1 {
        return min;
    }
    if rank >= total {
        return max;
    }
    let mut seen = 0;
    for (index, &n) in counts.iter().enumerate() {
        seen += n;
        if seen >= rank {
            // The true value lies in this bucket and in [min, max]; clamping can only
            // move the estimate closer to it.
            return bucket_value(index).clamp(min, max);
        }
    }
    0
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

impl fmt::Debug for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Histogram").field(&self.snapshot()).finish()
    }
}

/// A summary of a [`Histogram`] at one moment, from [`Histogram::snapshot`].
///
/// Durations serialize as integer nanoseconds under `_ns`-suffixed names
/// (`"p99_ns": 1250000`); see the [module docs](self#serde). Percentiles are within
/// 1/32 of the true value; `count`, `min`, `max` and `mean` are exact (the mean is
/// rounded down to a whole nanosecond). An empty histogram's snapshot is all zeros,
/// which is also [`Default`].
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use riverbed::stats::{Histogram, HistogramSnapshot};
///
/// let h = Histogram::new();
/// assert_eq!(h.snapshot(), HistogramSnapshot::default());
///
/// h.record(Duration::from_millis(2));
/// let snap = h.snapshot();
/// let json = serde_json::to_string(&snap).unwrap();
/// assert_eq!(
///     json,
///     r#"{"count":1,"min_ns":2000000,"max_ns":2000000,"mean_ns":2000000,"p50_ns":2000000,"p90_ns":2000000,"p99_ns":2000000,"p999_ns":2000000}"#
/// );
/// let back: HistogramSnapshot = serde_json::from_str(&json).unwrap();
/// assert_eq!(back, snap);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistogramSnapshot {
    /// Number of recorded values.
    pub count: u64,
    /// Smallest recorded value.
    #[serde(rename = "min_ns", with = "crate::serde_time::duration_ns")]
    pub min: Duration,
    /// Largest recorded value.
    #[serde(rename = "max_ns", with = "crate::serde_time::duration_ns")]
    pub max: Duration,
    /// Arithmetic mean, rounded down to a nanosecond.
    #[serde(rename = "mean_ns", with = "crate::serde_time::duration_ns")]
    pub mean: Duration,
    /// Median.
    #[serde(rename = "p50_ns", with = "crate::serde_time::duration_ns")]
    pub p50: Duration,
    /// 90th percentile.
    #[serde(rename = "p90_ns", with = "crate::serde_time::duration_ns")]
    pub p90: Duration,
    /// 99th percentile.
    #[serde(rename = "p99_ns", with = "crate::serde_time::duration_ns")]
    pub p99: Duration,
    /// 99.9th percentile.
    #[serde(rename = "p999_ns", with = "crate::serde_time::duration_ns")]
    pub p999: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::Arc;

    #[test]
    fn a_batch_records_what_single_records_would() {
        let single = Histogram::new();
        let batched = Histogram::new();
        let mut batch = HistogramBatch::default();
        let mut x = 12_345u64;
        for round in 0..50 {
            for _ in 0..(round * 7 % 130) {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let d = Duration::from_nanos(x >> (20 + round % 30));
                single.record(d);
                batch.record(d);
            }
            batched.record_batch(&mut batch);
        }
        batched.record_batch(&mut batch);
        assert_eq!(batched.snapshot(), single.snapshot());
        assert_eq!(batched.count(), single.count());
    }

    #[test]
    fn memory_is_a_few_kib() {
        assert_eq!(BUCKETS, 624);
        assert_eq!(std::mem::size_of::<Histogram>(), 5016);
    }

    #[test]
    fn bucket_layout_is_contiguous_and_monotone() {
        // Every bucket starts where the previous one ended.
        let mut next = 0;
        for index in 0..BUCKETS {
            let (low, width) = bucket_bounds(index);
            assert_eq!(low, next, "bucket {index}");
            assert_eq!(bucket_index(low), index);
            assert_eq!(bucket_index(low + width - 1), index);
            // Width is at most 1/16 of the lower bound (or 1).
            assert!(width == 1 || width * 16 <= low, "bucket {index}");
            next = low + width;
        }
        assert_eq!(next, MAX_TRACKED + 1);
    }

    #[test]
    fn values_below_32_ns_are_exact() {
        for v in 0..32 {
            assert_eq!(bucket_bounds(bucket_index(v)), (v, 1));
        }
    }

    #[test]
    fn empty_snapshot_is_all_zeros() {
        let h = Histogram::new();
        assert_eq!(h.count(), 0);
        assert_eq!(h.quantile(0.5), Duration::ZERO);
        assert_eq!(h.snapshot(), HistogramSnapshot::default());
        let zero = HistogramSnapshot::default();
        assert_eq!(zero.count, 0);
        assert_eq!(zero.p999, Duration::ZERO);
    }

    #[test]
    fn huge_values_clamp_into_the_top_bucket() {
        let h = Histogram::new();
        h.record(Duration::from_secs(10 * 3600));
        h.record(Duration::MAX);
        assert_eq!(h.count(), 2);
        assert_eq!(h.buckets[BUCKETS - 1].load(Ordering::Relaxed), 2);
        let snap = h.snapshot();
        assert_eq!(snap.max, Duration::from_nanos(u64::MAX));
        assert_eq!(snap.min, Duration::from_secs(10 * 3600));
    }

    #[test]
    fn one_hour_is_within_the_precise_range() {
        let hour = Duration::from_secs(3600);
        let h = Histogram::new();
        h.record(hour);
        h.record(hour + Duration::from_secs(1));
        let p50 = h.quantile(0.5).as_nanos() as f64;
        let truth = hour.as_nanos() as f64;
        assert!((p50 - truth).abs() <= truth / 32.0);
    }

    #[test]
    fn reset_and_merge() {
        let a = Histogram::new();
        let b = Histogram::new();
        for v in [5, 500, 50_000] {
            a.record_nanos(v);
        }
        b.record_nanos(1);
        b.record_nanos(1 << 30);
        a.merge_from(&b);
        let snap = a.snapshot();
        assert_eq!(snap.count, 5);
        assert_eq!(snap.min, Duration::from_nanos(1));
        assert_eq!(snap.max, Duration::from_nanos(1 << 30));
        assert_eq!(
            snap.mean,
            Duration::from_nanos((5 + 500 + 50_000 + 1 + (1 << 30)) / 5)
        );
        // Merging an empty histogram changes nothing.
        a.merge_from(&Histogram::new());
        assert_eq!(a.snapshot(), snap);
        a.reset();
        assert_eq!(a.snapshot(), HistogramSnapshot::default());
        a.record_nanos(7);
        assert_eq!(a.snapshot().min, Duration::from_nanos(7));
    }

    #[test]
    fn quantile_edges() {
        let h = Histogram::new();
        for v in [100, 200, 300, 400] {
            h.record_nanos(v);
        }
        assert_eq!(h.quantile(0.0), Duration::from_nanos(100));
        assert_eq!(h.quantile(-3.0), Duration::from_nanos(100));
        assert_eq!(h.quantile(f64::NAN), Duration::from_nanos(100));
        assert_eq!(h.quantile(1.0), Duration::from_nanos(400));
        assert_eq!(h.quantile(7.0), Duration::from_nanos(400));
    }

    #[test]
    fn counter_and_gauge() {
        let c = Counter::default();
        c.inc();
        c.add(41);
        assert_eq!(c.get(), 42);
        assert_eq!(format!("{c:?}"), "Counter(42)");

        let g = Gauge::default();
        g.dec();
        assert_eq!(g.get(), -1);
        g.add(5);
        g.inc();
        assert_eq!(g.get(), 5);
        g.set(-2);
        assert_eq!(g.get(), -2);
    }

    #[test]
    fn concurrent_recording_counts_exactly() {
        const THREADS: u64 = 4;
        const PER_THREAD: u64 = 50_000;
        let h = Arc::new(Histogram::new());
        let c = Arc::new(Counter::new());
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (h, c) = (Arc::clone(&h), Arc::clone(&c));
                std::thread::spawn(move || {
                    for i in 0..PER_THREAD {
                        h.record_nanos(1 + (i * 7919 + t * 104_729) % 10_000_000);
                        c.inc();
                    }
                })
            })
            .collect();
        // Snapshots taken while recording must stay sane.
        for _ in 0..100 {
            let snap = h.snapshot();
            assert!(snap.count <= THREADS * PER_THREAD);
            if snap.count > 0 {
                assert!(snap.min <= snap.p50 && snap.p50 <= snap.p99);
                assert!(snap.p999 <= snap.max);
            }
        }
        for handle in handles {
            handle.join().unwrap();
        }
        assert_eq!(h.count(), THREADS * PER_THREAD);
        assert_eq!(h.snapshot().count, THREADS * PER_THREAD);
        assert_eq!(c.get(), THREADS * PER_THREAD);
        let expected_sum: u64 = (0..THREADS)
            .flat_map(|t| (0..PER_THREAD).map(move |i| 1 + (i * 7919 + t * 104_729) % 10_000_000))
            .sum();
        assert_eq!(
            h.snapshot().mean,
            Duration::from_nanos(expected_sum / (THREADS * PER_THREAD))
        );
    }

    #[test]
    fn snapshot_serde_round_trip() {
        let h = Histogram::new();
        for v in [1_000, 2_000, 3_000] {
            h.record_nanos(v);
        }
        let snap = h.snapshot();
        let json = serde_json::to_value(&snap).unwrap();
        assert_eq!(json["count"], 3);
        assert_eq!(json["min_ns"], 1_000);
        assert_eq!(json["mean_ns"], 2_000);
        let back: HistogramSnapshot = serde_json::from_value(json).unwrap();
        assert_eq!(back, snap);
    }

    /// Values spread log-uniformly from 0 to just under 2^42 ns, so every bucket scale
    /// is exercised.
    fn value() -> impl Strategy<Value = u64> {
        (0u32..=42, any::<u64>())
            .prop_map(|(bits, r)| r & ((1u64 << bits) - 1) | (1u64 << bits) >> 1)
    }

    fn within_bound(reported: Duration, truth: u64) -> bool {
        let reported = reported.as_nanos() as u64;
        // |reported − truth| ≤ truth / 32, in integers.
        reported.abs_diff(truth) * 32 <= truth
    }

    proptest! {
        #[test]
        fn quantiles_match_sorted_reference(
            mut values in prop::collection::vec(value(), 1..2000),
            qs in prop::collection::vec(0.0f64..=1.0, 1..10),
        ) {
            let h = Histogram::new();
            for &v in &values {
                h.record_nanos(v);
            }
            values.sort_unstable();
            let n = values.len() as u64;
            let truth = |q: f64| values[(rank(q, n) - 1) as usize];
            // Reference rank: the nearest-rank definition, computed independently.
            for &q in &qs {
                let expected = ((q * n as f64).ceil() as u64).clamp(1, n);
                prop_assert_eq!(rank(q, n), expected);
                let t = truth(q);
                prop_assert!(within_bound(h.quantile(q), t), "q={} truth={} got={:?}", q, t, h.quantile(q));
            }
            let snap = h.snapshot();
            prop_assert_eq!(snap.count, n);
            prop_assert_eq!(snap.min.as_nanos() as u64, values[0]);
            prop_assert_eq!(snap.max.as_nanos() as u64, values[values.len() - 1]);
            prop_assert_eq!(snap.mean.as_nanos() as u64, values.iter().sum::<u64>() / n);
            for (q, got) in [(0.5, snap.p50), (0.9, snap.p90), (0.99, snap.p99), (0.999, snap.p999)] {
                prop_assert!(within_bound(got, truth(q)), "q={} truth={} got={:?}", q, truth(q), got);
            }
        }

        #[test]
        fn every_value_lands_in_its_bucket(v in any::<u64>()) {
            let clamped = v.min(MAX_TRACKED);
            let index = bucket_index(clamped);
            prop_assert!(index < BUCKETS);
            let (low, width) = bucket_bounds(index);
            prop_assert!(low <= clamped && clamped - low < width);
            prop_assert!(within_bound(Duration::from_nanos(bucket_value(index)), clamped));
        }
    }
}
