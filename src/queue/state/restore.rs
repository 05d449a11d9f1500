//! [`State::restore`]: a state rebuilt from what a durable store kept.

use std::sync::Arc;

use super::State;
use super::group::{Group, Pending};
use super::journal::PendingEntry;
use crate::queue::backend::{DeadRecord, StoredMessage};

impl State {
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
