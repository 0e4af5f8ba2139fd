//! Commands that work on the server's database beside it: `serve`,
//! `migrate`, `secret`, `admin`, `purge`, `export`.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

use inbox_core::accounts::{PasswordHasherPool, check_password};
use inbox_core::ingest::{ROTATION_GRACE_SECS, generate_secret, unix_micros};
use inbox_core::store::Store;
use inbox_server::config::{AdminCommand, Command, Config, SecretCommand};
use inbox_server::print_secret_banner;
use time::OffsetDateTime;

use super::output::TerminalText;

pub async fn run(command: Command, config: Config) -> Result<(), String> {
    match command {
        Command::Serve => inbox_server::run(config).await.map_err(|e| e.to_string()),
        Command::Migrate => {
            let applied = Store::migrate_only(&config.database_url)
                .await
                .map_err(|e| e.to_string())?;
            if applied.is_empty() {
                println!("database is up to date");
            }
            for migration in applied {
                println!("applied {migration}");
            }
            Ok(())
        }
        Command::Secret(command) => secret(command, &config).await,
        Command::Purge { older_than_days } => {
            let days = older_than_days.unwrap_or(config.retention_days);
            if days == 0 {
                return Err(
                    "retention is off (INBOX_RETENTION_DAYS=0); pass --older-than-days N"
                        .to_owned(),
                );
            }
            let store = open_store(&config).await?;
            let report = inbox_server::retention::purge(&store, days)
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "removed {} callbacks ({} views) and {} audit rows older than {days} days",
                report.callbacks, report.views, report.deliveries
            );
            Ok(())
        }
        Command::Export(args) => export(*args, &config).await,
        Command::Admin(command) => admin(command, &config).await,
        Command::Send(_)
        | Command::Listen(_)
        | Command::Replay(_)
        | Command::Token(_)
        | Command::Source(_) => Err("not a management command".to_owned()),
    }
}

/// Opens the database as the server does: owner-only files.
pub async fn open_store(config: &Config) -> Result<Store, String> {
    inbox_server::data_files::protect_sqlite_files(&config.database_url)
        .map_err(|e| e.to_string())?;
    Store::open(&config.database_url)
        .await
        .map_err(|e| e.to_string())
}

async fn admin(command: AdminCommand, config: &Config) -> Result<(), String> {
    let store = open_store(config).await?;
    let hasher = PasswordHasherPool::default();
    let now_us = unix_micros(OffsetDateTime::now_utc());
    match command {
        AdminCommand::Create { email, role } => {
            let password = read_password()?;
            let hash = hasher.hash(&password).await.map_err(|e| e.to_string())?;
            let user = store
                .create_user(&email, &hash, role, now_us)
                .await
                .map_err(|e| e.to_string())?;
            println!("created {} ({})", user.email, user.role.as_str());
        }
        AdminCommand::ResetPassword {
            email,
            revoke_tokens,
        } => {
            let password = read_password()?;
            let hash = hasher.hash(&password).await.map_err(|e| e.to_string())?;
            let user = store
                .set_password(&email, &hash, now_us)
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "password of {} changed; their sessions have ended",
                TerminalText(&user.email)
            );
            // A token is not a session: it outlives the password unless
            // revoked, so say which it is.
            if revoke_tokens {
                let revoked = store
                    .revoke_user_tokens(&user.email, now_us)
                    .await
                    .map_err(|e| {
                        format!("the password was changed, but the tokens were not revoked: {e}")
                    })?;
                println!("{}", tokens_revoked_text(revoked));
            } else {
                let active = store
                    .active_token_count(&user.email)
                    .await
                    .map_err(|e| e.to_string())?;
                println!("{}", tokens_still_work_text(active));
            }
        }
        AdminCommand::List => {
            for user in store.list_users().await.map_err(|e| e.to_string())? {
                let state = if user.disabled { "disabled" } else { "active" };
                println!(
                    "{}\t{}\t{state}",
                    TerminalText(&user.email),
                    user.role.as_str()
                );
            }
        }
        AdminCommand::Disable { email } => {
            let user = store
                .set_disabled(&email, true, now_us)
                .await
                .map_err(|e| e.to_string())?;
            println!("disabled {}; their sessions have ended", user.email);
        }
        AdminCommand::Enable { email } => {
            let user = store
                .set_disabled(&email, false, now_us)
                .await
                .map_err(|e| e.to_string())?;
            println!("enabled {}", user.email);
        }
        AdminCommand::SetRole { email, role } => {
            let user = store
                .set_role(&email, role)
                .await
                .map_err(|e| e.to_string())?;
            println!("{} is now {}", user.email, user.role.as_str());
        }
    }
    Ok(())
}

