//! Embedded stores for the durable queue backend: redb vs fjall under group commit.
//!
//! The workload is the queue's: a message is a key (`u64` sequence number) → value
//! (200 bytes: a 24-byte header, sequence number, enqueue time, attempts and payload
//! length, then 176 bytes of incompressible payload). Every commit is durable and
//! carries a whole group of operations, as the queue's group commit does:
//!
//! * `store_enqueue`: B inserts per commit, B = 1, 16, 256, into a fresh database.
//! * `store_ack`: B deletes by key per commit, B = 1, 16, 256, of messages enqueued
//!   (untimed) into a fresh database just before.
//! * `store_mixed`: a queue at constant depth ([`DEPTH`] messages, enqueued untimed):
//!   each commit inserts B new messages at the tail and deletes the B oldest at the
//!   head, B = 16, 256. Throughput counts messages through the queue (B per commit).
//!
//! Throughput is in messages per second. Each iteration opens a fresh database in a
//! temporary directory; opening, pre-filling and closing it are not timed
//! (`iter_custom`), only the commits are.
//!
//! Three stores, the current major of each and the fjall major the backend used
//! before: redb 5, fjall 3 (`fjall3`, the backend's) and fjall 2.11 (`fjall2`).
//!
//! Durability, the same guarantee on every side: the data is on disk when the commit
//! call returns.
//!
//! * redb 5: one `WriteTransaction` per commit with `Durability::Immediate` (redb's
//!   default, set explicitly here): `commit()` returns after the file is synced
//!   (`fdatasync`). Keys are `u64` (redb orders them numerically).
//! * fjall 3 and 2: one write batch per commit with
//!   `durability(Some(PersistMode::SyncAll))`: `commit()` writes the batch to the
//!   journal and `fsync`s it before it returns. Keys are the big-endian bytes of the
//!   sequence number (byte order is numeric order). fjall 3 calls a database what
//!   fjall 2 called a keyspace, and a keyspace what it called a partition; the batch
//!   and its durability are the same. A transactional database's write transaction
//!   commits through the same batch.
//!
//! Every number here is bound by the disk's `fsync` latency, which varies a lot from
//! one machine to another and from one minute to the next (4 to 8 times between two
//! runs on one machine, with and without a build beside it): compare the sides of
//! one run, not runs of two days.
//! Batch 1 is one `fsync` per message, so its iterations are short (250 commits) and
//! its numbers the noisiest.
//!
//! Run: `cargo bench --bench queue_store` (about 3 minutes on 2 cores).

use std::ops::Range;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};

/// Bytes in a message value: header plus payload.
const VALUE_LEN: usize = 200;
/// Messages in the queue for `store_mixed`, before and after every commit.
const DEPTH: u64 = 4096;
/// Messages per commit when pre-filling a database (untimed).
const FILL_BATCH: u64 = 4096;

/// Messages per timed iteration for a batch size: 250 commits at batch 1 (an `fsync`
/// each, 0.1 to 2 ms on a virtual disk), 256 at batch 16, 128 at batch 256, so that an
/// iteration takes a fraction of a second and the whole bench stays short.
fn messages_per_iteration(batch: u64) -> u64 {
    match batch {
        1 => 250,
        16 => 4_096,
        _ => 32_768,
    }
}

