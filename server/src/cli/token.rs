//! `callback-inbox token create|list|revoke`: API tokens, on the server's
//! database (like `admin`). A token reads as its account (poll, stream,
//! detail, history, export, deliveries) and can change nothing.

use inbox_core::ingest::unix_micros;
use inbox_server::config::{Config, TokenCommand};
use time::OffsetDateTime;

use super::manage::open_store;
use super::output::{TerminalText, rfc3339};

pub async fn run(command: TokenCommand, config: &Config) -> Result<(), String> {
    let store = open_store(config).await?;
    let now_us = unix_micros(OffsetDateTime::now_utc());
    match command {
        TokenCommand::Create { email, name } => {
            let (token, info) = store
                .create_token(&email, &name, now_us)
                .await
                .map_err(|e| e.to_string())?;
            // The token alone on stdout, so `TOKEN=$(… token create …)` works.
            eprintln!(
                "token {:?} for {} (read-only; shown once, store it now; revoke with `callback-inbox token revoke --name {}`):",
                info.name,
                TerminalText(&info.email),
                TerminalText(&shell_word(&info.name))
            );
            println!("{token}");
        }
        TokenCommand::List { email } => {
            let tokens = store
                .list_tokens(email.as_deref())
                .await
                .map_err(|e| e.to_string())?;
            if tokens.is_empty() {
                eprintln!("no tokens");
            }
            for token in tokens {
                let last_used = token
                    .last_used_at_us
                    .map_or_else(|| "never".to_owned(), time_text);
                let state = token.revoked_at_us.map_or_else(
                    || "active".to_owned(),
                    |at| format!("revoked {}", time_text(at)),
                );
                println!(
                    "{}\t{}\tcreated {}\tlast used {last_used}\t{state}",
                    TerminalText(&token.email),
                    TerminalText(&token.name),
                    time_text(token.created_at_us)
                );
            }
        }
        TokenCommand::Revoke { name, email } => {
            let token = store
                .revoke_token(email.as_deref(), &name, now_us)
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "revoked token {:?} of {}",
                token.name,
                TerminalText(&token.email)
            );
        }
    }
    Ok(())
}

fn time_text(at_us: i64) -> String {
    inbox_core::micros::checked_time_of(at_us)
        .map(rfc3339)
        .unwrap_or_default()
}

/// `name`, quoted when a shell would split it.
fn shell_word(name: &str) -> String {
    if name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
    {
        name.to_owned()
    } else {
        format!("'{}'", name.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_quoted_for_the_shell_when_needed() {
        assert_eq!(shell_word("laptop-2"), "laptop-2");
        assert_eq!(shell_word("my laptop"), "'my laptop'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
    }
}
