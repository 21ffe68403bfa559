//! Crabmail's HTTP API, as Rust types: the JSON bodies the server sends and accepts, and (feature
//! `client`) a typed async client for them. The server's OpenAPI document is generated from these
//! same types (feature `openapi`), so the SDK and the spec cannot drift apart.

mod types;
pub use types::*;

#[cfg(feature = "client")]
pub mod client;
