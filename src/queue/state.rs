//! The state of a queue held in memory: messages, consumer groups, pending entries and
//! dead letters, with every change reported as a [`Change`] so that a durable backend
//! can write it down (the memory backend ignores them).
//!
//! # Shape, for speed
//!
//! The messages are one shared log (`base..next_id`); each group has a cursor into it.
//! Nearly every message a group takes is claimed from its cursor in a batch and
//! acknowledged on that first delivery, so that case costs no entry per message: a
//! claim's fresh messages form one [`Run`] (their ids, a bit for each one still
//! leased, the lease end), and their payloads stay in the log. Anything else a
//! message goes through (a nack, a lease extension, a dead letter, a release, the
//! end of the run's lease, a delayed send) makes it a pending entry of its own
//! (`PendingEntry`, holding its message, so a message waiting for an hour does not
//! keep the log from moving on), kept in an [`IdMap`] by id and scheduled by due
//! time. The journal still sees one pending entry per leased message, so a durable
//! backend writes what it wrote before and restores everything as pending entries.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::backend::{
    BackendError, Claim, Claimed, DeadRecord, GroupCounts, NewMessage, StartFrom, StoredMessage,
};
use super::id_map::IdMap;

/// One change of the state, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// A message was appended.
    PutMessage(StoredMessage),
    /// Every message with an id below this one was dropped (all groups are done).
    DropMessagesBelow(u64),
    /// A group was created, or its cursor moved.
    PutGroup { group: Arc<str>, cursor: u64 },
    /// A pending entry was created or changed.
    PutPending {
        group: Arc<str>,
        id: u64,
        entry: PendingEntry,
    },
    /// A pending entry left the group (acknowledged or dead-lettered).
    DeletePending { group: Arc<str>, id: u64 },
    /// A dead letter was added.
    PutDead {
        group: Arc<str>,
        id: u64,
        record: DeadRecord,
    },
    /// A dead letter was requeued.
    DeleteDead { group: Arc<str>, id: u64 },
}

/// Where a state's changes go: nowhere for the memory backend (`()`, the change is
/// not even built), into a list for a durable one (`Vec<Change>`).
pub(crate) trait Journal {
    fn record(&mut self, change: impl FnOnce() -> Change);
}

impl Journal for () {
    #[inline(always)]
    fn record(&mut self, _change: impl FnOnce() -> Change) {}
}

impl Journal for Vec<Change> {
    fn record(&mut self, change: impl FnOnce() -> Change) {
        self.push(change());
    }
}

/// Where a pending entry is: leased to a consumer, or waiting until a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PendingEntry {
    /// Deliveries so far.
    pub attempts: u32,
    /// Leased until this time (`leased`), or waiting until it.
    #[serde(with = "crate::serde_time::timestamp")]
    pub until: SystemTime,
    pub leased: bool,
    /// The last attempt's error.
    pub last_error: Option<String>,
    /// The message itself (its payload is shared, not copied), so that an entry
    /// waiting for a long time does not keep the shared log from moving on.
    pub message: StoredMessage,
}

/// How many messages the runs may hold in the log beyond twice what they lease
/// (see `State::unpin`).
const PIN_SLACK: u64 = 1024;

/// One consumer group.
#[derive(Debug)]
pub(crate) struct Group {
    name: Arc<str>,
    /// The next message id the group has never seen.
    cursor: u64,
    pending: IdMap<Pending>,
    /// Messages claimed together from the cursor and still leased on their first
    /// delivery, in id order: one record per claim instead of an entry per message.
    /// An operation on one of them other than an ack first detaches it into
    /// `pending`.
    runs: VecDeque<Run>,
    /// The runs' lease ends, by time: (end, first id of the run), stale ones (of
    /// runs gone or done) skipped.
    run_ends: BinaryHeap<Reverse<(SystemTime, u64)>>,
    /// Messages the runs still lease.
    run_leases: usize,
    /// When pending entries become due: (time, id, version), stale ones skipped.
    due: BinaryHeap<Reverse<(SystemTime, u64, u64)>>,
    /// Leases in the order they were taken, while their ends increase (the common
    /// case, one lease length): cheaper than the heap for the hot path.
    leases: VecDeque<(SystemTime, u64, u64)>,
    dead: BTreeMap<u64, DeadRecord>,
    /// Versions tell a due entry from a stale one.
    version: u64,
}

/// Messages `first..first + len` taken from a group's cursor by one claim; those whose
/// bit is set are still leased, on their first delivery, until `until`. Their
/// messages stay in the shared log meanwhile (the run holds the group's watermark).
#[derive(Debug)]
struct Run {
    first: u64,
    len: u64,
    until: SystemTime,
    /// One bit per id from `first`.
    leased: Vec<u64>,
    /// Bits set.
    open: usize,
    /// Bits below this one are all clear: acknowledged in order, the run stops
    /// holding the log there.
    start: u64,
}

