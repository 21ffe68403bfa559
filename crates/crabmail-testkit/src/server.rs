use crabmail::clock::{SharedClock, SystemClock};
use crabmail::config::Config;
use crabmail::{Listeners, ServerError};
use crabmail_api::client::Client;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL the tests use (`CRABMAIL_TEST_DATABASE_URL`); tests fail, never skip, without it.
pub fn pg_base_url() -> String {
    std::env::var("CRABMAIL_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A new, empty schema and a URL whose connections use it.
pub async fn pg_schema_url() -> String {
    use sqlx::Connection;
    let base = pg_base_url();
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&base)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {base} is required for these tests: {e}"));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut conn)
        .await
        .expect("create test schema");
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}

/// A crabmail server running in this process on 127.0.0.1 with ephemeral ports.
pub struct TestServer {
    pub api: SocketAddr,
    pub mx: SocketAddr,
    pub submission: SocketAddr,
    pub submission_tls: SocketAddr,
    pub config: Config,
    pub backend: Backend,
    pub shutdown: CancellationToken,
    task: Option<JoinHandle<Result<(), ServerError>>>,
    dir: tempfile::TempDir,
    _dns: Option<crate::DnsServer>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(Backend::Sqlite, &[]).await
    }

    /// `settings` are `(key, value)` overrides as for `--set`.
    pub async fn start_with(backend: Backend, settings: &[(&str, &str)]) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let database_url = match backend {
            Backend::Sqlite => String::new(),
            Backend::Postgres => pg_schema_url().await,
        };
        Self::start_in(dir, backend, &database_url, settings).await
    }

    /// Starts a server on an existing data directory (and database), as after a restart.
    pub async fn start_in(
        dir: tempfile::TempDir,
        backend: Backend,
        database_url: &str,
        settings: &[(&str, &str)],
    ) -> TestServer {
        Self::start_with_clock(dir, backend, database_url, settings, Arc::new(SystemClock)).await
    }

    /// A new server whose clock is `clock` (a `ManualClock` lets a test move time on).
    pub async fn start_with_manual_clock(
        backend: Backend,
        settings: &[(&str, &str)],
        clock: crabmail::clock::ManualClock,
    ) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let database_url = match backend {
            Backend::Sqlite => String::new(),
            Backend::Postgres => pg_schema_url().await,
        };
        Self::start_with_clock(dir, backend, &database_url, settings, Arc::new(clock)).await
    }

    async fn start_with_clock(
        dir: tempfile::TempDir,
        backend: Backend,
        database_url: &str,
        settings: &[(&str, &str)],
        clock: SharedClock,
    ) -> TestServer {
        let mut overrides: Vec<(String, String)> = vec![
            (
                "data_dir".into(),
                toml_str(&dir.path().display().to_string()),
            ),
            ("api.listen".into(), toml_str("127.0.0.1:0")),
            ("mx.listen".into(), toml_str("127.0.0.1:0")),
            ("submission.listen".into(), toml_str("127.0.0.1:0")),
            (
                "submission.implicit_tls_listen".into(),
                toml_str("127.0.0.1:0"),
            ),
            ("database_url".into(), toml_str(database_url)),
            ("shutdown.grace".into(), toml_str("5s")),
        ];
        overrides.extend(settings.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        // Lookups (SPF, DKIM, MX) go to a DNS server of our own, never to the machine's resolver:
        // an empty zone unless the test brings its own.
        let dns = if settings.iter().any(|(k, _)| *k == "dns.nameservers") {
            None
        } else {
            let dns = crate::Zone::new().serve().await;
            overrides.push(dns.setting());
            Some(dns)
        };
        let config = Config::load(None, Vec::new(), &overrides).expect("test config");
        let listeners = Listeners::bind(&config).await.expect("bind");
        let api = listeners.api.local_addr().expect("api addr");
        let mx = listeners.mx.local_addr().expect("mx addr");
        let submission = listeners.submission.local_addr().expect("submission addr");
        let submission_tls = listeners
            .submission_tls
            .local_addr()
            .expect("submissions addr");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(crabmail::run(
            config.clone(),
            listeners,
            clock,
            shutdown.clone(),
        ));
        let mut server = TestServer {
            api,
            mx,
            submission,
            submission_tls,
            config,
            backend,
            shutdown,
            task: Some(task),
            dir,
            _dns: dns,
        };
        server.wait_until_serving().await;
        server
    }

    /// The listeners are bound before `run` opens (and migrates) the store, so a request made
    /// now waits in the listen backlog until the API serves it.
    async fn wait_until_serving(&mut self) {
        let client = Client::new(&self.url(), None);
        let Some(task) = self.task.as_mut() else {
            return;
        };
        tokio::select! {
            up = client.ping() => assert!(up, "test server did not answer"),
            ended = task => panic!("test server stopped while starting: {ended:?}"),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.api)
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    pub fn domain(&self) -> &str {
        &self.config.domain
    }

    pub fn client(&self, token: Option<String>) -> Client {
        Client::new(&self.url(), token)
    }

    /// A new account; returns a client holding its token.
    pub async fn signup(&self) -> Client {
        let created = self
            .client(None)
            .create_account(None)
            .await
            .expect("signup");
        self.client(Some(created.token))
    }

    /// A new account with one inbox named `name`.
    pub async fn mailbox(&self, name: &str) -> (Client, crabmail_api::Inbox) {
        let client = self.signup().await;
        let inbox = client
            .create_inbox(&crabmail_api::CreateInbox {
                name: Some(name.to_owned()),
                ..Default::default()
            })
            .await
            .expect("create inbox");
        (client, inbox)
    }

    /// Shuts down in order and returns the data directory, so a test can start again on it.
    pub async fn stop(mut self) -> (tempfile::TempDir, Result<(), ServerError>) {
        self.shutdown.cancel();
        let result = match self.task.take() {
            Some(task) => task.await.expect("server task"),
            None => Ok(()),
        };
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"));
        (dir, result)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn toml_str(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}
