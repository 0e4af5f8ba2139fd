//! Callbacks: the admin API and the components that show callbacks.

pub mod api;
#[cfg(feature = "ssr")]
pub mod server;
