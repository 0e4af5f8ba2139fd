//! Admin accounts: roles, Argon2id password hashes, login throttling.
//!
//! Password hashes never leave this module in a form that can be serialized
//! or logged: [`PasswordHash`] has a redacting `Debug` and no `Serialize`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::store::{DbTime, Dialect, Store, StoreError, StoreRow, on_db};

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
    /// Sessions signed in at or before this time are void (set by a
    /// password reset or by disabling the account).
    pub sessions_valid_after_us: i64,
}

/// The answer to [`Store::reserve_login_attempt`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginReservation {
    /// The attempt may be checked; `ids` are its rows, `earlier_failures`
    /// the most failures any key had before it (for the delay).
    Reserved {
        ids: Vec<i64>,
        earlier_failures: i64,
    },
    /// Too many attempts under one of the keys: do not check the password.
    Refused,
}

/// A PHC-format Argon2id hash.
#[derive(Clone)]
pub struct PasswordHash(String);

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHash(..)")
    }
}

#[cfg(test)]
mod last_admin_tests {
    use super::*;
    use crate::store::test_database::TestDatabase;

    async fn store_with(accounts: &[(&str, Role)]) -> (TestDatabase, Store) {
        let dir = TestDatabase::fresh().await;
        let store = Store::open(&dir.url).await.unwrap();
        let hash = PasswordHash("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned());
        for (email, role) in accounts {
            store.create_user(email, &hash, *role, 0).await.unwrap();
        }
        (dir, store)
    }

    #[tokio::test]
    async fn the_last_active_admin_cannot_be_demoted_or_disabled() {
        let (_dir, store) = store_with(&[("a@x.y", Role::Admin), ("v@x.y", Role::Viewer)]).await;
        assert!(matches!(
            store.set_role("a@x.y", Role::Viewer).await,
            Err(AccountError::LastAdmin(_))
        ));
        assert!(matches!(
            store.set_disabled("a@x.y", true, 1).await,
            Err(AccountError::LastAdmin(_))
        ));
        // Viewers are unaffected, and with a second admin the first may go.
        store.set_disabled("v@x.y", true, 1).await.unwrap();
        store.set_role("v@x.y", Role::Admin).await.unwrap();
        store.set_disabled("v@x.y", false, 1).await.unwrap();
        store.set_role("a@x.y", Role::Viewer).await.unwrap();
        assert!(matches!(
            store.set_role("unknown@x.y", Role::Viewer).await,
            Err(AccountError::UnknownUser(_))
        ));
    }

    #[tokio::test]
    async fn two_admins_disabling_each_other_at_once_leave_one() {
        let (_dir, store) = store_with(&[("a@x.y", Role::Admin), ("b@x.y", Role::Admin)]).await;
        let (first, second) = tokio::join!(
            store.set_disabled("a@x.y", true, 1),
            store.set_disabled("b@x.y", true, 1)
        );
        assert_eq!(
            usize::from(first.is_ok()) + usize::from(second.is_ok()),
            1,
            "{first:?} {second:?}"
        );
        let active_admins = store
            .list_users()
            .await
            .unwrap()
            .into_iter()
            .filter(|user| user.role == Role::Admin && !user.disabled)
            .count();
        assert_eq!(active_admins, 1);
    }
}

#[cfg(test)]
mod throttle_tests {
    use super::*;

    #[test]
    fn login_delays_grow_and_are_capped() {
        let throttle = LoginThrottle::default();
        assert_eq!(throttle.delay_after(0), Duration::ZERO);
        assert_eq!(throttle.delay_after(1), Duration::from_millis(250));
        assert_eq!(throttle.delay_after(2), Duration::from_millis(500));
        assert_eq!(throttle.delay_after(9), Duration::from_secs(3));
        assert_eq!(throttle.delay_after(60), Duration::from_secs(3));
    }

    #[test]
    fn throttle_keys_never_name_an_account_alone() {
        let keys = LoginThrottle::default().keys(" Owner@Example.com ", "203.0.113.9".parse().ok());
        assert_eq!(
            keys,
            vec![
                ("pair:203.0.113.9|owner@example.com".to_owned(), 10),
                ("addr:203.0.113.9".to_owned(), 30)
            ]
        );
    }

