//! The Settings tab (the webhook's configuration for senders) and the
//! warnings banner at the top of every admin page. The server functions live
//! in [`crate::admin`], those of the API tokens in [`tokens`].

pub mod banner;
pub mod clipboard;
pub mod format;
pub mod page;
pub mod tokens;
