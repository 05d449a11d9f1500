//! The durable backend's layout in fjall: reading a store back into a [`State`], and
//! writing a group of [`Change`]s as one atomic batch.
//!
//! Six keyspaces (fjall 2 called them partitions; the names and rows are the same):
//!
//! | keyspace | key | value (postcard) |
//! |---|---|---|
//! | `messages` | the first id of a segment, big-endian (byte order is id order) | the messages appended in one commit, in id order (`Vec<`[`StoredMessage`]`>`) |
//! | `groups` | group name | cursor (`u64`) |
//! | `runs` | group name, a 0 byte, the run's first id big-endian | [`RunRecord`] |
//! | `pending` | group name, a 0 byte, id big-endian | [`PendingEntry`] |
//! | `dead` | group name, a 0 byte, id big-endian | [`DeadRecord`] |
//! | `meta` | `format`, `next_id`, `low` | the format's name, the next message id, the lowest id kept (`u64`s) |
//!
//! A group name may itself hold a 0 byte: entry keys are read from the end, where the
//! id has a fixed length.
//!
//! Rows are few, because a commit's cost grows with its rows: the messages a commit
//! appends are one `messages` row (a segment), deleted once every group is past all
//! of them (`low` says where the log starts inside a segment partly done); a claim of
//! fresh messages is one `runs` row, rewritten once per commit that acknowledges some
//! of them and deleted with the last (the messages stay in the log meanwhile: the run
//! holds it). A message sent, claimed and acknowledged costs a share of the rows of
//! its commits, not rows of its own.
//!
//! Beside fjall's files, the directory holds a `riverbed-queue` marker file: written
//! first, saying the store is being created, and replaced once the store is ready.
//!
//! Every value ends with an 8-byte checksum (FNV-1a, 64 bits) of the keyspace, the key
//! and the value, checked when the store is read back: a byte changed on disk, which
//! the store engine does not always notice, is reported instead of delivered.
//!
//! The files are fjall 3's. fjall 3 does not read fjall 2's files (their `version`
//! file says 2), and riverbed wrote its stores with fjall 2 before: such a store is
//! refused with [`OpenError::Format`] before anything in it changes. Drain it with the
//! riverbed that wrote it, or move it aside and start empty.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::sync::Arc;

use fjall::{Database, Keyspace, KeyspaceCreateOptions, OwnedWriteBatch, PersistMode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::OpenError;
use crate::queue::backend::{DeadRecord, StoredMessage};
use crate::queue::state::{Change, PendingEntry, RunRecord, State};

/// The value of the `format` row: what wrote the store.
///
/// 2: a message carries the producer's flow context (`StoredMessage::context`).
/// 3: a pending entry keeps its delivery count through a requeue, and where the
/// retry policy starts over (`PendingEntry::retry_base`).
/// 4: a claim's fresh messages are one `runs` row instead of a pending entry each,
/// and a commit's messages one segment row instead of a row each.
const FORMAT: &[u8] = b"riverbed queue store 4";
const FORMAT_KEY: &[u8] = b"format";
const NEXT_ID_KEY: &[u8] = b"next_id";
const LOW_KEY: &[u8] = b"low";
/// fjall flushes the journal's changes to data files once the journals hold this much
/// (its default is 512 MiB; 64 MiB is its least, and below it fjall 3 panics).
const JOURNAL_LIMIT: u64 = 64 * 1024 * 1024;
/// The backend's own file in the store's directory: it says the directory is a queue
/// store, and whether its creation finished.
const MARKER: &str = "riverbed-queue";
/// The marker of a store ready for use.
const READY: &[u8] = b"riverbed queue store 1\n";
/// The marker of a store being created: the store engine does not create its files
/// atomically (a crash can leave a keyspace that it cannot open again), and nothing
/// is stored before the creation finishes, so a creation cut short starts over.
const CREATING: &[u8] = b"riverbed queue store 1, being created\n";

/// What [`inspect`] found in the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Found {
    /// Nothing (or a creation cut short): a store is to be created.
    Nothing,
    /// A store.
    Store,
}

