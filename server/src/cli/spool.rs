//! The spool: callbacks `send` has not delivered yet, one file each.
//!
//! Every file appears whole or not at all: it is written to a temporary
//! file in the same folder, fsynced, renamed over its name, and the folder
//! is fsynced. A process killed at any instant leaves at most a temporary
//! file (`.<uuid>.tmp`), which is ignored and removed later. Whoever works
//! on a file holds an exclusive lock on it (`File::try_lock`, released by
//! the kernel when the process dies), so two flushes never send the same
//! callback at once. The secret is never stored.
//!
//! **Only what this spool wrote is ever sent.** A flush signs each entry
//! with the caller's secret and POSTs it to the URL the entry names, so an
//! entry planted by someone else would have a signed callback sent where
//! they like. Before an entry is read (to send or to list):
//! - the folder must belong to this user and be writable by nobody else
//!   (it is created 0700);
//! - the entry must be a regular file, not a symbolic link (opened with
//!   `O_NOFOLLOW`), owned by this user, with no permission for group or
//!   others (it is written 0600);
//! - its first line must carry an HMAC-SHA256 of the rest, keyed by the
//!   spool's own key: [`KEY_FILE`], 32 random bytes created 0600 beside the
//!   entries and held to the same checks.
//!
//! The key is the spool's own rather than derived from the webhook secret:
//! entries stay valid when the secret rotates (or `--flush` is given
//! another), `--list` can check them without a secret, and the key never
//! leaves the folder. An entry that fails a check is refused: never sent,
//! never moved, and reported with the reason.
//!
//! Entries of the first format (plain JSON, before the check) carry no
//! HMAC, so they are refused like any other unchecked file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use hmac::{Hmac, Mac};
use inbox_core::delivery::derive_delivery_id;
use inbox_core::fields::extract_fields;
use inbox_server::config::SendScheme;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use time::OffsetDateTime;
use uuid::Uuid;

use super::output::terminal_safe;

/// Callbacks refused for good by the receiver (a 4xx other than 408/429).
pub const FAILED_DIR: &str = "failed";
/// The spool's HMAC key (hex), created with the spool.
pub const KEY_FILE: &str = ".spool-key";
const ENTRY_SUFFIX: &str = ".json";
const TEMP_SUFFIX: &str = ".tmp";
/// The format of a spool file.
const VERSION: u32 = 2;
/// The first line of an entry, before the hex HMAC of the rest.
const CHECK_PREFIX: &str = "callback-inbox-spool 2 hmac-sha256=";
/// Put before the entry's bytes in its HMAC, so the key signs nothing else.
const MAC_CONTEXT: &[u8] = b"callback-inbox spool entry\n";
const KEY_BYTES: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// Why a spool file is not sent: it was not written by this spool.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("it is a symbolic link")]
    Symlink,
    #[error("it is not a regular file")]
    NotAFile,
    #[error("it belongs to another user (uid {owner})")]
    OtherOwner { owner: u32 },
    #[error("group or others have access to it (mode {mode:04o}; the spool writes 0600)")]
    OpenMode { mode: u32 },
    #[error(
        "it carries no check of this spool (not written by it, or by a version before the check)"
    )]
    Unchecked,
    #[error("its check does not match this spool's key (written elsewhere, or changed since)")]
    BadCheck,
    #[error("the spool has no key ({KEY_FILE}), so nothing in it was written by this spool")]
    NoKey,
}

/// What can go wrong with the spool.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The folder could be written by someone else: nothing in it is trusted.
    #[error(
        "the spool folder {path} {reason}, so its files cannot be trusted; nothing in it is sent or written (make it yours with mode 700)"
    )]
    UnsafeFolder { path: String, reason: String },
    #[error("the spool's key {path} cannot be used: {reason}")]
    BadKey { path: String, reason: String },
    /// Not written by this spool: not sent, left where it is.
    #[error("not written by this spool: {0}")]
    Refused(#[from] Refusal),
    /// Written by this spool (its check matches) but not readable as an
    /// entry by this version.
    #[error("not a spool entry this version reads: {0}")]
    Unreadable(String),
}