impl Run {
    fn new(first: u64, until: SystemTime) -> Self {
        Run {
            first,
            len: 0,
            until,
            leased: Vec::new(),
            open: 0,
            start: 0,
        }
    }

    /// The lowest id it may still lease: it holds the shared log from there.
    fn front(&self) -> u64 {
        self.first + self.start
    }

    /// Adds the next id, leased or not.
    fn push(&mut self, leased: bool) {
        let bit = self.len;
        self.len += 1;
        if bit % 64 == 0 {
            self.leased.push(0);
        }
        if leased {
            if let Some(word) = self.leased.last_mut() {
                *word |= 1 << (bit % 64);
            }
            self.open += 1;
        }
    }

    /// Whether `id` is still leased from this run.
    fn holds(&self, id: u64) -> bool {
        let Some(bit) = id.checked_sub(self.first).filter(|&b| b < self.len) else {
            return false;
        };
        let word = usize::try_from(bit / 64).unwrap_or(usize::MAX);
        self.leased
            .get(word)
            .is_some_and(|w| w & (1 << (bit % 64)) != 0)
    }

    /// Ends the lease of `id` here; whether it was leased from this run.
    fn take(&mut self, id: u64) -> bool {
        if !self.holds(id) {
            return false;
        }
        let bit = id - self.first;
        let word = usize::try_from(bit / 64).unwrap_or(usize::MAX);
        if let Some(w) = self.leased.get_mut(word) {
            *w &= !(1 << (bit % 64));
        }
        self.open -= 1;
        if self.open == 0 {
            self.start = self.len;
        } else if bit == self.start {
            while self.start < self.len && !self.holds(self.first + self.start) {
                self.start += 1;
            }
        }
        true
    }

    /// The ids still leased from this run.
    fn open_ids(&self) -> impl Iterator<Item = u64> + '_ {
        (self.front()..self.first + self.len).filter(|&id| self.holds(id))
    }
}

#[derive(Debug, Clone)]
struct Pending {
    entry: PendingEntry,
    version: u64,
}

impl Pending {
    /// Whether delivery `attempt` still holds the lease.
    fn holds(&self, attempt: u32) -> bool {
        self.entry.leased && self.entry.attempts == attempt
    }
}

/// The whole state.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// Messages `base..next_id`, oldest first.
    messages: VecDeque<StoredMessage>,
    base: u64,
    next_id: u64,
    groups: BTreeMap<Arc<str>, Group>,
}