/// The keyspaces, by role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Part {
    Messages,
    Groups,
    Pending,
    Dead,
    Meta,
    Runs,
}

const PARTS: [(Part, &str); 6] = [
    (Part::Messages, "messages"),
    (Part::Groups, "groups"),
    (Part::Pending, "pending"),
    (Part::Dead, "dead"),
    (Part::Meta, "meta"),
    // Last: a keyspace's index is part of its rows' checksums, and the others keep
    // theirs from format 3.
    (Part::Runs, "runs"),
];

impl Part {
    fn index(self) -> usize {
        match self {
            Part::Messages => 0,
            Part::Groups => 1,
            Part::Pending => 2,
            Part::Dead => 3,
            Part::Meta => 4,
            Part::Runs => 5,
        }
    }

    fn name(self) -> &'static str {
        PARTS[self.index()].1
    }
}

/// A row's key and value.
type Row = (Vec<u8>, Vec<u8>);

/// An open store: the database and its keyspaces.
pub(super) struct Store {
    db: Database,
    keyspaces: [Keyspace; 6],
    /// The segments in the `messages` keyspace, in order: (first id, end id).
    segments: VecDeque<(u64, u64)>,
    /// The lowest message id kept: those below were dropped.
    low: u64,
}

/// What [`Store::open`] read back.
pub(super) struct Opened {
    pub store: Store,
    pub state: State,
}

impl Store {
    /// Opens (or creates) the store in `dir` and reads it back.
    /// Opens the store in `dir`, or creates it there, as [`inspect`] found.
    pub(super) fn open(dir: &Path, found: Found) -> Result<Opened, OpenError> {
        if found == Found::Nothing {
            begin_creation(dir)?;
        }
        let db = Database::builder(dir)
            .manual_journal_persist(true)
            // Opening replays the journal, which holds every change since the last
            // flush: most of a queue's rows are deleted soon after they are written,
            // so flushing them to data files early keeps restarts short.
            .max_journaling_size(JOURNAL_LIMIT)
            .open()
            .map_err(|e| OpenError::from_store(dir, e))?;
        let foreign: Vec<String> = db
            .list_keyspace_names()
            .iter()
            .map(|name| name.to_string())
            .filter(|name| !PARTS.iter().any(|(_, ours)| ours == name))
            .collect();
        if !foreign.is_empty() {
            return Err(OpenError::not_a_store(
                dir,
                format!(
                    "an fjall store with other keyspaces ({})",
                    foreign.join(", ")
                ),
            ));
        }
        let open = |name: &str| {
            db.keyspace(name, KeyspaceCreateOptions::default)
                .map_err(|e| OpenError::from_store(dir, e))
        };
        // The format first: a store refused is left as it was (no keyspace added).
        let meta = open(Part::Meta.name())?;
        if found == Found::Store {
            read_format(dir, &meta)?;
        }
        let keyspaces = [
            open(PARTS[0].1)?,
            open(PARTS[1].1)?,
            open(PARTS[2].1)?,
            open(PARTS[3].1)?,
            meta,
            open(PARTS[5].1)?,
        ];
        let mut store = Store {
            db,
            keyspaces,
            segments: VecDeque::new(),
            low: 0,
        };
        let state = match found {
            Found::Store => store.load(dir)?,
            Found::Nothing => {
                let state = store.initialise(dir)?;
                finish_creation(dir)?;
                state
            }
        };
        Ok(Opened { store, state })
    }

    fn keyspace(&self, part: Part) -> &Keyspace {
        &self.keyspaces[part.index()]
    }

    /// Every row of `part`, in key order, its checksum checked and taken off.
    fn rows(&self, dir: &Path, part: Part) -> Result<Vec<Row>, OpenError> {
        self.keyspace(part)
            .iter()
            .map(|row| {
                let (key, value) = row
                    .into_inner()
                    .map_err(|e| OpenError::from_store(dir, e))?;
                let value = unseal(part, &key, &value).ok_or_else(|| {
                    OpenError::corrupted(
                        dir,
                        format!(
                            "a row of the {:?} keyspace fails its checksum (key {:02x?})",
                            part.name(),
                            &key[..]
                        ),
                    )
                })?;
                Ok((key.to_vec(), value.to_vec()))
            })
            .collect()
    }

