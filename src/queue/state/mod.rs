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
//! time. The journal sees the same shape: a claim's run is one [`Change::PutRun`]
//! (rewritten, or deleted, as its messages are acknowledged or detached), so a durable
//! backend writes one row per claim rather than a pending entry per message, and
//! restores the runs as runs.

mod group;
mod journal;
mod restore;
mod run;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::SystemTime;

use self::group::{Group, Pending};
#[cfg(feature = "durable")]
pub(crate) use self::journal::RunRecord;
pub(crate) use self::journal::{Change, Journal, PendingEntry};
use self::run::Run;
use super::backend::{
    BackendError, Claim, Claimed, DeadRecord, GroupCounts, NewMessage, StartFrom, StoredMessage,
};

/// How many messages the runs may hold in the log beyond twice what they lease
/// (see `State::unpin`).
const PIN_SLACK: u64 = 1024;

/// The whole state.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// Messages `base..next_id`, oldest first.
    messages: VecDeque<StoredMessage>,
    base: u64,
    next_id: u64,
    groups: BTreeMap<Arc<str>, Group>,
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
        g.expire_runs(now, log, base, changes);
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
                retry_base: entry.retry_base,
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
                        retry_base: 0,
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
                    // Recorded with its run, below: one row for the whole claim.
                    run.push(true);
                    messages.push(Claimed {
                        message: message.clone(),
                        attempt: 1,
                        retry_base: 0,
                        lease_expired: false,
                        last_error: None,
                    });
                }
            }
        }
        if run.open > 0 {
            g.push_run(run, changes);
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
        let mut touched: Vec<u64> = Vec::new();
        for &(id, attempt) in entries {
            // A run holds first deliveries only, leased until the run's lease ends.
            if attempt == 1
                && let Some((_, first)) = g.take_from_run(id)
            {
                // Each run acknowledged from is recorded once, below.
                if changes.records() && touched.last() != Some(&first) {
                    touched.push(first);
                }
                continue;
            }
            if g.pending.get(id).is_some_and(|p| p.holds(attempt)) && g.pending.delete(id) {
                changes.record(|| Change::DeletePending {
                    group: Arc::clone(&name),
                    id,
                });
            } else {
                late.push(id);
            }
        }
        touched.sort_unstable();
        touched.dedup();
        for first in touched {
            g.record_run_at(first, changes);
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
            g.detach(id, log, base, changes);
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
            g.detach(id, log, base, changes);
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
        // The count goes on (a delivery's number is never reused, so a late answer
        // of an old delivery cannot answer for a new one); the retry policy starts
        // over from here.
        let entry = PendingEntry {
            attempts: record.attempts,
            retry_base: record.attempts,
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
        self.unpin(changes);
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
    fn unpin(&mut self, changes: &mut impl Journal) {
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
            g.detach_run(0, log, base, changes);
            g.pop_done_runs();
        }
    }
}

fn unknown(group: &str) -> BackendError {
    BackendError::UnknownGroup(group.to_owned())
}
