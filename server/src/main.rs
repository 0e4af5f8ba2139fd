//! The `callback-inbox` binary: parses the command line and hands it to
//! [`cli::run`].

mod cli;

use std::process::ExitCode;

use clap::Parser;
use inbox_server::config::Cli;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    // `send --hook` runs in the project Claude Code works in: that
    // folder's .env is not read (see `cli::is_hook`). A first parse tells;
    // one that fails (a variable the .env would give) is not a hook.
    let hook = Cli::try_parse().is_ok_and(|cli| cli::is_hook(&cli));
    // A missing .env is normal; a broken one is worth saying.
    if !hook
        && let Err(err) = dotenvy::dotenv()
        && !err.not_found()
    {
        eprintln!("warning: .env not read: {err}");
    }
    let cli = Cli::parse();
    // Logs go to stderr: stdout is for what a command prints (secrets shown
    // once, `admin list`, what `send` and `listen` report), so scripts can
    // read it. The HTTP companions log only warnings unless RUST_LOG says.
    let default_filter = if cli::is_companion(&cli) {
        "warn"
    } else {
        "info"
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter)),
        )
        .init();
    // Before the runtime's threads exist (see the function).
    cli::remember_local_offset();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(cli::run(cli))
}
