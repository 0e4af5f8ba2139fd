//! The domain core of callback-inbox.
//!
//! Pure logic and the types shared by server and browser: webhook signature
//! verification, delivery-id derivation, correlation-field extraction, cursors
//! and the DTOs of the admin API. Behind the `server` feature: the store
//! (sqlx) and the ingest service. No web framework lives here.

pub mod cursor;
pub mod delivery;
pub mod dto;
pub mod fields;
pub mod log_text;
pub mod micros;
pub mod signature;
pub mod source;
pub mod source_examples;

#[cfg(feature = "server")]
pub mod accounts;
#[cfg(feature = "server")]
pub mod ingest;
#[cfg(feature = "server")]
pub mod source_admin;
#[cfg(feature = "server")]
pub mod source_registry;
#[cfg(feature = "server")]
pub mod store;
#[cfg(feature = "server")]
pub mod tokens;
