//! [`DurableBackend`]: the queue on local disk, over fjall (feature `durable`). The
//! design is described on the type, where the rendered docs show it.

mod error;
mod store;
mod writer;

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use fjall::PersistMode;
use futures_channel::oneshot;
use futures_util::FutureExt;
use serde::{Deserialize, Serialize};

pub use self::error::OpenError;
use self::store::Store;
use self::writer::Writer;
use super::backend::{BackendError, BackendFuture, NewMessage};
use super::local::{Commit, Local, LocalStore, backend_over_local};
use super::state::{Change, State};
use crate::runtime::panic_message;

/// Messages a [`DurableBackend`] holds by default before `send` waits: its queue is
/// kept in memory as well as on disk.
pub const DEFAULT_DURABLE_CAPACITY: usize = 65_536;

/// How far a commit goes before an operation's future resolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Durability {
    /// Each group of operations is written and `fsync`ed (fjall's
    /// `PersistMode::SyncAll`): an operation that resolved survives a crash of the
    /// process **and a power loss** or a crash of the operating system. The default.
    #[default]
    SyncAll,
    /// Each group is written to the operating system without `fsync` (fjall's
    /// `PersistMode::Buffer`): an operation that resolved survives a crash of the
    /// process (even `kill -9`), **not a power loss** or an OS crash, which may lose
    /// the last groups (the store stays consistent: it loses a suffix, never a hole).
    /// Much faster where `fsync` is slow. Closing the backend syncs.
    Relaxed,
}

/// How to open a [`DurableBackend`]: durability and capacity.
///
/// ```
/// use riverbed::queue::{Durability, DurableOptions};
///
/// let options = DurableOptions::new().durability(Durability::Relaxed).capacity(10_000);
/// assert_eq!(options.get_capacity(), Some(10_000));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DurableOptions {
    durability: Durability,
    capacity: Option<usize>,
}

impl DurableOptions {
    /// [`Durability::SyncAll`], a capacity of [`DEFAULT_DURABLE_CAPACITY`].
    pub fn new() -> Self {
        DurableOptions {
            durability: Durability::SyncAll,
            capacity: Some(DEFAULT_DURABLE_CAPACITY),
        }
    }

    /// How far each commit goes (default [`Durability::SyncAll`]).
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Holds at most `capacity` messages (at least 1), counted as the
    /// [`MemoryBackend`](super::MemoryBackend) counts them; `send` waits for room
    /// beyond (backpressure).
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = Some(capacity.max(1));
        self
    }

    /// No capacity: `send` never waits. The queue is held in memory too, so memory
    /// grows with the backlog.
    pub fn unbounded(mut self) -> Self {
        self.capacity = None;
        self
    }

    /// The durability chosen.
    pub fn get_durability(&self) -> Durability {
        self.durability
    }

    /// The capacity chosen (`None`: unbounded).
    pub fn get_capacity(&self) -> Option<usize> {
        self.capacity
    }
}

impl Default for DurableOptions {
    fn default() -> Self {
        DurableOptions::new()
    }
}

/// What a [`DurableBackend`]'s writer has done since the store was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DurableStats {
    /// fjall commits (one `fsync` each under [`Durability::SyncAll`]).
    pub commits: u64,
    /// Operations whose changes were committed (or failed): sends, claims,
    /// acknowledgements, ... Operations ÷ commits is the average group size.
    pub operations: u64,
}

