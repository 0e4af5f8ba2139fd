//! Configuration: command-line flags with equal environment variables
//! (docs/operations.md, "Configuration"). A `.env` file is read first by
//! `main`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use inbox_core::ingest::SignatureMode;

#[derive(Debug, Parser)]
#[command(
    name = "callback-inbox",
    version,
    about = "Receives signed webhook callbacks from LLM job services and shows them live to admins."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Show or rotate the generated webhook secret.
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Manage admin accounts.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Delete callbacks (with their views) and audit rows older than the
    /// retention now, and print what was removed.
    Purge {
        /// Defaults to INBOX_RETENTION_DAYS.
        #[arg(long)]
        older_than_days: Option<u64>,
    },
    /// Write callbacks to stdout (or --output) as NDJSON, JSON or CSV.
    #[command(
        after_help = "Examples:\n  callback-inbox export --format csv --event-type workflow.failed > failed.csv\n  callback-inbox export --format json --from 2026-11-01 --output november.json"
    )]
    Export(Box<ExportArgs>),
    /// Sign and POST a JSON callback to a webhook URL, with retries and a
    /// spool for what cannot be delivered now.
    #[command(after_help = SEND_HELP)]
    Send(Box<SendArgs>),
    /// Follow an inbox's live feed and forward each new callback to a URL
    /// on this machine.
    #[command(after_help = LISTEN_HELP)]
    Listen(Box<ListenArgs>),
    /// Forward one stored callback, byte for byte, to a URL on this machine.
    #[command(after_help = REPLAY_HELP)]
    Replay(Box<ReplayArgs>),
    /// Manage API tokens (read-only access for scripts, `listen` and `replay`).
    #[command(subcommand, after_help = TOKEN_HELP)]
    Token(TokenCommand),
    /// Manage sources: the senders the inbox accepts, each at its own URL
    /// with its own secrets and field mapping.
    #[command(subcommand, after_help = SOURCE_HELP)]
    Source(SourceCommand),
}

const SEND_HELP: &str = "\
Exit codes:
  0   delivered (2xx)
  1   not sent or refused for good: bad input, no secret, or a 4xx other than 408/429
  75  not delivered yet: kept in the spool for `send --flush`

The secret is best given as LLM_WEBHOOK_SECRET (in the environment, or in a
.env file of the folder it runs in): a --secret value is visible to every
user of the machine in `ps`.

Examples:
  export LLM_WEBHOOK_SECRET=...              # or whsec_... for --scheme standard
  callback-inbox send done.json --url https://inbox.example.com/api/webhooks/llm-callback
  echo '{\"job_id\":\"j1\",\"event\":\"workflow.completed\"}' | callback-inbox send - --url \"$URL\"
  callback-inbox send done.json --url \"$URL\" --scheme standard
  callback-inbox send --list                 # what waits in ./spool, and why
  callback-inbox send --flush --due          # from cron: retry what is due
  */5 * * * *  cd /srv/app && callback-inbox send --flush --due --quiet   # LLM_WEBHOOK_SECRET in /srv/app/.env (mode 600)

As a Claude Code command hook (`callback-inbox source hooks --through-cli` prints the block):
  callback-inbox send --hook --url https://inbox.example.com/api/webhooks/claude-code
