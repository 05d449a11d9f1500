//! [`Group`]: one consumer group's cursor, runs, pending entries, dead letters and
//! the scheduling of what becomes due.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::sync::Arc;
use std::time::SystemTime;

use super::journal::{Change, Journal, PendingEntry};
use super::run::Run;
use crate::queue::backend::{DeadRecord, StoredMessage};
use crate::queue::id_map::IdMap;

/// One consumer group.
#[derive(Debug)]
pub(super) struct Group {
    pub(super) name: Arc<str>,
    /// The next message id the group has never seen.
    pub(super) cursor: u64,
    pub(super) pending: IdMap<Pending>,
    /// Messages claimed together from the cursor and still leased on their first
    /// delivery, in id order: one record per claim instead of an entry per message.
    /// An operation on one of them other than an ack first detaches it into
    /// `pending`.
    pub(super) runs: VecDeque<Run>,
    /// The runs' lease ends, by time: (end, first id of the run), stale ones (of
    /// runs gone or done) skipped.
    pub(super) run_ends: BinaryHeap<Reverse<(SystemTime, u64)>>,
    /// Messages the runs still lease.
    pub(super) run_leases: usize,
    /// When pending entries become due: (time, id, version), stale ones skipped.
    pub(super) due: BinaryHeap<Reverse<(SystemTime, u64, u64)>>,
    /// Leases in the order they were taken, while their ends increase (the common
    /// case, one lease length): cheaper than the heap for the hot path.
    pub(super) leases: VecDeque<(SystemTime, u64, u64)>,
    pub(super) dead: BTreeMap<u64, DeadRecord>,
    /// Versions tell a due entry from a stale one.
    pub(super) version: u64,
}

#[derive(Debug, Clone)]
pub(super) struct Pending {
    pub(super) entry: PendingEntry,
    pub(super) version: u64,
}

impl Pending {
    /// Whether delivery `attempt` still holds the lease.
    pub(super) fn holds(&self, attempt: u32) -> bool {
        self.entry.leased && self.entry.attempts == attempt
    }
}

impl Group {
    pub(super) fn new(name: Arc<str>, cursor: u64) -> Self {
        Group {
            name,
            cursor,
            pending: IdMap::default(),
            runs: VecDeque::new(),
            run_ends: BinaryHeap::new(),
            run_leases: 0,
            due: BinaryHeap::new(),
            leases: VecDeque::new(),
            dead: BTreeMap::new(),
            version: 0,
        }
    }

    pub(super) fn schedule(&mut self, id: u64, until: SystemTime, leased: bool) -> u64 {
        self.version += 1;
        let version = self.version;
        let monotonic = self.leases.back().is_none_or(|&(last, _, _)| last <= until);
        if leased && monotonic {
            self.leases.push_back((until, id, version));
        } else {
            self.due.push(Reverse((until, id, version)));
        }
        version
    }

    pub(super) fn is_current(&self, id: u64, version: u64) -> bool {
        self.pending.get(id).is_some_and(|p| p.version == version)
    }

    /// The earliest current due time, dropping stale entries on the way.
    pub(super) fn next_due(&mut self) -> Option<SystemTime> {
        while let Some(&(_, id, version)) = self.leases.front() {
            if self.is_current(id, version) {
                break;
            }
            self.leases.pop_front();
        }
        while let Some(&Reverse((_, id, version))) = self.due.peek() {
            if self.is_current(id, version) {
                break;
            }
            self.due.pop();
        }
        let lease = self.leases.front().map(|&(t, _, _)| t);
        let due = self.due.peek().map(|Reverse((t, _, _))| *t);
        let run = self.next_run_end();
        [lease, due, run].into_iter().flatten().min()
    }

    /// The index of the run starting at `first`, if it still leases something.
    pub(super) fn open_run(&self, first: u64) -> Option<usize> {
        let index = self.runs.partition_point(|r| r.first < first);
        self.runs
            .get(index)
            .is_some_and(|r| r.first == first && r.open > 0)
            .then_some(index)
    }

    /// The earliest end of a run that still leases something, dropping stale ends.
    pub(super) fn next_run_end(&mut self) -> Option<SystemTime> {
        while let Some(&Reverse((until, first))) = self.run_ends.peek() {
            if self.open_run(first).is_some() {
                return Some(until);
            }
            self.run_ends.pop();
        }
        None
    }

    /// Tells the journal what `run` of this group leases now.
    fn record_run(name: &Arc<str>, run: &Run, changes: &mut impl Journal) {
        changes.record(|| match run.open {
            0 => Change::DeleteRun {
                group: Arc::clone(name),
                first: run.first,
            },
            _ => Change::PutRun {
                group: Arc::clone(name),
                first: run.first,
                run: run.record(),
            },
        });
    }

    /// Adds a run taken by a claim (or kept by a store).
    pub(super) fn push_run(&mut self, run: Run, changes: &mut impl Journal) {
        Self::record_run(&self.name, &run, changes);
        self.run_leases += run.open;
        self.run_ends.push(Reverse((run.until, run.first)));
        self.runs.push_back(run);
    }

