//! Admin accounts: roles, Argon2id password hashes, login throttling and
//! the browsers that signed in before (known devices).
//!
//! Password hashes never leave this module in a form that can be serialized
//! or logged: [`PasswordHash`] has a redacting `Debug` and no `Serialize`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString};
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
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
    fn throttle_keys_bound_the_pair_the_address_and_the_account() {
        let throttle = LoginThrottle::default();
        let keys = throttle.keys(" Owner@Example.com ", "203.0.113.9".parse().ok());
        let named: Vec<(&str, i64, bool, bool)> = keys
            .iter()
            .map(|key| (key.key.as_str(), key.limit, key.delays, key.forgiven))
            .collect();
        assert_eq!(
            named,
            vec![
                ("pair:203.0.113.9|owner@example.com", 10, true, true),
                ("addr:203.0.113.9", 30, true, false),
                ("acct:owner@example.com", 40, false, false),
            ]
        );
    }

    #[test]
    fn ipv6_addresses_in_one_64_share_throttle_keys_and_other_64s_do_not() {
        let throttle = LoginThrottle::default();
        let keys = |address: &str| throttle.keys("owner@example.com", address.parse().ok());
        assert_eq!(
            keys("2001:db8:1:2::1"),
            keys("2001:db8:1:2:ffff:ffff:ffff:fffe"),
            "one /64"
        );
        let named = format!("{:?}", keys("2001:db8:1:2::1"));
        assert!(named.contains("addr:2001:db8:1:2::/64"), "{named}");
        let (one, other) = (keys("2001:db8:1:2::1"), keys("2001:db8:1:3::1"));
        assert_ne!(one[0], other[0], "another /64, another pair key");
        assert_ne!(one[1], other[1], "another /64, another address key");
        // IPv4 stays per address; an IPv4-mapped IPv6 address is its IPv4 one.
        assert_ne!(keys("203.0.113.9"), keys("203.0.113.10"));
        assert_eq!(keys("::ffff:203.0.113.9"), keys("203.0.113.9"));
    }

    #[tokio::test]
    async fn ipv6_addresses_in_one_64_take_turns_at_password_checks() {
        let turns = ArgonTurns::default();
        let address = |text: &str| text.parse::<IpAddr>().ok();
        let held = turns.wait_turn(address("2001:db8:1:2::1")).await;
        assert!(held.is_some());
        let same_64 = tokio::time::timeout(
            Duration::from_millis(100),
            turns.wait_turn(address("2001:db8:1:2::99")),
        )
        .await;
        assert!(same_64.is_err(), "waits for the first check of its /64");
        let other_64 = tokio::time::timeout(
            Duration::from_millis(100),
            turns.wait_turn(address("2001:db8:1:3::1")),
        )
        .await;
        assert!(other_64.is_ok_and(|turn| turn.is_some()), "its own turn");
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
        let account = account_key(&long);
        assert!(
            account.starts_with("acct:sha256:") && account.len() < 100,
            "{account}"
        );
        // Every email an account may have keeps its readable key.
        let longest = format!("{}@example.com", "a".repeat(242));
        assert!(normalize_email(&longest).is_ok());
        assert_eq!(
            account_address_key(&longest, "203.0.113.9"),
            format!("pair:203.0.113.9|{longest}")
        );
    }
}

