//! API tokens on the Settings page: read-only access for scripts and the
//! `callback-inbox listen` and `replay` commands (`Authorization: Bearer`).
//!
//! Every server function here starts with `require_user(Role::Admin)`. No
//! answer carries a token's hash; the one token that leaves the server is a
//! new one, once, to the admin who created it.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::AppError;

/// One token as the Settings page lists it: never the token or its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenSummary {
    /// The account the token reads as.
    pub email: String,
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

/// A new token, shown once to the admin who created it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewToken {
    pub name: String,
    pub token: String,
}

/// Every account's tokens, oldest first, revoked ones included.
#[server(prefix = "/api", endpoint = "admin/tokens")]
pub async fn list_tokens() -> Result<Vec<TokenSummary>, AppError> {
    use self::server::*;
    require_user(Role::Admin).await?;
    let tokens = store()?.list_tokens(None).await.map_err(token_error)?;
    Ok(tokens.into_iter().map(token_summary).collect())
}

/// Creates a token named `name` for the signed-in admin's own account.
#[server(prefix = "/api", endpoint = "admin/tokens/create")]
pub async fn create_token(name: String) -> Result<NewToken, AppError> {
    use self::server::*;
    let admin = require_user(Role::Admin).await?;
    let (token, info) = store()?
        .create_token(&admin.email, &name, now_us())
        .await
        .map_err(token_error)?;
    tracing::info!(admin = %admin.email, name = %LogText::new(&info.name), "API token created");
    Ok(NewToken {
        name: info.name,
        token,
    })
}

/// Revokes the active token `name` of the account with `email`.
#[server(prefix = "/api", endpoint = "admin/tokens/revoke")]
pub async fn revoke_token(email: String, name: String) -> Result<TokenSummary, AppError> {
    use self::server::*;
    let admin = require_user(Role::Admin).await?;
    let info = store()?
        .revoke_token(Some(&email), &name, now_us())
        .await
        .map_err(token_error)?;
    tracing::info!(
        admin = %admin.email,
        user = %LogText::new(&info.email),
        name = %LogText::new(&info.name),
        "API token revoked"
    );
    Ok(token_summary(info))
}

#[cfg(feature = "ssr")]
pub mod server {
    pub use crate::auth::server::require_user;
    pub use crate::callbacks::server::{now_us, store};
    pub use inbox_core::accounts::Role;
    pub use inbox_core::log_text::LogText;

    use inbox_core::tokens::{TokenError, TokenInfo};
    use time::OffsetDateTime;

    use super::TokenSummary;
    use crate::error::AppError;

    /// What the admin can fix is a 400 or 404 with the store's message; the
    /// rest is logged and hidden.
    pub fn token_error(err: TokenError) -> AppError {
        match err {
            TokenError::UnknownUser(_) | TokenError::UnknownToken(_) => {
                AppError::NotFound(err.to_string())
            }
            TokenError::DuplicateName(..) | TokenError::InvalidName | TokenError::Ambiguous(..) => {
                AppError::BadRequest(err.to_string())
            }
            TokenError::Account(_) | TokenError::Store(_) => AppError::internal(err),
        }
    }

    fn time_of(micros: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    pub fn token_summary(info: TokenInfo) -> TokenSummary {
        TokenSummary {
            email: info.email,
            name: info.name,
            created_at: time_of(info.created_at_us),
            last_used_at: info.last_used_at_us.map(time_of),
            revoked_at: info.revoked_at_us.map(time_of),
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn token_errors_get_the_status_an_admin_can_act_on() {
            let status = |err| token_error(err).status_code();
            assert_eq!(status(TokenError::UnknownUser("a@b".into())), 404);
            assert_eq!(status(TokenError::UnknownToken("ci".into())), 404);
            assert_eq!(
                status(TokenError::DuplicateName("a@b".into(), "ci".into())),
                400
            );
            assert_eq!(status(TokenError::InvalidName), 400);
            assert_eq!(
                status(TokenError::Ambiguous("ci".into(), "a, b".into())),
                400
            );
        }

        #[test]
        fn summaries_carry_rfc3339_times() {
            let summary = token_summary(TokenInfo {
                id: uuid::Uuid::nil(),
                email: "a@b.c".into(),
                name: "ci".into(),
                created_at_us: 1_700_000_000_000_000,
                last_used_at_us: None,
                revoked_at_us: Some(1_700_000_060_000_000),
            });
            let json = serde_json::to_value(&summary).unwrap();
            assert_eq!(json["created_at"], "2023-11-14T22:13:20Z");
            assert!(json["last_used_at"].is_null());
            assert_eq!(json["revoked_at"], "2023-11-14T22:14:20Z");
            assert_eq!(json.as_object().unwrap().len(), 5);
        }
    }
}