    /// Ends the run lease of `id`, if a run still leases it: the run's lease end and
    /// first id. The caller records the run ([`record_run_at`](Self::record_run_at)),
    /// once for all the ids it takes from it.
    pub(super) fn take_from_run(&mut self, id: u64) -> Option<(SystemTime, u64)> {
        let after = self.runs.partition_point(|r| r.first <= id);
        let run = self.runs.get_mut(after.checked_sub(1)?)?;
        if !run.take(id) {
            return None;
        }
        self.run_leases -= 1;
        Some((run.until, run.first))
    }

    /// Tells the journal what the run starting at `first` leases now (before
    /// [`pop_done_runs`](Self::pop_done_runs) drops it when done).
    pub(super) fn record_run_at(&self, first: u64, changes: &mut impl Journal) {
        let index = self.runs.partition_point(|r| r.first < first);
        if let Some(run) = self.runs.get(index).filter(|r| r.first == first) {
            Self::record_run(&self.name, run, changes);
        }
    }

    /// Whether a run still leases `id`.
    pub(super) fn run_holds(&self, id: u64) -> bool {
        let after = self.runs.partition_point(|r| r.first <= id);
        after > 0 && self.runs[after - 1].holds(id)
    }

    /// Drops the runs at the front that lease nothing any more.
    pub(super) fn pop_done_runs(&mut self) {
        while self.runs.front().is_some_and(|r| r.open == 0) {
            self.runs.pop_front();
        }
    }

    /// Turns `id`, if a run still leases it, into a pending entry of its own (leased
    /// on its first delivery until the run's end), with its message from `log`. The
    /// caller changes the entry and records it.
    pub(super) fn detach(
        &mut self,
        id: u64,
        log: &VecDeque<StoredMessage>,
        base: u64,
        changes: &mut impl Journal,
    ) {
        let Some((until, first)) = self.take_from_run(id) else {
            return;
        };
        self.record_run_at(first, changes);
        self.pop_done_runs();
        // Not recorded here: the caller changes the entry, then records it.
        self.lease_alone(id, until, log, base, &mut ());
    }

    /// Turns every message run `index` still leases into pending entries of their own.
    pub(super) fn detach_run(
        &mut self,
        index: usize,
        log: &VecDeque<StoredMessage>,
        base: u64,
        changes: &mut impl Journal,
    ) {
        let Some(run) = self.runs.remove(index) else {
            return;
        };
        self.run_leases -= run.open;
        changes.record(|| Change::DeleteRun {
            group: Arc::clone(&self.name),
            first: run.first,
        });
        for id in run.open_ids() {
            self.lease_alone(id, run.until, log, base, changes);
        }
    }

    /// A pending entry for `id`, leased on its first delivery until `until`, recorded
    /// in `changes`.
    pub(super) fn lease_alone(
        &mut self,
        id: u64,
        until: SystemTime,
        log: &VecDeque<StoredMessage>,
        base: u64,
        changes: &mut impl Journal,
    ) {
        let index = usize::try_from(id - base).unwrap_or(usize::MAX);
        let Some(message) = log.get(index) else {
            return;
        };
        let version = self.schedule(id, until, true);
        let entry = PendingEntry {
            attempts: 1,
            retry_base: 0,
            until,
            leased: true,
            last_error: None,
            message: message.clone(),
        };
        changes.record(|| Change::PutPending {
            group: Arc::clone(&self.name),
            id,
            entry: entry.clone(),
        });
        self.pending.insert(id, Pending { entry, version });
    }

    /// Detaches every message of the runs whose lease ended by `now`, so that they
    /// come due as expired leases.
    pub(super) fn expire_runs(
        &mut self,
        now: SystemTime,
        log: &VecDeque<StoredMessage>,
        base: u64,
        changes: &mut impl Journal,
    ) {
        while let Some(&Reverse((until, first))) = self.run_ends.peek() {
            if until > now {
                break;
            }
            self.run_ends.pop();
            if let Some(index) = self.open_run(first) {
                self.detach_run(index, log, base, changes);
            }
        }
        self.pop_done_runs();
    }

    /// Pops one current entry due at `now`, if any.
    pub(super) fn pop_due(&mut self, now: SystemTime) -> Option<u64> {
        self.next_due()?;
        let lease = self.leases.front().copied();
        let due = self.due.peek().map(|Reverse(e)| *e);
        let take_lease = match (lease, due) {
            (Some(l), Some(d)) => l.0 <= d.0,
            (Some(_), None) => true,
            _ => false,
        };
        if take_lease {
            let (until, id, _) = lease?;
            if until > now {
                return None;
            }
            self.leases.pop_front();
            Some(id)
        } else {
            let (until, id, _) = due?;
            if until > now {
                return None;
            }
            self.due.pop();
            Some(id)
        }
    }

    /// The lowest id the group still needs from the shared log: its cursor, or the
    /// first message of its oldest run (pending entries hold their own message).
    pub(super) fn watermark(&self) -> u64 {
        self.runs
            .front()
            .map_or(self.cursor, |r| r.front().min(self.cursor))
    }

    /// Messages its runs still lease.
    pub(super) fn run_leases(&self) -> usize {
        self.run_leases
    }
}
