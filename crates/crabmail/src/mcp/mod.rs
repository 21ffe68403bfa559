//! MCP (Model Context Protocol): crabmail's verbs as tools an agent's MCP client can call, through
//! the official Rust SDK (`rmcp`). Two transports, one set of tools:
//! - `crabmail mcp` speaks MCP over stdio, for desktop agents and IDEs: it talks to a crabmail
//!   server over the HTTP API with the CLI's token (`~/.crabmail/token`, signing up on first use),
//!   and may read and write local files (attachments by path).
//! - The server itself answers Streamable HTTP at `/mcp`, authenticated by the caller's bearer
//!   token; there a tool never touches the server's files.
//!
//! Every tool is a client of the HTTP API (`crabmail_api::client`) with the caller's token, so it
//! has exactly the API's rules: scopes, ownership (another account's id is "not found"), quotas,
//! rate limits, idempotency. Tools that return mail say so: it is untrusted content, and they
//! carry its risk level.

mod http;
mod tools;

pub use http::{require_token, service};
pub use tools::Mail;

use rmcp::ServiceExt;

/// Serves MCP on stdin and stdout until the client leaves.
pub async fn serve_stdio(api: &str, token: String) -> Result<(), String> {
    let server = Mail::for_stdio(api, token)
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| format!("MCP: {e}"))?;
    server
        .waiting()
        .await
        .map(|_| ())
        .map_err(|e| format!("MCP: {e}"))
}