reads the hook's event from stdin and sends it with `Authorization: Bearer
$CALLBACK_INBOX_TOKEN`; prints nothing, always exits 0, keeps what it could not
deliver (in $XDG_STATE_HOME/callback-inbox/hook-spool) and sends it with a later event.";

const LISTEN_HELP: &str = "\
The token and the secret are best given as INBOX_TOKEN and
INBOX_FORWARD_SECRET: values of --token and --secret are visible to every
user of the machine in `ps`.

Examples:
  callback-inbox token create --email me@example.com --name laptop     # on the inbox's host
  export INBOX_TOKEN=cbi_... INBOX_FORWARD_SECRET=dev-secret-0123456789
  callback-inbox listen --server https://inbox.example.com --forward http://localhost:8080/webhooks/llm
  callback-inbox listen --server \"$INBOX\" --forward http://localhost:8080/hook --json | jq .";

const TOKEN_HELP: &str = "\
A token reads as its account (poll, stream, detail, history, export, deliveries)
and can change nothing. Send it as `Authorization: Bearer <token>`.

Examples:
  TOKEN=$(callback-inbox token create --email me@example.com --name laptop)
  curl -H \"Authorization: Bearer $TOKEN\" -d q=job_8f2c https://inbox.example.com/api/callbacks/history
  callback-inbox token list
  callback-inbox token revoke --name laptop";

const REPLAY_HELP: &str = "\
The token and the secret are best given as INBOX_TOKEN and
INBOX_FORWARD_SECRET: values of --token and --secret are visible to every
user of the machine in `ps`.

Examples:
  export INBOX_TOKEN=cbi_... INBOX_FORWARD_SECRET=dev-secret-0123456789
  callback-inbox replay 0193b0c4-... --server https://inbox.example.com --to http://localhost:8080/webhooks/llm";

const SOURCE_HELP: &str = "\
These run beside the server, on its database (DATABASE_URL); a running server
sees a change within a second. A secret is shown once, alone on stdout.

Presets: llm-callback, openai, replicate, github, stripe, claude-code, generic.
A rule (--id-from, --group-from, …) is a list of places tried in order:
header:<Name>, json:<pointer>, several joined by + (json:/job_id+json:/event),
and for ids sha256; an empty value returns the rule to the preset's.

Examples:
  SECRET=$(callback-inbox source create --name ci --preset github)
  callback-inbox source create --name agent --preset claude-code
  callback-inbox source list --json | jq '.items[] | {name, url}'
  callback-inbox source set --name ci --group-from json:/workflow_run/id
  callback-inbox source rotate --name ci          # the old secret works 24 h more
  callback-inbox source disable --name ci         # its URL answers 404
  callback-inbox source hooks --name agent --url https://inbox.example.com";

/// How `send` signs a callback.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum SendScheme {
    /// `X-Webhook-Signature: sha256=<hex HMAC-SHA256 of the body>`.
    Hex,
    /// Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`.
    Standard,
    /// `send --hook`: `Authorization: Bearer $CALLBACK_INBOX_TOKEN` and an
    /// `Idempotency-Key` of the body. Not a `--scheme`: only `--hook` sends so.
    #[value(skip)]
    Bearer,
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// The JSON object to send: a file, or - for stdin (the default when
    /// stdin is not a terminal).
    #[arg(value_name = "FILE|-", conflicts_with_all = ["flush", "list"])]
    pub file: Option<PathBuf>,
    /// Run as a Claude Code command hook: the event is read from stdin and
    /// sent with `Authorization: Bearer $CALLBACK_INBOX_TOKEN`, once, within
    /// --timeout; kept in the spool when not delivered and sent by a later
    /// hook. Prints nothing on stdout and always exits 0.
    #[arg(
        long,
        requires = "url",
        conflicts_with_all = ["file", "flush", "list", "secret", "scheme", "attempts"]
    )]
    pub hook: bool,
    /// The webhook URL. With --flush: send every spooled callback there
    /// instead of to the URL it was sent to.
    #[arg(long)]
    pub url: Option<String>,
    /// The webhook secret [default: $LLM_WEBHOOK_SECRET, its last entry
    /// when comma-separated; prefer it: a --secret value shows in `ps`].
    /// Never written to the spool.
    #[arg(long)]
    pub secret: Option<String>,
    #[arg(long, value_enum, default_value = "hex")]
    pub scheme: SendScheme,
    /// Where undelivered callbacks wait, one file each [default: ./spool;
    /// with --hook: $XDG_STATE_HOME/callback-inbox/hook-spool, else
    /// ~/.local/state/callback-inbox/hook-spool].
    #[arg(long, env = "INBOX_SPOOL")]
    pub spool: Option<PathBuf>,
    /// Most attempts before a callback is left in the spool.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub attempts: u32,
    /// Seconds one request may take, connecting included [default: 30].
    /// With --hook: seconds the whole run may take, the flush of what
    /// waits included [default: 3].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: Option<u64>,
    /// Send every spooled callback again; each is removed after its 2xx.
    #[arg(long, conflicts_with = "list")]
    pub flush: bool,
    /// With --flush: only the callbacks whose backoff has elapsed.
    #[arg(long, requires = "flush")]
    pub due: bool,
    /// Show what waits in the spool, and why.
    #[arg(long)]
    pub list: bool,
    /// With --list: one JSON object a line.
    #[arg(long, requires = "list")]
    pub json: bool,
    /// Print only errors.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct ListenArgs {
    /// The inbox, e.g. https://inbox.example.com.
    #[arg(long, env = "INBOX_SERVER")]
    pub server: String,
    /// An API token (`callback-inbox token create`).
    #[arg(long, env = "INBOX_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Where each new callback is POSTed.
    #[arg(long)]
    pub forward: String,
    /// Sign each forwarded body with this secret's bytes
    /// (`X-Webhook-Signature: sha256=<hex>`).
    #[arg(long, env = "INBOX_FORWARD_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// One JSON object a line instead of text.
    #[arg(long)]
    pub json: bool,
    /// No status line or connection messages: only the forwards and errors.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The callback's id (as in the dashboard, `listen` or the export).
    pub id: uuid::Uuid,
    /// The inbox, e.g. https://inbox.example.com.
    #[arg(long, env = "INBOX_SERVER")]
    pub server: String,
    /// An API token (`callback-inbox token create`).
    #[arg(long, env = "INBOX_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Where the callback is POSTed.
    #[arg(long)]
    pub to: String,
    /// Sign the body with this secret's bytes (`X-Webhook-Signature: sha256=<hex>`).
    #[arg(long, env = "INBOX_FORWARD_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

