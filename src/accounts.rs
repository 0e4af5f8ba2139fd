//! Admin accounts: roles, Argon2id password hashes, login throttling.
//!
//! Password hashes never leave this module in a form that can be serialized
//! or logged: [`PasswordHash`] has a redacting `Debug` and no `Serialize`.

use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::store::{Store, StoreError};

/// Shortest password accepted. Length is what makes passwords strong; there
/// are no composition rules.
pub const MIN_PASSWORD_CHARS: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read-only use of the dashboard.
    Viewer,
    /// Everything.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "viewer" => Ok(Self::Viewer),
            "admin" => Ok(Self::Admin),
            other => Err(format!(
                "unknown role {other:?}: use \"admin\" or \"viewer\""
            )),
        }
    }
}

/// An account as the rest of the program sees it (no hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub role: Role,
    pub disabled: bool,
    pub created_at_us: i64,
    pub last_login_at_us: Option<i64>,
}

/// A PHC-format Argon2id hash.
#[derive(Clone)]
pub struct PasswordHash(String);

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHash(..)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("the password must be at least {MIN_PASSWORD_CHARS} characters long")]
    PasswordTooShort,
    #[error("{0:?} is not an email address")]
    InvalidEmail(String),
    #[error("no account with the email {0:?}")]
    UnknownUser(String),
    #[error("an account with the email {0:?} already exists")]
    DuplicateEmail(String),
    #[error("password hashing failed: {0}")]
    Hashing(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for AccountError {
    fn from(err: sqlx::Error) -> Self {
        Self::Store(StoreError::Database(err))
    }
}

/// Hashes and verifies passwords on blocking threads, a few at a time, so a
/// burst of logins cannot starve the async runtime or exhaust memory
/// (each Argon2id run uses 19 MiB).
#[derive(Clone)]
pub struct PasswordHasherPool {
    permits: Arc<Semaphore>,
}

impl Default for PasswordHasherPool {
    fn default() -> Self {
        Self::new(2)
    }
}

impl PasswordHasherPool {
    pub fn new(concurrency: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
        }
    }

    pub async fn hash(&self, password: &str) -> Result<PasswordHash, AccountError> {
        check_password(password)?;
        let password = password.to_owned();
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| AccountError::Hashing(e.to_string()))?;
        tokio::task::spawn_blocking(move || {
            let salt = SaltString::generate(&mut OsRng);
            Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .map(|hash| PasswordHash(hash.to_string()))
                .map_err(|e| AccountError::Hashing(e.to_string()))
        })
        .await
        .map_err(|e| AccountError::Hashing(e.to_string()))?
    }

    pub async fn verify(&self, password: &str, hash: &PasswordHash) -> bool {
        let password = password.to_owned();
        let hash = hash.0.clone();
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        tokio::task::spawn_blocking(move || {
            argon2::password_hash::PasswordHash::new(&hash)
                .map(|parsed| {
                    Argon2::default()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok()
                })
                .unwrap_or(false)
        })
        .await
        .unwrap_or(false)
    }

    /// Spends the time of one verification, so that an unknown email takes
    /// as long to reject as a wrong password.
    pub async fn verify_nothing(&self, password: &str) {
        static DUMMY: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$QZqJ8bSCRDFTq4k6YiKz6f7wB1ZUvRJhqB2l8n1yJ3A";
        let _ = self.verify(password, &PasswordHash(DUMMY.to_owned())).await;
    }
}

pub fn check_password(password: &str) -> Result<(), AccountError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AccountError::PasswordTooShort);
    }
    Ok(())
}

pub fn normalize_email(email: &str) -> Result<String, AccountError> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
        && !email.chars().any(char::is_whitespace);
    if valid {
        Ok(email)
    } else {
        Err(AccountError::InvalidEmail(email))
    }
}

fn user_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<User, sqlx::Error> {
    let role: String = row.try_get("role")?;
    Ok(User {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        role: role
            .parse()
            .map_err(|e: String| sqlx::Error::Decode(e.into()))?,
        disabled: row.try_get("disabled")?,
        created_at_us: row.try_get("created_at")?,
        last_login_at_us: row.try_get("last_login_at")?,
    })
}

const USER_COLUMNS: &str = "id, email, role, disabled, created_at, last_login_at";