    /// Reads the store back and checks that its rows agree with each other.
    fn load(&mut self, dir: &Path) -> Result<State, OpenError> {
        let meta: BTreeMap<Vec<u8>, Vec<u8>> = self.rows(dir, Part::Meta)?.into_iter().collect();
        let stored_next: u64 = match meta.get(NEXT_ID_KEY) {
            Some(bytes) => decode(dir, "the next message id", bytes)?,
            None => 0,
        };

        let stored_low: Option<u64> = match meta.get(LOW_KEY) {
            Some(bytes) => Some(decode(dir, "the lowest message id", bytes)?),
            None => None,
        };
        let low = stored_low.unwrap_or(0);

        let mut messages = Vec::new();
        let mut segments = VecDeque::new();
        for (key, value) in self.rows(dir, Part::Messages)? {
            let first = message_key(dir, &key)?;
            let segment: Vec<StoredMessage> = decode(dir, "a segment of messages", &value)?;
            let end = first
                .checked_add(segment.len() as u64)
                .filter(|_| !segment.is_empty())
                .ok_or_else(|| {
                    OpenError::corrupted(dir, format!("the message row {first} holds no messages"))
                })?;
            for (id, message) in (first..end).zip(segment) {
                if message.id != id {
                    return Err(OpenError::corrupted(
                        dir,
                        format!(
                            "the message row {first} holds message {} for {id}",
                            message.id
                        ),
                    ));
                }
                if id < low {
                    continue; // Dropped; its segment was partly done.
                }
                let expected = messages
                    .last()
                    .map_or(stored_low, |m: &StoredMessage| Some(m.id + 1));
                // Keys come in order: `id >= expected`.
                if let Some(expected) = expected.filter(|&e| e != id) {
                    return Err(OpenError::corrupted(
                        dir,
                        format!("messages {expected} to {} are missing", id - 1),
                    ));
                }
                messages.push(message);
            }
            segments.push_back((first, end));
        }
        let next_id = match messages.last() {
            Some(last) => stored_next.max(last.id.checked_add(1).ok_or_else(|| {
                OpenError::corrupted(dir, "a message has the largest possible id")
            })?),
            None => stored_next,
        };
        let base = messages.first().map_or(next_id, |m| m.id);

        let mut groups = Vec::new();
        for (key, value) in self.rows(dir, Part::Groups)? {
            let name = utf8(dir, &key)?;
            let cursor: u64 = decode(dir, "a group's cursor", &value)?;
            if cursor < base || cursor > next_id {
                return Err(OpenError::corrupted(
                    dir,
                    format!(
                        "group {name:?} is at message {cursor}, outside the stored messages \
                         {base}..{next_id}"
                    ),
                ));
            }
            groups.push((name, cursor));
        }
        let known = |dir: &Path, group: &str, what: &str| -> Result<(), OpenError> {
            if groups.iter().any(|(name, _)| name == group) {
                Ok(())
            } else {
                Err(OpenError::corrupted(
                    dir,
                    format!("{what} of an unknown group {group:?}"),
                ))
            }
        };
        let mut runs = Vec::new();
        for (key, value) in self.rows(dir, Part::Runs)? {
            let (group, first) = entry_key(dir, &key)?;
            known(dir, &group, "a run")?;
            let run: RunRecord = decode(dir, "a run", &value)?;
            runs.push((group, first, run));
        }
        let mut pending = Vec::new();
        for (key, value) in self.rows(dir, Part::Pending)? {
            let (group, id) = entry_key(dir, &key)?;
            known(dir, &group, "a pending entry")?;
            let entry: PendingEntry = decode(dir, "a pending entry", &value)?;
            same_id(dir, id, entry.message.id)?;
            pending.push((group, id, entry));
        }
        let mut dead = Vec::new();
        for (key, value) in self.rows(dir, Part::Dead)? {
            let (group, id) = entry_key(dir, &key)?;
            known(dir, &group, "a dead letter")?;
            let record: DeadRecord = decode(dir, "a dead letter", &value)?;
            same_id(dir, id, record.message.id)?;
            dead.push((group, id, record));
        }
        self.low = base;
        self.segments = segments;
        State::restore(messages, next_id, groups, runs, pending, dead).map_err(|(group, id)| {
            OpenError::corrupted(
                dir,
                format!(
                    "the run or pending entry at message {id} of group {group:?} contradicts \
                     what else the group holds"
                ),
            )
        })
    }