#[cfg(test)]
mod hasher_queue_tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_refuses_strangers_at_once_without_hashing() {
        // One check running and two waiting at most.
        let pool = PasswordHasherPool::with_queue(1, 2);
        let mut admitted: Vec<CheckTicket> = (0..3)
            .map(|_| pool.admit(Lane::Stranger).expect("room in the queue"))
            .collect();
        assert!(matches!(pool.admit(Lane::Stranger), Err(HasherBusy)));
        assert_eq!(pool.argon2_runs(), 0, "a refused attempt hashes nothing");
        // Known devices queue apart.
        assert!(pool.admit(Lane::KnownDevice).is_ok());
        admitted.pop();
        assert!(pool.admit(Lane::Stranger).is_ok(), "a place was given back");
    }

    #[tokio::test]
    async fn a_known_device_checks_while_strangers_hold_every_shared_slot() {
        let pool = PasswordHasherPool::new(2);
        let hash = pool.hash("correct horse battery").await.unwrap();
        let busy = pool.shared.clone().acquire_many_owned(2).await.unwrap();
        let stranger = pool.admit(Lane::Stranger).unwrap();
        let waiting = tokio::time::timeout(
            Duration::from_millis(200),
            stranger.verify("correct horse battery", &hash),
        )
        .await;
        assert!(waiting.is_err(), "strangers wait for a shared slot");
        let known = pool.admit(Lane::KnownDevice).unwrap();
        let checked = tokio::time::timeout(
            Duration::from_secs(10),
            known.verify("correct horse battery", &hash),
        )
        .await;
        assert_eq!(checked, Ok(true), "the reserved slot");
        drop(busy);
    }
}

#[cfg(test)]
mod device_tests {
    use super::*;
    use crate::store::test_database::TestDatabase;

    const HOUR_US: i64 = 3_600_000_000;

