//! The SQLite files hold the webhook secret, live session ids, password
//! hashes and every payload: only the server's own user may read them.
//!
//! A missing folder is created `0700` and a missing database file `0600`
//! before SQLite opens it (SQLite gives its `-wal` and `-shm` files the mode
//! of the database file). Existing files readable by others are tightened,
//! and the log says so.

use std::path::{Path, PathBuf};

use crate::StartupError;

/// The database file of a `sqlite:` URL, or `None` for other databases and
/// in-memory ones.
pub fn sqlite_path(database_url: &str) -> Option<PathBuf> {
    let rest = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    Some(PathBuf::from(path))
}

/// Before SQLite opens the database: creates the folder and the file with
/// owner-only modes when missing, and tightens existing files.
pub fn protect_sqlite_files(database_url: &str) -> Result<(), StartupError> {
    let Some(path) = sqlite_path(database_url) else {
        return Ok(());
    };
    create_private(&path).map_err(|err| {
        StartupError::Config(format!(
            "cannot create the database file {}: {err}",
            path.display()
        ))
    })?;
    tighten_files(&path);
    Ok(())
}

/// After SQLite opened the database: tightens the `-wal` and `-shm` files
/// it may have created from an older, wider database file.
pub fn tighten_sqlite_files(database_url: &str) {
    if let Some(path) = sqlite_path(database_url) {
        tighten_files(&path);
    }
}

fn tighten_files(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        tighten(Path::new(&file));
    }
}

#[cfg(unix)]
fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    if let Some(folder) = path.parent().filter(|f| !f.as_os_str().is_empty()) {
        if !folder.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(folder)?;
        } else if folder.metadata()?.permissions().mode() & 0o007 != 0 {
            tracing::warn!(
                folder = %folder.display(),
                "the database folder is open to other users; consider chmod 700"
            );
        }
    }
    if !path.exists() {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn create_private(path: &Path) -> std::io::Result<()> {
    if let Some(folder) = path.parent().filter(|f| !f.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder)?;
    }
    Ok(())
}

#[cfg(unix)]
fn tighten(file: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(metadata) = file.metadata() else {
        return;
    };
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 == 0 {
        return;
    }
    match std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)) {
        Ok(()) => tracing::warn!(
            file = %file.display(),
            was = format!("{mode:o}"),
            "database file was readable by other users; its mode is now 600"
        ),
        Err(err) => tracing::error!(
            file = %file.display(),
            error = %err,
            "database file is readable by other users and could not be tightened"
        ),
    }
}

#[cfg(not(unix))]
fn tighten(_file: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_their_file() {
        assert_eq!(
            sqlite_path("sqlite://data/inbox.db?mode=rwc"),
            Some(PathBuf::from("data/inbox.db"))
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://localhost/inbox"), None);
    }
}