async fn export(args: inbox_server::config::ExportArgs, config: &Config) -> Result<(), String> {
    use app::callbacks::server::HistoryQuery;
    use inbox_server::export::{ExportFormat, export_to};

    let format = ExportFormat::parse(&args.format).ok_or("--format must be ndjson, json or csv")?;
    let store = open_store(config).await?;
    let user = match &args.email {
        Some(email) => {
            store
                .user_by_email(&email.trim().to_lowercase())
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no account with the email {email:?}"))?
                .0
                .id
        }
        None => uuid::Uuid::nil(),
    };
    let filter = HistoryQuery {
        source: args.source,
        group: args.group,
        event_type: args.event_type,
        workflow_name: args.workflow_name,
        signature_valid: args.signature_valid,
        viewed: args.viewed,
        from: args.from,
        to: args.to,
        q: args.q,
    }
    .into_filter()
    .map_err(|e| e.to_string())?;
    let written = match &args.output {
        Some(path) => {
            let file = create_export_file(path, args.force)?;
            let mut out = std::io::BufWriter::new(file);
            export_to(store.clone(), user, filter, format, &mut out).await
        }
        None => {
            let mut out = std::io::BufWriter::new(std::io::stdout());
            export_to(store.clone(), user, filter, format, &mut out).await
        }
    }
    .map_err(|e| e.to_string())?;
    tracing::info!(bytes = written, "export written");
    Ok(())
}

fn tokens_revoked_text(revoked: u64) -> String {
    match revoked {
        0 => "no API tokens to revoke".to_owned(),
        1 => "revoked 1 API token".to_owned(),
        n => format!("revoked {n} API tokens"),
    }
}

fn tokens_still_work_text(active: usize) -> String {
    match active {
        0 => "no API tokens".to_owned(),
        1 => "1 API token still works; pass --revoke-tokens to revoke it".to_owned(),
        n => format!("{n} API tokens still work; pass --revoke-tokens to revoke them"),
    }
}

/// The export's file: created new, readable by its owner only (it holds
/// every payload), never through a symbolic link. An existing file (or
/// link) is refused, or with `force` removed first (a link itself, not
/// what it points to) and the file created new in its place.
fn create_export_file(path: &Path, force: bool) -> Result<File, String> {
    let create = || {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
        }
        options.open(path)
    };
    let shown = TerminalText(&path.display().to_string()).to_string();
    match create() {
        Ok(file) => Ok(file),
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists && force => {
            let existing = std::fs::symlink_metadata(path)
                .map_err(|e| format!("cannot replace {shown}: {e}"))?;
            if existing.is_dir() {
                return Err(format!("{shown} is a folder; --output takes a file"));
            }
            std::fs::remove_file(path).map_err(|e| format!("cannot replace {shown}: {e}"))?;
            // If something appears there again meanwhile, this fails.
            create().map_err(|e| format!("cannot create {shown}: {e}"))
        }
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Err(format!(
            "{shown} exists already; nothing was written (pass --force to replace it)"
        )),
        Err(err) => Err(format!("cannot create {shown}: {err}")),
    }
}

/// From a no-echo prompt on a terminal, else the first line of stdin.
fn read_password() -> Result<String, String> {
    use std::io::IsTerminal;
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password (at least 12 characters): ")
            .map_err(|e| e.to_string())?;
        let again = rpassword::prompt_password("Again: ").map_err(|e| e.to_string())?;
        if first != again {
            return Err("the passwords differ".to_owned());
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    check_password(&password).map_err(|e| e.to_string())?;
    Ok(password)
}

async fn secret(command: SecretCommand, config: &Config) -> Result<(), String> {
    if config.webhook_secret.is_some() || config.webhook_secrets_file.is_some() {
        return Err(
            "LLM_WEBHOOK_SECRET or LLM_WEBHOOK_SECRETS_FILE is set, so those secrets are in use; change them where they are configured"
                .to_owned(),
        );
    }
    let store = open_store(config).await?;
    let now_us = unix_micros(OffsetDateTime::now_utc());
    match command {
        SecretCommand::Show => {
            let secrets = store
                .generated_secrets(now_us)
                .await
                .map_err(|e| e.to_string())?;
            let Some(newest) = secrets.first() else {
                return Err("no secret yet: start the server once and it generates one".to_owned());
            };
            print_secret_banner("Webhook secret", &newest.secret, &config.base_url());
            for older in &secrets[1..] {
                let expires = older.expires_at_us.unwrap_or_default() / 1_000_000;
                println!("also valid until unix time {expires}: {}", older.secret);
            }
        }
        SecretCommand::Rotate => {
            let secret = generate_secret();
            store
                .add_generated_secret(&secret, now_us, ROTATION_GRACE_SECS * 1_000_000)
                .await
                .map_err(|e| e.to_string())?;
            print_secret_banner(
                "New webhook secret (the previous one stays valid for 24 hours)",
                &secret,
                &config.base_url(),
            );
        }
    }
    store.flush().await.map_err(|e| e.to_string())
}
