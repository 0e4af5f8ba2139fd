//! The spool: callbacks `send` has not delivered yet, one JSON file each.
//!
//! Every file appears whole or not at all: it is written to a temporary
//! file in the same folder, fsynced, renamed over its name, and the folder
//! is fsynced. A process killed at any instant leaves at most a temporary
//! file (`.<uuid>.tmp`), which is ignored and removed later. Whoever works
//! on a file holds an exclusive lock on it (`File::try_lock`, released by
//! the kernel when the process dies), so two flushes never send the same
//! callback at once. The secret is never stored.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use inbox_core::delivery::derive_delivery_id;
use inbox_core::fields::extract_fields;
use inbox_server::config::SendScheme;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// Callbacks refused for good by the receiver (a 4xx other than 408/429).
pub const FAILED_DIR: &str = "failed";
const ENTRY_SUFFIX: &str = ".json";
const TEMP_SUFFIX: &str = ".tmp";
/// The format of a spool file.
const VERSION: u32 = 1;

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

    /// The id under which the inbox stores it: the same for every attempt,
    /// which is why a repeated delivery is harmless.
    pub fn delivery_id(&self) -> String {
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

    /// `job_8f2c workflow.completed`, or the delivery id.
    pub fn label(&self) -> String {
        let fields = self.fields();
        match (fields.external_job_id, fields.event_type) {
            (Some(job), Some(event)) => format!("{job} {event}"),
            (Some(job), None) => job,
            (None, Some(event)) => event,
            (None, None) => self.delivery_id(),
        }
    }
}

/// A spool folder.
pub struct Spool {
    dir: PathBuf,
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
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn failed_dir(&self) -> PathBuf {
        self.dir.join(FAILED_DIR)
    }

    /// Writes a new entry and returns it claimed.
    pub fn add(&self, entry: &Entry) -> io::Result<Claim> {
        create_private_dir(&self.dir)?;
        let path = self.dir.join(entry.file_name());
        let lock = write_atomic(&self.dir, &path, &encode(entry)?)?;
        Ok(Claim {
            path,
            entry: entry.clone(),
            _lock: lock,
        })
    }

    /// The waiting entries' files, oldest first.
    pub fn paths(&self) -> io::Result<Vec<PathBuf>> {
        entry_paths(&self.dir)
    }

    /// The failed entries' files, oldest first.
    pub fn failed_paths(&self) -> io::Result<Vec<PathBuf>> {
        entry_paths(&self.failed_dir())
    }

    /// Reads an entry without claiming it (for `--list`).
    pub fn read(path: &Path) -> io::Result<Entry> {
        decode(&fs::read(path)?)
    }

    /// Claims the entry at `path`: `None` when another process holds it, or
    /// it is gone or was replaced since it was listed.
    pub fn claim(&self, path: &Path) -> io::Result<Option<Claim>> {
        let mut file = match File::open(path) {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err),
        };
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Ok(None),
            Err(fs::TryLockError::Error(err)) => return Err(err),
        }
        // Between opening and locking, its sender may have finished with it
        // (removed, or replaced it with a new version): then it is not ours.
        match fs::metadata(path) {
            Ok(now) if same_file(&file.metadata()?, &now) => {}
            Ok(_) => return Ok(None),
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err),
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(Some(Claim {
            path: path.to_owned(),
            entry: decode(&bytes)?,
            _lock: file,
        }))
    }

    /// Moves a file that is not a spool entry (put there by hand, or from a
    /// newer version) out of the way, into `failed/`.
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
                let Ok(file) = File::open(item.path()) else {
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
}

impl Claim {
    /// Replaces the file with `entry` (atomically), keeping the claim.
    pub fn update(&mut self, spool: &Spool, entry: Entry) -> io::Result<()> {
        let lock = write_atomic(&spool.dir, &self.path, &encode(&entry)?)?;
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
    pub fn fail(self, spool: &Spool) -> io::Result<PathBuf> {
        let failed = spool.failed_dir();
        create_private_dir(&failed)?;
        let target = failed.join(self.entry.file_name());
        // Written whole into failed/ first: a kill in between leaves it in
        // both places, never in neither.
        drop(write_atomic(&failed, &target, &encode(&self.entry)?)?);
        fs::remove_file(&self.path)?;
        sync_dir(&spool.dir)?;
        Ok(target)
    }
}

fn encode(entry: &Entry) -> io::Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(entry).map_err(io::Error::other)?;
    bytes.push(b'\n');
    Ok(bytes)
}

fn decode(bytes: &[u8]) -> io::Result<Entry> {
    let entry: Entry = serde_json::from_slice(bytes)
        .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err))?;
    if entry.version != VERSION {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "spool format {} (this version reads {VERSION})",
                entry.version
            ),
        ));
    }
    Ok(entry)
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
        if name.ends_with(ENTRY_SUFFIX) && !name.starts_with('.') && item.file_type()?.is_file() {
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
        let read = Spool::read(&paths[0]).unwrap();
        assert_eq!(read, written);
        assert_eq!(read.body, body);
        assert!(read.webhook_id.unwrap().starts_with("msg_"));
        assert_eq!(written.label(), "j1 workflow.completed");
        assert_eq!(
            written.delivery_id(),
            format!("wh:{}", written.webhook_id.as_deref().unwrap())
        );
        // Nothing else was left behind.
        assert_eq!(fs::read_dir(spool.dir()).unwrap().count(), 1);
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
        assert_eq!(Spool::read(&moved).unwrap().last_status, Some(400));
    }
}