    async fn store_with(emails: &[&str]) -> (TestDatabase, Store, Vec<User>) {
        let database = TestDatabase::fresh().await;
        let store = Store::open(&database.url).await.unwrap();
        let hash = PasswordHash("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned());
        let mut users = Vec::new();
        for email in emails {
            users.push(
                store
                    .create_user(email, &hash, Role::Admin, 0)
                    .await
                    .unwrap(),
            );
        }
        (database, store, users)
    }

    #[tokio::test]
    async fn a_device_is_known_to_its_account_only_until_a_password_reset() {
        let (_database, store, users) = store_with(&["a@x.y", "b@x.y"]).await;
        let token = DeviceToken::generate();
        let now = 100 * HOUR_US;
        store
            .remember_device(users[0].id, &token, now, now - HOUR_US)
            .await
            .unwrap();
        let known = store.known_device(&token, " A@x.y", now - HOUR_US).await;
        assert_eq!(
            known.unwrap().map(|device| device.user_id),
            Some(users[0].id)
        );
        let parsed = DeviceToken::parse(token.as_str()).unwrap();
        assert!(
            store
                .known_device(&parsed, "a@x.y", 0)
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            store
                .known_device(&token, "b@x.y", 0)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .known_device(&token, "a@x.y", now)
                .await
                .unwrap()
                .is_none(),
            "not used since"
        );
        let stranger = DeviceToken::generate();
        assert!(
            store
                .known_device(&stranger, "a@x.y", 0)
                .await
                .unwrap()
                .is_none()
        );
        // Remembering it for another account does not take it over.
        store
            .remember_device(users[1].id, &token, now, 0)
            .await
            .unwrap();
        assert!(
            store
                .known_device(&token, "b@x.y", 0)
                .await
                .unwrap()
                .is_none()
        );

        let hash = PasswordHash("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$bmV3".to_owned());
        store.set_password("a@x.y", &hash, now).await.unwrap();
        assert!(
            store
                .known_device(&token, "a@x.y", 0)
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn an_account_keeps_its_most_recent_devices_only() {
        let (_database, store, users) = store_with(&["a@x.y"]).await;
        let tokens: Vec<DeviceToken> = (0..=MAX_DEVICES_PER_USER)
            .map(|_| DeviceToken::generate())
            .collect();
        for (n, token) in tokens.iter().enumerate() {
            let at = HOUR_US + i64::try_from(n).unwrap();
            store
                .remember_device(users[0].id, token, at, 0)
                .await
                .unwrap();
        }
        assert!(
            store
                .known_device(&tokens[0], "a@x.y", 0)
                .await
                .unwrap()
                .is_none()
        );
        for token in &tokens[1..] {
            assert!(
                store
                    .known_device(token, "a@x.y", 0)
                    .await
                    .unwrap()
                    .is_some()
            );
        }
    }

    #[test]
    fn device_tokens_are_random_and_cookie_safe() {
        let (one, other) = (DeviceToken::generate(), DeviceToken::generate());
        assert_ne!(one, other);
        assert_eq!(DeviceToken::parse(one.as_str()), Some(one.clone()));
        assert_eq!(format!("{one:?}"), "DeviceToken(..)");
        let long = "x".repeat(44);
        let padded = format!("{}=", &one.as_str()[1..]);
        for bad in ["", "short", "a;b", long.as_str(), padded.as_str()] {
            assert!(DeviceToken::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn strangers_use_up_the_account_and_a_known_device_its_own_budget() {
        let (_database, store, users) = store_with(&["a@x.y"]).await;
        let throttle = LoginThrottle::default();
        let now = 100 * HOUR_US;
        for n in 0..40 {
            let address = format!("2001:db8:{n:x}::1").parse().ok();
            let keys = throttle.keys("a@x.y", address);
            let reserved = store.reserve_login_attempt(&keys, 0, now).await.unwrap();
            assert!(matches!(reserved, LoginReservation::Reserved { .. }), "{n}");
        }
        let fresh = throttle.keys("a@x.y", "198.51.100.7".parse().ok());
        assert_eq!(
            store.reserve_login_attempt(&fresh, 0, now).await.unwrap(),
            LoginReservation::Refused,
            "the 41st address"
        );
        let other = throttle.keys("b@x.y", "198.51.100.7".parse().ok());
        assert!(matches!(
            store.reserve_login_attempt(&other, 0, now).await.unwrap(),
            LoginReservation::Reserved { .. }
        ));
        let token = DeviceToken::generate();
        store
            .remember_device(users[0].id, &token, now, 0)
            .await
            .unwrap();
        let device = store
            .known_device(&token, "a@x.y", 0)
            .await
            .unwrap()
            .unwrap();
        let keys = throttle.device_keys(&device);
        for n in 0..10 {
            let reserved = store.reserve_login_attempt(&keys, 0, now).await.unwrap();
            assert!(matches!(reserved, LoginReservation::Reserved { .. }), "{n}");
        }
        assert_eq!(
            store.reserve_login_attempt(&keys, 0, now).await.unwrap(),
            LoginReservation::Refused,
            "a known device has a budget too"
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

/// Password checks admitted beyond those running (waiting for a hashing
/// slot, or for their attempt to be recorded) before a stranger's further
/// attempts are refused with 429, at once and without a database write.
///
/// One check takes about 30 ms of a core on an idle machine (Argon2id,
/// 19 MiB, two passes: a whole sign-in measures 36 ms at rest) and the pool
/// runs two at once, so 16 waiting checks drain in about a quarter of a
/// second (under 1 s on a loaded 2-core machine, where one check took
/// 90-130 ms). Every admitted attempt is answered promptly, and a crowd of
/// legitimate users signing in at the same moment fits (each address group
/// holds at most one place, see [`ArgonTurns`]). A longer queue would only
/// make every answer later while the guesses in it wait to be checked
/// anyway; a shorter one would refuse a busy team's simultaneous sign-ins.
pub const MAX_WAITING_CHECKS: usize = 16;

/// Known devices' checks that may wait at once (their own slot, or a
/// shared one, whichever frees first); beyond it they get 429 too. Each
/// known device has its own small budget, so these are few.
const MAX_WAITING_KNOWN_CHECKS: usize = 4;

/// Which queue a password check waits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Any attempt without a known device of the account.
    Stranger,
    /// A browser that signed in to this account before ([`KnownDevice`]):
    /// it never waits behind strangers.
    KnownDevice,
}

/// The pool's queue is full: answer 429 without checking the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many password checks are waiting; try again in a moment")]
pub struct HasherBusy;

/// Hashes and verifies passwords on blocking threads, a few at a time, so a
/// burst of logins cannot starve the async runtime or exhaust memory
/// (each Argon2id run uses 19 MiB).
///
/// Sign-in checks are admitted first ([`PasswordHasherPool::admit`]): a
/// stranger's only while fewer than `concurrency` + [`MAX_WAITING_CHECKS`]
/// are admitted, never queueing without bound. Known devices have a lane
/// of their own and one hashing slot strangers never take, so the owner's
/// check starts at once whatever a crowd of guessers does.
#[derive(Clone)]
pub struct PasswordHasherPool {
    /// Slots every hash and check may take.
    shared: Arc<Semaphore>,
    /// The slot only known devices' checks take.
    reserved: Arc<Semaphore>,
    /// Admission tickets: running plus waiting checks of each lane.
    strangers: Arc<Semaphore>,
    known: Arc<Semaphore>,
    /// Argon2 runs started, for tests and diagnostics.
    runs: Arc<AtomicU64>,
}

impl Default for PasswordHasherPool {
    fn default() -> Self {
        Self::new(2)
    }
}

impl PasswordHasherPool {
    pub fn new(concurrency: usize) -> Self {
        Self::with_queue(concurrency, MAX_WAITING_CHECKS)
    }

    /// A pool running `concurrency` checks at once (plus one for known
    /// devices) and admitting `max_waiting` more strangers' checks to wait.
    pub fn with_queue(concurrency: usize, max_waiting: usize) -> Self {
        let concurrency = concurrency.max(1);
        Self {
            shared: Arc::new(Semaphore::new(concurrency)),
            reserved: Arc::new(Semaphore::new(1)),
            strangers: Arc::new(Semaphore::new(concurrency + max_waiting)),
            known: Arc::new(Semaphore::new(1 + MAX_WAITING_KNOWN_CHECKS)),
            runs: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Admits one password check to `lane`'s queue, or refuses it at once
    /// when the queue is full. Never waits.
    pub fn admit(&self, lane: Lane) -> Result<CheckTicket, HasherBusy> {
        let queue = match lane {
            Lane::Stranger => &self.strangers,
            Lane::KnownDevice => &self.known,
        };
        let admission = queue.clone().try_acquire_owned().map_err(|_| HasherBusy)?;
        Ok(CheckTicket {
            pool: self.clone(),
            lane,
            _admission: admission,
        })
    }

    /// How many Argon2 runs (hashes and checks) this pool started.
    pub fn argon2_runs(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }

    pub async fn hash(&self, password: &str) -> Result<PasswordHash, AccountError> {
        check_password(password)?;
        let password = password.to_owned();
        let _permit = self
            .shared
            .acquire()
            .await
            .map_err(|e| AccountError::Hashing(e.to_string()))?;
        self.runs.fetch_add(1, Ordering::Relaxed);
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

    /// A hashing slot for a check of `lane`: a known device takes its
    /// reserved slot or a shared one, whichever is free first.
    async fn slot(&self, lane: Lane) -> Option<tokio::sync::SemaphorePermit<'_>> {
        match lane {
            Lane::Stranger => self.shared.acquire().await.ok(),
            Lane::KnownDevice => tokio::select! {
                biased;
                permit = self.reserved.acquire() => permit.ok(),
                permit = self.shared.acquire() => permit.ok(),
            },
        }
    }
}

/// One admitted password check (see [`PasswordHasherPool::admit`]); its
/// place in the queue is given back when it is dropped.
pub struct CheckTicket {
    pool: PasswordHasherPool,
    lane: Lane,
    _admission: OwnedSemaphorePermit,
}

impl CheckTicket {
    pub async fn verify(self, password: &str, hash: &PasswordHash) -> bool {
        let password = password.to_owned();
        let hash = hash.0.clone();
        let Some(_slot) = self.pool.slot(self.lane).await else {
            return false;
        };
        self.pool.runs.fetch_add(1, Ordering::Relaxed);
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
    pub async fn verify_nothing(self, password: &str) {
        static DUMMY: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$QZqJ8bSCRDFTq4k6YiKz6f7wB1ZUvRJhqB2l8n1yJ3A";
        let _ = self.verify(password, &PasswordHash(DUMMY.to_owned())).await;
    }
}

/// Sign-in throttling, counted in the database so that every node agrees.
///
/// A stranger's attempt (from a browser that is not a [`KnownDevice`] of
/// the account) counts under three keys: the account *from one address
/// group*, the address group, and the account from every address. The
/// last one bounds a guesser with many addresses; it would lock the owner
/// out too if the owner were a stranger, so the attempts of a browser that
/// signed in to the account before count only under that device's own key,
/// never under the account's, and check their password in a slot strangers
/// never take. Client addresses are grouped by [`AddressGroup`].
#[derive(Debug, Clone)]
pub struct LoginThrottle {
    pub window: Duration,
    /// Attempts at one account from one address group within the window.
    pub max_per_account_address: i64,
    /// Attempts from one address group, at any accounts, within the window.
    pub max_per_address: i64,
    /// Strangers' attempts at one account, from all addresses together,
    /// within the window.
    pub max_per_account: i64,
    /// Attempts from one known device within the window.
    pub max_per_device: i64,
    /// Delay after the first failure; doubles with each further one.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// A browser stays known this long after its last sign-in.
    pub device_lifetime: Duration,
    /// Mark the device cookie `Secure` (as the session cookie, behind HTTPS).
    pub secure_cookies: bool,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(15 * 60),
            max_per_account_address: 10,
            max_per_address: 30,
            max_per_account: 40,
            max_per_device: 10,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(3),
            device_lifetime: Duration::from_secs(180 * 24 * 3600),
            secure_cookies: false,
        }
    }
}

/// One counter a sign-in attempt is reserved under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleKey {
    pub key: String,
    /// Attempts allowed under the key within the window.
    pub limit: i64,
    /// Whether the key's earlier failures delay the attempt.
    pub delays: bool,
    /// Whether a successful sign-in forgives the key's earlier failures.
    pub forgiven: bool,
}

impl LoginThrottle {
    pub fn delay_after(&self, failures: i64) -> Duration {
        if failures <= 0 {
            return Duration::ZERO;
        }
        let factor = 1u32 << (failures - 1).clamp(0, 16) as u32;
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }

    /// The throttle keys of a stranger's attempt, with their limits.
    pub fn keys(&self, email: &str, address: Option<IpAddr>) -> Vec<ThrottleKey> {
        let email = email.trim().to_lowercase();
        let address = address_key_text(address);
        vec![
            ThrottleKey {
                key: account_address_key(&email, &address),
                limit: self.max_per_account_address,
                delays: true,
                forgiven: true,
            },
            ThrottleKey {
                key: format!("addr:{address}"),
                limit: self.max_per_address,
                delays: true,
                forgiven: false,
            },
            // Not a delay: a guesser with many addresses would slow the
            // owner's first sign-in from a new browser to the maximum.
            ThrottleKey {
                key: account_key(&email),
                limit: self.max_per_account,
                delays: false,
                forgiven: false,
            },
        ]
    }

    /// The throttle key of an attempt from a known device of the account:
    /// its own budget, whatever the address, apart from the account's.
    pub fn device_keys(&self, device: &KnownDevice) -> Vec<ThrottleKey> {
        vec![ThrottleKey {
            key: format!("device:{}", &device.token_hash[..32]),
            limit: self.max_per_device,
            delays: true,
            forgiven: true,
        }]
    }
}

/// The unit client addresses are throttled by: one IPv4 address, or one
/// IPv6 /64. A /64 is the smallest block networks hand out (one LAN, one
/// customer): whoever has one address of it can use all 2^64, so counting
/// its addresses apart would let them guess without bound. An IPv4-mapped
/// IPv6 address (`::ffff:a.b.c.d`) is its IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddressGroup(IpAddr);

impl AddressGroup {
    pub fn of(address: IpAddr) -> Self {
        match address {
            IpAddr::V4(_) => Self(address),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => Self(IpAddr::V6(Ipv6Addr::from(
                    u128::from(v6) & (u128::MAX << 64),
                ))),
            },
        }
    }
}

impl std::fmt::Display for AddressGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// A client address as it appears in throttle keys: its [`AddressGroup`].
pub fn address_key_text(address: Option<IpAddr>) -> String {
    address.map_or_else(
        || "unknown".to_owned(),
        |ip| AddressGroup::of(ip).to_string(),
    )
}

/// The key of one account tried from one address. No account's email is
/// longer than 254 bytes ([`normalize_email`]); a longer one sent to the
/// sign-in form is keyed by its SHA-256 instead, so the key always fits an
/// index entry (PostgreSQL refuses B-tree entries over about 2.7 kB, and
/// would answer such a sign-in with an error instead of a 401).
pub fn account_address_key(email: &str, address: &str) -> String {
    format!("pair:{address}|{}", bounded_email(email))
}

/// The key of one account tried from anywhere (by strangers).
pub fn account_key(email: &str) -> String {
    format!("acct:{}", bounded_email(email))
}

fn bounded_email(email: &str) -> std::borrow::Cow<'_, str> {
    use sha2::{Digest, Sha256};
    if email.len() > MAX_EMAIL_BYTES {
        let digest = hex::encode(Sha256::digest(email.as_bytes()));
        return format!("sha256:{digest}").into();
    }
    email.into()
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

/// The random token of a device cookie: 32 bytes from the OS, base64url.
/// Only its SHA-256 is stored; it is never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceToken(String);

impl std::fmt::Debug for DeviceToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceToken(..)")
    }
}

impl DeviceToken {
    pub fn generate() -> Self {
        use base64::Engine;
        use rand::RngCore;
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
    }

    /// A token as a cookie carries it; `None` for anything that cannot be
    /// one (so no lookup is spent on it).
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        (text.len() == 43
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        .then(|| Self(text.to_owned()))
    }

    /// The cookie's value.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn hash(&self) -> String {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }
}

/// A browser that signed in to an account before: it presented a device
/// cookie whose token is stored for that account and was used within the
/// device lifetime.
#[derive(Clone, PartialEq, Eq)]
pub struct KnownDevice {
    pub user_id: Uuid,
    /// Lowercase hex SHA-256 of the token.
    token_hash: String,
}

impl std::fmt::Debug for KnownDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KnownDevice")
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

/// Known devices kept per account (the most recently used); older ones are
/// forgotten, so signing in again and again cannot grow the table.
const MAX_DEVICES_PER_USER: i64 = 20;

/// Per-address-group turns for password checks: at most one Argon2 run per
/// address group at a time; further attempts from it wait for their turn.
#[derive(Debug, Default)]
pub struct ArgonTurns {
    by_address: Mutex<HashMap<AddressGroup, Arc<Semaphore>>>,
}

impl ArgonTurns {
    pub async fn wait_turn(&self, address: Option<IpAddr>) -> Option<ArgonTurn<'_>> {
        let address = AddressGroup::of(address?);
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

/// Held while one address group's password check runs.
pub struct ArgonTurn<'a> {
    turns: &'a ArgonTurns,
    address: AddressGroup,
    _permit: OwnedSemaphorePermit,
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

    /// Sets a new password, ends every session of the account and forgets
    /// its known devices (a browser that knew the old password gets no
    /// budget of its own for guessing the new one).
    pub async fn set_password(
        &self,
        email: &str,
        hash: &PasswordHash,
        now_us: i64,
    ) -> Result<User, AccountError> {
        let email = normalize_email(email)?;
        let updated = on_db!(self.db(), |pool, dialect| {
            let mut tx = pool.begin().await?;
            let updated = sqlx::query(
                "UPDATE users SET password_hash = $1, sessions_valid_after = $3
                 WHERE lower(email) = lower($2)",
            )
            .bind(&hash.0)
            .bind(dialect.text(&email))
            .bind(DbTime(now_us))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            sqlx::query(
                "DELETE FROM login_devices
                 WHERE user_id IN (SELECT id FROM users WHERE lower(email) = lower($1))",
            )
            .bind(dialect.text(&email))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            updated
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
    /// Refused when any key already has its limit of attempts since
    /// `since_us`; `earlier_failures` counts only the keys that delay.
    pub async fn reserve_login_attempt(
        &self,
        keys: &[ThrottleKey],
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
                    let mut sorted: Vec<&str> = keys.iter().map(|key| key.key.as_str()).collect();
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
            for key in keys {
                let count = sqlx::query_scalar::<_, i64>(
                    "SELECT count(*) FROM login_failures WHERE key = $1 AND failed_at > $2",
                )
                .bind(dialect.text(&key.key))
                .bind(DbTime(since_us))
                .fetch_one(&mut *tx)
                .await?;
                if count >= key.limit {
                    tx.rollback().await?;
                    return Ok(LoginReservation::Refused);
                }
            }
            let mut ids = Vec::with_capacity(keys.len());
            let mut worst = 0;
            for key in keys {
                let id = sqlx::query_scalar::<_, i64>(
                    "INSERT INTO login_failures (key, failed_at) VALUES ($1, $2) RETURNING id",
                )
                .bind(dialect.text(&key.key))
                .bind(DbTime(now_us))
                .fetch_one(&mut *tx)
                .await?;
                ids.push(id);
                if !key.delays {
                    continue;
                }
                let count = sqlx::query_scalar::<_, i64>(
                    "SELECT count(*) FROM login_failures WHERE key = $1 AND failed_at > $2",
                )
                .bind(dialect.text(&key.key))
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

    /// The known device of `token` at the account `email`: `None` when the
    /// token is stored for no account or for another one, the account is
    /// disabled, or the device was last used before `since_us`.
    pub async fn known_device(
        &self,
        token: &DeviceToken,
        email: &str,
        since_us: i64,
    ) -> Result<Option<KnownDevice>, AccountError> {
        let token_hash = token.hash();
        let user_id = on_db!(self.db(), |pool, dialect| {
            let row = sqlx::query(
                "SELECT d.user_id FROM login_devices d JOIN users u ON u.id = d.user_id
                 WHERE d.token_hash = $1 AND lower(u.email) = lower($2)
                   AND u.disabled = false AND d.last_used_at > $3",
            )
            .bind(&token_hash)
            .bind(dialect.text(email.trim()))
            .bind(DbTime(since_us))
            .fetch_optional(pool)
            .await?;
            row.map(|row| row.uuid("user_id")).transpose()?
        });
        Ok(user_id.map(|user_id| KnownDevice {
            user_id,
            token_hash,
        }))
    }

    /// Remembers the browser holding `token` as a known device of
    /// `user_id` (after a successful sign-in), or refreshes it. Forgets
    /// devices nobody used since `since_us`, and the account's devices
    /// beyond the [`MAX_DEVICES_PER_USER`] most recently used.
    pub async fn remember_device(
        &self,
        user_id: Uuid,
        token: &DeviceToken,
        now_us: i64,
        since_us: i64,
    ) -> Result<(), AccountError> {
        let token_hash = token.hash();
        on_db!(self.db(), |pool, dialect| {
            let mut tx = pool.begin().await?;
            // A token is only ever refreshed for its own account: the
            // sign-in makes a new one for any other.
            sqlx::query(
                "INSERT INTO login_devices (token_hash, user_id, created_at, last_used_at)
                 VALUES ($1, $2, $3, $3)
                 ON CONFLICT (token_hash) DO UPDATE SET last_used_at = excluded.last_used_at
                 WHERE login_devices.user_id = excluded.user_id",
            )
            .bind(&token_hash)
            .bind(user_id)
            .bind(DbTime(now_us))
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "DELETE FROM login_devices WHERE last_used_at < $2
                    OR (user_id = $1 AND token_hash NOT IN
                        (SELECT token_hash FROM login_devices WHERE user_id = $1
                         ORDER BY last_used_at DESC, token_hash LIMIT $3))",
            )
            .bind(user_id)
            .bind(DbTime(since_us))
            .bind(MAX_DEVICES_PER_USER)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(())
    }
}