/// One spooled callback: everything needed to send it again but the secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub version: u32,
    /// Also the file name: UUIDv7, so names sort in the order of sending.
    pub id: Uuid,
    pub url: String,
    pub scheme: SendScheme,
    /// Standard Webhooks: the `webhook-id` of every attempt, so the receiver
    /// recognises each retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_id: Option<String>,
    /// The body exactly as given (a JSON object).
    pub body: String,
    /// Attempts made so far.
    pub attempts: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// `--flush --due` sends it from then on.
    #[serde(with = "time::serde::rfc3339")]
    pub next_attempt_at: OffsetDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl Entry {
    pub fn new(url: &str, scheme: SendScheme, body: String, now: OffsetDateTime) -> Self {
        let id = Uuid::now_v7();
        Self {
            version: VERSION,
            id,
            url: url.to_owned(),
            scheme,
            webhook_id: (scheme == SendScheme::Standard).then(|| format!("msg_{}", id.simple())),
            body,
            attempts: 0,
            created_at: now,
            next_attempt_at: now,
            last_status: None,
            last_error: None,
        }
    }

    pub fn file_name(&self) -> String {
        format!("{}{ENTRY_SUFFIX}", self.id)
    }

    /// The body's `job_id`, event and workflow, for people.
    pub fn fields(&self) -> inbox_core::fields::CallbackFields {
        let payload =
            serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&self.body)
                .unwrap_or_default();
        extract_fields(&payload, None, &self.body)
    }

    /// `send --hook`'s `Idempotency-Key`: this entry's own id, fixed for
    /// every attempt, so a retry is one delivery. Not the body's hash: a
    /// session sends byte-identical events (each `Stop` of a session looks
    /// the same), and each is a callback of its own.
    pub fn idempotency_key(&self) -> String {
        format!("hook-{}", self.id)
    }

    /// The id under which the inbox stores it: the same for every attempt,
    /// which is why a repeated delivery is harmless.
    pub fn delivery_id(&self) -> String {
        if self.scheme == SendScheme::Bearer {
            return self.idempotency_key();
        }
        let payload =
            serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&self.body)
                .unwrap_or_default();
        derive_delivery_id(
            self.webhook_id.as_deref(),
            &payload,
            None,
            self.body.as_bytes(),
        )
        .into_string()
    }

    /// `job_8f2c workflow.completed`, or the delivery id; safe to print
    /// (it comes from the payload).
    pub fn label(&self) -> String {
        if self.scheme == SendScheme::Bearer {
            return terminal_safe(&self.hook_label());
        }
        let fields = self.fields();
        let label = match (fields.external_job_id, fields.event_type) {
            (Some(job), Some(event)) => format!("{job} {event}"),
            (Some(job), None) => job,
            (None, Some(event)) => event,
            (None, None) => self.delivery_id(),
        };
        terminal_safe(&label)
    }

    /// A Claude Code event as people know it: `Stop sess-42`.
    fn hook_label(&self) -> String {
        let payload =
            serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&self.body)
                .unwrap_or_default();
        let text = |key: &str| payload.get(key).and_then(|value| value.as_str());
        match (text("hook_event_name"), text("session_id")) {
            (Some(event), Some(session)) => format!("{event} {session}"),
            (Some(event), None) => event.to_owned(),
            (None, Some(session)) => session.to_owned(),
            (None, None) => self.idempotency_key(),
        }
    }
}

/// The spool's HMAC key. No `Debug`: it must not reach a message.
struct SpoolKey([u8; KEY_BYTES]);

impl SpoolKey {
    fn mac(&self, content: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(MAC_CONTEXT);
        mac.update(content);
        mac
    }
}

/// A spool folder.
pub struct Spool {
    dir: PathBuf,
    /// Read (or created) once per command.
    key: OnceLock<SpoolKey>,
}

/// A spool file whose lock this process holds: nobody else sends it until
/// the claim is dropped.
pub struct Claim {
    pub path: PathBuf,
    pub entry: Entry,
    /// The open file of the version at `path`, locked.
    _lock: File,
}

