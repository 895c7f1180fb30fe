//! Audiomill's roles, wired from their parts.
//!
//! - [`cli`]: the command line, and how a bad setting is told.
//! - [`config`]: the typed configuration of each role, parsed by clap.
//! - [`temporal`]: connecting to Temporal, and the dev server `dev` starts.
//! - [`temporal_metrics`]: the Temporal SDK's worker metrics, in our Prometheus registry.
//! - [`roles`]: `gateway`, `worker`, and [`roles::run`], which starts either or both on one
//!   set of backends (`dev` runs both; so do the integration tests, via [`roles::Running`]).
//! - [`users`]: creating accounts, including the first admin.
//! - [`memory`]: how the process gives memory back to the system.
//! - [`private_data`]: files private to their owner, and `dev`'s data directory made so.

pub mod cli;
pub mod config;
pub mod memory;
pub mod private_data;
pub mod roles;
pub mod temporal;
pub mod temporal_metrics;
pub mod users;

pub use config::Config;
pub use roles::{Roles, Running};