    /// Writes the format row, durably.
    fn write_format(&self, dir: &Path) -> Result<(), OpenError> {
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncAll));
        batch.insert(
            self.keyspace(Part::Meta),
            FORMAT_KEY,
            seal(Part::Meta, FORMAT_KEY, FORMAT.to_vec()),
        );
        batch.commit().map_err(|e| OpenError::from_store(dir, e))
    }

    /// A new store: its format row.
    fn initialise(&mut self, dir: &Path) -> Result<State, OpenError> {
        self.write_format(dir)?;
        self.low = 0;
        Ok(State::new())
    }

    /// A new group of changes, to be committed as one batch persisted with `mode`.
    pub(super) fn group(&self, mode: PersistMode) -> Group {
        Group {
            batch: self.db.batch().durability(Some(mode)),
            next_id: None,
            low: None,
            segment: Segment::default(),
            cursors: Vec::new(),
            runs: HashMap::new(),
        }
    }

    /// Adds `changes` (in the order they happened) to `group`. Two writes to one key in
    /// a group are two items of one batch: the later wins, as it would in two batches.
    pub(super) fn add(&mut self, group: &mut Group, changes: &[Change]) -> Result<(), String> {
        let batch = &mut group.batch;
        for change in changes {
            match change {
                Change::PutMessage(message) => {
                    // Encoded here, on the thread that sent it; written as one row
                    // with the rest of the commit's messages.
                    group.segment.push(message)?;
                    group.next_id = group.next_id.max(Some(message.id + 1));
                }
                Change::DropMessagesBelow(below) => {
                    while let Some(&(first, end)) = self.segments.front() {
                        if end > *below {
                            break;
                        }
                        batch.remove(self.keyspace(Part::Messages), first.to_be_bytes());
                        self.segments.pop_front();
                    }
                    self.low = self.low.max(*below);
                    group.low = Some(self.low);
                }
                Change::PutGroup {
                    group: name,
                    cursor,
                } => {
                    // Only a group's last cursor is written.
                    match group.cursors.iter_mut().find(|(n, _)| n == name) {
                        Some(last) => last.1 = *cursor,
                        None => group.cursors.push((Arc::clone(name), *cursor)),
                    }
                }
                Change::PutPending {
                    group: name,
                    id,
                    entry,
                } => {
                    let key = entry_key_bytes(name, *id);
                    let value = sealed(Part::Pending, &key, entry)?;
                    batch.insert(self.keyspace(Part::Pending), key, value);
                }
                Change::DeletePending { group: name, id } => {
                    batch.remove(self.keyspace(Part::Pending), entry_key_bytes(name, *id));
                }
                // Only a run's last state in the group is written.
                Change::PutRun {
                    group: name,
                    first,
                    run,
                } => {
                    group
                        .runs
                        .insert((Arc::clone(name), *first), Some(run.clone()));
                }
                Change::DeleteRun { group: name, first } => {
                    group.runs.insert((Arc::clone(name), *first), None);
                }
                Change::PutDead {
                    group: name,
                    id,
                    record,
                } => {
                    let key = entry_key_bytes(name, *id);
                    let value = sealed(Part::Dead, &key, record)?;
                    batch.insert(self.keyspace(Part::Dead), key, value);
                }
                Change::DeleteDead { group: name, id } => {
                    batch.remove(self.keyspace(Part::Dead), entry_key_bytes(name, *id));
                }
            }
        }
        Ok(())
    }

    /// The batch that writes `group`, or `None` if it changes nothing.
    pub(super) fn finish(&mut self, group: Group) -> Result<Option<OwnedWriteBatch>, String> {
        let Group {
            mut batch,
            next_id,
            low,
            segment,
            cursors,
            runs,
        } = group;
        if let Some((first, end, value)) = segment.finish()? {
            // Unless the commit also dropped all of them.
            if end > self.low {
                let key = first.to_be_bytes();
                let value = seal(Part::Messages, &key, value);
                batch.insert(self.keyspace(Part::Messages), key, value);
                self.segments.push_back((first, end));
            }
        }
        if let Some(low) = low {
            let value = sealed(Part::Meta, LOW_KEY, &low)?;
            batch.insert(self.keyspace(Part::Meta), LOW_KEY, value);
        }
        for ((name, first), run) in runs {
            let key = entry_key_bytes(&name, first);
            match run {
                Some(run) => {
                    let value = sealed(Part::Runs, &key, &run)?;
                    batch.insert(self.keyspace(Part::Runs), key, value);
                }
                None => batch.remove(self.keyspace(Part::Runs), key),
            }
        }
        for (name, cursor) in cursors {
            let value = sealed(Part::Groups, name.as_bytes(), &cursor)?;
            batch.insert(self.keyspace(Part::Groups), name.as_bytes(), value);
        }
        if let Some(next_id) = next_id {
            let value = sealed(Part::Meta, NEXT_ID_KEY, &next_id)?;
            batch.insert(self.keyspace(Part::Meta), NEXT_ID_KEY, value);
        }
        Ok((!batch.is_empty()).then_some(batch))
    }

    /// Makes everything committed so far survive a power loss (used when closing a
    /// store opened with relaxed durability).
    pub(super) fn sync(&self) -> Result<(), String> {
        self.db
            .persist(PersistMode::SyncAll)
            .map_err(|e| format!("the store could not sync its journal: {e:?}"))
    }
}