impl Spool {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            key: OnceLock::new(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn failed_dir(&self) -> PathBuf {
        self.dir.join(FAILED_DIR)
    }

    /// Writes a new entry and returns it claimed. Creates the folder (0700)
    /// and its key when missing.
    pub fn add(&self, entry: &Entry) -> Result<Claim, SpoolError> {
        create_private_dir(&self.dir)?;
        check_folder(&self.dir)?;
        let key = self.key_or_create()?;
        let path = self.dir.join(entry.file_name());
        let lock = write_atomic(&self.dir, &path, &encode(entry, key)?)?;
        Ok(Claim {
            path,
            entry: entry.clone(),
            _lock: lock,
        })
    }

    /// Checks the folder (when it exists) before anything in it is read:
    /// it must be this user's, writable by nobody else.
    pub fn check(&self) -> Result<(), SpoolError> {
        match fs::metadata(&self.dir) {
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(err.into()),
            Ok(_) => check_folder(&self.dir),
        }
    }

    /// The waiting entries' files, oldest first (symbolic links included,
    /// so that they are reported, not silently skipped).
    pub fn paths(&self) -> io::Result<Vec<PathBuf>> {
        entry_paths(&self.dir)
    }

    /// The failed entries' files, oldest first.
    pub fn failed_paths(&self) -> io::Result<Vec<PathBuf>> {
        entry_paths(&self.failed_dir())
    }

    /// Reads and checks an entry without claiming it (for `--list`).
    pub fn read(&self, path: &Path) -> Result<Entry, SpoolError> {
        let mut file = open_private(path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        self.decode(&bytes)
    }

    /// Claims the entry at `path`: `None` when another process holds it, or
    /// it is gone or was replaced since it was listed. An entry this spool
    /// did not write is refused ([`SpoolError::Refused`]) and left alone.
    pub fn claim(&self, path: &Path) -> Result<Option<Claim>, SpoolError> {
        let mut file = match open_private(path) {
            Ok(file) => file,
            Err(SpoolError::Io(err)) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err),
        };
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Ok(None),
            Err(fs::TryLockError::Error(err)) => return Err(err.into()),
        }
        // Between opening and locking, its sender may have finished with it
        // (removed, or replaced it with a new version): then it is not ours.
        match fs::symlink_metadata(path) {
            Ok(now) if same_file(&file.metadata()?, &now) => {}
            Ok(_) => return Ok(None),
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err.into()),
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(Some(Claim {
            path: path.to_owned(),
            entry: self.decode(&bytes)?,
            _lock: file,
        }))
    }

    /// Moves a file this spool wrote but cannot read (from a newer
    /// version) out of the way, into `failed/`.
    pub fn set_aside(&self, path: &Path) -> io::Result<PathBuf> {
        let failed = self.failed_dir();
        create_private_dir(&failed)?;
        let target = failed.join(path.file_name().unwrap_or_default());
        fs::rename(path, &target)?;
        sync_dir(&failed)?;
        sync_dir(&self.dir)?;
        Ok(target)
    }

    /// Removes the temporary files of writers that were killed (a writer
    /// holds the lock of its temporary file until it is renamed). Returns
    /// how many were removed.
    pub fn clean_temp_files(&self) -> usize {
        let mut removed = 0;
        for dir in [self.dir.clone(), self.failed_dir()] {
            let Ok(listing) = fs::read_dir(&dir) else {
                continue;
            };
            for item in listing.flatten() {
                let name = item.file_name();
                let name = name.to_string_lossy();
                if !(name.starts_with('.') && name.ends_with(TEMP_SUFFIX)) {
                    continue;
                }
                let Ok(file) = open_no_follow(&item.path()) else {
                    continue;
                };
                if file.try_lock().is_ok() && fs::remove_file(item.path()).is_ok() {
                    removed += 1;
                }
            }
            if removed > 0 {
                let _ = sync_dir(&dir);
            }
        }
        removed
    }

    /// The key, when the spool has one.
    fn key(&self) -> Result<Option<&SpoolKey>, SpoolError> {
        if let Some(key) = self.key.get() {
            return Ok(Some(key));
        }
        let Some(key) = read_key(&self.dir.join(KEY_FILE))? else {
            return Ok(None);
        };
        Ok(Some(self.key.get_or_init(|| key)))
    }

