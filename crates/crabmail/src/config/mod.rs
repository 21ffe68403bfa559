//! Configuration of the process: listeners, storage, limits. Accounts, inboxes and domains are data,
//! changed through the API, never here.
//!
//! Every setting is named once, in `SETTINGS`, with its default and a one-line doc; `crabmail config
//! defaults` prints that table. Values are layered: defaults, then the TOML file (`--config`), then
//! `CRABMAIL_*` environment variables (`smtp.max_recipients` is `CRABMAIL_SMTP_MAX_RECIPIENTS`), then
//! command-line flags. Unknown keys are errors, so a typo never passes silently.

mod values;

pub use values::{Network, Relay};

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One setting: its dotted key, its default as a TOML literal, and what it does.
pub struct Setting {
    pub key: &'static str,
    pub default: &'static str,
    pub doc: &'static str,
}

pub const SETTINGS: &[Setting] = &[
    Setting {
        key: "data_dir",
        default: r#""./crabmail-data""#,
        doc: "Directory for the SQLite database and the generated TLS certificate.",
    },
    Setting {
        key: "domain",
        default: r#""crabmail.localhost""#,
        doc: "Shared mail domain: inboxes are created as name@domain.",
    },
    Setting {
        key: "hostname",
        default: r#""""#,
        doc: "Name this server gives in its SMTP greeting and EHLO, and that custom domains' MX records name; empty means the domain.",
    },
    Setting {
        key: "node_id",
        default: r#""""#,
        doc: "This node's name among nodes sharing PostgreSQL, unique and stable across restarts; empty means host name and data_dir.",
    },
    Setting {
        key: "database_url",
        default: r#""""#,
        doc: "postgres://... to share PostgreSQL between nodes; empty means embedded SQLite in data_dir.",
    },
    Setting {
        key: "api.listen",
        default: r#""127.0.0.1:8080""#,
        doc: "Address of the HTTP API.",
    },
    Setting {
        key: "api.max_body_size",
        default: "27262976",
        doc: "Largest HTTP request body accepted, in bytes.",
    },
    Setting {
        key: "api.max_wait",
        default: r#""120s""#,
        doc: "Longest long-poll a client may ask for with ?wait=.",
    },
    Setting {
        key: "api.max_connections",
        default: "1024",
        doc: "HTTP connections open at once; past it a new connection gets 503 and is closed.",
    },
    Setting {
        key: "api.max_connections_per_ip",
        default: "256",
        doc: "HTTP connections open at once from one client address.",
    },
    Setting {
        key: "api.header_timeout",
        default: r#""30s""#,
        doc: "Time to send a request's headers, and the longest idle wait between requests on one connection.",
    },
    Setting {
        key: "api.body_timeout",
        default: r#""60s""#,
        doc: "Time to send a request's body once its headers arrived; past it the request fails with 408.",
    },
    Setting {
        key: "api.rate_limit",
        default: "50",
        doc: "Requests a second one bearer token may make, on average (RateLimit fields on every answer, 429 past it); 0: no limit.",
    },
    Setting {
        key: "api.rate_burst",
        default: "200",
        doc: "Requests one token may make at once before api.rate_limit paces it.",
    },
    Setting {
        key: "api.metrics_from",
        default: r#"["127.0.0.0/8", "::1/128"]"#,
        doc: "Client networks that may read GET /metrics (Prometheus); others get 404.",
    },
    Setting {
        key: "mx.listen",
        default: r#""127.0.0.1:2525""#,
        doc: "Address of the inbound MX (SMTP); production uses 0.0.0.0:25.",
    },
    Setting {
        key: "submission.listen",
        default: r#""127.0.0.1:2587""#,
        doc: "Message submission with STARTTLS (RFC 6409); production uses 0.0.0.0:587.",
    },
    Setting {
        key: "submission.implicit_tls_listen",
        default: r#""127.0.0.1:2465""#,
        doc: "Message submission over implicit TLS (RFC 8314); production uses 0.0.0.0:465.",
    },
    Setting {
        key: "submission.trusted_networks",
        default: "[]",
        doc: "CIDR networks that may submit without AUTH (like Postfix mynetworks), still only from hosted inboxes.",
    },
    Setting {
        key: "submission.max_auth_failures",
        default: "5",
        doc: "Failed AUTH attempts from one IP before it is refused with 421 for auth_cooldown.",
    },
    Setting {
        key: "submission.auth_cooldown",
        default: r#""5m""#,
        doc: "How long an IP that failed AUTH too often is refused.",
    },
    Setting {
        key: "smtp.max_message_size",
        default: "26214400",
        doc: "Largest message accepted, in bytes; advertised with SIZE (552 5.3.4 beyond).",
    },
    Setting {
        key: "smtp.max_recipients",
        default: "100",
        doc: "Recipients per message (452 4.5.3 beyond).",
    },
    Setting {
        key: "smtp.max_command_line",
        default: "2048",
        doc: "Longest SMTP command line in octets, CRLF included (500 5.5.2 beyond).",
    },
    Setting {
        key: "smtp.max_line_length",
        default: "0",
        doc: "Longest text line accepted in a message, in octets with CRLF; 0 keeps long lines as received (as Postfix does); 1000 is RFC 5321's limit.",
    },
    Setting {
        key: "smtp.bare_newline",
        default: r#""normalize""#,
        doc: "A bare LF or CR in a message: normalize (a line end, stored as CRLF; only CRLF.CRLF ends DATA) or reject (550 5.6.0).",
    },
    Setting {
        key: "smtp.idle_timeout",
        default: r#""5m""#,
        doc: "Time allowed between commands or data chunks (421 4.4.2 after).",
    },
    Setting {
        key: "smtp.session_timeout",
        default: r#""30m""#,
        doc: "Longest whole SMTP session (421 4.4.2 after).",
    },
    Setting {
        key: "smtp.max_connections",
        default: "1000",
        doc: "Simultaneous SMTP connections across all clients (421 beyond).",
    },
    Setting {
        key: "smtp.max_connections_per_ip",
        default: "50",
        doc: "Simultaneous SMTP connections from one IP address (421 beyond).",
    },
    Setting {
        key: "smtp.max_errors",
        default: "20",
        doc: "Protocol errors tolerated in one session before it is closed with 421.",
    },
    Setting {
        key: "queue.retry",
        default: r#"["1m", "5m", "15m", "30m", "1h", "2h", "4h"]"#,
        doc: "Delays between delivery attempts; the last one repeats until the lifetime ends.",
    },
    Setting {
        key: "queue.lifetime",
        default: r#""5d""#,
        doc: "How long a message is retried before it bounces as expired.",
    },
    Setting {
        key: "queue.jitter",
        default: "0.1",
        doc: "Random spread added to each retry delay, as a fraction of it (0 to 1).",
    },
    Setting {
        key: "queue.lease",
        default: r#""10m""#,
        doc: "How long a worker holds recipients it claimed; a crashed worker's recipients return after it.",
    },
    Setting {
        key: "queue.concurrency",
        default: "32",
        doc: "Deliveries (SMTP transactions) in flight at once.",
    },
    Setting {
        key: "queue.max_per_destination",
        default: "20",
        doc: "Most connections at once to one destination (MX host or relay); Postfix's default is 20 too.",
    },
    Setting {
        key: "queue.min_per_destination",
        default: "1",
        doc: "Fewest connections at once to one destination; between the two the count shrinks while our own mail queues at the remote (answers to the final dot over twice as slow as to a dot sent alone) and grows while it does not; equal values fix it.",
    },
    Setting {
        key: "ingest.workers",
        default: "0",
        doc: "Received messages analysed at once (parse, score); 0 means one per CPU core, at least 2.",
    },
    Setting {
        key: "ingest.budget",
        default: r#""30s""#,
        doc: "Time one received message may take to analyse; past it, it is listed unparsed and flagged not_analysed.",
    },
    Setting {
        key: "ingest.lease",
        default: r#""2m""#,
        doc: "How long a node holds a received message it is analysing; a dead node's messages are taken over after it.",
    },
    Setting {
        key: "delivery.relay",
        default: r#""""#,
        doc: "Smart host for all remote mail: smtp://user:pass@host:587 (STARTTLS) or smtps://user:pass@host:465; empty means MX lookup.",
    },
    Setting {
        key: "delivery.mx_port",
        default: "25",
        doc: "Port of remote MX hosts; change only on test networks.",
    },
    Setting {
        key: "delivery.tls",
        default: r#""opportunistic""#,
        doc: "STARTTLS to MX hosts: opportunistic (when offered) or required (defer without it).",
    },
    Setting {
        key: "delivery.verp",
        default: "true",
        doc: "Send to other servers from a signed return path per recipient (bounces+<id>-<mac>@ the sender's domain), so a bounce or complaint that comes back later is linked to its recipient; false sends from the inbox's address.",
    },
    Setting {
        key: "delivery.mta_sts",
        default: "true",
        doc: "Honour MTA-STS policies (RFC 8461) of recipient domains.",
    },
    Setting {
        key: "delivery.mta_sts_port",
        default: "443",
        doc: "HTTPS port of MTA-STS policy hosts; change only on test networks.",
    },
    Setting {
        key: "delivery.tls_ca_file",
        default: r#""""#,
        doc: "Extra PEM roots to trust when verifying certificates (relay, MTA-STS policy hosts and MX hosts).",
    },
    Setting {
        key: "delivery.connect_timeout",
        default: r#""30s""#,
        doc: "Time to connect to a remote SMTP server.",
    },
    Setting {
        key: "delivery.command_timeout",
        default: r#""5m""#,
        doc: "Time to wait for a reply to a command (RFC 5321 4.5.3.2).",
    },
    Setting {
        key: "delivery.data_timeout",
        default: r#""10m""#,
        doc: "Time to wait for the reply after the message data (RFC 5321 4.5.3.2).",
    },
    Setting {
        key: "delivery.idle_connections",
        default: r#""30s""#,
        doc: "How long an idle connection to a destination is kept for reuse.",
    },
    Setting {
        key: "delivery.rate_per_destination",
        default: "0",
        doc: "Messages a minute to one destination domain (or the relay), after a burst of 10; 0: no pace (as Postfix's default).",
    },
    Setting {
        key: "delivery.throttle_backoff",
        default: r#""1m""#,
        doc: "How long a destination rests after it answers 421 or a 4.7.x deferral (it asked us to slow down); doubles at each new throttle.",
    },
    Setting {
        key: "delivery.throttle_backoff_max",
        default: r#""30m""#,
        doc: "The longest rest a throttling destination gets; its first success resets the backoff.",
    },
    Setting {
        key: "dns.nameservers",
        default: "[]",
        doc: "DNS servers as ip:port; empty means the system's resolver configuration.",
    },
    Setting {
        key: "dns.timeout",
        default: r#""5s""#,
        doc: "Time to wait for one DNS answer.",
    },
    Setting {
        key: "verify.enabled",
        default: "true",
        doc: "Check SPF, DKIM, DMARC and ARC of inbound mail before accepting it.",
    },
    Setting {
        key: "verify.dmarc_reject",
        default: "true",
        doc: "Refuse (550 5.7.1) mail that fails DMARC when its domain publishes p=reject.",
    },
    Setting {
        key: "verify.dmarc_quarantine",
        default: "true",
        doc: "Keep mail that fails DMARC under p=quarantine out of the default list (?include=quarantined).",
    },
    Setting {
        key: "verify.timeout",
        default: r#""20s""#,
        doc: "Longest all checks of one message may take; past it they are recorded as temperror.",
    },
    Setting {
        key: "scoring.classifier_url",
        default: r#""""#,
        doc: "An external injection classifier: receives each received message's JSON by POST, answers {\"score\": 0.0-1.0}; empty means crabmail's rules alone.",
    },
    Setting {
        key: "scoring.classifier_timeout",
        default: r#""2s""#,
        doc: "How long ingest waits for the external classifier before using crabmail's score alone.",
    },
    Setting {
        key: "scoring.operator_names",
        default: "[]",
        doc: "Names the agent's operator goes by: mail showing one of them from another address scores as impersonation.",
    },
    Setting {
        key: "scoring.operator_addresses",
        default: "[]",
        doc: "The operator's own addresses, allowed to show operator_names.",
    },
    Setting {
        key: "dkim.ed25519",
        default: "false",
        doc: "Sign with an Ed25519 key too (RFC 8463), beside RSA-2048, for newly made keys.",
    },
    Setting {
        key: "tls.cert",
        default: r#""""#,
        doc: "PEM certificate chain for STARTTLS; empty means a self-signed one generated into data_dir.",
    },
    Setting {
        key: "tls.key",
        default: r#""""#,
        doc: "PEM private key matching tls.cert.",
    },
    Setting {
        key: "signup.policy",
        default: r#""open""#,
        doc: "Who may create accounts with POST /v1/accounts: open, invite (codes from `crabmail admin invite`) or closed.",
    },
    Setting {
        key: "limits.inbox.per_minute",
        default: "60",
        doc: "Messages one inbox may send per sliding minute; more are held and sent when the window allows (0: no limit).",
    },
    Setting {
        key: "limits.inbox.per_hour",
        default: "600",
        doc: "Messages one inbox may send per sliding hour (0: no limit).",
    },
    Setting {
        key: "limits.inbox.per_day",
        default: "2000",
        doc: "Messages one inbox may send per sliding day (0: no limit).",
    },
    Setting {
        key: "limits.inbox.recipients_per_day",
        default: "5000",
        doc: "Recipients one inbox may send to per sliding day, counted once per message (0: no limit).",
    },
    Setting {
        key: "limits.account.per_minute",
        default: "300",
        doc: "Messages one account (all its inboxes) may send per sliding minute (0: no limit).",
    },
    Setting {
        key: "limits.account.per_hour",
        default: "5000",
        doc: "Messages one account may send per sliding hour (0: no limit).",
    },
    Setting {
        key: "limits.account.per_day",
        default: "20000",
        doc: "Messages one account may send per sliding day (0: no limit).",
    },
    Setting {
        key: "limits.account.recipients_per_day",
        default: "50000",
        doc: "Recipients one account may send to per sliding day (0: no limit).",
    },
    Setting {
        key: "limits.warmup.start",
        default: "50",
        doc: "A new inbox's warm-up: recipients it may send to on its first day (0 turns the ramp off).",
    },
    Setting {
        key: "limits.warmup.growth",
        default: "2.0",
        doc: "The warm-up ramp's daily growth: day n allows start x growth^n recipients, until the inbox's own limits are lower.",
    },
    Setting {
        key: "limits.submission_on_limit",
        default: r#""reject""#,
        doc: "SMTP submission over a quota: reject (451 4.7.1 with the time to wait; the client retries) or queue (250, held until the window allows).",
    },
    Setting {
        key: "approval.high_risk_replies",
        default: "false",
        doc: "A reply (in_reply_to) to a message scored high injection risk waits for approval (GET /v1/approvals) instead of sending.",
    },
    Setting {
        key: "lists.inbound_blocked",
        default: r#""quarantine""#,
        doc: "Mail an inbox's allow or block list does not accept: quarantine (kept out of the default list, ?include=quarantined) or reject (550 5.7.1 when no recipient accepts it).",
    },
    Setting {
        key: "webhooks.allow_private",
        default: "false",
        doc: "Let webhooks reach loopback, private and link-local addresses (refused by default, so a webhook cannot probe the operator's network).",
    },
    Setting {
        key: "webhooks.timeout",
        default: r#""15s""#,
        doc: "How long a webhook endpoint has to answer one delivery before it counts as failed and is retried.",
    },
    Setting {
        key: "webhooks.retry_schedule",
        default: r#"["5s", "5m", "30m", "2h", "5h", "10h", "14h", "20h", "24h"]"#,
        doc: "How long after each failed attempt a webhook event is tried again (later if the endpoint asks with Retry-After); after the last, it is given up and the next event goes.",
    },
    Setting {
        key: "webhooks.max_per_account",
        default: "20",
        doc: "Most webhook endpoints one account may register.",
    },
    Setting {
        key: "breaker.window",
        default: r#""24h""#,
        doc: "How far back sent mail counts for an inbox's or account's hard-bounce rate.",
    },
    Setting {
        key: "breaker.min_recipients",
        default: "20",
        doc: "Recipients with a final outcome in the window before the hard-bounce rate can pause sending.",
    },
    Setting {
        key: "breaker.hard_bounce_rate",
        default: "0.1",
        doc: "Share of hard bounces (the address does not exist, X.1.x) that pauses an inbox's or account's sending until resumed (0: never).",
    },
    Setting {
        key: "breaker.deferral_window",
        default: r#""1h""#,
        doc: "How far back delivery attempts count for a deferral storm.",
    },
    Setting {
        key: "breaker.min_attempts",
        default: "20",
        doc: "Delivery attempts in the deferral window before a deferral storm can pause sending.",
    },
    Setting {
        key: "breaker.deferral_rate",
        default: "0.5",
        doc: "Share of deferred attempts (4xx) that pauses sending as a deferral storm (0: never).",
    },
    Setting {
        key: "store.sqlite_readers",
        default: "4",
        doc: "Reads of SQLite at once on blocking threads (writes go through one group-committing writer; lookups by key run on the calling thread, beside these).",
    },
    Setting {
        key: "store.max_batch",
        default: "256",
        doc: "Most writes committed together in one SQLite transaction (group commit).",
    },
    Setting {
        key: "store.pg_max_connections",
        default: "16",
        doc: "Connections to PostgreSQL from this node.",
    },
    Setting {
        key: "shutdown.grace",
        default: r#""10s""#,
        doc: "How long in-flight SMTP sessions and requests get to finish on SIGTERM.",
    },
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub data_dir: PathBuf,
    pub domain: String,
    pub hostname: String,
    pub database_url: String,
    pub node_id: String,
    pub api: ApiConfig,
    pub mx: MxConfig,
    pub submission: SubmissionConfig,
    pub smtp: SmtpConfig,
    pub queue: QueueConfig,
    pub ingest: IngestConfig,
    pub delivery: DeliveryConfig,
    pub dns: DnsConfig,
    pub verify: VerifyConfig,
    pub scoring: ScoringConfig,
    pub dkim: DkimConfig,
    pub tls: TlsConfig,
    pub signup: SignupConfig,
    pub limits: LimitsConfig,
    pub breaker: crate::outbound::breaker::BreakerConfig,
    pub approval: ApprovalConfig,
    pub lists: ListsConfig,
    pub webhooks: WebhooksConfig,
    pub store: StoreConfig,
    pub shutdown: ShutdownConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    pub listen: SocketAddr,
    pub max_body_size: usize,
    #[serde(with = "humantime_serde")]
    pub max_wait: Duration,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub body_timeout: Duration,
    pub rate_limit: u32,
    pub rate_burst: u32,
    pub metrics_from: Vec<Network>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MxConfig {
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmissionConfig {
    pub listen: SocketAddr,
    pub implicit_tls_listen: SocketAddr,
    pub trusted_networks: Vec<Network>,
    pub max_auth_failures: u32,
    #[serde(with = "humantime_serde")]
    pub auth_cooldown: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    #[serde(deserialize_with = "durations")]
    pub retry: Vec<Duration>,
    #[serde(with = "humantime_serde")]
    pub lifetime: Duration,
    pub jitter: f64,
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    pub concurrency: usize,
    pub max_per_destination: usize,
    pub min_per_destination: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    pub workers: usize,
    #[serde(with = "humantime_serde")]
    pub budget: Duration,
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
}

impl IngestConfig {
    /// Messages analysed at once: the setting, or one per core (at least two, so one heavy
    /// message never holds up the rest).
    pub fn workers(&self) -> usize {
        if self.workers > 0 {
            return self.workers;
        }
        std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(2)
            .max(2)
    }
}

fn durations<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
    let texts: Vec<String> = Vec::deserialize(d)?;
    texts
        .iter()
        .map(|t| humantime::parse_duration(t).map_err(serde::de::Error::custom))
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsPolicy {
    Opportunistic,
    Required,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// The smart host all mail goes through; None delivers by MX.
    #[serde(deserialize_with = "values::optional_relay")]
    pub relay: Option<Relay>,
    pub verp: bool,
    pub mta_sts: bool,
    pub mta_sts_port: u16,
    pub mx_port: u16,
    pub tls: TlsPolicy,
    pub tls_ca_file: PathBuf,
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub command_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub data_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub idle_connections: Duration,
    pub rate_per_destination: u32,
    #[serde(with = "humantime_serde")]
    pub throttle_backoff: Duration,
    #[serde(with = "humantime_serde")]
    pub throttle_backoff_max: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyConfig {
    pub enabled: bool,
    pub dmarc_reject: bool,
    pub dmarc_quarantine: bool,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoringConfig {
    pub classifier_url: String,
    #[serde(with = "humantime_serde")]
    pub classifier_timeout: Duration,
    pub operator_names: Vec<String>,
    pub operator_addresses: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DkimConfig {
    pub ed25519: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsConfig {
    pub nameservers: Vec<SocketAddr>,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

/// What a bare LF or CR in a body means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BareNewline {
    /// A line end, stored as CRLF.
    #[default]
    Normalize,
    /// The message is refused (550 5.6.0).
    Reject,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub max_message_size: usize,
    pub max_recipients: usize,
    pub max_command_line: usize,
    pub max_line_length: usize,
    pub bare_newline: BareNewline,
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub session_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub max_errors: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignupPolicy {
    Open,
    Invite,
    Closed,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignupConfig {
    pub policy: SignupPolicy,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListsConfig {
    pub inbound_blocked: BlockedInbound,
}

/// What happens to mail an inbox's lists do not accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockedInbound {
    Quarantine,
    Reject,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksConfig {
    pub allow_private: bool,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    pub retry_schedule: Vec<humantime_serde::Serde<Duration>>,
    pub max_per_account: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalConfig {
    pub high_risk_replies: bool,
}

/// Sending quotas (`outbound::quota`): the defaults every account and inbox starts with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    pub inbox: crate::outbound::quota::Limits,
    pub account: crate::outbound::quota::Limits,
    pub submission_on_limit: crate::outbound::quota::OnLimit,
    pub warmup: crate::outbound::quota::Warmup,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    pub sqlite_readers: usize,
    pub max_batch: usize,
    pub pg_max_connections: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownConfig {
    #[serde(with = "humantime_serde")]
    pub grace: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {source}")]
    Syntax {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("unknown setting `{0}` (see `crabmail config defaults`)")]
    UnknownKey(String),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Defaults, then the file (if any), then `CRABMAIL_*` variables from `env`, then `overrides`
    /// (dotted key, value as TOML or as a bare string), in that order of precedence.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        let mut tree = defaults_table();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            let file_table: toml::Table = text.parse().map_err(|source| ConfigError::Syntax {
                path: path.to_owned(),
                source,
            })?;
            for (key, value) in flatten("", file_table) {
                set(&mut tree, &key, value)?;
            }
        }
        for (name, raw) in env {
            if let Some(setting) = SETTINGS.iter().find(|s| env_name(s.key) == name) {
                set(&mut tree, setting.key, literal(&raw))?;
            }
        }
        for (key, raw) in overrides {
            set(&mut tree, key, literal(raw))?;
        }
        let config: Config = toml::Value::Table(tree)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.message().to_owned()))?;
        config.validate()?;
        Ok(config)
    }

    /// Defaults only: what a fresh `crabmail serve` runs with.
    pub fn defaults() -> Config {
        match Config::load(None, Vec::new(), &[]) {
            Ok(config) => config,
            Err(e) => panic!("the built-in defaults must load: {e}"),
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if crate::account::address::validate_domain(&self.domain).is_err() {
            return Err(ConfigError::Invalid(format!(
                "domain `{}` is not a valid domain name",
                self.domain
            )));
        }
        if self.smtp.max_line_length != 0 && self.smtp.max_line_length < 80 {
            return Err(ConfigError::Invalid(
                "smtp.max_line_length must be 0 (no limit) or at least 80".into(),
            ));
        }
        if self.smtp.max_command_line < 512 {
            return Err(ConfigError::Invalid(
                "smtp.max_command_line must be at least 512 (RFC 5321 4.5.3.1.4)".into(),
            ));
        }
        if self.queue.retry.is_empty() || self.queue.retry.iter().any(Duration::is_zero) {
            return Err(ConfigError::Invalid(
                "queue.retry must list at least one non-zero delay".into(),
            ));
        }
        if !(0.0..=1.0).contains(&self.queue.jitter) {
            return Err(ConfigError::Invalid(
                "queue.jitter must be between 0 and 1".into(),
            ));
        }
        if self.tls.cert.as_os_str().is_empty() != self.tls.key.as_os_str().is_empty() {
            return Err(ConfigError::Invalid(
                "tls.cert and tls.key must be set together".into(),
            ));
        }
        Ok(())
    }

    /// This node's name among nodes sharing a store: the setting, or the machine's host name and
    /// the data directory (stable across restarts, distinct for two nodes on one machine).
    pub fn node_id(&self) -> String {
        if !self.node_id.is_empty() {
            return self.node_id.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::fs::read_to_string("/etc/hostname"))
            .map(|h| h.trim().to_owned())
            .unwrap_or_default();
        let dir = std::fs::canonicalize(&self.data_dir).unwrap_or_else(|_| self.data_dir.clone());
        format!("{host}:{}", dir.display())
    }

    /// The name in our SMTP greeting.
    pub fn hostname(&self) -> &str {
        if self.hostname.is_empty() {
            &self.domain
        } else {
            &self.hostname
        }
    }
}

/// `smtp.max_recipients` → `CRABMAIL_SMTP_MAX_RECIPIENTS`.
pub fn env_name(key: &str) -> String {
    format!("CRABMAIL_{}", key.replace('.', "_").to_ascii_uppercase())
}

/// The defaults as a text table for `crabmail config defaults`, in the TOML file's own syntax.
pub fn render_defaults() -> String {
    let mut out = String::new();
    let mut section = "";
    for setting in SETTINGS {
        let (sec, name) = setting.key.rsplit_once('.').unwrap_or(("", setting.key));
        if sec != section {
            out.push_str(&format!("\n[{sec}]\n"));
            section = sec;
        }
        out.push_str(&format!(
            "# {} (env {})\n{name} = {}\n",
            setting.doc,
            env_name(setting.key),
            setting.default
        ));
    }
    out
}

fn defaults_table() -> toml::Table {
    let mut tree = toml::Table::new();
    for setting in SETTINGS {
        let value = literal(setting.default);
        insert(&mut tree, setting.key, value);
    }
    tree
}

/// A value from the environment or the command line: TOML when it parses as such (numbers,
/// booleans, quoted strings), otherwise the bare text as a string.
fn literal(raw: &str) -> toml::Value {
    let doc = format!("v = {raw}");
    match doc.parse::<toml::Table>() {
        Ok(mut table) => table.remove("v").unwrap_or_else(|| raw.into()),
        Err(_) => toml::Value::String(raw.to_owned()),
    }
}

fn flatten(prefix: &str, table: toml::Table) -> Vec<(String, toml::Value)> {
    let mut out = Vec::new();
    for (key, value) in table {
        let full = if prefix.is_empty() {
            key
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::Table(inner) => out.extend(flatten(&full, inner)),
            other => out.push((full, other)),
        }
    }
    out
}

fn set(tree: &mut toml::Table, key: &str, value: toml::Value) -> Result<(), ConfigError> {
    if !SETTINGS.iter().any(|s| s.key == key) {
        return Err(ConfigError::UnknownKey(key.to_owned()));
    }
    insert(tree, key, value);
    Ok(())
}

fn insert(tree: &mut toml::Table, key: &str, value: toml::Value) {
    match key.split_once('.') {
        None => {
            tree.insert(key.to_owned(), value);
        }
        Some((head, rest)) => {
            let entry = tree
                .entry(head.to_owned())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(inner) = entry {
                insert(inner, rest, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_settings_are_parsed_at_load_and_a_bad_one_names_itself() {
        let load = |key: &str, value: &str| {
            Config::load(None, Vec::new(), &[(key.to_owned(), value.to_owned())])
        };
        let error = |key, value| {
            load(key, value)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(
            error("submission.trusted_networks", r#"["10.0.0.0/33"]"#)
                .contains("submission.trusted_networks")
        );
        assert!(error("delivery.relay", "http://relay.example").contains("delivery.relay"));
        let config = load("delivery.relay", "smtp://relay.example:2525").expect("loads");
        assert_eq!(config.delivery.relay.map(|r| r.port), Some(2525));
        let config = load("submission.trusted_networks", r#"["10.0.0.0/8"]"#).expect("loads");
        assert!(config.submission.trusted_networks[0].contains("10.1.2.3".parse().unwrap()));
        assert!(Config::defaults().delivery.relay.is_none());
    }

    #[test]
    fn defaults_load_and_match_the_documented_quick_start() {
        let config = Config::defaults();
        assert_eq!(config.domain, "crabmail.localhost");
        assert_eq!(config.api.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.mx.listen.to_string(), "127.0.0.1:2525");
        assert_eq!(config.data_dir, PathBuf::from("./crabmail-data"));
        assert_eq!(config.signup.policy, SignupPolicy::Open);
        assert_eq!(config.smtp.idle_timeout, Duration::from_secs(300));
        assert_eq!(config.hostname(), "crabmail.localhost");
    }

    #[test]
    fn file_then_env_then_flags_override_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crabmail.toml");
        std::fs::write(
            &path,
            "domain = \"file.test\"\n[smtp]\nmax_recipients = 7\nidle_timeout = \"9s\"\n",
        )
        .unwrap();
        let env = vec![
            ("CRABMAIL_SMTP_MAX_RECIPIENTS".to_owned(), "8".to_owned()),
            ("CRABMAIL_MX_LISTEN".to_owned(), "127.0.0.1:2626".to_owned()),
            ("UNRELATED".to_owned(), "x".to_owned()),
        ];
        let flags = vec![("mx.listen".to_owned(), "127.0.0.1:2727".to_owned())];
        let config = Config::load(Some(&path), env, &flags).unwrap();
        assert_eq!(config.domain, "file.test");
        assert_eq!(config.smtp.max_recipients, 8);
        assert_eq!(config.smtp.idle_timeout, Duration::from_secs(9));
        assert_eq!(config.mx.listen.to_string(), "127.0.0.1:2727");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crabmail.toml");
        std::fs::write(&path, "[smtp]\nmax_recipeints = 7\n").unwrap();
        assert!(matches!(
            Config::load(Some(&path), Vec::new(), &[]),
            Err(ConfigError::UnknownKey(k)) if k == "smtp.max_recipeints"
        ));
        let bad = vec![("smtp.max_recipients".to_owned(), "many".to_owned())];
        assert!(matches!(
            Config::load(None, Vec::new(), &bad),
            Err(ConfigError::Invalid(_))
        ));
        let bad_domain = vec![("domain".to_owned(), "not a domain".to_owned())];
        assert!(Config::load(None, Vec::new(), &bad_domain).is_err());
    }

    #[test]
    fn rendered_defaults_list_every_setting_and_parse_back() {
        let text = render_defaults();
        for setting in SETTINGS {
            assert!(text.contains(&env_name(setting.key)), "{}", setting.key);
        }
        let table: toml::Table = text.parse().unwrap();
        let config: Config = toml::Value::Table(table).try_into().unwrap();
        assert_eq!(config.smtp.max_recipients, 100);
    }
}
