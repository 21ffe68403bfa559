//! crabmail: a self-hostable email server for AI agents.
//!
//! Layout, in the order a message travels:
//! - `smtp`: the inbound MX; sessions, one file per command, the replies we send.
//! - `store`: the durable state (SQLite or PostgreSQL); the commit before every 250.
//! - `ingest`: after the commit, parse the message and make it readable.
//! - `events`: wake long-polls when messages become readable.
//! - `api`: the HTTP API agents use; `account`: accounts, tokens, inboxes and their rules.
//! - `config`, `clock`, `id`: settings, the one reader of wall time, identifiers.
//! - `server`: wiring and orderly shutdown.

#![forbid(unsafe_code)]

pub mod account;
pub mod api;
pub mod clock;
pub mod config;
pub mod events;
pub mod id;
pub mod ingest;
pub mod server;
pub mod smtp;
pub mod store;

pub use server::{Listeners, ServerError, run};