impl SendArgs {
    /// `--timeout`, or its default: 30 s a request, or 3 s for a whole hook.
    pub fn timeout_secs(&self) -> u64 {
        self.timeout.unwrap_or(if self.hook { 3 } else { 30 })
    }
}

#[derive(Debug, Subcommand)]
pub enum SourceCommand {
    /// Create a source; its secret (given, else generated) is printed once,
    /// alone on stdout.
    Create {
        /// Lower-case letters, digits and dashes (its URL is
        /// /api/webhooks/NAME).
        #[arg(long)]
        name: String,
        /// llm-callback, openai, replicate, github, stripe, claude-code or
        /// generic: the schemes and mapping it starts with.
        #[arg(long)]
        preset: String,
        /// The secret its sender already has (else one is generated). A value
        /// here is visible to every user of the machine in `ps`.
        #[arg(long)]
        secret: Option<String>,
        /// Token scheme: the header that carries the token [default:
        /// Authorization: Bearer].
        #[arg(long)]
        token_header: Option<String>,
        #[command(flatten)]
        rules: RuleArgs,
    },
    /// List sources: URL, state, secrets (masked), traffic of the last 24 h.
    List {
        /// `{"items":[…]}`, as the admin API's list.
        #[arg(long)]
        json: bool,
    },
    /// Add a new secret, printed once; the previous ones stay valid 24 hours.
    Rotate {
        #[arg(long)]
        name: String,
        /// The new secret when the provider issued it (Stripe, OpenAI and
        /// Replicate roll their own); else one is generated.
        #[arg(long)]
        secret: Option<String>,
    },
    /// Stop accepting a source's callbacks: its URL answers 404.
    Disable {
        #[arg(long)]
        name: String,
    },
    /// Accept a disabled source's callbacks again.
    Enable {
        #[arg(long)]
        name: String,
    },
    /// Change a source's mapping rules, signature mode or token header.
    Set {
        #[arg(long)]
        name: String,
        #[command(flatten)]
        rules: RuleArgs,
        /// enforce: refuse a bad signature (401); flag: store it marked invalid.
        #[arg(long, value_parser = ["enforce", "flag"])]
        mode: Option<String>,
        /// Token scheme: the header that carries the token (empty: back to
        /// Authorization: Bearer).
        #[arg(long)]
        token_header: Option<String>,
    },
    /// Print the `hooks` block of Claude Code's settings.json for a source
    /// (the seven events it captures). Reads no database.
    Hooks {
        #[arg(long)]
        name: String,
        /// The inbox's public base URL, e.g. https://inbox.example.com.
        #[arg(long)]
        url: String,
        /// Hooks that run `callback-inbox send --hook` (which keeps what it
        /// cannot deliver and sends it later) instead of HTTP hooks.
        #[arg(long)]
        through_cli: bool,
    },
}