/// A queue backend on local disk, over the [fjall](https://docs.rs/fjall) LSM store: it
/// keeps every message across a crash of the process, and across a power loss under
/// the default [`Durability::SyncAll`]. Feature `durable`.
///
/// # Design
///
/// * **The queue lives in memory, in the same state as the
///   [`MemoryBackend`](super::MemoryBackend)'s** (messages, groups, pending entries,
///   dead letters): claims, counts and listings are memory-fast, and the queue's rules
///   (leases, retries, delays, dead letters) have one implementation for both
///   backends.
/// * **Every change the state makes is written to fjall before the operation's future
///   resolves.** The state reports each mutation as a change, and an operation queues
///   its changes for the writer while it still holds the state's lock: the disk sees
///   the changes in the order the state made them, so replaying the disk gives back a
///   state the memory once had.
/// * **Group commit.** An operation encodes its changes as rows of the next fjall
///   batch, under the state's lock. One commit thread (a plain `std::thread`: no
///   executor is assumed) takes the whole next batch whenever it is free, commits it
///   atomically (under `SyncAll`, one `fsync` for the whole group) and completes all
///   its operations, while the next batch gathers. Many producers and consumers share
///   each `fsync`, and the busier the queue, the larger the groups.
///   [`stats`](Self::stats) counts commits and operations.
/// * **Few rows.** A commit's cost grows with its rows, so a commit's appended
///   messages are one row, a claim's fresh messages one row (rewritten once per
///   commit that acknowledges some of them), and a message the groups are done with
///   costs no row of its own to drop: the rows of a send, claim and acknowledgement
///   are shared by everything else in their commits.
/// * **Recovery** reads every row back and rebuilds the state. A lease taken before a
///   crash runs out after the restart and its message is delivered again (at least
///   once: only messages in flight at the crash can be handled twice); delayed
///   messages come at their time; dead letters stay listed and can be requeued.
///
/// Operations take effect in memory when called, as the [`Backend`](crate::queue::Backend) promises, and
/// resolve once durable: a claim leases its messages at once and resolves once the
/// lease is on disk, which is after the messages' own appends, so no handler ever
/// sees a message whose `send` could still be lost.
///
/// # Opening, failures and closing
///
/// [`open`](Self::open) creates the store in an empty or missing directory (fjall's
/// files and a `riverbed-queue` marker file that says whether the creation finished:
/// one cut short by a crash starts over), or reads an existing one back. A damaged
/// store is an [`OpenError`], not a panic: fjall's own
/// checks (journal batches, a checksum on every block of its data files) and the
/// backend's (every row carries a checksum, and the rows must agree with each other)
/// report it. Two limits come from fjall: a journal damaged in a way that looks like
/// its end (cut short, zeroed, a batch's start where an item should be) is cut
/// there, as a torn write after a crash is, so the batches after the damage are lost
/// without an error; and a few kinds of damage to fjall's own bookkeeping (a
/// directory where its data files belong, a version file overwritten so that it
/// asks for an impossible allocation) end the process with an abort that no guard
/// can catch.
///
/// The files are fjall 3's. A store written by a riverbed that used fjall 2 is
/// refused with [`OpenError::Format`] (`"fjall 2"`), untouched: drain it with the
/// riverbed that wrote it.
///
/// A storage error after opening (a full disk, an I/O error) fails the operations
/// whose commit failed, and every later one, with [`BackendError::Storage`]: the
/// memory may then be ahead of the disk. Reopen the store to go on from the disk.
///
/// Cloning gives another handle to the same store; a directory can be open once per
/// process ([`OpenError::InUse`]), and in one process at a time (fjall locks it:
/// another process gets [`OpenError::Io`], of kind
/// [`ResourceBusy`](std::io::ErrorKind::ResourceBusy)). When the last handle is
/// dropped, the writer commits what is queued and the store closes; the drop waits
/// for that (fjall's background threads take a few milliseconds to stop).
///
/// Under the [`VirtualRuntime`](crate::runtime::VirtualRuntime), `block_on` moves the
/// clock to the next timer whenever nothing can run, and a commit is waited for on
/// another thread: a test whose other tasks wait on timers while it awaits a commit
/// sees them fire early. Exact-time tests work with one consumer at a time.
///
/// ```
/// use std::sync::Arc;
/// use riverbed::queue::{DurableBackend, MessageQueue};
/// use riverbed::runtime::{SharedRuntime, VirtualRuntime};
///
/// let dir = tempfile::tempdir()?;
/// let clock = VirtualRuntime::new();
/// let rt: SharedRuntime = Arc::new(clock.clone());
/// clock.block_on(async {
///     let backend = DurableBackend::open(dir.path())?;
///     let queue: MessageQueue<String> =
///         MessageQueue::builder("emails", &rt).backend(backend).build();
///     queue.create_group("mailer", Default::default()).await?;
///     queue.send("welcome alice".to_string()).await?; // on disk when this resolves
///     Ok::<_, Box<dyn std::error::Error>>(())
/// })?;
///
/// // Later (or after a crash), the message is still there.
/// clock.block_on(async {
///     let backend = DurableBackend::open(dir.path())?;
///     let queue: MessageQueue<String> =
///         MessageQueue::builder("emails", &rt).backend(backend).build();
///     let mut mailer = queue.consume("mailer").await?;
///     let delivery = futures::StreamExt::next(&mut mailer).await.unwrap()?;
///     assert_eq!(delivery.message(), "welcome alice");
///     delivery.ack().await?;
///     Ok::<_, Box<dyn std::error::Error>>(())
/// })?;
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct DurableBackend {
    local: Arc<Local<Disk>>,
}