    /// The key, created when the spool has none: written whole to a
    /// temporary file, then hard-linked to its name, which fails if another
    /// writer got there first (then its key is the one).
    fn key_or_create(&self) -> Result<&SpoolKey, SpoolError> {
        if let Some(key) = self.key()? {
            return Ok(key);
        }
        let path = self.dir.join(KEY_FILE);
        let mut key = [0u8; KEY_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut key);
        let text = format!("{}\n", hex::encode(key));
        for _ in 0..5 {
            let temp = self
                .dir
                .join(format!(".{}{TEMP_SUFFIX}", Uuid::now_v7().simple()));
            let mut file = create_private_file(&temp)?;
            // Locked at once: a cleaner removes only temporary files it can lock.
            if file.try_lock().is_err() {
                let _ = fs::remove_file(&temp);
                continue;
            }
            if let Err(err) = file
                .write_all(text.as_bytes())
                .and_then(|()| file.sync_all())
            {
                let _ = fs::remove_file(&temp);
                return Err(err.into());
            }
            let linked = fs::hard_link(&temp, &path);
            let _ = fs::remove_file(&temp);
            match linked {
                Ok(()) => {
                    sync_dir(&self.dir)?;
                    return Ok(self.key.get_or_init(|| SpoolKey(key)));
                }
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                    return self.key()?.ok_or_else(|| SpoolError::BadKey {
                        path: path.display().to_string(),
                        reason: "it vanished while it was being created".to_owned(),
                    });
                }
                // A cleaner took the file between its creation and its lock.
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(err) => return Err(err.into()),
            }
        }
        Err(io::Error::other(format!("could not write {}", path.display())).into())
    }

    /// Checks an entry's HMAC, then reads it.
    fn decode(&self, bytes: &[u8]) -> Result<Entry, SpoolError> {
        let (first_line, content) = match bytes.iter().position(|&byte| byte == b'\n') {
            Some(at) => (&bytes[..at], &bytes[at + 1..]),
            None => return Err(Refusal::Unchecked.into()),
        };
        let check = std::str::from_utf8(first_line)
            .ok()
            .and_then(|line| line.strip_prefix(CHECK_PREFIX))
            .ok_or(Refusal::Unchecked)?;
        let check = hex::decode(check.trim_end()).map_err(|_| Refusal::BadCheck)?;
        let key = self.key()?.ok_or(Refusal::NoKey)?;
        key.mac(content)
            .verify_slice(&check)
            .map_err(|_| Refusal::BadCheck)?;
        let entry: Entry = serde_json::from_slice(content)
            .map_err(|err| SpoolError::Unreadable(err.to_string()))?;
        if entry.version != VERSION {
            return Err(SpoolError::Unreadable(format!(
                "spool format {} (this version reads {VERSION})",
                entry.version
            )));
        }
        Ok(entry)
    }
}

impl Claim {
    /// Replaces the file with `entry` (atomically), keeping the claim.
    pub fn update(&mut self, spool: &Spool, entry: Entry) -> Result<(), SpoolError> {
        let key = spool.key_or_create()?;
        let lock = write_atomic(&spool.dir, &self.path, &encode(&entry, key)?)?;
        // The new version is locked before the old one is released.
        self._lock = lock;
        self.entry = entry;
        Ok(())
    }

    /// Removes the file (after its delivery).
    pub fn remove(self, spool: &Spool) -> io::Result<()> {
        fs::remove_file(&self.path)?;
        sync_dir(&spool.dir)
    }

    /// Moves the entry, as it is now, to `failed/`; returns its new path.
    pub fn fail(self, spool: &Spool) -> Result<PathBuf, SpoolError> {
        let failed = spool.failed_dir();
        create_private_dir(&failed)?;
        let key = spool.key_or_create()?;
        let target = failed.join(self.entry.file_name());
        // Written whole into failed/ first: a kill in between leaves it in
        // both places, never in neither.
        drop(write_atomic(&failed, &target, &encode(&self.entry, key)?)?);
        fs::remove_file(&self.path)?;
        sync_dir(&spool.dir)?;
        Ok(target)
    }
}

