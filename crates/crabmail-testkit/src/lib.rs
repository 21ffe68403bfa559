//! Test helpers for crabmail: a real server on port 0 (SQLite in a temporary directory, or a
//! fresh PostgreSQL schema), an SMTP conversation that reads like a transcript, and the paths of
//! the real binary for black-box tests.
//!
//! Nothing here fakes a part of the server: tests talk to it over real sockets.

mod dns;
mod server;
mod sink;
mod smtp;

pub use dns::{DnsServer, Zone};
pub use server::{Backend, TestServer, pg_base_url, pg_schema_url};
pub use sink::{Dumped, SmtpSink};
pub use smtp::{Reply, Smtp};

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