impl Group {
    fn new(name: Arc<str>, cursor: u64) -> Self {
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

    fn schedule(&mut self, id: u64, until: SystemTime, leased: bool) -> u64 {
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

    fn is_current(&self, id: u64, version: u64) -> bool {
        self.pending.get(id).is_some_and(|p| p.version == version)
    }

    /// The earliest current due time, dropping stale entries on the way.
    fn next_due(&mut self) -> Option<SystemTime> {
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
    fn open_run(&self, first: u64) -> Option<usize> {
        let index = self.runs.partition_point(|r| r.first < first);
        self.runs
            .get(index)
            .is_some_and(|r| r.first == first && r.open > 0)
            .then_some(index)
    }

    /// The earliest end of a run that still leases something, dropping stale ends.
    fn next_run_end(&mut self) -> Option<SystemTime> {
        while let Some(&Reverse((until, first))) = self.run_ends.peek() {
            if self.open_run(first).is_some() {
                return Some(until);
            }
            self.run_ends.pop();
        }
        None
    }

    /// Adds a run taken by a claim.
    fn push_run(&mut self, run: Run) {
        self.run_leases += run.open;
        self.run_ends.push(Reverse((run.until, run.first)));
        self.runs.push_back(run);
    }

    /// Ends the run lease of `id`, if a run still leases it: the run's lease end.
    fn take_from_run(&mut self, id: u64) -> Option<SystemTime> {
        let after = self.runs.partition_point(|r| r.first <= id);
        let run = self.runs.get_mut(after.checked_sub(1)?)?;
        if !run.take(id) {
            return None;
        }
        self.run_leases -= 1;
        Some(run.until)
    }

    /// Drops the runs at the front that lease nothing any more.
    fn pop_done_runs(&mut self) {
        while self.runs.front().is_some_and(|r| r.open == 0) {
            self.runs.pop_front();
        }
    }

    /// Turns `id`, if a run still leases it, into a pending entry of its own (leased
    /// on its first delivery until the run's end), with its message from `log`.
    fn detach(&mut self, id: u64, log: &VecDeque<StoredMessage>, base: u64) {
        let Some(until) = self.take_from_run(id) else {
            return;
        };
        self.pop_done_runs();
        self.lease_alone(id, until, log, base);
    }

    /// Turns every message run `index` still leases into pending entries of their own.
    fn detach_run(&mut self, index: usize, log: &VecDeque<StoredMessage>, base: u64) {
        let Some(run) = self.runs.remove(index) else {
            return;
        };
        self.run_leases -= run.open;
        for id in run.open_ids() {
            self.lease_alone(id, run.until, log, base);
        }
    }

    /// A pending entry for `id`, leased on its first delivery until `until`.
    fn lease_alone(
        &mut self,
        id: u64,
        until: SystemTime,
        log: &VecDeque<StoredMessage>,
        base: u64,
    ) {
        let index = usize::try_from(id - base).unwrap_or(usize::MAX);
        let Some(message) = log.get(index) else {
            return;
        };
        let version = self.schedule(id, until, true);
        let entry = PendingEntry {
            attempts: 1,
            until,
            leased: true,
            last_error: None,
            message: message.clone(),
        };
        self.pending.insert(id, Pending { entry, version });
    }

    /// Detaches every message of the runs whose lease ended by `now`, so that they
    /// come due as expired leases.
    fn expire_runs(&mut self, now: SystemTime, log: &VecDeque<StoredMessage>, base: u64) {
        while let Some(&Reverse((until, first))) = self.run_ends.peek() {
            if until > now {
                break;
            }
            self.run_ends.pop();
            if let Some(index) = self.open_run(first) {
                self.detach_run(index, log, base);
            }
        }
        self.pop_done_runs();
    }

    /// Pops one current entry due at `now`, if any.
    fn pop_due(&mut self, now: SystemTime) -> Option<u64> {
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
    fn watermark(&self) -> u64 {
        self.runs
            .front()
            .map_or(self.cursor, |r| r.front().min(self.cursor))
    }

    /// Messages its runs still lease.
    fn run_leases(&self) -> usize {
        self.run_leases
    }
}

impl State {
    pub(crate) fn new() -> Self {
        State::default()
    }

    /// Messages held: those in the shared log (some group has not reached them or
    /// not answered them yet) and every group's pending entries (each counted once
    /// per group).
    pub(crate) fn len(&self) -> usize {
        // Messages below every cursor stay in the log only for runs: those are
        // counted by what the runs still lease (once per group, as pending entries
        // are), not by the log.
        let unseen = match self.groups.values().map(|g| g.cursor).min() {
            Some(cursor) => {
                usize::try_from(self.next_id - cursor.max(self.base)).unwrap_or(usize::MAX)
            }
            None => self.messages.len(),
        };
        let pending: usize = self
            .groups
            .values()
            .map(|g| g.pending.len() + g.run_leases())
            .sum();
        unseen.saturating_add(pending)
    }

    fn message(&self, id: u64) -> Option<&StoredMessage> {
        let index = usize::try_from(id.checked_sub(self.base)?).ok()?;
        self.messages.get(index)
    }

    /// Appends messages, giving them the next ids.
    // The memory backend gives ids out itself (see `append_stored`).
    #[cfg_attr(not(feature = "durable"), allow(dead_code))]
    pub(crate) fn append(&mut self, new: Vec<NewMessage>, changes: &mut impl Journal) -> Vec<u64> {
        let mut ids = Vec::with_capacity(new.len());
        for message in new {
            let id = self.next_id;
            self.next_id += 1;
            if self.messages.is_empty() {
                self.base = id;
            }
            let stored = StoredMessage {
                id,
                payload: message.payload,
                enqueued_at: message.enqueued_at,
                not_before: message.not_before,
                context: message.context,
            };
            changes.record(|| Change::PutMessage(stored.clone()));
            self.messages.push_back(stored);
            ids.push(id);
        }
        ids
    }

    /// Moves in messages whose ids were given out already (in order, from `next_id`
    /// on), by a backend that takes sends outside the state's lock; `stored` is left
    /// empty, its room kept for the next ones.
    pub(crate) fn append_stored(
        &mut self,
        stored: &mut Vec<StoredMessage>,
        changes: &mut impl Journal,
    ) {
        let (Some(first), Some(last)) = (stored.first(), stored.last()) else {
            return;
        };
        if self.messages.is_empty() {
            self.base = first.id;
        }
        self.next_id = self.next_id.max(last.id + 1);
        for message in stored.iter() {
            changes.record(|| Change::PutMessage(message.clone()));
        }
        self.messages.extend(stored.drain(..));
    }

    pub(crate) fn create_group(
        &mut self,
        group: &str,
        start: StartFrom,
        changes: &mut impl Journal,
    ) -> bool {
        if self.groups.contains_key(group) {
            return false;
        }
        let cursor = match start {
            StartFrom::Latest => self.next_id,
            // What some group has not reached yet. (The log may hold older messages
            // still, for runs in flight; every group has seen those.)
            StartFrom::Earliest => self
                .groups
                .values()
                .map(|g| g.cursor)
                .min()
                .map_or(self.base, |cursor| cursor.max(self.base))
                .min(self.next_id),
        };
        let name: Arc<str> = Arc::from(group);
        changes.record(|| Change::PutGroup {
            group: Arc::clone(&name),
            cursor,
        });
        self.groups
            .insert(Arc::clone(&name), Group::new(name, cursor));
        true
    }

    pub(crate) fn claim(
        &mut self,
        group: &str,
        max: usize,
        now: SystemTime,
        lease_until: SystemTime,
        changes: &mut impl Journal,
    ) -> Result<Claim, BackendError> {
        let next_id = self.next_id;
        let (log, base) = (&self.messages, self.base);
        let g = self.groups.get_mut(group).ok_or_else(|| unknown(group))?;
        let mut messages = Vec::with_capacity(max.min(256));
        // Entries due now first: retries, expired leases, delayed messages.
        g.expire_runs(now, log, base);
        while messages.len() < max {
            let Some(id) = g.pop_due(now) else { break };
            let version = g.schedule(id, lease_until, true);
            let Some(pending) = g.pending.get_mut(id) else {
                continue;
            };
            let entry = &mut pending.entry;
            let lease_expired = entry.leased;
            entry.attempts = entry.attempts.saturating_add(1);
            entry.until = lease_until;
            entry.leased = true;
            pending.version = version;
            messages.push(Claimed {
                message: entry.message.clone(),
                attempt: entry.attempts,
                lease_expired,
                last_error: entry.last_error.clone(),
            });
            changes.record(|| Change::PutPending {
                group: Arc::clone(&g.name),
                id,
                entry: pending.entry.clone(),
            });
        }
        // Then messages the group has never seen: leased together as one run, but
        // for those sent with a delay, which wait as pending entries of their own.
        let cursor_before = g.cursor;
        let mut run = Run::new(g.cursor, lease_until);
        while messages.len() < max && g.cursor < next_id {
            let id = g.cursor;
            g.cursor += 1;
            let index = usize::try_from(id - base).unwrap_or(usize::MAX);
            let Some(message) = log.get(index) else {
                run.push(false);
                continue;
            };
            match message.not_before {
                Some(at) if at > now => {
                    run.push(false);
                    let version = g.schedule(id, at, false);
                    let entry = PendingEntry {
                        attempts: 0,
                        until: at,
                        leased: false,
                        last_error: None,
                        message: message.clone(),
                    };
                    changes.record(|| Change::PutPending {
                        group: Arc::clone(&g.name),
                        id,
                        entry: entry.clone(),
                    });
                    g.pending.insert(id, Pending { entry, version });
                }
                _ => {
                    run.push(true);
                    changes.record(|| Change::PutPending {
                        group: Arc::clone(&g.name),
                        id,
                        entry: PendingEntry {
                            attempts: 1,
                            until: lease_until,
                            leased: true,
                            last_error: None,
                            message: message.clone(),
                        },
                    });
                    messages.push(Claimed {
                        message: message.clone(),
                        attempt: 1,
                        lease_expired: false,
                        last_error: None,
                    });
                }
            }
        }
        if run.open > 0 {
            g.push_run(run);
        }
        if g.cursor != cursor_before {
            changes.record(|| Change::PutGroup {
                group: Arc::clone(&g.name),
                cursor: g.cursor,
            });
        }
        let next_due = g.next_due();
        Ok(Claim { messages, next_due })
    }

    /// Acknowledges each `(id, attempt)` whose delivery still holds its entry; returns
    /// the ids of the others (their lease ran out and the entry went back, was
    /// delivered again or was answered otherwise), which change nothing.
    pub(crate) fn ack(
        &mut self,
        group: &str,
        entries: &[(u64, u32)],
        changes: &mut impl Journal,
    ) -> Result<Vec<u64>, BackendError> {
        let g = self.groups.get_mut(group).ok_or_else(|| unknown(group))?;
        let name = Arc::clone(&g.name);
        let mut late = Vec::new();
        for &(id, attempt) in entries {
            // A run holds first deliveries only, leased until the run's lease ends.
            let held = (attempt == 1 && g.take_from_run(id).is_some())
                || (g.pending.get(id).is_some_and(|p| p.holds(attempt)) && g.pending.delete(id));
            if held {
                changes.record(|| Change::DeletePending {
                    group: Arc::clone(&name),
                    id,
                });
            } else {
                late.push(id);
            }
        }
        g.pop_done_runs();
        self.drop_done(changes);
        Ok(late)
    }

    /// Changes the entry `id` of `group` still held by delivery `attempt`: `change`
    /// sets its state (leased or not, until when), and it is rescheduled and recorded.
    /// `false` if that delivery no longer holds it.
    fn update_held(
        &mut self,
        group: &str,
        id: u64,
        attempt: u32,
        changes: &mut impl Journal,
        change: impl FnOnce(&mut PendingEntry),
    ) -> Result<bool, BackendError> {
        let (log, base) = (&self.messages, self.base);
        let g = self.groups.get_mut(group).ok_or_else(|| unknown(group))?;
        if attempt == 1 {
            g.detach(id, log, base);
        }
        let Some(pending) = g.pending.get_mut(id).filter(|p| p.holds(attempt)) else {
            return Ok(false);
        };
        change(&mut pending.entry);
        let (until, leased) = (pending.entry.until, pending.entry.leased);
        let version = g.schedule(id, until, leased);
        let Some(pending) = g.pending.get_mut(id) else {
            return Ok(false);
        };
        pending.version = version;
        changes.record(|| Change::PutPending {
            group: Arc::clone(&g.name),
            id,
            entry: pending.entry.clone(),
        });
        Ok(true)
    }

    pub(crate) fn nack(
        &mut self,
        group: &str,
        id: u64,
        attempt: u32,
        retry_at: SystemTime,
        error: Option<String>,
        changes: &mut impl Journal,
    ) -> Result<bool, BackendError> {
        self.update_held(group, id, attempt, changes, |entry| {
            entry.leased = false;
            entry.until = retry_at;
            if error.is_some() {
                entry.last_error = error;
            }
        })
    }

    /// Gives a leased entry back, ready at `now`, uncounting its delivery.
    pub(crate) fn release(
        &mut self,
        group: &str,
        id: u64,
        attempt: u32,
        now: SystemTime,
        changes: &mut impl Journal,
    ) -> Result<bool, BackendError> {
        self.update_held(group, id, attempt, changes, |entry| {
            entry.leased = false;
            entry.until = now;
            entry.attempts = entry.attempts.saturating_sub(1);
        })
    }

    pub(crate) fn extend_lease(
        &mut self,
        group: &str,
        id: u64,
        attempt: u32,
        lease_until: SystemTime,
        changes: &mut impl Journal,
    ) -> Result<bool, BackendError> {
        self.update_held(group, id, attempt, changes, |entry| {
            entry.until = lease_until
        })
    }

    pub(crate) fn dead_letter(
        &mut self,
        group: &str,
        id: u64,
        attempt: u32,
        error: String,
        now: SystemTime,
        changes: &mut impl Journal,
    ) -> Result<bool, BackendError> {
        let (log, base) = (&self.messages, self.base);
        let g = self.groups.get_mut(group).ok_or_else(|| unknown(group))?;
        if attempt == 1 {
            g.detach(id, log, base);
        }
        let name = Arc::clone(&g.name);
        if !g.pending.get(id).is_some_and(|p| p.holds(attempt)) {
            return Ok(false);
        }
        let Some(pending) = g.pending.remove(id) else {
            return Ok(false);
        };
        let message = pending.entry.message;
        changes.record(|| Change::DeletePending {
            group: Arc::clone(&name),
            id,
        });
        let record = DeadRecord {
            message,
            attempts: pending.entry.attempts,
            error,
            dead_at: now,
        };
        changes.record(|| Change::PutDead {
            group: name,
            id,
            record: record.clone(),
        });
        g.dead.insert(id, record);
        self.drop_done(changes);
        Ok(true)
    }

    pub(crate) fn dead_letters(
        &self,
        group: &str,
        limit: usize,
    ) -> Result<Vec<DeadRecord>, BackendError> {
        let g = self.groups.get(group).ok_or_else(|| unknown(group))?;
        Ok(g.dead.values().take(limit).cloned().collect())
    }

    /// Requeues a dead letter: it becomes a pending entry of this group again, ready
    /// at `now` with its count reset.
    pub(crate) fn requeue(
        &mut self,
        group: &str,
        id: u64,
        now: SystemTime,
        changes: &mut impl Journal,
    ) -> Result<bool, BackendError> {
        let g = self.groups.get_mut(group).ok_or_else(|| unknown(group))?;
        let name = Arc::clone(&g.name);
        let Some(record) = g.dead.remove(&id) else {
            return Ok(false);
        };
        changes.record(|| Change::DeleteDead {
            group: Arc::clone(&name),
            id,
        });
        let entry = PendingEntry {
            attempts: 0,
            until: now,
            leased: false,
            last_error: Some(record.error),
            message: record.message,
        };
        let version = g.schedule(id, now, false);
        changes.record(|| Change::PutPending {
            group: name,
            id,
            entry: entry.clone(),
        });
        g.pending.insert(id, Pending { entry, version });
        Ok(true)
    }

    pub(crate) fn groups(&self) -> Vec<String> {
        self.groups.keys().map(|k| k.to_string()).collect()
    }

    pub(crate) fn counts(&self, group: &str, now: SystemTime) -> Result<GroupCounts, BackendError> {
        let g = self.groups.get(group).ok_or_else(|| unknown(group))?;
        let mut counts = GroupCounts {
            dead: g.dead.len() as u64,
            in_flight: g.run_leases as u64,
            ..GroupCounts::default()
        };
        for pending in g.pending.values() {
            if pending.entry.leased {
                counts.in_flight += 1;
            } else if pending.entry.until > now {
                counts.delayed += 1;
            } else {
                counts.depth += 1;
            }
        }
        // Messages the group has not reached yet.
        for id in g.cursor..self.next_id {
            match self.message(id).and_then(|m| m.not_before) {
                Some(at) if at > now => counts.delayed += 1,
                _ => counts.depth += 1,
            }
        }
        Ok(counts)
    }

    /// Drops the messages every group is done with (none while there is no group).
    fn drop_done(&mut self, changes: &mut impl Journal) {
        self.unpin();
        let Some(low) = self.groups.values().map(Group::watermark).min() else {
            return;
        };
        let before = self.base;
        while self.base < low && !self.messages.is_empty() {
            self.messages.pop_front();
            self.base += 1;
        }
        if self.messages.is_empty() {
            self.base = self.next_id;
        }
        if self.base > before {
            changes.record(|| Change::DropMessagesBelow(self.base));
        }
    }

    /// Keeps runs from holding much more of the log than they lease: a message whose
    /// handler is slow would otherwise keep every message after it, acknowledged or
    /// not, in memory until its lease ends. While the log holds more than
    /// [`PIN_SLACK`] messages beyond twice what the runs lease, the run holding it
    /// furthest back is detached into pending entries of their own.
    fn unpin(&mut self) {
        loop {
            let Some(cursor) = self.groups.values().map(|g| g.cursor).min() else {
                return;
            };
            let Some((name, front)) = self
                .groups
                .iter()
                .filter_map(|(name, g)| Some((name, g.runs.front()?.front())))
                .min_by_key(|&(_, front)| front)
            else {
                return;
            };
            let held_back = cursor.saturating_sub(front.max(self.base));
            let leased: usize = self.groups.values().map(Group::run_leases).sum();
            if held_back <= PIN_SLACK + 2 * leased as u64 {
                return;
            }
            let name = Arc::clone(name);
            let (log, base) = (&self.messages, self.base);
            let Some(g) = self.groups.get_mut(&name) else {
                return;
            };
            g.detach_run(0, log, base);
            g.pop_done_runs();
        }
    }

    /// Rebuilds a state from what a durable store kept: the messages, the groups'
    /// cursors, their pending entries and dead letters.
    #[cfg_attr(not(feature = "durable"), allow(dead_code))]
    pub(crate) fn restore(
        messages: impl IntoIterator<Item = StoredMessage>,
        next_id: u64,
        groups: impl IntoIterator<Item = (String, u64)>,
        pending: impl IntoIterator<Item = (String, u64, PendingEntry)>,
        dead: impl IntoIterator<Item = (String, u64, DeadRecord)>,
    ) -> Self {
        let mut state = State::new();
        for message in messages {
            if state.messages.is_empty() {
                state.base = message.id;
            }
            state.messages.push_back(message);
        }
        state.next_id = next_id.max(state.base + state.messages.len() as u64);
        if state.messages.is_empty() {
            state.base = state.next_id;
        }
        for (name, cursor) in groups {
            let name: Arc<str> = Arc::from(name);
            state
                .groups
                .insert(Arc::clone(&name), Group::new(name, cursor));
        }
        for (name, id, entry) in pending {
            if let Some(g) = state.groups.get_mut(name.as_str()) {
                let version = g.schedule(id, entry.until, entry.leased);
                g.pending.insert(id, Pending { entry, version });
            }
        }
        for (name, id, record) in dead {
            if let Some(g) = state.groups.get_mut(name.as_str()) {
                g.dead.insert(id, record);
            }
        }
        state
    }
}

fn unknown(group: &str) -> BackendError {
    BackendError::UnknownGroup(group.to_owned())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_000_000 + secs)
    }

    fn state_with(messages: u64, groups: &[&str]) -> State {
        let mut state = State::new();
        for group in groups {
            state.create_group(group, StartFrom::Latest, &mut ());
        }
        let new = (0..messages)
            .map(|n| NewMessage {
                payload: n.to_le_bytes().to_vec().into(),
                enqueued_at: at(0),
                not_before: None,
                context: None,
            })
            .collect();
        state.append(new, &mut ());
        state
    }

    fn claim(state: &mut State, group: &str, max: usize, now: u64) -> Vec<(u64, u32, bool)> {
        let claim = state
            .claim(group, max, at(now), at(now + 10), &mut ())
            .unwrap();
        claim
            .messages
            .iter()
            .map(|c| (c.message.id, c.attempt, c.lease_expired))
            .collect()
    }

    #[test]
    fn a_run_frees_the_log_as_it_is_acknowledged_in_any_order() {
        let mut state = state_with(10, &["g"]);
        assert_eq!(claim(&mut state, "g", 10, 0).len(), 10);
        assert_eq!(state.groups["g"].runs.len(), 1);
        assert!(state.groups["g"].pending.len() == 0, "no entry per message");
        assert_eq!(state.len(), 10);
        state
            .ack("g", &[(5, 1), (6, 1), (7, 1), (8, 1), (9, 1)], &mut ())
            .unwrap();
        assert_eq!(state.len(), 5);
        assert_eq!(state.counts("g", at(0)).unwrap().in_flight, 5);
        state.ack("g", &[(0, 1), (1, 1)], &mut ()).unwrap();
        assert_eq!(
            state.messages.len(),
            8,
            "the log moves past what is done in order"
        );
        state.ack("g", &[(2, 1), (3, 1), (4, 1)], &mut ()).unwrap();
        assert_eq!(state.len(), 0);
        assert!(state.messages.is_empty());
        assert!(state.groups["g"].runs.is_empty());
    }

    #[test]
    fn answers_other_than_acks_detach_a_message_from_its_run() {
        let mut state = state_with(3, &["g"]);
        claim(&mut state, "g", 3, 0);
        state
            .nack("g", 1, 1, at(5), Some("busy".into()), &mut ())
            .unwrap();
        let counts = state.counts("g", at(0)).unwrap();
        assert_eq!((counts.in_flight, counts.delayed), (2, 1));
        assert!(state.extend_lease("g", 0, 1, at(30), &mut ()).unwrap());
        assert!(
            !state.extend_lease("g", 1, 1, at(30), &mut ()).unwrap(),
            "no longer leased"
        );
        state
            .dead_letter("g", 2, 1, "bad".into(), at(1), &mut ())
            .unwrap();
        assert_eq!(state.dead_letters("g", 10).unwrap().len(), 1);
        // The nacked one comes back when due, on its second delivery.
        assert_eq!(claim(&mut state, "g", 10, 4), []);
        assert_eq!(claim(&mut state, "g", 10, 5), [(1, 2, false)]);
        // The extended lease outlives the run's.
        assert_eq!(claim(&mut state, "g", 10, 12), []);
        assert_eq!(
            state.ack("g", &[(0, 1), (1, 2)], &mut ()).unwrap(),
            Vec::<u64>::new()
        );
        assert_eq!(state.len(), 0);
    }

    #[test]
    fn a_run_whose_lease_ends_comes_back_as_expired_leases_on_time() {
        let mut state = state_with(3, &["g"]);
        claim(&mut state, "g", 3, 0);
        state.ack("g", &[(1, 1)], &mut ()).unwrap();
        let early = state.claim("g", 10, at(9), at(19), &mut ()).unwrap();
        assert!(early.messages.is_empty());
        assert_eq!(
            early.next_due,
            Some(at(10)),
            "due when the run's lease ends"
        );
        assert_eq!(claim(&mut state, "g", 10, 10), [(0, 2, true), (2, 2, true)]);
        // A late answer from the first delivery changes nothing.
        state.nack("g", 0, 1, at(10), None, &mut ()).unwrap();
        assert_eq!(state.counts("g", at(10)).unwrap().in_flight, 2);
    }

    #[test]
    fn a_slow_message_does_not_keep_the_log_behind_it() {
        let mut state = state_with(1, &["g"]);
        claim(&mut state, "g", 1, 0);
        for n in 1..(PIN_SLACK * 4) {
            state.append(
                vec![NewMessage {
                    payload: vec![1].into(),
                    enqueued_at: at(0),
                    not_before: None,
                    context: None,
                }],
                &mut (),
            );
            assert_eq!(claim(&mut state, "g", 1, 0), [(n, 1, false)]);
            state.ack("g", &[(n, 1)], &mut ()).unwrap();
            assert!(
                state.messages.len() as u64 <= PIN_SLACK + 4,
                "log of {}",
                state.messages.len()
            );
        }
        assert_eq!(state.len(), 1);
        assert_eq!(state.counts("g", at(0)).unwrap().in_flight, 1);
        state.ack("g", &[(0, 1)], &mut ()).unwrap();
        assert_eq!(state.len(), 0);
    }

    #[test]
    fn messages_are_counted_once_per_group_that_has_not_finished_them() {
        let mut state = state_with(4, &["a", "b"]);
        assert_eq!(state.len(), 4);
        claim(&mut state, "a", 4, 0);
        assert_eq!(state.len(), 8, "unseen by b, and leased by a");
        state
            .ack("a", &[(0, 1), (1, 1), (2, 1), (3, 1)], &mut ())
            .unwrap();
        assert_eq!(state.len(), 4);
        claim(&mut state, "b", 4, 0);
        state
            .ack("b", &[(0, 1), (1, 1), (2, 1), (3, 1)], &mut ())
            .unwrap();
        assert_eq!(state.len(), 0);
        assert!(state.messages.is_empty());
    }

    /// Entries going to pending out of id order (nacks of a run's messages) while
    /// acks empty the id ring: every one stays reachable and comes back when due.
    #[test]
    fn nacked_entries_out_of_order_all_come_back() {
        let mut state = state_with(11, &["g"]);
        claim(&mut state, "g", 11, 0);
        state
            .ack(
                "g",
                &[(0, 1), (1, 1), (2, 1), (3, 1), (4, 1), (5, 1), (6, 1)],
                &mut (),
            )
            .unwrap();
        for id in [9, 8] {
            state.nack("g", id, 1, at(5), None, &mut ()).unwrap();
        }
        // An acknowledgement after the nack answers for a delivery that is over: it
        // changes nothing, and 9 comes back with the others.
        assert_eq!(state.ack("g", &[(9, 1)], &mut ()).unwrap(), [9]);
        for id in [7, 10] {
            state.nack("g", id, 1, at(5), None, &mut ()).unwrap();
        }
        let ids: Vec<u64> = claim(&mut state, "g", 10, 5).iter().map(|c| c.0).collect();
        assert_eq!(ids, [7, 8, 9, 10]);
        let second: Vec<(u64, u32)> = ids.iter().map(|&id| (id, 2)).collect();
        assert_eq!(state.ack("g", &second, &mut ()).unwrap(), Vec::<u64>::new());
        assert_eq!(state.len(), 0);
    }

    /// A group created from the earliest message starts where the slowest group
    /// is, not at messages every group has seen that runs still keep in the log.
    #[test]
    fn earliest_starts_at_what_some_group_has_not_seen() {
        let mut state = state_with(10, &["a"]);
        claim(&mut state, "a", 10, 0);
        state
            .ack("a", &(1..10).map(|id| (id, 1)).collect::<Vec<_>>(), &mut ())
            .unwrap();
        state.create_group("b", StartFrom::Earliest, &mut ());
        assert_eq!(claim(&mut state, "b", 100, 0), []);
        state.append(
            vec![NewMessage {
                payload: vec![1].into(),
                enqueued_at: at(0),
                not_before: None,
                context: None,
            }],
            &mut (),
        );
        assert_eq!(claim(&mut state, "b", 100, 0), [(10, 1, false)]);
    }

    /// A group's derived run bookkeeping agrees with its runs: the lease count, and a
    /// lease end in the heap for every run that still leases something.
    fn assert_runs_consistent(state: &State, group: &str) {
        let g = &state.groups[group];
        let open: usize = g.runs.iter().map(|r| r.open).sum();
        assert_eq!(g.run_leases, open, "run lease count");
        for run in g.runs.iter().filter(|r| r.open > 0) {
            let end = Reverse((run.until, run.first));
            assert!(
                g.run_ends.iter().any(|e| *e == end),
                "no end for run {}",
                run.first
            );
        }
        let ordered = g.runs.iter().zip(g.runs.iter().skip(1));
        assert!(ordered.clone().all(|(a, b)| a.first + a.len <= b.first));
    }

    /// Many runs in flight, answered out of order by every kind of answer: the
    /// counts kept for speed (leases, ends) stay equal to what the runs hold. (That
    /// claims and acks cost the same however many runs are in flight is a speed
    /// property; the bookkeeping here is what makes it so.)
    #[test]
    fn run_bookkeeping_stays_consistent_with_many_runs() {
        let n = 2_000;
        let mut state = state_with(n, &["g"]);
        for round in 0..n / 4 {
            assert_eq!(claim(&mut state, "g", 4, round % 3).len(), 4);
        }
        assert_eq!(state.counts("g", at(0)).unwrap().in_flight, n);
        assert_runs_consistent(&state, "g");
        for id in (0..n).rev() {
            match id % 5 {
                0 => assert!(state.nack("g", id, 1, at(100), None, &mut ()).unwrap()),
                1 => assert!(
                    state
                        .dead_letter("g", id, 1, "x".into(), at(0), &mut ())
                        .unwrap()
                ),
                2 => assert!(state.extend_lease("g", id, 1, at(50), &mut ()).unwrap()),
                _ => assert!(state.ack("g", &[(id, 1)], &mut ()).unwrap().is_empty()),
            }
            if id % 97 == 0 {
                assert_runs_consistent(&state, "g");
            }
        }
        assert!(state.groups["g"].runs.is_empty());
        assert_eq!(state.groups["g"].run_leases, 0);
        let counts = state.counts("g", at(0)).unwrap();
        assert_eq!(
            (counts.in_flight, counts.delayed, counts.dead),
            (n / 5, n / 5, n / 5)
        );
    }

    #[test]
    fn the_journal_still_sees_one_entry_per_leased_message() {
        let mut state = state_with(3, &["g"]);
        let mut changes = Vec::new();
        state.claim("g", 3, at(0), at(10), &mut changes).unwrap();
        let put = changes
            .iter()
            .filter(|c| matches!(c, Change::PutPending { entry, .. } if entry.leased && entry.attempts == 1))
            .count();
        assert_eq!(put, 3);
        changes.clear();
        state.ack("g", &[(0, 1), (2, 1)], &mut changes).unwrap();
        let deleted = changes
            .iter()
            .filter(|c| matches!(c, Change::DeletePending { .. }))
            .count();
        assert_eq!(deleted, 2);
    }
}