/// The file of an entry: its check line, then its JSON.
fn encode(entry: &Entry, key: &SpoolKey) -> io::Result<Vec<u8>> {
    let mut content = serde_json::to_vec_pretty(entry).map_err(io::Error::other)?;
    content.push(b'\n');
    let check = hex::encode(key.mac(&content).finalize().into_bytes());
    let mut bytes = format!("{CHECK_PREFIX}{check}\n").into_bytes();
    bytes.extend_from_slice(&content);
    Ok(bytes)
}

/// Reads the key file, held to the entries' checks; `None` when missing.
fn read_key(path: &Path) -> Result<Option<SpoolKey>, SpoolError> {
    let bad = |reason: String| SpoolError::BadKey {
        path: path.display().to_string(),
        reason,
    };
    let mut file = match open_private(path) {
        Ok(file) => file,
        Err(SpoolError::Io(err)) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(SpoolError::Refused(refusal)) => return Err(bad(refusal.to_string())),
        Err(err) => return Err(err),
    };
    let mut text = String::new();
    io::Read::by_ref(&mut file)
        .take(256)
        .read_to_string(&mut text)
        .map_err(|err| bad(err.to_string()))?;
    let bytes = hex::decode(text.trim()).map_err(|_| bad("it is not a hex key".to_owned()))?;
    let key: [u8; KEY_BYTES] = bytes
        .try_into()
        .map_err(|_| bad(format!("it is not {KEY_BYTES} bytes")))?;
    Ok(Some(SpoolKey(key)))
}

fn entry_paths(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let listing = match fs::read_dir(dir) {
        Ok(listing) => listing,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err),
    };
    let mut paths = Vec::new();
    for item in listing {
        let item = item?;
        let name = item.file_name();
        let name = name.to_string_lossy();
        let kind = item.file_type()?;
        if name.ends_with(ENTRY_SUFFIX)
            && !name.starts_with('.')
            && (kind.is_file() || kind.is_symlink())
        {
            paths.push(item.path());
        }
    }
    paths.sort();
    Ok(paths)
}

/// Writes `bytes` to `target` through a locked temporary file in `dir`;
/// returns the file, still locked, now at `target`.
fn write_atomic(dir: &Path, target: &Path, bytes: &[u8]) -> io::Result<File> {
    for _ in 0..5 {
        let temp = dir.join(format!(".{}{TEMP_SUFFIX}", Uuid::now_v7().simple()));
        let mut file = create_private_file(&temp)?;
        // Locked at once: a cleaner removes only temporary files it can lock.
        if file.try_lock().is_err() {
            let _ = fs::remove_file(&temp);
            continue;
        }
        if let Err(err) = file.write_all(bytes).and_then(|()| file.sync_all()) {
            let _ = fs::remove_file(&temp);
            return Err(err);
        }
        match fs::rename(&temp, target) {
            Ok(()) => {
                sync_dir(dir)?;
                return Ok(file);
            }
            // A cleaner took the file between its creation and its lock.
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            Err(err) => {
                let _ = fs::remove_file(&temp);
                return Err(err);
            }
        }
    }
    Err(io::Error::other(format!(
        "could not write {}",
        target.display()
    )))
}

/// Makes a rename or removal in `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn create_private_file(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// Creates the folder (owner-only: it holds payloads) when missing.
fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Opens a file for reading without following a symbolic link (and
/// without waiting on a FIFO).
fn open_no_follow(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    options.open(path)
}

/// Opens a spool file (an entry or the key) and checks that this user
/// wrote it: a regular file, not a symbolic link, this user's, with no
/// permission for group or others. The checks are made on the open file,
/// so it cannot be swapped in between.
fn open_private(path: &Path) -> Result<File, SpoolError> {
    let file = match open_no_follow(path) {
        Ok(file) => file,
        #[cfg(unix)]
        Err(err) if err.raw_os_error() == Some(libc::ELOOP) => {
            return Err(Refusal::Symlink.into());
        }
        Err(err) => return Err(err.into()),
    };
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(Refusal::NotAFile.into());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if metadata.uid() != current_uid() {
            return Err(Refusal::OtherOwner {
                owner: metadata.uid(),
            }
            .into());
        }
        let mode = metadata.mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(Refusal::OpenMode { mode }.into());
        }
    }
    Ok(file)
}

