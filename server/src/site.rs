//! Where the built site (WASM bundle, CSS, assets) is, and the Leptos
//! options that point at it. The binary works without cargo-leptos: it looks
//! next to itself when `LEPTOS_SITE_ROOT` is not set.

use std::path::{Path, PathBuf};

use leptos::config::{Env, LeptosOptions};

use crate::config::Config;

pub fn leptos_options(config: &Config) -> LeptosOptions {
    let site_root = config.site_root.clone().unwrap_or_else(default_site_root);
    let env = match std::env::var("LEPTOS_ENV").as_deref() {
        Ok("DEV" | "dev" | "development") => Env::DEV,
        _ => Env::PROD,
    };
    let reload_port = std::env::var("LEPTOS_RELOAD_PORT")
        .ok()
        .and_then(|port| port.parse().ok())
        .unwrap_or(3001);
    LeptosOptions::builder()
        .output_name(config.output_name.as_str())
        .site_root(site_root.to_string_lossy().as_ref())
        .site_pkg_dir(config.site_pkg_dir.as_str())
        .site_addr(config.site_addr)
        .env(env)
        .reload_port(reload_port)
        .build()
}

/// `site/` or `../site/` beside the executable (a copied release, or
/// `target/debug/../site`), else `./target/site`.
fn default_site_root() -> PathBuf {
    let beside_exe = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .map(|dir| vec![dir.join("site"), dir.join("../site")])
        .unwrap_or_default();
    beside_exe
        .into_iter()
        .find(|candidate| candidate.join("pkg").is_dir())
        .and_then(|found| found.canonicalize().ok())
        .unwrap_or_else(|| PathBuf::from("target/site"))
}