/// Changes gathered to be committed as one batch; from [`Store::group`].
pub(super) struct Group {
    batch: OwnedWriteBatch,
    /// The next message id, if messages were appended.
    next_id: Option<u64>,
    /// The lowest message id kept, if messages were dropped.
    low: Option<u64>,
    /// The messages appended.
    segment: Segment,
    /// Each group's last cursor.
    cursors: Vec<(Arc<str>, u64)>,
    /// Each run's last state (`None`: it leases nothing any more), by group and first
    /// id.
    runs: HashMap<(Arc<str>, u64), Option<RunRecord>>,
}

/// Checks the format row of a store's `meta` keyspace: a typed error for any format
/// but this one. (Formats 1 to 3 were written in fjall 2's files, which fjall 3
/// refuses before this.)
fn read_format(dir: &Path, meta: &Keyspace) -> Result<(), OpenError> {
    let row = meta
        .get(FORMAT_KEY)
        .map_err(|e| OpenError::from_store(dir, e))?
        .ok_or_else(|| OpenError::corrupted(dir, "the store lost its format row"))?;
    let format = unseal(Part::Meta, FORMAT_KEY, &row)
        .ok_or_else(|| OpenError::corrupted(dir, "the format row fails its checksum"))?;
    match format {
        FORMAT => Ok(()),
        other => Err(OpenError::Format {
            path: dir.to_owned(),
            found: String::from_utf8_lossy(other).into_owned(),
            expected: String::from_utf8_lossy(FORMAT).into_owned(),
        }),
    }
}

/// The messages one commit appends, encoded as they come: their row's value is
/// `postcard`'s `Vec<StoredMessage>`, a length and then each message.
#[derive(Default)]
struct Segment {
    first: u64,
    count: u64,
    encoded: Vec<u8>,
}

impl Segment {
    fn push(&mut self, message: &StoredMessage) -> Result<(), String> {
        if self.count == 0 {
            self.first = message.id;
        }
        self.count += 1;
        let encoded = std::mem::take(&mut self.encoded);
        self.encoded = postcard::to_extend(message, encoded)
            .map_err(|e| format!("a message could not be encoded: {e}"))?;
        Ok(())
    }