/// The folder must be this user's, and writable by nobody else (who could
/// otherwise plant, swap or remove entries).
fn check_folder(dir: &Path) -> Result<(), SpoolError> {
    let metadata = fs::metadata(dir)?;
    let unsafe_folder = |reason: String| SpoolError::UnsafeFolder {
        path: terminal_safe(&dir.display().to_string()),
        reason,
    };
    if !metadata.is_dir() {
        return Err(unsafe_folder("is not a folder".to_owned()));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if metadata.uid() != current_uid() {
            return Err(unsafe_folder(format!(
                "belongs to another user (uid {})",
                metadata.uid()
            )));
        }
        let mode = metadata.mode() & 0o7777;
        if mode & 0o022 != 0 {
            return Err(unsafe_folder(format!(
                "can be written by group or others (mode {mode:04o})"
            )));
        }
    }
    Ok(())
}

#[cfg(unix)]
fn current_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

#[cfg(unix)]
fn same_file(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_file(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    a.len() == b.len() && a.modified().ok() == b.modified().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(body: &str) -> Entry {
        Entry::new(
            "http://127.0.0.1:9/hook",
            SendScheme::Standard,
            body.to_owned(),
            OffsetDateTime::now_utc(),
        )
    }

    #[test]
    fn an_entry_is_written_whole_and_read_back_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path().join("spool"));
        let body = "{\"job_id\": \"j1\",\n \"event\": \"workflow.completed\", \"n\": 1.50}";
        let written = entry(body);
        let claim = spool.add(&written).unwrap();
        drop(claim);
        let paths = spool.paths().unwrap();
        assert_eq!(paths.len(), 1);
        let read = spool.read(&paths[0]).unwrap();
        assert_eq!(read, written);
        assert_eq!(read.body, body);
        assert!(read.webhook_id.unwrap().starts_with("msg_"));
        assert_eq!(written.label(), "j1 workflow.completed");
        assert_eq!(
            written.delivery_id(),
            format!("wh:{}", written.webhook_id.as_deref().unwrap())
        );
        // Nothing else was left behind (but the key).
        let mut names: Vec<String> = fs::read_dir(spool.dir())
            .unwrap()
            .map(|item| item.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, vec![KEY_FILE.to_owned(), written.file_name()]);
    }

    #[test]
    fn a_claimed_entry_cannot_be_claimed_twice() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path());
        let claim = spool.add(&entry("{}")).unwrap();
        let path = claim.path.clone();
        assert!(spool.claim(&path).unwrap().is_none(), "claimed twice");
        drop(claim);
        let mut again = spool.claim(&path).unwrap().expect("free again");
        assert!(spool.claim(&path).unwrap().is_none());
        // An update keeps the claim on the new version.
        let mut updated = again.entry.clone();
        updated.attempts = 3;
        again.update(&spool, updated).unwrap();
        assert!(spool.claim(&path).unwrap().is_none());
        again.remove(&spool).unwrap();
        assert!(spool.paths().unwrap().is_empty());
        assert!(spool.claim(&path).unwrap().is_none());
    }

    #[test]
    fn temporary_files_of_dead_writers_are_ignored_and_cleaned() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path());
        drop(spool.add(&entry("{}")).unwrap());
        // A writer killed halfway: a temporary file nobody holds.
        fs::write(
            dir.path().join(".0193deadbeef.tmp"),
            b"{\"version\": 1, \"id\"",
        )
        .unwrap();
        // A writer still at work: its temporary file is locked.
        let busy_path = dir.path().join(".0193busy.tmp");
        let busy = File::create(&busy_path).unwrap();
        busy.try_lock().unwrap();
        assert_eq!(spool.paths().unwrap().len(), 1);
        assert_eq!(spool.clean_temp_files(), 1);
        assert!(busy_path.exists(), "a live writer's file was removed");
        drop(busy);
        assert_eq!(spool.clean_temp_files(), 1);
    }

    #[test]
    fn a_failed_entry_moves_to_the_failed_folder() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path());
        let mut claim = spool.add(&entry("{}")).unwrap();
        claim.entry.last_status = Some(400);
        let moved = claim.fail(&spool).unwrap();
        assert!(spool.paths().unwrap().is_empty());
        assert_eq!(spool.failed_paths().unwrap(), vec![moved.clone()]);
        assert_eq!(spool.read(&moved).unwrap().last_status, Some(400));
    }

    fn refusal(result: Result<Option<Claim>, SpoolError>) -> Refusal {
        match result {
            Err(SpoolError::Refused(refusal)) => refusal,
            Err(other) => panic!("not refused: {other}"),
            Ok(claim) => panic!("claimed: {:?}", claim.map(|c| c.path)),
        }
    }

    #[test]
    fn the_folder_and_key_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path().join("spool"));
        drop(spool.add(&entry("{}")).unwrap());
        let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(spool.dir()), 0o700);
        assert_eq!(mode(&spool.dir().join(KEY_FILE)), 0o600);
        assert_eq!(mode(&spool.paths().unwrap()[0]), 0o600);
    }

    #[test]
    fn only_entries_this_spool_wrote_are_read() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path());
        let claim = spool.add(&entry("{\"job_id\": \"mine\"}")).unwrap();
        let mine = claim.path.clone();
        drop(claim);
        let text = fs::read_to_string(&mine).unwrap();
        let plant = |name: &str, text: &str| {
            let path = dir.path().join(name);
            fs::write(&path, text).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
            path
        };

        // The first format: plain JSON, no check.
        let content = text.split_once('\n').unwrap().1;
        let unchecked = plant("a.json", content);
        assert!(matches!(
            refusal(spool.claim(&unchecked)),
            Refusal::Unchecked
        ));
        // Changed after it was written: another URL.
        let changed = plant("b.json", &text.replace("127.0.0.1:9", "evil.example"));
        assert!(matches!(refusal(spool.claim(&changed)), Refusal::BadCheck));
        // Written by another spool (another key).
        let other = tempfile::tempdir().unwrap();
        let other_spool = Spool::new(other.path());
        let theirs = other_spool.add(&entry("{}")).unwrap().path.clone();
        let copied = plant("c.json", &fs::read_to_string(theirs).unwrap());
        assert!(matches!(refusal(spool.claim(&copied)), Refusal::BadCheck));
        // A true copy, but readable by others.
        let open = plant("d.json", &text);
        fs::set_permissions(&open, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            refusal(spool.claim(&open)),
            Refusal::OpenMode { mode: 0o644 }
        ));
        // A symbolic link to a true entry.
        let link = dir.path().join("e.json");
        std::os::unix::fs::symlink(&mine, &link).unwrap();
        assert!(matches!(refusal(spool.claim(&link)), Refusal::Symlink));
        assert!(spool.paths().unwrap().contains(&link), "a link was hidden");
        // Every refused file is left where it was; the real one is fine.
        for path in [&unchecked, &changed, &copied, &open, &link] {
            assert!(fs::symlink_metadata(path).is_ok());
        }
        assert!(spool.claim(&mine).unwrap().is_some());

        // Without its key, nothing in the spool is trusted.
        fs::remove_file(dir.path().join(KEY_FILE)).unwrap();
        let keyless = Spool::new(dir.path());
        assert!(matches!(refusal(keyless.claim(&mine)), Refusal::NoKey));
    }

    #[test]
    fn a_folder_others_can_write_to_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path().join("spool"));
        assert!(spool.check().is_ok(), "a missing spool is fine");
        drop(spool.add(&entry("{}")).unwrap());
        fs::set_permissions(spool.dir(), fs::Permissions::from_mode(0o777)).unwrap();
        assert!(matches!(
            spool.check(),
            Err(SpoolError::UnsafeFolder { .. })
        ));
        assert!(matches!(
            spool.add(&entry("{}")),
            Err(SpoolError::UnsafeFolder { .. })
        ));
    }

    #[test]
    fn concurrent_writers_share_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool");
        let writers: Vec<_> = (0..8)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let spool = Spool::new(path);
                    spool.add(&entry("{}")).unwrap().path.clone()
                })
            })
            .collect();
        let written: Vec<PathBuf> = writers.into_iter().map(|w| w.join().unwrap()).collect();
        let reader = Spool::new(&path);
        for path in written {
            assert!(reader.read(&path).is_ok(), "{}", path.display());
        }
    }
}
