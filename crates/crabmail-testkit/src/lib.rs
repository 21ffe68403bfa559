//! Test helpers for crabmail: a real server on port 0 (SQLite in a temporary directory, or a
//! fresh PostgreSQL schema), an SMTP conversation that reads like a transcript, and the paths of
//! the real binary for black-box tests.
//!
//! Nothing here fakes a part of the server: tests talk to it over real sockets.

mod dns;
mod mx;
mod server;
mod sink;
mod smtp;
mod tls;
mod webhooks;

pub use dns::{DnsServer, Zone, reverse_name};
pub use mx::RecordingMx;
pub use server::{Backend, TestServer, pg_base_url, pg_schema_url};
pub use sink::{Dumped, SmtpSink};
pub use smtp::{Reply, Smtp};
pub use tls::{HttpsServer, Issued, TestCa};
pub use webhooks::{Received, WebhookReceiver};

/// A script of `scripts/` (real Python clients: the MCP SDK, the webhook receiver).
pub fn python_script(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(name)
}

/// A port free on `ip` now (for servers that must listen on a chosen loopback address, such as a
/// remote MX the DNS zone names).
pub fn free_port(ip: &str) -> u16 {
    std::net::TcpListener::bind(format!("{ip}:0"))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port on {ip}: {e}"))
}

/// A script of `node/` (real JavaScript clients: EventSource, the Standard Webhooks verifier),
/// whose packages `scripts/test` installs with `npm ci`.
pub fn node_script(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("node");
    assert!(
        dir.join("node_modules").is_dir(),
        "{}/node_modules is missing: run scripts/test (it runs npm ci there)",
        dir.display()
    );
    dir.join(name)
}

/// Waits (long-polling the account's event log from the start) for the first event of `kind`
/// about `message_id` (or about `inbox_id`, when no message is named); panics after 30 s of
/// silence.
pub async fn event(
    client: &crabmail_api::client::Client,
    kind: &str,
    message_id: Option<&str>,
    inbox_id: Option<&str>,
) -> crabmail_api::Event {
    let mut cursor = "0".to_owned();
    loop {
        let page = client
            .list_events(Some(&cursor), Some(30))
            .await
            .expect("list events");
        assert!(
            !page.events.is_empty(),
            "no {kind} event (message {message_id:?}, inbox {inbox_id:?}) within 30 s"
        );
        let wanted = |e: &&crabmail_api::Event| {
            e.kind == kind
                && message_id.is_none_or(|m| e.message_id.as_deref() == Some(m))
                && inbox_id.is_none_or(|i| e.inbox_id.as_deref() == Some(i))
        };
        if let Some(e) = page.events.iter().find(wanted) {
            return e.clone();
        }
        cursor = page.next_cursor;
    }
}

/// Generates one `#[tokio::test]` per storage backend for `async fn name(backend: Backend)`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() { super::$name($crate::Backend::Sqlite).await; } )*
        }
        mod on_postgres {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() { super::$name($crate::Backend::Postgres).await; } )*
        }
    };
}
