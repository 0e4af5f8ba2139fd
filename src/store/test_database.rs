//! Fresh, empty databases for the workspace's tests, on the backend a test
//! run asks for: `INBOX_TEST_BACKEND=sqlite` (the default) gives a SQLite
//! file in a new temporary folder; `INBOX_TEST_BACKEND=postgres` gives a
//! new database on the server at `INBOX_TEST_POSTGRES_URL` (`./x test`
//! starts a throwaway server and sets both). A PostgreSQL run without a
//! server fails; it never falls back to SQLite.

use std::path::PathBuf;

use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// Which database the tests run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestBackend {
    Sqlite,
    Postgres,
}

impl TestBackend {
    pub fn from_env() -> Self {
        match std::env::var("INBOX_TEST_BACKEND").as_deref() {
            Err(_) | Ok("") | Ok("sqlite") => Self::Sqlite,
            Ok("postgres") => Self::Postgres,
            Ok(other) => panic!("INBOX_TEST_BACKEND={other:?}: use sqlite or postgres"),
        }
    }
}

/// A database of its own for one test. SQLite's folder is removed on drop;
/// PostgreSQL databases stay until the throwaway server is.
pub struct TestDatabase {
    pub backend: TestBackend,
    /// The `DATABASE_URL` to open it with.
    pub url: String,
    /// SQLite only: the database file.
    pub sqlite_path: Option<PathBuf>,
    folder: Option<PathBuf>,
}

impl TestDatabase {
    pub async fn fresh() -> Self {
        Self::fresh_on(TestBackend::from_env()).await
    }

    pub async fn fresh_on(backend: TestBackend) -> Self {
        let name = format!("inbox_test_{}", uuid::Uuid::now_v7().simple());
        match backend {
            TestBackend::Sqlite => {
                let folder = std::env::temp_dir().join(&name);
                let path = folder.join("nested/folder/inbox.db");
                Self {
                    backend,
                    url: format!("sqlite://{}", path.display()),
                    sqlite_path: Some(path),
                    folder: Some(folder),
                }
            }
            TestBackend::Postgres => {
                let admin_url = std::env::var("INBOX_TEST_POSTGRES_URL").unwrap_or_else(|_| {
                    panic!(
                        "INBOX_TEST_BACKEND=postgres needs INBOX_TEST_POSTGRES_URL \
                         (postgres://user@host:port/postgres); `./x test` starts a server and sets it"
                    )
                });
                let mut admin = PgConnection::connect(&admin_url)
                    .await
                    .unwrap_or_else(|err| panic!("cannot reach the test PostgreSQL server: {err}"));
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut admin)
                    .await
                    .expect("create the test database");
                let _ = admin.close().await;
                let base = admin_url
                    .rsplit_once('/')
                    .map(|(base, _)| base)
                    .expect("INBOX_TEST_POSTGRES_URL names a database");
                Self {
                    backend,
                    url: format!("{base}/{name}"),
                    sqlite_path: None,
                    folder: None,
                }
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(folder) = &self.folder {
            let _ = std::fs::remove_dir_all(folder);
        }
    }
}