    /// Its first id, its end and its row's value (unsealed), if it holds anything.
    fn finish(self) -> Result<Option<(u64, u64, Vec<u8>)>, String> {
        if self.count == 0 {
            return Ok(None);
        }
        // A `Vec`'s length is a `usize`, which postcard writes as it writes a `u64`.
        let mut value = postcard::to_stdvec(&self.count)
            .map_err(|e| format!("a segment could not be encoded: {e}"))?;
        value.extend_from_slice(&self.encoded);
        Ok(Some((self.first, self.first + self.count, value)))
    }
}

/// Commits `batch` (one `fsync` under `SyncAll`).
pub(super) fn commit(batch: OwnedWriteBatch) -> Result<(), String> {
    batch.commit().map_err(|error| match error {
        fjall::Error::Poisoned => "the store could not write to disk (its journal could not \
                                   be flushed or synced) and accepts no more writes"
            .to_owned(),
        other => format!("the store failed to commit: {other:?}"),
    })
}

/// What `dir` holds, before the store engine looks: nothing (or a creation cut
/// short), a store, or something else (refused).
pub(super) fn inspect(dir: &Path) -> Result<Found, OpenError> {
    match std::fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => Err(OpenError::not_a_store(dir, "it is not a directory")),
        Ok(_) => match std::fs::read(dir.join(MARKER)) {
            Ok(marker) if marker == READY => Ok(Found::Store),
            Ok(marker) if marker == CREATING => Ok(Found::Nothing),
            Ok(marker) => Err(OpenError::not_a_store(
                dir,
                format!(
                    "its {MARKER:?} file says {:?}, not {:?}",
                    String::from_utf8_lossy(&marker),
                    String::from_utf8_lossy(READY)
                ),
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut entries = std::fs::read_dir(dir).map_err(|e| OpenError::io(dir, e))?;
                match entries.next() {
                    None => Ok(Found::Nothing),
                    Some(entry) => {
                        let name = entry.map_err(|e| OpenError::io(dir, e))?.file_name();
                        Err(OpenError::not_a_store(
                            dir,
                            format!(
                                "the directory holds other files ({name:?}) and no {MARKER:?} file"
                            ),
                        ))
                    }
                }
            }
            Err(e) => Err(OpenError::io(dir, e)),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Found::Nothing),
        Err(e) => Err(OpenError::io(dir, e)),
    }
}

/// Marks `dir` (which exists) as a store being created, and clears what a creation
/// cut short left (nothing else is there: [`inspect`] checked).
fn begin_creation(dir: &Path) -> Result<(), OpenError> {
    let io = |e| OpenError::io(dir, e);
    let marker = dir.join(MARKER);
    if std::fs::read(&marker).ok().as_deref() != Some(CREATING) {
        write_synced(&marker, CREATING).map_err(io)?;
        sync_dir(dir).map_err(io)?;
    }
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        if entry.file_name() == MARKER {
            continue;
        }
        let path = entry.path();
        if entry.file_type().map_err(io)?.is_dir() {
            std::fs::remove_dir_all(&path).map_err(io)?;
        } else {
            std::fs::remove_file(&path).map_err(io)?;
        }
    }
    Ok(())
}

/// Marks the store in `dir` as ready, atomically (a new file renamed over the marker).
fn finish_creation(dir: &Path) -> Result<(), OpenError> {
    let io = |e| OpenError::io(dir, e);
    let next = dir.join(format!("{MARKER}.new"));
    write_synced(&next, READY).map_err(io)?;
    std::fs::rename(&next, dir.join(MARKER)).map_err(io)?;
    sync_dir(dir).map_err(io)
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Makes a directory's entries durable (on Unix: `fsync` on the directory).
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// FNV-1a (64 bits) of the keyspace, the key and the value: a changed byte always
/// changes it.
fn checksum(part: Part, key: &[u8], value: &[u8]) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let length = (key.len() as u64).to_be_bytes();
    for &byte in [&[part.index() as u8][..], &length, key, value]
        .into_iter()
        .flatten()
    {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(PRIME);
    }
    hash
}

