//! Which server this is: version and uptime, shown in the footer.

use inbox_core::dto::ServerInfo;
use leptos::prelude::*;

use crate::error::AppError;

#[server(prefix = "/api", endpoint = "server-status")]
pub async fn server_status() -> Result<ServerInfo, AppError> {
    crate::auth::server::require_user(inbox_core::accounts::Role::Viewer).await?;
    let state = crate::state::app_state()?;
    Ok(ServerInfo {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        uptime_secs: state.started_at.elapsed().as_secs(),
    })
}

/// The footer line, filled in once the app runs in the browser.
#[component]
pub fn ServerInfoFooter() -> impl IntoView {
    let info = RwSignal::new(None::<Result<ServerInfo, AppError>>);
    Effect::new(move |_| {
        leptos::task::spawn_local(async move {
            info.set(Some(server_status().await));
        });
    });
    view! {
        <footer class="app-footer" data-testid="server-info">
            {move || match info.get() {
                None => "callback-inbox".to_owned(),
                Some(Ok(info)) => format!(
                    "callback-inbox v{} · up {}",
                    info.version,
                    format_uptime(info.uptime_secs),
                ),
                Some(Err(err)) => format!("callback-inbox · server unreachable: {err}"),
            }}
        </footer>
    }
}

fn format_uptime(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m {}s", secs / 60, secs % 60),
        3600..86400 => format!("{}h {}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d {}h", secs / 86400, secs % 86400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::format_uptime;

    #[test]
    fn uptime_is_shown_in_the_largest_sensible_units() {
        assert_eq!(format_uptime(5), "5s");
        assert_eq!(format_uptime(125), "2m 5s");
        assert_eq!(format_uptime(7300), "2h 1m");
        assert_eq!(format_uptime(90000), "1d 1h");
    }
}
