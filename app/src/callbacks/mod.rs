//! Callbacks: the admin API and the components that show callbacks.

pub mod api;
pub mod attention;
pub mod feed;
pub mod history;
pub mod json_text;
pub mod json_view;
pub mod live;
#[cfg(feature = "hydrate")]
mod live_io;
pub mod poller;
#[cfg(feature = "ssr")]
pub mod server;
pub mod tabs;
pub mod toasts;
pub mod window;
