//! The state of a queue held in memory: messages, consumer groups, pending entries and
//! dead letters, with every change reported as a [`Change`] so that a durable backend
//! can write it down (the memory backend ignores them).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::backend::{
    BackendError, Claim, Claimed, DeadRecord, GroupCounts, NewMessage, StartFrom, StoredMessage,
};
use super::window::IdMap;

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
    pub until: SystemTime,
    pub leased: bool,
    /// The last attempt's error.
    pub last_error: Option<String>,
    /// The message itself (its payload is shared, not copied), so that an entry
    /// waiting for a long time does not keep the shared log from moving on.
    pub message: StoredMessage,
}

/// One consumer group.
#[derive(Debug)]
pub(crate) struct Group {
    name: Arc<str>,
    /// The next message id the group has never seen.
    cursor: u64,
    pending: IdMap<Pending>,
    /// When pending entries become due: (time, id, version), stale ones skipped.
    due: BinaryHeap<Reverse<(SystemTime, u64, u64)>>,
    /// Leases in the order they were taken, while their ends increase (the common
    /// case, one lease length): cheaper than the heap for the hot path.
    leases: VecDeque<(SystemTime, u64, u64)>,
    dead: BTreeMap<u64, DeadRecord>,
    /// Versions tell a due entry from a stale one.
    version: u64,
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
        match (lease, due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
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

    /// The lowest id the group still needs from the shared log: its cursor (pending
    /// entries hold their own message).
    fn watermark(&self) -> u64 {
        self.cursor
    }
}

impl State {
    pub(crate) fn new() -> Self {
        State::default()
    }

    /// Messages held: those in the shared log (some group has not reached them) and
    /// every group's pending entries (each counted once per group).
    pub(crate) fn len(&self) -> usize {
        self.messages.len() + self.groups.values().map(|g| g.pending.len()).sum::<usize>()
    }

    fn message(&self, id: u64) -> Option<&StoredMessage> {
        let index = usize::try_from(id.checked_sub(self.base)?).ok()?;
        self.messages.get(index)
    }

    /// Appends messages, giving them the next ids.
    #[allow(dead_code)] // the memory backend gives ids out itself (see `append_stored`)
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
            StartFrom::Earliest => self.base.min(self.next_id),
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
        let base = self.base;
        let g = self.groups.get_mut(group).ok_or_else(|| unknown(group))?;
        let mut messages = Vec::with_capacity(max.min(256));
        // Entries due now first: retries, expired leases, delayed messages.
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
        // Then messages the group has never seen: each becomes a pending entry,
        // leased, or waiting if it was sent with a delay.
        let cursor_before = g.cursor;
        while messages.len() < max && g.cursor < next_id {
            let id = g.cursor;
            g.cursor += 1;
            let index = usize::try_from(id - base).unwrap_or(usize::MAX);
            let Some(message) = self.messages.get(index) else {
                continue;
            };
            let (until, leased) = match message.not_before {
                Some(at) if at > now => (at, false),
                _ => (lease_until, true),
            };
            let version = g.schedule(id, until, leased);
            let entry = PendingEntry {
                attempts: u32::from(leased),
                until,
                leased,
                last_error: None,
                message: message.clone(),
            };
            changes.record(|| Change::PutPending {
                group: Arc::clone(&g.name),
                id,
                entry: entry.clone(),
            });
            if leased {
                messages.push(Claimed {
                    message: message.clone(),
                    attempt: 1,
                    lease_expired: false,
                    last_error: None,
                });
            }
            g.pending.insert(id, Pending { entry, version });
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

    pub(crate) fn ack(
        &mut self,
        group: &str,
        ids: &[u64],
        changes: &mut impl Journal,
    ) -> Result<(), BackendError> {
        let g = self.groups.get_mut(group).ok_or_else(|| unknown(group))?;
        let name = Arc::clone(&g.name);
        for &id in ids {
            if g.pending.delete(id) {
                changes.record(|| Change::DeletePending {
                    group: Arc::clone(&name),
                    id,
                });
            }
        }
        self.drop_done(changes);
        Ok(())
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
        let g = self.groups.get_mut(group).ok_or_else(|| unknown(group))?;
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
    ) -> Result<(), BackendError> {
        self.update_held(group, id, attempt, changes, |entry| {
            entry.leased = false;
            entry.until = retry_at;
            if error.is_some() {
                entry.last_error = error;
            }
        })
        .map(drop)
    }

    /// Gives a leased entry back, ready at `now`, uncounting its delivery.
    pub(crate) fn release(
        &mut self,
        group: &str,
        id: u64,
        attempt: u32,
        now: SystemTime,
        changes: &mut impl Journal,
    ) -> Result<(), BackendError> {
        self.update_held(group, id, attempt, changes, |entry| {
            entry.leased = false;
            entry.until = now;
            entry.attempts = entry.attempts.saturating_sub(1);
        })
        .map(drop)
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
    ) -> Result<(), BackendError> {
        let g = self.groups.get_mut(group).ok_or_else(|| unknown(group))?;
        let name = Arc::clone(&g.name);
        if !g.pending.get(id).is_some_and(|p| p.holds(attempt)) {
            return Ok(());
        }
        let Some(pending) = g.pending.remove(id) else {
            return Ok(());
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
        Ok(())
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
