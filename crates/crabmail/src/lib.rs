//! crabmail: a self-hostable email server for AI agents.
//!
//! Layout, in the order messages travel:
//! - `smtp`: the inbound MX and submission; sessions, one file per command, the replies we send.
//! - `store`: the durable state (SQLite or PostgreSQL); the commit before every 250 or 202.
//! - `ingest`: after the commit, parse received mail and make it readable.
//! - `outbound`: accept mail to send (API or submission); `queue`: retry and record outcomes;
//!   `delivery`: routes, the SMTP client, outcomes, bounce reports; `dns`: MX and address lookups.
//! - `verify`: SPF, DKIM, DMARC and ARC of inbound mail; `dkim`: signing what we send.
//! - `bounce`: what received mail reports about mail we sent (bounces, complaints, auto-replies).
//! - `risk`: injection risk of received mail and its safe view; `extract`: codes and links;
//!   `thread`: conversation keys and the new part of a reply.
//! - `events`: wake long-polls when messages arrive or deliveries happen; `webhook`: push each
//!   event to the endpoints an account registered.
//! - `api`: the HTTP API agents use; `mcp`: the same verbs as MCP tools; `account`: accounts,
//!   tokens, inboxes and their rules.
//! - `config`, `clock`, `id`: settings, the one reader of wall time, identifiers.
//! - `server`: wiring and orderly shutdown.

#![forbid(unsafe_code)]

pub mod account;
pub mod api;
pub mod bounce;
pub mod clock;
pub mod config;
pub mod delivery;
pub mod dkim;
pub mod dns;
pub mod domain;
pub mod events;
pub mod gate;
pub mod id;
pub mod ingest;
pub mod mcp;
pub mod metrics;
pub mod outbound;
pub mod queue;
pub mod server;
pub mod smtp;
pub mod store;
pub mod verify;
pub mod webhook;

pub use server::{Listeners, ServerError, run};
