//! Queue statistics.

use serde::{Deserialize, Serialize};

use super::backend::GroupCounts;
use crate::stats::{Counter, Histogram, HistogramSnapshot};

/// What this process counts for one group.
#[derive(Debug, Default)]
pub(crate) struct GroupMetrics {
    pub delivered: Counter,
    pub acked: Counter,
    pub nacked: Counter,
    pub redelivered: Counter,
    pub dead_lettered: Counter,
    pub late_answers: Counter,
    /// Send → acknowledgement.
    pub latency: Histogram,
}

/// One consumer group's statistics (serde-serialisable).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupStats {
    /// The group's name.
    pub group: String,
    /// Messages waiting for the group (new, or due for a retry), from the backend.
    pub depth: u64,
    /// Delivered and not answered yet, from the backend.
    pub in_flight: u64,
    /// Sent with a delay, or waiting for a retry's backoff, from the backend.
    pub delayed: u64,
    /// In the group's dead letters now, from the backend.
    pub dead_letters: u64,
    /// Deliveries made by this process. A [`Consumer`](super::Consumer)'s workers
    /// add theirs once per claimed batch (as they acknowledge), a
    /// [`Deliveries`](super::Deliveries) stream as each delivery comes out.
    pub delivered: u64,
    /// Acknowledged by this process's consumers.
    pub acked: u64,
    /// Answered with a failure (a retry, a nack, a panic, a drop) by this process.
    pub nacked: u64,
    /// Deliveries after a lease ran out without an answer.
    pub redelivered: u64,
    /// Sent to dead letters by this process (attempts used up, bad payloads).
    pub dead_lettered: u64,
    /// Answers that came after their delivery had lost its lease
    /// ([`QueueError::LateAnswer`](super::QueueError::LateAnswer)): they changed
    /// nothing and are not counted above.
    pub late_answers: u64,
    /// Time from send to acknowledgement, for the messages this process acknowledged.
    pub latency: HistogramSnapshot,
}

impl GroupStats {
    pub(crate) fn new(group: String, counts: GroupCounts, metrics: &GroupMetrics) -> Self {
        GroupStats {
            group,
            depth: counts.depth,
            in_flight: counts.in_flight,
            delayed: counts.delayed,
            dead_letters: counts.dead,
            delivered: metrics.delivered.get(),
            acked: metrics.acked.get(),
            nacked: metrics.nacked.get(),
            redelivered: metrics.redelivered.get(),
            dead_lettered: metrics.dead_lettered.get(),
            late_answers: metrics.late_answers.get(),
            latency: metrics.latency.snapshot(),
        }
    }
}

/// A queue's statistics: one entry per consumer group (serde-serialisable).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueStats {
    /// The queue's name.
    pub name: String,
    /// Messages the queue holds: not yet reached or answered by some group, or sent
    /// while no group existed (each pending entry counted once per group).
    pub held: u64,
    /// Per group, by name.
    pub groups: Vec<GroupStats>,
}

impl QueueStats {
    /// The statistics of `group`, if it exists.
    pub fn group(&self, group: &str) -> Option<&GroupStats> {
        self.groups.iter().find(|g| g.group == group)
    }
}
