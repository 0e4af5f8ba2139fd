//! API tokens: read-only access as a user, for scripts and the `listen` and
//! `replay` commands (docs/api.md, "API tokens").
//!
//! A token is `cbi_` and 256 random bits (base64url). Only its SHA-256 is
//! stored: a copy of the database gives nobody a working token, and a token
//! of that strength needs no salt or slow hash. A token works while it is
//! not revoked and its user is not disabled.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::accounts::{AccountError, User};
use crate::store::{DbTime, Store, StoreError, StoreRow, on_db};

/// Every token starts with this, so it is recognisable (in a secret
/// scanner, or pasted into the wrong field).
pub const TOKEN_PREFIX: &str = "cbi_";
/// Longest token name.
pub const MAX_TOKEN_NAME_CHARS: usize = 100;
/// `last_used_at` is written at most this often per token, so reading with
/// a token does not turn every request into a write.
const LAST_USED_RESOLUTION_US: i64 = 60 * 1_000_000;

/// A token as listed: never the token itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub created_at_us: i64,
    pub last_used_at_us: Option<i64>,
    pub revoked_at_us: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("no account with the email {0:?}")]
    UnknownUser(String),
    #[error("{0:?} already has a token named {1:?}; revoke it first or choose another name")]
    DuplicateName(String, String),
    #[error(
        "a token name must be 1 to {MAX_TOKEN_NAME_CHARS} characters without control characters"
    )]
    InvalidName,
    #[error("no token named {0:?} in use")]
    UnknownToken(String),
    #[error("several accounts have a token named {0:?} ({1}); add --email")]
    Ambiguous(String, String),
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for TokenError {
    fn from(err: sqlx::Error) -> Self {
        Self::Store(StoreError::Database(err))
    }
}

/// A new random token: `cbi_` and 43 base64url characters (256 bits).
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// What is stored of a token: the lowercase hex SHA-256 of its text.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

fn check_name(name: &str) -> Result<String, TokenError> {
    let name = name.trim();
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_TOKEN_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(TokenError::InvalidName);
    }
    Ok(name.to_owned())
}

fn info_from_row(row: &impl StoreRow) -> Result<TokenInfo, sqlx::Error> {
    Ok(TokenInfo {
        id: row.uuid("id")?,
        email: row.text("email")?,
        name: row.text("name")?,
        created_at_us: row.time("created_at")?,
        last_used_at_us: row.opt_time("last_used_at")?,
        revoked_at_us: row.opt_time("revoked_at")?,
    })
}