    #[test]
    fn throttle_keys_of_overlong_emails_are_bounded() {
        let long = format!("{}@example.com", "a".repeat(1_500_000));
        let key = account_address_key(&long, "203.0.113.9");
        assert!(
            key.starts_with("pair:203.0.113.9|sha256:") && key.len() < 100,
            "{key}"
        );
        assert_ne!(key, account_address_key(&format!("b{long}"), "203.0.113.9"));
        // Every email an account may have keeps its readable key.
        let longest = format!("{}@example.com", "a".repeat(242));
        assert!(normalize_email(&longest).is_ok());
        assert_eq!(
            account_address_key(&longest, "203.0.113.9"),
            format!("pair:203.0.113.9|{longest}")
        );
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
    #[error("{0:?} is the last active admin; make another account an admin first")]
    LastAdmin(String),
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

/// Sign-in throttling. Attempts are counted per account *from one address*
/// and per address, never per account alone: an attacker elsewhere can slow
/// their own address but cannot lock the owner out.
#[derive(Debug, Clone)]
pub struct LoginThrottle {
    pub window: Duration,
    /// Attempts at one account from one address within the window.
    pub max_per_account_address: i64,
    /// Attempts from one address, at any accounts, within the window.
    pub max_per_address: i64,
    /// Delay after the first failure; doubles with each further one.
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(15 * 60),
            max_per_account_address: 10,
            max_per_address: 30,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(3),
        }
    }
}

impl LoginThrottle {
    pub fn delay_after(&self, failures: i64) -> Duration {
        if failures <= 0 {
            return Duration::ZERO;
        }
        let factor = 1u32 << (failures - 1).clamp(0, 16) as u32;
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }

    /// The throttle keys of one attempt, with their limits.
    pub fn keys(&self, email: &str, address: Option<std::net::IpAddr>) -> Vec<(String, i64)> {
        let email = email.trim().to_lowercase();
        let address = address.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
        vec![
            (
                account_address_key(&email, &address),
                self.max_per_account_address,
            ),
            (format!("addr:{address}"), self.max_per_address),
        ]
    }
}

/// The key of one account tried from one address. No account's email is
/// longer than 254 bytes ([`normalize_email`]); a longer one sent to the
/// sign-in form is keyed by its SHA-256 instead, so the key always fits an
/// index entry (PostgreSQL refuses B-tree entries over about 2.7 kB, and
/// would answer such a sign-in with an error instead of a 401).
pub fn account_address_key(email: &str, address: &str) -> String {
    use sha2::{Digest, Sha256};
    if email.len() > MAX_EMAIL_BYTES {
        let digest = hex::encode(Sha256::digest(email.as_bytes()));
        return format!("pair:{address}|sha256:{digest}");
    }
    format!("pair:{address}|{email}")
}

/// The longest email an account may have.
const MAX_EMAIL_BYTES: usize = 254;

/// 20 characters from an unambiguous alphabet (about 110 bits): generated
/// passwords for the first admin and for invited users.
pub fn random_password() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rngs::OsRng;
    (0..20)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Per-address turns for password checks: at most one Argon2 run per client
/// address at a time; further attempts from it wait for their turn.
#[derive(Debug, Default)]
pub struct ArgonTurns {
    by_address: Mutex<HashMap<IpAddr, Arc<Semaphore>>>,
}

impl ArgonTurns {
    pub async fn wait_turn(&self, address: Option<IpAddr>) -> Option<ArgonTurn<'_>> {
        let address = address?;
        let semaphore = {
            let mut map = self.by_address.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(address)
                .or_insert_with(|| Arc::new(Semaphore::new(1)))
                .clone()
        };
        let permit = semaphore.clone().acquire_owned().await.ok()?;
        Some(ArgonTurn {
            turns: self,
            address,
            _permit: permit,
        })
    }
}