/// What the durable backend keeps beside its state: the writer that journals its
/// changes to the store.
struct Disk {
    dir: PathBuf,
    options: DurableOptions,
    writer: Arc<Writer>,
    thread: Option<JoinHandle<()>>,
    /// Released after the writer has closed the store (fields drop after `drop`).
    _open: OpenDir,
}

impl LocalStore for Disk {
    type Journal = Vec<Change>;

    /// `Err` once the store failed: the state in memory may be ahead of the disk.
    fn healthy(&self) -> Result<(), BackendError> {
        match self.writer.failure.get() {
            Some(failure) => Err(BackendError::Storage(failure.clone())),
            None => Ok(()),
        }
    }

    /// Times are stored as time since the Unix epoch: one before it cannot be.
    fn storable(&self, times: &[SystemTime]) -> Result<(), BackendError> {
        match times.iter().find(|t| t.duration_since(UNIX_EPOCH).is_err()) {
            None => Ok(()),
            Some(&at) => Err(BackendError::TimeOutOfRange(at)),
        }
    }

    /// Adds `changes` to the writer's next batch; called under the state's lock, so
    /// that the disk sees the changes in the order the state made them.
    fn submit(&self, _state: &State, changes: Vec<Change>) -> Option<Commit> {
        if changes.is_empty() {
            return None;
        }
        let committed = self.writer.submit(&changes);
        Some(
            async move {
                match committed.await {
                    Ok(done) => done,
                    // The writer stopped before committing.
                    Err(oneshot::Canceled) => Err(BackendError::Closed),
                }
            }
            .boxed(),
        )
    }
}

/// The directories of the stores open in this process: two stores over one directory
/// would overwrite each other's files.
static OPEN_DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// A directory claimed in [`OPEN_DIRS`] while it lives.
struct OpenDir(PathBuf);

impl OpenDir {
    /// Claims `dir`, which exists.
    fn claim(dir: &Path) -> Result<Self, OpenError> {
        let canonical = dir.canonicalize().map_err(|e| OpenError::io(dir, e))?;
        let mut open = OPEN_DIRS.lock().unwrap_or_else(|p| p.into_inner());
        if open.contains(&canonical) {
            return Err(OpenError::InUse {
                path: dir.to_owned(),
            });
        }
        open.push(canonical.clone());
        Ok(OpenDir(canonical))
    }
}

impl Drop for OpenDir {
    fn drop(&mut self) {
        let mut open = OPEN_DIRS.lock().unwrap_or_else(|p| p.into_inner());
        open.retain(|dir| *dir != self.0);
    }
}

impl DurableBackend {
    /// Opens the store in directory `dir` (created if missing) with the default
    /// [`DurableOptions`]: `fsync` on every commit, a capacity of
    /// [`DEFAULT_DURABLE_CAPACITY`].
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, OpenError> {
        DurableBackend::open_with(dir, DurableOptions::default())
    }

    /// Opens the store in directory `dir` (created if missing) with `options`.
    ///
    /// A directory that holds other things than a store is refused
    /// ([`OpenError::NotAStore`]); a damaged store (truncated or overwritten files, a
    /// row that does not decode, rows that contradict each other) is
    /// [`OpenError::Corrupted`]; a store this process has open already is
    /// [`OpenError::InUse`] (clone the backend to share it); a store another process
    /// has open is [`OpenError::Io`]; a store in fjall 2's files is
    /// [`OpenError::Format`]. The store engine runs
    /// under a panic guard while it reads the store, so that a damaged file it does
    /// not check is reported as `Corrupted` too (unless the program is built with
    /// `panic = "abort"`, or the engine aborts: see above).
    pub fn open_with(dir: impl AsRef<Path>, options: DurableOptions) -> Result<Self, OpenError> {
        let dir = dir.as_ref();
        let found = store::inspect(dir)?;
        std::fs::create_dir_all(dir).map_err(|e| OpenError::io(dir, e))?;
        let claim = OpenDir::claim(dir)?;
        let opened = match std::panic::catch_unwind(AssertUnwindSafe(|| Store::open(dir, found))) {
            Ok(opened) => opened?,
            Err(panic) => {
                return Err(OpenError::corrupted(
                    dir,
                    format!(
                        "the store engine panicked while reading it: {}",
                        panic_message(panic.as_ref()).unwrap_or("no message")
                    ),
                ));
            }
        };
        let mode = match options.durability {
            Durability::SyncAll => PersistMode::SyncAll,
            Durability::Relaxed => PersistMode::Buffer,
        };
        let (writer, thread) =
            Writer::start(opened.store, mode).map_err(|source| OpenError::Io {
                path: dir.to_owned(),
                source,
            })?;
        let disk = Disk {
            dir: dir.to_owned(),
            options,
            writer,
            thread: Some(thread),
            _open: claim,
        };
        Ok(DurableBackend {
            local: Arc::new(Local::new(opened.state, disk)),
        })
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.local.store.dir
    }

