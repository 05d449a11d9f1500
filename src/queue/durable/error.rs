//! [`OpenError`]: why a durable queue store could not be opened.

use std::io;
use std::path::{Path, PathBuf};

/// Why [`DurableBackend::open`](super::DurableBackend::open) failed.
///
/// A store that is damaged (a truncated file, bytes overwritten, a row that does not
/// decode) is reported as [`Corrupted`](Self::Corrupted), never by a panic: restore
/// the directory from a backup, or move it aside and start empty.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The path is not a queue store: a file, or a directory that holds other things.
    #[error("{path} is not a queue store: {reason}")]
    NotAStore {
        /// The path given to `open`.
        path: PathBuf,
        /// What was found there.
        reason: String,
    },
    /// The store is damaged: a file is truncated or overwritten, a checksum does not
    /// match, a row does not decode, or the rows contradict each other.
    #[error("the queue store at {path} is corrupted: {detail}")]
    Corrupted {
        /// The store's directory.
        path: PathBuf,
        /// What is wrong, as far as it is known.
        detail: String,
    },
    /// The store was written in a format this version does not read (an older
    /// riverbed's): it is left untouched. Open it with the version that wrote it to
    /// drain it, or move it aside and start empty.
    ///
    /// Either its rows are in an older format (`found` is its format row), or its
    /// files are an older store engine's: riverbed's stores were fjall 2's files
    /// before they were fjall 3's (`found` is then `"fjall 2"`, `expected`
    /// `"fjall 3"`).
    #[error(
        "the queue store at {path} is in format {found:?}; this version reads {expected:?} only"
    )]
    Format {
        /// The store's directory.
        path: PathBuf,
        /// The format the store says it is in.
        found: String,
        /// The format this version reads and writes.
        expected: String,
    },
    /// The store is already open in this process: share that [`DurableBackend`]
    /// (clone it) instead of opening the directory twice.
    ///
    /// [`DurableBackend`]: super::DurableBackend
    #[error("the queue store at {path} is already open in this process")]
    InUse {
        /// The store's directory.
        path: PathBuf,
    },
    /// Reading or creating the store failed for a reason other than its content
    /// (permissions, a missing device, no space left, another process has the store
    /// open: [`io::ErrorKind::ResourceBusy`], ...).
    #[error("could not open the queue store at {path}: {source}")]
    Io {
        /// The store's directory.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
}

impl OpenError {
    /// The path the error is about.
    pub fn path(&self) -> &Path {
        match self {
            OpenError::NotAStore { path, .. }
            | OpenError::Corrupted { path, .. }
            | OpenError::Format { path, .. }
            | OpenError::InUse { path }
            | OpenError::Io { path, .. } => path,
        }
    }

    /// Whether the store is damaged (as opposed to absent, foreign or unreachable).
    pub fn is_corrupted(&self) -> bool {
        matches!(self, OpenError::Corrupted { .. })
    }

    pub(super) fn corrupted(path: &Path, detail: impl Into<String>) -> Self {
        OpenError::Corrupted {
            path: path.to_owned(),
            detail: detail.into(),
        }
    }

    pub(super) fn not_a_store(path: &Path, reason: impl Into<String>) -> Self {
        OpenError::NotAStore {
            path: path.to_owned(),
            reason: reason.into(),
        }
    }

    /// An I/O error: damage when the data ran short or made no sense, otherwise a
    /// plain I/O failure.
    pub(super) fn io(path: &Path, source: io::Error) -> Self {
        match source.kind() {
            io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData => OpenError::corrupted(
                path,
                format!("a file ends early or holds invalid data ({source})"),
            ),
            _ => OpenError::Io {
                path: path.to_owned(),
                source,
            },
        }
    }

    /// Maps what the store engine reported while opening or reading the store.
    pub(super) fn from_store(path: &Path, error: fjall::Error) -> Self {
        use fjall::{Error, JournalRecoveryError, LsmError};
        let detail = match error {
            // Offsets read from a damaged file make reads and seeks invalid.
            Error::Io(source) | Error::Storage(LsmError::Io(source))
                if source.kind() == io::ErrorKind::InvalidInput =>
            {
                format!("a file holds invalid offsets ({source})")
            }
            // The directory exists (it was checked): one of the engine's files is not.
            Error::Io(source) | Error::Storage(LsmError::Io(source))
                if source.kind() == io::ErrorKind::NotFound =>
            {
                format!("a file of the store is missing ({source})")
            }
            Error::Io(source) | Error::Storage(LsmError::Io(source)) => {
                return OpenError::io(path, source);
            }
            // The engine locks its directory while a process has it open.
            Error::Locked => {
                return OpenError::Io {
                    path: path.to_owned(),
                    source: io::Error::new(
                        io::ErrorKind::ResourceBusy,
                        "another process has the store open",
                    ),
                };
            }
            // The store's files are another major's of the store engine: riverbed's
            // stores were fjall 2's before, and fjall 3 reads none of them.
            Error::InvalidVersion(Some(version)) => {
                return OpenError::Format {
                    path: path.to_owned(),
                    found: format!("fjall {version}"),
                    expected: "fjall 3".to_owned(),
                };
            }
            Error::InvalidVersion(None) => "the store engine's version file is damaged".to_owned(),
            Error::JournalRecovery(JournalRecoveryError::ChecksumMismatch) => {
                "the journal is damaged: a batch's checksum does not match its content".to_owned()
            }
            Error::JournalRecovery(JournalRecoveryError::InsufficientLength) => {
                "the journal is damaged: a batch has fewer items than its header says".to_owned()
            }
            Error::JournalRecovery(JournalRecoveryError::TooManyItems) => {
                "the journal is damaged: a batch has more items than its header says".to_owned()
            }
            Error::JournalRecovery(JournalRecoveryError::InvalidFileName) => {
                "a journal file has a name the store engine does not recognise".to_owned()
            }
            Error::Storage(LsmError::ChecksumMismatch { got, expected }) => format!(
                "a data block's checksum does not match (read {got:?}, expected {expected:?})"
            ),
            Error::Unrecoverable | Error::Storage(LsmError::Unrecoverable) => {
                "some data files could not be recovered".to_owned()
            }
            Error::Decompress(kind) | Error::Storage(LsmError::Decompress(kind)) => {
                format!("a block does not decompress ({kind:?})")
            }
            Error::InvalidTrailer | Error::Storage(LsmError::InvalidTrailer) => {
                "a block's trailer is invalid".to_owned()
            }
            Error::InvalidTag((what, tag)) | Error::Storage(LsmError::InvalidTag((what, tag))) => {
                format!("a file holds an invalid tag ({what}: {tag})")
            }
            Error::Storage(LsmError::InvalidHeader(what)) => {
                format!("a data file's header is invalid ({what})")
            }
            Error::Storage(LsmError::InvalidVersion(version)) => {
                format!("a data file says it is in version {version}, which fjall 3 does not read")
            }
            other => format!("the store engine reported: {other:?}"),
        };
        OpenError::corrupted(path, detail)
    }
}