/// Held while one address's password check runs.
pub struct ArgonTurn<'a> {
    turns: &'a ArgonTurns,
    address: IpAddr,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for ArgonTurn<'_> {
    fn drop(&mut self) {
        // Forget addresses nobody waits on, so the map stays small.
        let mut map = self
            .turns
            .by_address
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(semaphore) = map.get(&self.address)
            && Arc::strong_count(semaphore) <= 2
        {
            map.remove(&self.address);
        }
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
    let valid = email.len() <= MAX_EMAIL_BYTES
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

/// PostgreSQL advisory lock (transaction-scoped) per throttle key: it
/// serializes the sign-in reservations of one key across nodes, as `BEGIN
/// IMMEDIATE` does on SQLite, so the count of earlier attempts and the
/// insert of this one are one step.
const LOGIN_KEY_LOCK: &str =
    "SELECT pg_advisory_xact_lock(hashtextextended('callback-inbox:login:' || $1, 0))";

/// PostgreSQL advisory lock (transaction-scoped) taken around the guarded
/// UPDATE of the last-admin rule: under READ COMMITTED two concurrent
/// statements could each count the other admin as still active and both
/// pass the guard. SQLite has one writer, so the statement alone suffices.
/// The key is the ASCII of "cbiAdmin".
const ADMIN_ROLES_LOCK: i64 = i64::from_be_bytes(*b"cbiAdmin");

/// Executes `$query` (a statement enforcing the last-admin rule) on `$pool`:
/// alone on SQLite, and on PostgreSQL in a transaction holding
/// [`ADMIN_ROLES_LOCK`]. Evaluates to its query result.
macro_rules! under_admin_lock {
    ($pool:expr, $dialect:expr, $query:expr) => {{
        let query = $query;
        match $dialect {
            Dialect::Sqlite => query.execute($pool).await?,
            Dialect::Postgres => {
                let mut tx = $pool.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(ADMIN_ROLES_LOCK)
                    .execute(&mut *tx)
                    .await?;
                let done = query.execute(&mut *tx).await?;
                tx.commit().await?;
                done
            }
        }
    }};
}

fn user_from_row(row: &impl StoreRow) -> Result<User, sqlx::Error> {
    let role = row.text("role")?;
    Ok(User {
        id: row.uuid("id")?,
        email: row.text("email")?,
        role: role
            .parse()
            .map_err(|e: String| sqlx::Error::Decode(e.into()))?,
        disabled: row.flag("disabled")?,
        created_at_us: row.time("created_at")?,
        last_login_at_us: row.opt_time("last_login_at")?,
        sessions_valid_after_us: row.time("sessions_valid_after")?,
    })
}

const USER_COLUMNS: &str =
    "id, email, role, disabled, created_at, last_login_at, sessions_valid_after";

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
        let inserted = on_db!(self.db(), |pool, dialect| {
            // Emails are unique whatever their case: SQLite's column is
            // COLLATE NOCASE, PostgreSQL has a unique index on lower(email).
            sqlx::query(dialect.pick(
                "INSERT INTO users (id, email, password_hash, role, created_at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (email) DO NOTHING",
                "INSERT INTO users (id, email, password_hash, role, created_at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (lower(email)) DO NOTHING",
            ))
            .bind(id)
            .bind(dialect.text(&email))
            .bind(&hash.0)
            .bind(role.as_str())
            .bind(DbTime(now_us))
            .execute(pool)
            .await?
            .rows_affected()
        });
        if inserted == 0 {
            return Err(AccountError::DuplicateEmail(email));
        }
        self.user_by_id(id)
            .await?
            .ok_or(AccountError::UnknownUser(email))
    }

    /// Creates this admin unless an account with the email exists; an
    /// existing account is left exactly as it is (the CLI manages it).
    /// Returns whether it was created.
    pub async fn create_admin_if_missing(
        &self,
        email: &str,
        hash: &PasswordHash,
        now_us: i64,
    ) -> Result<bool, AccountError> {
        let email = normalize_email(email)?;
        let inserted = on_db!(self.db(), |pool, dialect| {
            sqlx::query(dialect.pick(
                "INSERT INTO users (id, email, password_hash, role, created_at) VALUES ($1, $2, $3, 'admin', $4)
                 ON CONFLICT (email) DO NOTHING",
                "INSERT INTO users (id, email, password_hash, role, created_at) VALUES ($1, $2, $3, 'admin', $4)
                 ON CONFLICT (lower(email)) DO NOTHING",
            ))
            .bind(Uuid::now_v7())
            .bind(dialect.text(&email))
            .bind(&hash.0)
            .bind(DbTime(now_us))
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(inserted > 0)
    }

    /// Sets a new password and ends every session of the account.
    pub async fn set_password(
        &self,
        email: &str,
        hash: &PasswordHash,
        now_us: i64,
    ) -> Result<User, AccountError> {
        let email = normalize_email(email)?;
        let updated = on_db!(self.db(), |pool, dialect| {
            sqlx::query(
                "UPDATE users SET password_hash = $1, sessions_valid_after = $3
                 WHERE lower(email) = lower($2)",
            )
            .bind(&hash.0)
            .bind(dialect.text(&email))
            .bind(DbTime(now_us))
            .execute(pool)
            .await?
            .rows_affected()
        });
        self.updated_user(updated, email).await
    }

    /// Disables (ending every session of the account) or enables an account.
    pub async fn set_disabled(
        &self,
        email: &str,
        disabled: bool,
        now_us: i64,
    ) -> Result<User, AccountError> {
        let email = normalize_email(email)?;
        let updated = if disabled {
            // One guarded statement (on PostgreSQL under ADMIN_ROLES_LOCK),
            // so two admins disabling each other at once cannot leave no
            // admin at all.
            let updated = on_db!(self.db(), |pool, dialect| {
                under_admin_lock!(
                    pool,
                    dialect,
                    sqlx::query(
                        "UPDATE users SET disabled = true, sessions_valid_after = $2
                         WHERE lower(email) = lower($1)
                           AND NOT (role = 'admin' AND disabled = false AND
                                    (SELECT count(*) FROM users
                                     WHERE role = 'admin' AND disabled = false) <= 1)",
                    )
                    .bind(dialect.text(&email))
                    .bind(DbTime(now_us))
                )
                .rows_affected()
            });
            self.refused_for_last_admin(updated, &email).await?;
            updated
        } else {
            on_db!(self.db(), |pool, dialect| {
                sqlx::query("UPDATE users SET disabled = false WHERE lower(email) = lower($1)")
                    .bind(dialect.text(&email))
                    .execute(pool)
                    .await?
                    .rows_affected()
            })
        };
        self.updated_user(updated, email).await
    }

    /// Changes the role of an account; its sessions see the new role at
    /// their next request.
    pub async fn set_role(&self, email: &str, role: Role) -> Result<User, AccountError> {
        let email = normalize_email(email)?;
        let updated = on_db!(self.db(), |pool, dialect| {
            under_admin_lock!(
                pool,
                dialect,
                sqlx::query(
                    "UPDATE users SET role = $1 WHERE lower(email) = lower($2)
                       AND NOT ($1 <> 'admin' AND role = 'admin' AND disabled = false AND
                                (SELECT count(*) FROM users
                                 WHERE role = 'admin' AND disabled = false) <= 1)",
                )
                .bind(role.as_str())
                .bind(dialect.text(&email))
            )
            .rows_affected()
        });
        self.refused_for_last_admin(updated, &email).await?;
        self.updated_user(updated, email).await
    }

    /// After an update that changed nothing: the account exists, so the
    /// last-admin rule refused it.
    async fn refused_for_last_admin(&self, rows: u64, email: &str) -> Result<(), AccountError> {
        if rows == 0 && self.user_by_email(email).await?.is_some() {
            return Err(AccountError::LastAdmin(email.to_owned()));
        }
        Ok(())
    }

    async fn updated_user(&self, rows: u64, email: String) -> Result<User, AccountError> {
        if rows == 0 {
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
        on_db!(self.db(), |pool, dialect| {
            let row = sqlx::query(&format!(
                "SELECT {USER_COLUMNS}, password_hash FROM users WHERE lower(email) = lower($1)"
            ))
            .bind(dialect.text(email.trim()))
            .fetch_optional(pool)
            .await?;
            row.map(|row| {
                Ok((
                    user_from_row(&row)?,
                    PasswordHash(row.text("password_hash")?),
                ))
            })
            .transpose()
        })
    }

    pub async fn user_by_id(&self, id: Uuid) -> Result<Option<User>, AccountError> {
        on_db!(self.db(), |pool, dialect| {
            let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await?;
            Ok(row.map(|row| user_from_row(&row)).transpose()?)
        })
    }

    pub async fn list_users(&self) -> Result<Vec<User>, AccountError> {
        on_db!(self.db(), |pool, dialect| {
            let rows = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY email"))
                .fetch_all(pool)
                .await?;
            Ok(rows.iter().map(user_from_row).collect::<Result<_, _>>()?)
        })
    }

    pub async fn count_users(&self) -> Result<i64, AccountError> {
        on_db!(self.db(), |pool, dialect| {
            Ok(sqlx::query_scalar::<_, i64>("SELECT count(*) FROM users")
                .fetch_one(pool)
                .await?)
        })
    }

    pub async fn touch_last_login(&self, id: Uuid, now_us: i64) -> Result<(), AccountError> {
        on_db!(self.db(), |pool, dialect| {
            sqlx::query("UPDATE users SET last_login_at = $1 WHERE id = $2")
                .bind(DbTime(now_us))
                .bind(id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Reserves one sign-in attempt under every key before the password is
    /// checked: the attempt counts as a failure from now on, so parallel
    /// guesses cannot all pass the check before any failure is recorded.
    /// The count and the insert are one atomic step: `BEGIN IMMEDIATE` on
    /// SQLite, [`LOGIN_KEY_LOCK`] per key on PostgreSQL (across all nodes).
    /// Refused when any key already has `limits[i]` attempts since `since_us`.
    pub async fn reserve_login_attempt(
        &self,
        keys: &[(String, i64)],
        since_us: i64,
        now_us: i64,
    ) -> Result<LoginReservation, AccountError> {
        on_db!(self.db(), |pool, dialect| {
            let mut connection = pool.acquire().await?;
            let mut tx = match dialect {
                Dialect::Sqlite => {
                    sqlx::Connection::begin_with(&mut *connection, "BEGIN IMMEDIATE").await?
                }
                Dialect::Postgres => {
                    let mut tx = sqlx::Connection::begin(&mut *connection).await?;
                    // One lock per throttle key, taken in a fixed order, so
                    // sign-ins of different visitors do not wait for each
                    // other and two reservations never deadlock.
                    let mut sorted: Vec<&str> = keys.iter().map(|(key, _)| key.as_str()).collect();
                    sorted.sort_unstable();
                    for key in sorted {
                        sqlx::query(LOGIN_KEY_LOCK)
                            .bind(dialect.text(key))
                            .execute(&mut *tx)
                            .await?;
                    }
                    tx
                }
            };
            for (key, limit) in keys {
                let count = sqlx::query_scalar::<_, i64>(
                    "SELECT count(*) FROM login_failures WHERE key = $1 AND failed_at > $2",
                )
                .bind(dialect.text(key))
                .bind(DbTime(since_us))
                .fetch_one(&mut *tx)
                .await?;
                if count >= *limit {
                    tx.rollback().await?;
                    return Ok(LoginReservation::Refused);
                }
            }
            let mut ids = Vec::with_capacity(keys.len());
            let mut worst = 0;
            for (key, _) in keys {
                let id = sqlx::query_scalar::<_, i64>(
                    "INSERT INTO login_failures (key, failed_at) VALUES ($1, $2) RETURNING id",
                )
                .bind(dialect.text(key))
                .bind(DbTime(now_us))
                .fetch_one(&mut *tx)
                .await?;
                ids.push(id);
                let count = sqlx::query_scalar::<_, i64>(
                    "SELECT count(*) FROM login_failures WHERE key = $1 AND failed_at > $2",
                )
                .bind(dialect.text(key))
                .bind(DbTime(since_us))
                .fetch_one(&mut *tx)
                .await?;
                worst = worst.max(count - 1);
            }
            tx.commit().await?;
            Ok(LoginReservation::Reserved {
                ids,
                earlier_failures: worst,
            })
        })
    }

    /// A successful sign-in: its reserved attempt is not a failure, and the
    /// earlier failures of `key` (this account from this address) are forgiven.
    /// Rows older than `older_than_us` are swept on the way.
    pub async fn forgive_login_attempts(
        &self,
        reserved: &[i64],
        key: &str,
        older_than_us: i64,
    ) -> Result<(), AccountError> {
        on_db!(self.db(), |pool, dialect| {
            let mut tx = pool.begin().await?;
            if dialect == Dialect::Postgres {
                // Two sign-ins of one account from one address on two nodes
                // would otherwise each delete its own row, then wait for
                // the other's: a deadlock.
                sqlx::query(LOGIN_KEY_LOCK)
                    .bind(dialect.text(key))
                    .execute(&mut *tx)
                    .await?;
            }
            for id in reserved {
                sqlx::query("DELETE FROM login_failures WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("DELETE FROM login_failures WHERE key = $1 OR failed_at < $2")
                .bind(dialect.text(key))
                .bind(DbTime(older_than_us))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(())
    }
}