/// A message value: the header (sequence number, enqueue time in nanoseconds,
/// attempts, payload length) and a payload of pseudo-random bytes.
fn message(seq: u64) -> [u8; VALUE_LEN] {
    let mut value = [0u8; VALUE_LEN];
    let payload_len = (VALUE_LEN - 24) as u32;
    value[..8].copy_from_slice(&seq.to_be_bytes());
    value[8..16].copy_from_slice(&(seq.wrapping_mul(1_000_003)).to_be_bytes());
    value[16..20].copy_from_slice(&0u32.to_be_bytes());
    value[20..24].copy_from_slice(&payload_len.to_be_bytes());
    let mut x = seq ^ 0x9E37_79B9_7F4A_7C15;
    for chunk in value[24..].chunks_mut(8) {
        // xorshift64: incompressible, so neither side gains from compression
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let bytes = x.to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
    value
}

/// One store under test: a single table (keyspace) of messages.
trait Store: Sized {
    const NAME: &'static str;

    /// Creates a new database in the empty directory `dir`.
    fn create(dir: &Path) -> Self;

    /// One durable commit: inserts the messages `put`, deletes the messages `ack`.
    fn commit(&mut self, put: Range<u64>, ack: Range<u64>);
}

mod redb_store {
    use super::*;
    use redb::{Database, Durability, TableDefinition};

    const MESSAGES: TableDefinition<u64, &[u8]> = TableDefinition::new("messages");

    pub struct Redb {
        db: Database,
    }

    impl Store for Redb {
        const NAME: &'static str = "redb";

        fn create(dir: &Path) -> Self {
            let db = Database::create(dir.join("queue.redb")).expect("redb: create");
            Self { db }
        }

        fn commit(&mut self, put: Range<u64>, ack: Range<u64>) {
            let mut txn = self.db.begin_write().expect("redb: begin_write");
            txn.set_durability(Durability::Immediate)
                .expect("redb: set_durability");
            {
                let mut table = txn.open_table(MESSAGES).expect("redb: open_table");
                for seq in put {
                    table
                        .insert(seq, message(seq).as_slice())
                        .expect("redb: insert");
                }
                for seq in ack {
                    let removed = table.remove(seq).expect("redb: remove");
                    assert!(removed.is_some(), "redb: message {seq} was not there");
                }
            }
            txn.commit().expect("redb: commit");
        }
    }
}

mod fjall3_store {
    use super::*;
    use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

    pub struct Fjall3 {
        db: Database,
        messages: Keyspace,
    }

    impl Store for Fjall3 {
        const NAME: &'static str = "fjall3";

        fn create(dir: &Path) -> Self {
            let db = Database::builder(dir).open().expect("fjall 3: open");
            let messages = db
                .keyspace("messages", KeyspaceCreateOptions::default)
                .expect("fjall 3: keyspace");
            Self { db, messages }
        }

        fn commit(&mut self, put: Range<u64>, ack: Range<u64>) {
            let mut batch = self.db.batch().durability(Some(PersistMode::SyncAll));
            for seq in put {
                batch.insert(&self.messages, seq.to_be_bytes(), message(seq).as_slice());
            }
            for seq in ack {
                // A blind tombstone: fjall does not look the key up.
                batch.remove(&self.messages, seq.to_be_bytes());
            }
            batch.commit().expect("fjall 3: commit");
        }
    }
}

mod fjall2_store {
    use super::*;
    use fjall2::{Config, Keyspace, PartitionCreateOptions, PartitionHandle, PersistMode};

    pub struct Fjall2 {
        keyspace: Keyspace,
        messages: PartitionHandle,
    }

    impl Store for Fjall2 {
        const NAME: &'static str = "fjall2";

        fn create(dir: &Path) -> Self {
            let keyspace = Config::new(dir).open().expect("fjall 2: open");
            let messages = keyspace
                .open_partition("messages", PartitionCreateOptions::default())
                .expect("fjall 2: open_partition");
            Self { keyspace, messages }
        }

        fn commit(&mut self, put: Range<u64>, ack: Range<u64>) {
            let mut batch = self.keyspace.batch().durability(Some(PersistMode::SyncAll));
            for seq in put {
                batch.insert(&self.messages, seq.to_be_bytes(), message(seq).as_slice());
            }
            for seq in ack {
                batch.remove(&self.messages, seq.to_be_bytes());
            }
            batch.commit().expect("fjall 2: commit");
        }
    }
}

use fjall2_store::Fjall2;
use fjall3_store::Fjall3;
use redb_store::Redb;

/// Fills `store` with the messages `seqs`, in large commits (untimed).
fn fill<S: Store>(store: &mut S, seqs: Range<u64>) {
    let mut start = seqs.start;
    while start < seqs.end {
        let end = (start + FILL_BATCH).min(seqs.end);
        store.commit(start..end, 0..0);
        start = end;
    }
}

/// Runs `iters` iterations, each on a fresh database: `prepare` (untimed), then
/// `run` (timed). Closing the database and removing its directory are untimed.
fn fresh<S: Store>(iters: u64, prepare: impl Fn(&mut S), run: impl Fn(&mut S)) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut store = S::create(dir.path());
        prepare(&mut store);
        let start = Instant::now();
        run(&mut store);
        total += start.elapsed();
        drop(store);
        drop(dir);
    }
    total
}

fn enqueue_side<S: Store>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    batch: u64,
) {
    let n = messages_per_iteration(batch);
    group.throughput(Throughput::Elements(n));
    group.bench_function(BenchmarkId::new(S::NAME, batch), |b| {
        b.iter_custom(|iters| {
            fresh::<S>(
                iters,
                |_| {},
                |store| {
                    for start in (0..n).step_by(batch as usize) {
                        store.commit(start..start + batch, 0..0);
                    }
                },
            )
        })
    });
}

fn ack_side<S: Store>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    batch: u64,
) {
    let n = messages_per_iteration(batch);
    group.throughput(Throughput::Elements(n));
    group.bench_function(BenchmarkId::new(S::NAME, batch), |b| {
        b.iter_custom(|iters| {
            fresh::<S>(
                iters,
                |store| fill(store, 0..n),
                |store| {
                    for start in (0..n).step_by(batch as usize) {
                        store.commit(0..0, start..start + batch);
                    }
                },
            )
        })
    });
}

fn mixed_side<S: Store>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    batch: u64,
) {
    let n = messages_per_iteration(batch);
    group.throughput(Throughput::Elements(n));
    group.bench_function(BenchmarkId::new(S::NAME, batch), |b| {
        b.iter_custom(|iters| {
            fresh::<S>(
                iters,
                |store| fill(store, 0..DEPTH),
                |store| {
                    for head in (0..n).step_by(batch as usize) {
                        let tail = head + DEPTH;
                        store.commit(tail..tail + batch, head..head + batch);
                    }
                },
            )
        })
    });
}

/// Short groups: one iteration is already many commits, and every `fsync` counts.
fn configure(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
}

fn enqueue(c: &mut Criterion) {
    let mut group = c.benchmark_group("store_enqueue");
    configure(&mut group);
    for batch in [1, 16, 256] {
        enqueue_side::<Redb>(&mut group, batch);
        enqueue_side::<Fjall3>(&mut group, batch);
        enqueue_side::<Fjall2>(&mut group, batch);
    }
    group.finish();
}

fn ack(c: &mut Criterion) {
    let mut group = c.benchmark_group("store_ack");
    configure(&mut group);
    for batch in [1, 16, 256] {
        ack_side::<Redb>(&mut group, batch);
        ack_side::<Fjall3>(&mut group, batch);
        ack_side::<Fjall2>(&mut group, batch);
    }
    group.finish();
}

fn mixed(c: &mut Criterion) {
    let mut group = c.benchmark_group("store_mixed");
    configure(&mut group);
    for batch in [16, 256] {
        mixed_side::<Redb>(&mut group, batch);
        mixed_side::<Fjall3>(&mut group, batch);
        mixed_side::<Fjall2>(&mut group, batch);
    }
    group.finish();
}

criterion_group!(benches, enqueue, ack, mixed);
criterion_main!(benches);
