//! Audiomill's roles, wired from their parts.
//!
//! - [`config`]: the typed configuration.
//! - [`temporal`]: connecting to Temporal, and the dev server `dev` starts.
//! - [`roles`]: `gateway`, `worker`, and [`roles::App`], which runs both in one process (the
//!   `dev` command, and the integration tests).
//! - [`users`]: creating accounts, including the first admin.
//! - [`memory`]: how the process gives memory back to the system.

pub mod config;
pub mod memory;
pub mod roles;
pub mod temporal;
pub mod users;

pub use config::Config;
pub use roles::{App, AppHandle};
