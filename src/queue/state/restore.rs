//! [`State::restore`]: a state rebuilt from what a durable store kept.

use std::sync::Arc;

use super::State;
use super::group::{Group, Pending};
use super::journal::{PendingEntry, RunRecord};
use super::run::Run;
use crate::queue::backend::{DeadRecord, StoredMessage};

impl State {
    /// Rebuilds a state from what a durable store kept: the messages, the groups'
    /// cursors, their runs (by group, in id order), pending entries and dead letters.
    /// A run record that cannot be one, or a pending entry or dead letter of a
    /// message a run still leases, is `Err` with the group and the id: the store is
    /// damaged.
    #[cfg_attr(not(feature = "durable"), allow(dead_code))]
    pub(crate) fn restore(
        messages: impl IntoIterator<Item = StoredMessage>,
        next_id: u64,
        groups: impl IntoIterator<Item = (String, u64)>,
        runs: impl IntoIterator<Item = (String, u64, RunRecord)>,
        pending: impl IntoIterator<Item = (String, u64, PendingEntry)>,
        dead: impl IntoIterator<Item = (String, u64, DeadRecord)>,
    ) -> Result<Self, (String, u64)> {
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
        for (name, first, record) in runs {
            let base = state.base;
            let Some(g) = state.groups.get_mut(name.as_str()) else {
                continue;
            };
            let run = Run::from_record(first, record)
                .filter(|run| {
                    // The messages it leases are in the log; it was claimed from the
                    // cursor, after the group's previous run.
                    let after = g.runs.back().is_none_or(|r| r.first + r.len <= first);
                    (run.open == 0 || run.front() >= base) && first + run.len <= g.cursor && after
                })
                .ok_or((name, first))?;
            if run.open > 0 {
                g.push_run(run, &mut ());
            }
        }
        for (name, id, entry) in pending {
            if let Some(g) = state.groups.get_mut(name.as_str()) {
                // A message detached from its run left it in the same commit.
                if g.run_holds(id) {
                    return Err((name, id));
                }
                let version = g.schedule(id, entry.until, entry.leased);
                g.pending.insert(id, Pending { entry, version });
            }
        }
        for (name, id, record) in dead {
            if let Some(g) = state.groups.get_mut(name.as_str()) {
                // So did a message dead-lettered from its run.
                if g.run_holds(id) {
                    return Err((name, id));
                }
                g.dead.insert(id, record);
            }
        }
        Ok(state)
    }
}