/// `value` with its checksum appended.
fn seal(part: Part, key: &[u8], mut value: Vec<u8>) -> Vec<u8> {
    let sum = checksum(part, key, &value);
    value.extend_from_slice(&sum.to_be_bytes());
    value
}

/// The value of a sealed row, if its checksum matches.
fn unseal<'a>(part: Part, key: &[u8], sealed: &'a [u8]) -> Option<&'a [u8]> {
    let split = sealed.len().checked_sub(8)?;
    let (value, sum) = sealed.split_at(split);
    let sum = u64::from_be_bytes(sum.try_into().ok()?);
    (checksum(part, key, value) == sum).then_some(value)
}

/// `value` encoded, with its checksum appended.
fn sealed<T: Serialize + ?Sized>(part: Part, key: &[u8], value: &T) -> Result<Vec<u8>, String> {
    let value = postcard::to_extend(value, Vec::with_capacity(64))
        .map_err(|e| format!("a row could not be encoded: {e}"))?;
    Ok(seal(part, key, value))
}

fn decode<T: DeserializeOwned>(dir: &Path, what: &str, bytes: &[u8]) -> Result<T, OpenError> {
    postcard::from_bytes(bytes)
        .map_err(|e| OpenError::corrupted(dir, format!("{what} does not decode: {e}")))
}

/// An entry's row must hold the message its key names.
fn same_id(dir: &Path, key: u64, held: u64) -> Result<(), OpenError> {
    if key == held {
        Ok(())
    } else {
        Err(OpenError::corrupted(
            dir,
            format!("the entry row of message {key} holds message {held}"),
        ))
    }
}

fn utf8(dir: &Path, bytes: &[u8]) -> Result<String, OpenError> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| OpenError::corrupted(dir, "a group name is not UTF-8"))
}

fn message_key(dir: &Path, key: &[u8]) -> Result<u64, OpenError> {
    <[u8; 8]>::try_from(key)
        .map(u64::from_be_bytes)
        .map_err(|_| {
            OpenError::corrupted(dir, format!("a message key has {} bytes, not 8", key.len()))
        })
}

/// `group`, a 0 byte, `id` big-endian.
fn entry_key_bytes(group: &str, id: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(group.len() + 9);
    key.extend_from_slice(group.as_bytes());
    key.push(0);
    key.extend_from_slice(&id.to_be_bytes());
    key
}