/// Mapping rules, as `source create` and `source set` take them: each a
/// list of places tried in order; an empty value returns a rule to the
/// preset's.
#[derive(Debug, Clone, Default, Args)]
pub struct RuleArgs {
    /// The delivery id, e.g. header:webhook-id,json:/job_id+json:/event,sha256.
    #[arg(long, value_name = "RULE")]
    pub id_from: Option<String>,
    /// The job or session a callback belongs to, e.g. json:/session_id.
    #[arg(long, value_name = "RULE")]
    pub group_from: Option<String>,
    #[arg(long, value_name = "RULE")]
    pub event_from: Option<String>,
    #[arg(long, value_name = "RULE")]
    pub workflow_from: Option<String>,
    #[arg(long, value_name = "RULE")]
    pub error_from: Option<String>,
}

impl RuleArgs {
    pub fn is_empty(&self) -> bool {
        self.id_from.is_none()
            && self.group_from.is_none()
            && self.event_from.is_none()
            && self.workflow_from.is_none()
            && self.error_from.is_none()
    }
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token for an account and print it (the only time it is shown).
    Create {
        #[arg(long)]
        email: String,
        /// A name to tell it apart, unique among the account's tokens.
        #[arg(long)]
        name: String,
    },
    /// List tokens: account, name, when created and last used, state.
    List {
        /// Only this account's tokens.
        #[arg(long)]
        email: Option<String>,
    },
    /// Revoke a token by name; it stops working at once.
    Revoke {
        #[arg(long)]
        name: String,
        /// Whose token, when several accounts use the name.
        #[arg(long)]
        email: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// ndjson (one record a line), json (an array) or csv.
    #[arg(long, default_value = "ndjson")]
    pub format: String,
    /// Write here instead of stdout: a new file, readable by its owner only
    /// (0600). An existing one is refused unless --force.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// With --output: replace an existing file (a symbolic link there is
    /// replaced, never followed).
    #[arg(long, requires = "output")]
    pub force: bool,
    /// Whose viewed state the `viewed` column and --viewed use.
    #[arg(long)]
    pub email: Option<String>,
    /// Only callbacks of this source.
    #[arg(long)]
    pub source: Option<String>,
    /// Only callbacks of this job or session.
    #[arg(long)]
    pub group: Option<String>,
    #[arg(long)]
    pub event_type: Option<String>,
    #[arg(long)]
    pub workflow_name: Option<String>,
    #[arg(long)]
    pub signature_valid: Option<String>,
    #[arg(long)]
    pub viewed: Option<String>,
    /// A date (whole day, UTC) or an RFC 3339 time.
    #[arg(long)]
    pub from: Option<String>,
    #[arg(long)]
    pub to: Option<String>,
    /// Text searched in the job id and error message.
    #[arg(long)]
    pub q: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an account; the password is read from stdin (or a no-echo prompt).
    Create {
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "admin")]
        role: inbox_core::accounts::Role,
    },
    /// Set a new password, read from stdin (or a no-echo prompt); the
    /// account's sessions end. Its API tokens keep working unless
    /// --revoke-tokens.
    ResetPassword {
        #[arg(long)]
        email: String,
        /// Also revoke every API token of the account (a reset after a
        /// leak: the tokens may have leaked too).
        #[arg(long)]
        revoke_tokens: bool,
    },
    /// List accounts.
    List,
    /// Disable an account; its sessions end at once.
    Disable {
        #[arg(long)]
        email: String,
    },
    /// Enable a disabled account again.
    Enable {
        #[arg(long)]
        email: String,
    },
    /// Change the role of an account (admin or viewer).
    SetRole {
        #[arg(long)]
        email: String,
        #[arg(long)]
        role: inbox_core::accounts::Role,
    },
}

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Print the active webhook secrets and a signed curl example.
    Show,
    /// Generate a new secret; the previous one stays valid for 24 hours.
    Rotate,
}

