//! What a [`State`](super::State) tells its store: every [`Change`] it makes, in
//! order, through a [`Journal`]; and the [`PendingEntry`] and [`RunRecord`] a change
//! carries.

use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::queue::backend::{DeadRecord, StoredMessage};

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
    /// A run was claimed, or some of its messages left it: what it leases now.
    PutRun {
        group: Arc<str>,
        first: u64,
        run: RunRecord,
    },
    /// A run leases nothing any more (its messages were acknowledged or detached
    /// into pending entries of their own).
    DeleteRun { group: Arc<str>, first: u64 },
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

    /// Whether changes are kept: bookkeeping only the journal needs is skipped when
    /// not.
    fn records(&self) -> bool;
}

impl Journal for () {
    #[inline(always)]
    fn record(&mut self, _change: impl FnOnce() -> Change) {}

    #[inline(always)]
    fn records(&self) -> bool {
        false
    }
}

impl Journal for Vec<Change> {
    fn record(&mut self, change: impl FnOnce() -> Change) {
        self.push(change());
    }

    fn records(&self) -> bool {
        true
    }
}

/// Where a pending entry is: leased to a consumer, or waiting until a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PendingEntry {
    /// Deliveries so far, never reset: a delivery's number is its identity, the one
    /// its answers name.
    pub attempts: u32,
    /// Deliveries before the entry was last requeued from dead letters: the retry
    /// policy counts the attempts after it.
    pub retry_base: u32,
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

/// A run as a store keeps it (its first id is the row's key): the messages
/// `first..first + len` one claim took from a group's cursor, and which of them are
/// still leased, on their first delivery, until `until`. One row per claim instead
/// of one pending entry per message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RunRecord {
    pub len: u64,
    #[serde(with = "crate::serde_time::timestamp")]
    pub until: SystemTime,
    /// One bit per id from `first`, set while leased.
    pub leased: Vec<u64>,
}