    /// The options it was opened with.
    pub fn options(&self) -> DurableOptions {
        self.local.store.options
    }

    /// Commits and operations so far: operations ÷ commits is the average number of
    /// operations sharing one commit (one `fsync`).
    pub fn stats(&self) -> DurableStats {
        use std::sync::atomic::Ordering::Relaxed;
        DurableStats {
            commits: self.local.store.writer.commits.load(Relaxed),
            operations: self.local.store.writer.operations.load(Relaxed),
        }
    }

    /// Holds the writer's commits until the returned guard is dropped: operations take
    /// effect in memory and wait. For tests of group commit and of the
    /// resolve-once-durable promise.
    #[doc(hidden)]
    pub fn hold_commits(&self) -> CommitHold {
        self.local.store.writer.hold(true);
        CommitHold {
            writer: Arc::downgrade(&self.local.store.writer),
        }
    }

    /// Makes the next commit fail with `message`, as a full disk or an I/O error
    /// would: that commit's operations and every later one fail with
    /// [`BackendError::Storage`]. For tests of what a storage failure does.
    #[doc(hidden)]
    pub fn fail_next_commit(&self, message: &str) {
        self.local.store.writer.fail_next_commit(message.to_owned());
    }

    /// Appends the batch if it fits (or the backend is empty); `None` if it must wait.
    fn try_append(
        &self,
        messages: &mut Option<Vec<NewMessage>>,
    ) -> Option<BackendFuture<'static, Vec<u64>>> {
        let local = &*self.local;
        let wanted = messages.as_ref().map_or(0, Vec::len);
        let capacity = local.store.options.capacity;
        let mut refused = false;
        let appended = local.apply(&[], |state, changes| {
            let held = state.len();
            if capacity.is_some_and(|capacity| held + wanted > capacity && held > 0) {
                refused = true;
                return Ok(Vec::new());
            }
            Ok(state.append(messages.take().unwrap_or_default(), changes))
        });
        if refused {
            return None;
        }
        local.changed.notify(usize::MAX);
        Some(appended)
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        // The writer commits what is left (a test's hold no longer counts) and stops;
        // the store closes as the writer is dropped, before the directory is released.
        self.writer.close();
        if let Some(thread) = self.thread.take() {
            // A writer that panicked has already failed its operations.
            let _joined = thread.join();
        }
    }
}

impl fmt::Debug for DurableBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DurableBackend")
            .field("path", &self.local.store.dir)
            .field("options", &self.local.store.options)
            .field("held", &self.local.lock().len())
            .field("stats", &self.stats())
            .finish()
    }
}

/// Holds a [`DurableBackend`]'s commits while it lives; from
/// `DurableBackend::hold_commits` (a test hook).
#[doc(hidden)]
#[derive(Debug)]
pub struct CommitHold {
    /// Weak: a hold must not keep a dropped backend's store open.
    writer: std::sync::Weak<Writer>,
}

impl Drop for CommitHold {
    fn drop(&mut self) {
        if let Some(writer) = self.writer.upgrade() {
            writer.hold(false);
        }
    }
}

backend_over_local!(DurableBackend, |this| this.local, {
    fn append(&self, messages: Vec<NewMessage>) -> BackendFuture<'_, Vec<u64>> {
        let times: Vec<SystemTime> = messages
            .iter()
            .flat_map(|m| std::iter::once(m.enqueued_at).chain(m.not_before))
            .collect();
        if let Err(error) = self.local.store.storable(&times) {
            return std::future::ready(Err(error)).boxed();
        }
        // Takes effect now if there is room; waits for room otherwise.
        let mut messages = Some(messages);
        let first = self.try_append(&mut messages);
        async move {
            let appended = match first {
                Some(appended) => appended,
                None => loop {
                    // Listen, then try again: room made in between is not missed.
                    let listener = self.local.room.listen();
                    if let Some(appended) = self.try_append(&mut messages) {
                        break appended;
                    }
                    listener.await;
                    if let Some(appended) = self.try_append(&mut messages) {
                        break appended;
                    }
                },
            };
            appended.await
        }
        .boxed()
    }
});
