//! The state's own tests: runs, the log, scheduling, the journal.

use std::cmp::Reverse;
use std::time::{Duration, UNIX_EPOCH};

use super::*;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_000_000 + secs)
}

/// A message sent at time 0 with `payload`, due at once.
fn message(payload: &[u8]) -> NewMessage {
    NewMessage {
        payload: payload.to_vec().into(),
        enqueued_at: at(0),
        not_before: None,
        context: None,
    }
}

fn state_with(messages: u64, groups: &[&str]) -> State {
    let mut state = State::new();
    for group in groups {
        state.create_group(group, StartFrom::Latest, &mut ());
    }
    let new = (0..messages).map(|n| message(&n.to_le_bytes())).collect();
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
        state.append(vec![message(&[1])], &mut ());
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
    state.append(vec![message(&[1])], &mut ());
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

/// A claim's run is one journal change, rewritten as its messages are acknowledged
/// and deleted with the last; a message detached from it becomes a pending entry of
/// its own in the same changes.
#[test]
fn the_journal_sees_a_claim_as_one_run() {
    let mut state = state_with(4, &["g"]);
    let mut changes = Vec::new();
    state.claim("g", 4, at(0), at(10), &mut changes).unwrap();
    let runs: Vec<_> = changes
        .iter()
        .filter_map(|c| match c {
            Change::PutRun { first, run, .. } => Some((*first, run.len, run.leased.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(runs, [(0, 4, vec![0b1111])]);
    assert!(
        !changes
            .iter()
            .any(|c| matches!(c, Change::PutPending { .. }))
    );

    changes.clear();
    state.ack("g", &[(0, 1), (2, 1)], &mut changes).unwrap();
    let last = changes.iter().rev().find_map(|c| match c {
        Change::PutRun { run, .. } => Some(run.leased.clone()),
        _ => None,
    });
    assert_eq!(last, Some(vec![0b1010]));
    let rewrites = changes
        .iter()
        .filter(|c| matches!(c, Change::PutRun { .. }))
        .count();
    assert_eq!(rewrites, 1, "one rewrite of the run for the whole ack");
    assert!(
        !changes
            .iter()
            .any(|c| matches!(c, Change::DeletePending { .. }))
    );

    // A nack detaches message 1: the run leases only 3, and 1 is an entry of its own.
    changes.clear();
    assert!(
        state
            .nack("g", 1, 1, at(5), Some("no".into()), &mut changes)
            .unwrap()
    );
    assert!(changes.iter().any(|c| matches!(c,
        Change::PutRun { run, .. } if run.leased == [0b1000])));
    assert!(changes.iter().any(|c| matches!(c,
        Change::PutPending { id: 1, entry, .. } if !entry.leased && entry.attempts == 1)));

    changes.clear();
    state.ack("g", &[(3, 1)], &mut changes).unwrap();
    assert!(
        changes
            .iter()
            .any(|c| matches!(c, Change::DeleteRun { first: 0, .. }))
    );
}

/// A restored run and a pending entry or dead letter for one of its leased ids
/// contradict each other (a detach leaves the run in the same commit): the restore
/// refuses, naming the group and the id.
#[test]
fn a_restored_run_that_another_entry_contradicts_is_refused() {
    use super::journal::RunRecord;
    use crate::queue::backend::{DeadRecord, StoredMessage};

    let stored = |id| StoredMessage {
        id,
        payload: vec![1].into(),
        enqueued_at: at(0),
        not_before: None,
        context: None,
    };
    let run = || {
        (
            "g".to_owned(),
            0,
            RunRecord {
                len: 2,
                until: at(10),
                leased: vec![0b11],
            },
        )
    };
    let restore = |pending: Vec<(String, u64, PendingEntry)>,
                   dead: Vec<(String, u64, DeadRecord)>| {
        State::restore(
            [stored(0), stored(1)],
            2,
            [("g".to_owned(), 2)],
            [run()],
            pending,
            dead,
        )
        .map(|_| ())
    };
    assert_eq!(restore(vec![], vec![]), Ok(()));
    let entry = PendingEntry {
        attempts: 1,
        retry_base: 0,
        until: at(10),
        leased: true,
        last_error: None,
        message: stored(1),
    };
    assert_eq!(
        restore(vec![("g".into(), 1, entry)], vec![]),
        Err(("g".into(), 1))
    );
    let record = DeadRecord {
        message: stored(0),
        attempts: 1,
        error: "x".into(),
        dead_at: at(1),
    };
    assert_eq!(
        restore(vec![], vec![("g".into(), 0, record)]),
        Err(("g".into(), 0))
    );
}
