//! Callbacks: the admin API and the components that show callbacks.

pub mod api;
pub mod history;
pub mod json_view;
pub mod live;
pub mod poller;
#[cfg(feature = "ssr")]
pub mod server;
pub mod toasts;
pub mod window;