impl Store {
    pub async fn create_user(
        &self,
        email: &str,
        hash: &PasswordHash,
        role: Role,
        now_us: i64,
    ) -> Result<User, AccountError> {
        let email = normalize_email(email)?;
        let id = Uuid::now_v7();
        let inserted = sqlx::query(
            "INSERT INTO users (id, email, password_hash, role, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (email) DO NOTHING",
        )
        .bind(id)
        .bind(&email)
        .bind(&hash.0)
        .bind(role.as_str())
        .bind(now_us)
        .execute(self.pool())
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(AccountError::DuplicateEmail(email));
        }
        self.user_by_id(id)
            .await?
            .ok_or(AccountError::UnknownUser(email))
    }

    /// Sets the password and role of an account, creating it when missing,
    /// and enables it (the start-up bootstrap).
    pub async fn upsert_admin(
        &self,
        email: &str,
        hash: &PasswordHash,
        now_us: i64,
    ) -> Result<User, AccountError> {
        let email = normalize_email(email)?;
        sqlx::query(
            "INSERT INTO users (id, email, password_hash, role, created_at) VALUES (?1, ?2, ?3, 'admin', ?4)
             ON CONFLICT (email) DO UPDATE SET password_hash = excluded.password_hash, role = 'admin', disabled = 0",
        )
        .bind(Uuid::now_v7())
        .bind(&email)
        .bind(&hash.0)
        .bind(now_us)
        .execute(self.pool())
        .await?;
        self.user_by_email(&email)
            .await?
            .map(|(user, _)| user)
            .ok_or(AccountError::UnknownUser(email))
    }

    pub async fn set_password(&self, email: &str, hash: &PasswordHash) -> Result<(), AccountError> {
        let email = normalize_email(email)?;
        let updated = sqlx::query("UPDATE users SET password_hash = ?1 WHERE email = ?2")
            .bind(&hash.0)
            .bind(&email)
            .execute(self.pool())
            .await?;
        if updated.rows_affected() == 0 {
            return Err(AccountError::UnknownUser(email));
        }
        Ok(())
    }

    pub async fn set_disabled(&self, email: &str, disabled: bool) -> Result<User, AccountError> {
        let email = normalize_email(email)?;
        let updated = sqlx::query("UPDATE users SET disabled = ?1 WHERE email = ?2")
            .bind(disabled)
            .bind(&email)
            .execute(self.pool())
            .await?;
        if updated.rows_affected() == 0 {
            return Err(AccountError::UnknownUser(email));
        }
        self.user_by_email(&email)
            .await?
            .map(|(user, _)| user)
            .ok_or(AccountError::UnknownUser(email))
    }

    pub async fn user_by_email(
        &self,
        email: &str,
    ) -> Result<Option<(User, PasswordHash)>, AccountError> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS}, password_hash FROM users WHERE email = ?1"
        ))
        .bind(email.trim())
        .fetch_optional(self.pool())
        .await?;
        row.map(|row| {
            Ok((
                user_from_row(&row)?,
                PasswordHash(row.try_get("password_hash")?),
            ))
        })
        .transpose()
    }

    pub async fn user_by_id(&self, id: Uuid) -> Result<Option<User>, AccountError> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(|row| user_from_row(&row)).transpose()?)
    }

    pub async fn list_users(&self) -> Result<Vec<User>, AccountError> {
        let rows = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY email"))
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(user_from_row).collect::<Result<_, _>>()?)
    }

    pub async fn count_users(&self) -> Result<i64, AccountError> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM users")
            .fetch_one(self.pool())
            .await?)
    }

    pub async fn touch_last_login(&self, id: Uuid, now_us: i64) -> Result<(), AccountError> {
        sqlx::query("UPDATE users SET last_login_at = ?1 WHERE id = ?2")
            .bind(now_us)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Counts failures for any of `keys` since `since_us`.
    pub async fn recent_login_failures(
        &self,
        keys: &[String],
        since_us: i64,
    ) -> Result<i64, AccountError> {
        let mut worst = 0;
        for key in keys {
            let count: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM login_failures WHERE key = ?1 AND failed_at > ?2",
            )
            .bind(key)
            .bind(since_us)
            .fetch_one(self.pool())
            .await?;
            worst = worst.max(count);
        }
        Ok(worst)
    }

    pub async fn record_login_failure(
        &self,
        keys: &[String],
        now_us: i64,
    ) -> Result<(), AccountError> {
        for key in keys {
            sqlx::query("INSERT INTO login_failures (key, failed_at) VALUES (?1, ?2)")
                .bind(key)
                .bind(now_us)
                .execute(self.pool())
                .await?;
        }
        Ok(())
    }

    pub async fn clear_login_failures(
        &self,
        key: &str,
        older_than_us: i64,
    ) -> Result<(), AccountError> {
        sqlx::query("DELETE FROM login_failures WHERE key = ?1 OR failed_at < ?2")
            .bind(key)
            .bind(older_than_us)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