/// Reads an entry key from its end: the id has a fixed length, the name may hold 0s.
fn entry_key(dir: &Path, key: &[u8]) -> Result<(String, u64), OpenError> {
    let malformed = || OpenError::corrupted(dir, "an entry key is malformed");
    let split = key.len().checked_sub(9).ok_or_else(malformed)?;
    if key[split] != 0 {
        return Err(malformed());
    }
    let id = <[u8; 8]>::try_from(&key[split + 1..]).map_err(|_| malformed())?;
    Ok((utf8(dir, &key[..split])?, u64::from_be_bytes(id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_keys_round_trip_even_with_zeros_in_the_name() {
        let dir = Path::new("store");
        for (group, id) in [("billing", 7u64), ("a\0b", u64::MAX), ("", 0)] {
            let key = entry_key_bytes(group, id);
            assert_eq!(entry_key(dir, &key).unwrap(), (group.to_owned(), id));
        }
        assert!(entry_key(dir, b"short").unwrap_err().is_corrupted());
        assert!(entry_key(dir, b"name\x01\0\0\0\0\0\0\0\x07").is_err());
    }

    /// The writer puts every write of a group into one batch, even two to one key
    /// (a cursor set twice, a row put then deleted): fjall must keep the later one,
    /// live and after replaying its journal.
    #[test]
    fn the_later_of_two_writes_to_a_key_in_one_batch_wins() {
        let dir = tempfile::tempdir().unwrap();
        let open = || {
            let db = Database::builder(dir.path()).open().unwrap();
            let keyspace = db.keyspace("p", KeyspaceCreateOptions::default).unwrap();
            (db, keyspace)
        };
        {
            let (db, p) = open();
            let mut batch = db.batch().durability(Some(PersistMode::SyncAll));
            batch.insert(&p, "put-then-delete", "1");
            batch.remove(&p, "put-then-delete");
            batch.remove(&p, "delete-then-put");
            batch.insert(&p, "delete-then-put", "2");
            batch.insert(&p, "twice", "first");
            batch.insert(&p, "twice", "second");
            batch.commit().unwrap();
            let read = |key: &str| p.get(key).unwrap().map(|v| v.to_vec());
            assert_eq!(read("put-then-delete"), None);
            assert_eq!(read("delete-then-put"), Some(b"2".to_vec()));
            assert_eq!(read("twice"), Some(b"second".to_vec()));
        }
        let (_db, p) = open();
        let read = |key: &str| p.get(key).unwrap().map(|v| v.to_vec());
        assert_eq!(read("put-then-delete"), None, "after replay");
        assert_eq!(read("delete-then-put"), Some(b"2".to_vec()), "after replay");
        assert_eq!(read("twice"), Some(b"second".to_vec()), "after replay");
    }

    /// A store written in an earlier format (1: no flow context in its messages; 3:
    /// a pending entry per leased message and a row per message) is refused with a
    /// typed error that names both formats, never misread, and is left as it was (not
    /// even a keyspace added).
    #[test]
    fn a_store_of_an_earlier_format_is_refused() {
        for old in ["riverbed queue store 1", "riverbed queue store 3"] {
            refused(old);
        }
    }

    fn refused(old: &str) {
        let dir = tempfile::tempdir().unwrap();
        drop(crate::queue::DurableBackend::open(dir.path()).unwrap());
        let old = old.as_bytes();
        {
            let db = Database::builder(dir.path()).open().unwrap();
            let meta = db.keyspace("meta", KeyspaceCreateOptions::default).unwrap();
            meta.insert(FORMAT_KEY, seal(Part::Meta, FORMAT_KEY, old.to_vec()))
                .unwrap();
            // As that format had: no runs.
            let runs = db.keyspace("runs", KeyspaceCreateOptions::default).unwrap();
            db.delete_keyspace(runs).unwrap();
            db.persist(PersistMode::SyncAll).unwrap();
        }
        for _ in 0..2 {
            match crate::queue::DurableBackend::open(dir.path()) {
                Err(OpenError::Format {
                    path,
                    found,
                    expected,
                }) => {
                    assert_eq!(path, dir.path());
                    assert_eq!(found.as_bytes(), old);
                    assert_eq!(expected.as_bytes(), FORMAT);
                }
                other => panic!("expected a format error, got {other:?}"),
            }
        }
        let db = Database::builder(dir.path()).open().unwrap();
        let keyspaces: Vec<String> = db
            .list_keyspace_names()
            .iter()
            .map(|name| name.to_string())
            .collect();
        assert!(!keyspaces.iter().any(|k| k == "runs"), "{keyspaces:?}");
    }

    #[test]
    fn a_changed_byte_fails_the_checksum() {
        let sealed = seal(Part::Pending, b"key", b"value".to_vec());
        assert_eq!(unseal(Part::Pending, b"key", &sealed), Some(&b"value"[..]));
        for i in 0..sealed.len() {
            let mut damaged = sealed.clone();
            damaged[i] ^= 0x01;
            assert_eq!(unseal(Part::Pending, b"key", &damaged), None, "byte {i}");
        }
        assert_eq!(
            unseal(Part::Pending, b"kez", &sealed),
            None,
            "the key counts"
        );
        assert_eq!(
            unseal(Part::Dead, b"key", &sealed),
            None,
            "the keyspace counts"
        );
        assert_eq!(
            unseal(Part::Pending, b"key", &sealed[..7]),
            None,
            "too short"
        );
    }
}