impl Store {
    /// Creates a token for the account with `email`; returns it (the only
    /// time it is ever available) with its listing.
    pub async fn create_token(
        &self,
        email: &str,
        name: &str,
        now_us: i64,
    ) -> Result<(String, TokenInfo), TokenError> {
        let name = check_name(name)?;
        let email = email.trim().to_lowercase();
        let (user, _) = self
            .user_by_email(&email)
            .await?
            .ok_or_else(|| TokenError::UnknownUser(email.clone()))?;
        let token = generate_token();
        let id = Uuid::now_v7();
        // A name in use by this user's live tokens (the partial unique
        // index api_tokens_user_name) is refused by ON CONFLICT DO NOTHING.
        let inserted = on_db!(self.db(), |pool, dialect| {
            sqlx::query(
                "INSERT INTO api_tokens (id, user_id, name, token_hash, created_at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(user.id)
            .bind(dialect.text(&name))
            .bind(hash_token(&token))
            .bind(DbTime(now_us))
            .execute(pool)
            .await?
            .rows_affected()
        });
        if inserted == 0 {
            return Err(TokenError::DuplicateName(user.email, name));
        }
        let info = TokenInfo {
            id,
            email: user.email,
            name,
            created_at_us: now_us,
            last_used_at_us: None,
            revoked_at_us: None,
        };
        Ok((token, info))
    }

    /// Every token (of one account with `email`), oldest first.
    pub async fn list_tokens(&self, email: Option<&str>) -> Result<Vec<TokenInfo>, TokenError> {
        on_db!(self.db(), |pool, dialect| {
            let rows = sqlx::query(
                "SELECT t.id, u.email, t.name, t.created_at, t.last_used_at, t.revoked_at
                 FROM api_tokens t JOIN users u ON u.id = t.user_id
                 WHERE $1 IS NULL OR lower(u.email) = lower($1)
                 ORDER BY t.created_at, t.id",
            )
            .bind(email.map(|email| dialect.text(&email.trim().to_lowercase())))
            .fetch_all(pool)
            .await?;
            Ok(rows.iter().map(info_from_row).collect::<Result<_, _>>()?)
        })
    }

    /// Revokes the token in use named `name` (of the account with `email`,
    /// needed only when several accounts use that name). It stops working
    /// at once, also for a live stream that holds it (within seconds).
    pub async fn revoke_token(
        &self,
        email: Option<&str>,
        name: &str,
        now_us: i64,
    ) -> Result<TokenInfo, TokenError> {
        let name = name.trim();
        let active: Vec<TokenInfo> = self
            .list_tokens(email)
            .await?
            .into_iter()
            .filter(|token| token.name == name && token.revoked_at_us.is_none())
            .collect();
        let token = match active.as_slice() {
            [] => return Err(TokenError::UnknownToken(name.to_owned())),
            [one] => one.clone(),
            several => {
                let owners: Vec<&str> = several.iter().map(|t| t.email.as_str()).collect();
                return Err(TokenError::Ambiguous(name.to_owned(), owners.join(", ")));
            }
        };
        let updated = on_db!(self.db(), |pool, dialect| {
            sqlx::query(
                "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
            )
            .bind(DbTime(now_us))
            .bind(token.id)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if updated == 0 {
            return Err(TokenError::UnknownToken(name.to_owned()));
        }
        Ok(TokenInfo {
            revoked_at_us: Some(now_us),
            ..token
        })
    }

    /// Revokes every token in use of the account with `email` (with a
    /// password reset after a leak: the tokens may have leaked too); returns
    /// how many were revoked. They stop working at once, as with
    /// [`Store::revoke_token`].
    pub async fn revoke_user_tokens(&self, email: &str, now_us: i64) -> Result<u64, TokenError> {
        let email = email.trim().to_lowercase();
        let (user, _) = self
            .user_by_email(&email)
            .await?
            .ok_or_else(|| TokenError::UnknownUser(email.clone()))?;
        Ok(on_db!(self.db(), |pool, dialect| {
            sqlx::query(
                "UPDATE api_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
            )
            .bind(DbTime(now_us))
            .bind(user.id)
            .execute(pool)
            .await?
            .rows_affected()
        }))
    }

    /// How many tokens of the account with `email` are in use.
    pub async fn active_token_count(&self, email: &str) -> Result<usize, TokenError> {
        Ok(self
            .list_tokens(Some(email))
            .await?
            .iter()
            .filter(|token| token.revoked_at_us.is_none())
            .count())
    }

    /// The user a token authenticates: `None` when the token is unknown or
    /// revoked, or its user is disabled. Records when it was used (at most
    /// once a minute per token).
    pub async fn user_by_token(
        &self,
        token: &str,
        now_us: i64,
    ) -> Result<Option<User>, TokenError> {
        let token = token.trim();
        if !token.starts_with(TOKEN_PREFIX) {
            return Ok(None);
        }
        let user_id = on_db!(self.db(), |pool, dialect| {
            let row = sqlx::query(
                "SELECT t.id AS token_id, t.user_id, t.last_used_at FROM api_tokens t
                 JOIN users u ON u.id = t.user_id
                 WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND u.disabled = false",
            )
            .bind(hash_token(token))
            .fetch_optional(pool)
            .await?;
            let Some(row) = row else {
                return Ok(None);
            };
            let token_id = row.uuid("token_id")?;
            let user_id = row.uuid("user_id")?;
            let last_used = row.opt_time("last_used_at")?;
            if last_used.is_none_or(|at| now_us - at >= LAST_USED_RESOLUTION_US) {
                sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
                    .bind(DbTime(now_us))
                    .bind(token_id)
                    .execute(pool)
                    .await?;
            }
            user_id
        });
        Ok(self
            .user_by_id(user_id)
            .await?
            .filter(|user| !user.disabled))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::{PasswordHasherPool, Role};
    use crate::store::test_database::TestDatabase;

    async fn store_with_users() -> (TestDatabase, Store) {
        let dir = TestDatabase::fresh().await;
        let store = Store::open(&dir.url).await.unwrap();
        let hash = PasswordHasherPool::default()
            .hash("a password long enough")
            .await
            .unwrap();
        for (email, role) in [("a@x.y", Role::Admin), ("v@x.y", Role::Viewer)] {
            store.create_user(email, &hash, role, 0).await.unwrap();
        }
        (dir, store)
    }

    #[test]
    fn tokens_are_prefixed_random_and_stored_as_their_hash() {
        let (one, two) = (generate_token(), generate_token());
        assert!(one.starts_with("cbi_") && one.len() == 4 + 43, "{one}");
        assert_ne!(one, two);
        assert_eq!(hash_token(&one).len(), 64);
        assert_ne!(hash_token(&one), hash_token(&two));
    }

    #[tokio::test]
    async fn a_token_authenticates_its_user_until_revoked() {
        let (_dir, store) = store_with_users().await;
        let (token, info) = store.create_token("V@x.y", "laptop", 10).await.unwrap();
        assert_eq!(info.email, "v@x.y");
        let user = store.user_by_token(&token, 20).await.unwrap().unwrap();
        assert_eq!(user.email, "v@x.y");
        assert_eq!(
            store.list_tokens(None).await.unwrap()[0].last_used_at_us,
            Some(20)
        );
        assert!(
            store
                .user_by_token("cbi_unknown", 20)
                .await
                .unwrap()
                .is_none()
        );
        assert!(store.user_by_token("", 20).await.unwrap().is_none());

        store.revoke_token(None, "laptop", 30).await.unwrap();
        assert!(store.user_by_token(&token, 40).await.unwrap().is_none());
        assert!(matches!(
            store.revoke_token(None, "laptop", 50).await,
            Err(TokenError::UnknownToken(_))
        ));
        // The name is free again.
        store.create_token("v@x.y", "laptop", 60).await.unwrap();
    }

    #[tokio::test]
    async fn names_are_unique_per_user_and_revoking_a_shared_name_needs_the_email() {
        let (_dir, store) = store_with_users().await;
        store.create_token("a@x.y", "ci", 1).await.unwrap();
        assert!(matches!(
            store.create_token("a@x.y", "ci", 2).await,
            Err(TokenError::DuplicateName(..))
        ));
        store.create_token("v@x.y", "ci", 3).await.unwrap();
        assert!(matches!(
            store.revoke_token(None, "ci", 4).await,
            Err(TokenError::Ambiguous(..))
        ));
        let revoked = store.revoke_token(Some("v@x.y"), "ci", 4).await.unwrap();
        assert_eq!(revoked.email, "v@x.y");
        assert!(matches!(
            store.create_token("nobody@x.y", "ci", 5).await,
            Err(TokenError::UnknownUser(_))
        ));
        assert!(matches!(
            store.create_token("a@x.y", " ", 5).await,
            Err(TokenError::InvalidName)
        ));
    }

    #[tokio::test]
    async fn every_token_of_one_account_can_be_revoked_at_once() {
        let (_dir, store) = store_with_users().await;
        let (laptop, _) = store.create_token("v@x.y", "laptop", 1).await.unwrap();
        let (ci, _) = store.create_token("v@x.y", "ci", 2).await.unwrap();
        let (other, _) = store.create_token("a@x.y", "ci", 3).await.unwrap();
        store.revoke_token(Some("v@x.y"), "ci", 4).await.unwrap();
        assert_eq!(store.active_token_count("V@x.y").await.unwrap(), 1);
        assert_eq!(store.revoke_user_tokens("V@x.y", 5).await.unwrap(), 1);
        assert_eq!(store.active_token_count("v@x.y").await.unwrap(), 0);
        for token in [&laptop, &ci] {
            assert!(store.user_by_token(token, 6).await.unwrap().is_none());
        }
        assert!(store.user_by_token(&other, 6).await.unwrap().is_some());
        assert!(matches!(
            store.revoke_user_tokens("nobody@x.y", 7).await,
            Err(TokenError::UnknownUser(_))
        ));
    }

    #[tokio::test]
    async fn a_disabled_users_tokens_stop_working() {
        let (_dir, store) = store_with_users().await;
        let (token, _) = store.create_token("v@x.y", "laptop", 1).await.unwrap();
        store.set_disabled("v@x.y", true, 2).await.unwrap();
        assert!(store.user_by_token(&token, 3).await.unwrap().is_none());
        store.set_disabled("v@x.y", false, 4).await.unwrap();
        assert!(store.user_by_token(&token, 5).await.unwrap().is_some());
    }
}