/// Everything the server can be told. Each flag has an equal environment variable.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Server options")]
pub struct Config {
    /// Database: sqlite://path/to/file.db (created when missing).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://data/callback-inbox.db",
        global = true
    )]
    pub database_url: String,

    /// Address to listen on.
    #[arg(
        long,
        env = "LEPTOS_SITE_ADDR",
        default_value = "127.0.0.1:3000",
        global = true
    )]
    pub site_addr: SocketAddr,

    /// Folder with the built site (pkg/ bundle, CSS, assets). Default: next to the
    /// executable (`site/` or `../site/`), else ./target/site.
    #[arg(long, env = "LEPTOS_SITE_ROOT", global = true)]
    pub site_root: Option<PathBuf>,

    /// Name of the JS/WASM/CSS bundle inside the site's pkg folder.
    #[arg(
        long,
        env = "LEPTOS_OUTPUT_NAME",
        default_value = "callback-inbox",
        global = true
    )]
    pub output_name: String,

    /// Folder of the bundle inside the site root.
    #[arg(
        long,
        env = "LEPTOS_SITE_PKG_DIR",
        default_value = "pkg",
        global = true
    )]
    pub site_pkg_dir: String,

    /// Webhook HMAC secret(s), comma-separated for rotation; `whsec_…` values are
    /// base64-decoded (Standard Webhooks). Unset: one is generated and stored.
    #[arg(
        long,
        env = "LLM_WEBHOOK_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub webhook_secret: Option<String>,

    /// A file with one webhook secret per line (any characters, commas
    /// included), used beside --webhook-secret.
    #[arg(long, env = "LLM_WEBHOOK_SECRETS_FILE", global = true)]
    pub webhook_secrets_file: Option<PathBuf>,

    /// `enforce`: reject missing/invalid signatures with 401; `flag`: store them marked invalid.
    #[arg(
        long,
        env = "INBOX_SIGNATURE_MODE",
        default_value = "enforce",
        global = true
    )]
    pub signature_mode: SignatureMode,

    /// Largest accepted webhook body in bytes (413 above).
    #[arg(
        long,
        env = "INBOX_MAX_BODY_BYTES",
        default_value_t = 1_048_576,
        global = true
    )]
    pub max_body_bytes: usize,

    /// Standard Webhooks timestamp tolerance in seconds.
    #[arg(
        long,
        env = "INBOX_TIMESTAMP_TOLERANCE_SECS",
        default_value_t = 300,
        global = true
    )]
    pub timestamp_tolerance_secs: u64,

    /// Dashboard poll period in seconds.
    #[arg(
        long,
        env = "INBOX_POLL_INTERVAL_SECS",
        default_value_t = 10,
        global = true
    )]
    pub poll_interval_secs: u64,

    /// Create this admin at start-up when no such account exists (with
    /// --admin-password); an existing account is left alone.
    #[arg(long, env = "INBOX_ADMIN_EMAIL", global = true)]
    pub admin_email: Option<String>,

    /// Password for --admin-email (at least 12 characters).
    #[arg(
        long,
        env = "INBOX_ADMIN_PASSWORD",
        hide_env_values = true,
        global = true
    )]
    pub admin_password: Option<String>,

    /// Mark cookies Secure and send HSTS (set when served over HTTPS).
    #[arg(
        long,
        env = "INBOX_SECURE_COOKIES",
        default_value_t = false,
        global = true
    )]
    pub secure_cookies: bool,

    /// The dashboard's public origin (e.g. https://inbox.example.com), accepted
    /// by the cross-origin check besides the request's own, and the base of
    /// the URLs shown for sources and in examples.
    #[arg(long, env = "INBOX_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,

    /// Session idle expiry in seconds.
    #[arg(
        long,
        env = "INBOX_SESSION_IDLE_SECS",
        default_value_t = 43_200,
        global = true
    )]
    pub session_idle_secs: u64,

    /// Session absolute expiry in seconds.
    #[arg(
        long,
        env = "INBOX_SESSION_MAX_SECS",
        default_value_t = 604_800,
        global = true
    )]
    pub session_max_secs: u64,

    /// Callbacks, their views and audit rows older than this many days are
    /// deleted by a background task (0 keeps everything).
    #[arg(
        long,
        env = "INBOX_RETENTION_DAYS",
        default_value_t = 30,
        global = true
    )]
    pub retention_days: u64,

    /// When set, `GET /metrics` needs `Authorization: Bearer <this token>`.
    #[arg(
        long,
        env = "INBOX_METRICS_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub metrics_token: Option<String>,

    /// A client must send its request headers within this time, and a
    /// kept-alive connection is closed after being idle this long.
    #[arg(
        long,
        env = "INBOX_HEADER_TIMEOUT_SECS",
        default_value_t = 30,
        global = true
    )]
    pub header_timeout_secs: u64,

    /// A webhook body must arrive whole within this time (408 otherwise);
    /// every other request body must keep arriving (no gap this long).
    #[arg(
        long,
        env = "INBOX_BODY_TIMEOUT_SECS",
        default_value_t = 60,
        global = true
    )]
    pub body_timeout_secs: u64,

    /// Most bytes of webhook bodies held in memory by all requests together;
    /// beyond it requests get 503 with Retry-After.
    #[arg(
        long,
        env = "INBOX_MAX_INFLIGHT_BODY_BYTES",
        default_value_t = 64 * 1_048_576,
        global = true
    )]
    pub max_inflight_body_bytes: usize,

    /// A response write that makes no progress for this long closes the
    /// connection (a client that stopped reading an export or a stream).
    #[arg(
        long,
        env = "INBOX_WRITE_TIMEOUT_SECS",
        default_value_t = 30,
        global = true
    )]
    pub write_timeout_secs: u64,

    /// Most open connections in all (default: what the open-file limit
    /// allows, less a reserve); over it, the oldest idle one is closed.
    #[arg(long, env = "INBOX_MAX_CONNECTIONS", global = true)]
    pub max_connections: Option<usize>,

    /// Most open connections of one client address (IPv6: one /64);
    /// trusted proxies are exempt. Over it, that address's oldest idle one
    /// is closed.
    #[arg(
        long,
        env = "INBOX_MAX_CONNECTIONS_PER_ADDRESS",
        default_value_t = 512,
        global = true
    )]
    pub max_connections_per_address: usize,

    /// Most live streams (`/api/callbacks/stream`) one user may hold open
    /// on one node; the next one gets 429.
    #[arg(
        long,
        env = "INBOX_MAX_STREAMS_PER_USER",
        default_value_t = 10,
        global = true
    )]
    pub max_streams_per_user: usize,

    /// Delay after the first failed sign-in, doubling per failure (0 disables).
    #[arg(
        long,
        env = "INBOX_LOGIN_DELAY_MS",
        default_value_t = 250,
        global = true
    )]
    pub login_delay_ms: u64,

    /// Cap of the failed sign-in delay.
    #[arg(
        long,
        env = "INBOX_LOGIN_MAX_DELAY_MS",
        default_value_t = 3_000,
        global = true
    )]
    pub login_max_delay_ms: u64,

    /// Mount `POST /bench/noop` (reads the body, answers 200): the ceiling the
    /// webhook benchmark compares against. Never needed in production.
    #[arg(
        long,
        env = "INBOX_BENCH_NOOP_ROUTE",
        default_value_t = false,
        hide = true,
        global = true
    )]
    pub bench_noop_route: bool,

    /// Addresses whose X-Forwarded-For header is believed (comma-separated IPs).
    #[arg(
        long,
        env = "INBOX_TRUSTED_PROXIES",
        value_delimiter = ',',
        global = true
    )]
    pub trusted_proxies: Vec<IpAddr>,
}

impl Config {
    /// The URL people use to reach this server, for printed examples and
    /// source URLs: INBOX_PUBLIC_URL when set (behind a proxy the listening
    /// address is not what senders reach), else the listening address.
    pub fn base_url(&self) -> String {
        if let Some(public) = self
            .public_url
            .as_deref()
            .map(|url| url.trim().trim_end_matches('/'))
            .filter(|url| !url.is_empty())
        {
            return public.to_owned();
        }
        let addr = self.site_addr;
        let host = if addr.ip().is_unspecified() {
            "127.0.0.1".to_owned()
        } else if addr.is_ipv6() {
            format!("[{}]", addr.ip())
        } else {
            addr.ip().to_string()
        };
        format!("http://{host}:{}", addr.port())
    }
}
