//! `callback-inbox replay ID`: forwards one stored callback, byte for byte,
//! to a local URL, as `listen` does for new ones.

use std::process::ExitCode;

use inbox_server::config::ReplayArgs;

use super::listen::{Forwarder, Inbox, InboxError, report};
use super::output::Output;

pub async fn run(args: ReplayArgs) -> ExitCode {
    let out = Output::new(false);
    match replay(&args, &out).await {
        Ok(code) => code,
        Err(message) => {
            out.error(&message);
            ExitCode::FAILURE
        }
    }
}

async fn replay(args: &ReplayArgs, out: &Output) -> Result<ExitCode, String> {
    let inbox = Inbox::new(&args.server, &args.token)?;
    let forwarder = Forwarder::new(&args.to, args.secret.as_deref())?;
    let detail = match inbox.detail(args.id).await {
        Ok(detail) => detail,
        Err(InboxError::NotFound) => {
            return Err(format!("the inbox has no callback {}", args.id));
        }
        Err(InboxError::Fatal(message) | InboxError::Retry(message)) => {
            return Err(format!("cannot read callback {}: {message}", args.id));
        }
    };
    let forwarded = forwarder.forward(&detail).await;
    report(out, args.json, &forwarded, None);
    Ok(if forwarded.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
