//! The `crabmail` binary: the server (`serve`), operator commands (`config`, `admin`), and the agent
//! CLI (`inbox`, `receive`, `read`) that talks to a running server over its HTTP API.

mod cli;

use anyhow::Context;
use clap::{Parser, Subcommand};
use crabmail::clock::{Clock, SharedClock, SystemClock};
use crabmail::config::{self, Config};
use std::path::PathBuf;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "crabmail", version, about = "Email server for AI agents")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct ServerOptions {
    /// TOML configuration file (see `crabmail config defaults`).
    #[arg(long, env = "CRABMAIL_CONFIG")]
    config: Option<PathBuf>,
    /// Where the SQLite database and generated certificate live.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Shared mail domain for inboxes.
    #[arg(long)]
    domain: Option<String>,
    /// HTTP API address.
    #[arg(long)]
    api_listen: Option<String>,
    /// Inbound MX (SMTP) address.
    #[arg(long)]
    mx_listen: Option<String>,
    /// Submission address (STARTTLS).
    #[arg(long)]
    submission_listen: Option<String>,
    /// Submission address with implicit TLS.
    #[arg(long)]
    submissions_listen: Option<String>,
    /// postgres://... to use PostgreSQL instead of embedded SQLite.
    #[arg(long)]
    database_url: Option<String>,
    /// Any other setting, as key=value (repeatable), e.g. --set smtp.max_recipients=50.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

impl ServerOptions {
    fn load(&self) -> anyhow::Result<Config> {
        let mut overrides = Vec::new();
        let flags = [
            (
                "data_dir",
                self.data_dir.as_ref().map(|p| p.display().to_string()),
            ),
            ("domain", self.domain.clone()),
            ("api.listen", self.api_listen.clone()),
            ("mx.listen", self.mx_listen.clone()),
            ("submission.listen", self.submission_listen.clone()),
            (
                "submission.implicit_tls_listen",
                self.submissions_listen.clone(),
            ),
            ("database_url", self.database_url.clone()),
        ];
        for (key, value) in flags {
            if let Some(value) = value {
                overrides.push((key.to_owned(), toml_string(&value)));
            }
        }
        for pair in &self.set {
            let (key, value) = pair
                .split_once('=')
                .with_context(|| format!("--set {pair}: expected KEY=VALUE"))?;
            overrides.push((key.trim().to_owned(), value.trim().to_owned()));
        }
        Ok(Config::load(
            self.config.as_deref(),
            std::env::vars(),
            &overrides,
        )?)
    }
}

/// Flag values are strings, whatever they look like.
fn toml_string(value: &str) -> String {
    toml::Value::String(value.to_owned()).to_string()
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (HTTP API and inbound MX).
    Serve(ServerOptions),
    /// Show configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Look at and act on the outbound queue (operator; opens the server's store).
    Queue {
        #[command(subcommand)]
        command: QueueCommand,
    },
    /// DNS records of hosted domains (operator; opens the server's store).
    Domain {
        #[command(subcommand)]
        command: DomainCommand,
    },
    /// DKIM keys (operator; opens the server's store).
    Dkim {
        #[command(subcommand)]
        command: DkimCommand,
    },
    /// Diagnostics.
    Check {
        #[command(subcommand)]
        command: CheckCommand,
    },
    /// Operator tasks on the server's store.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    #[command(flatten)]
    Agent(cli::AgentCommand),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print every setting with its default and what it does.
    Defaults,
    /// Print the configuration in effect (defaults, file, environment, flags).
    Show(Box<ServerOptions>),
}

#[derive(Subcommand)]
enum DomainCommand {
    /// The DNS records a hosted domain must publish, as a zone-file snippet (or JSON).
    Records {
        /// The shared domain when absent.
        #[arg(id = "name", value_name = "DOMAIN")]
        name: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        options: Box<ServerOptions>,
    },
}

#[derive(Subcommand)]
enum DkimCommand {
    /// Make new keys for a hosted domain and sign with them from now on.
    Rotate {
        #[arg(id = "name", value_name = "DOMAIN")]
        name: String,
        #[command(flatten)]
        options: Box<ServerOptions>,
    },
}

#[derive(Subcommand)]
enum CheckCommand {
    /// SPF, DKIM, DMARC and ARC of a message, as the MX would judge it on arrival.
    Auth {
        /// The message (.eml).
        file: PathBuf,
        /// The connecting client's IP address.
        #[arg(long)]
        ip: std::net::IpAddr,
        /// What the client said in HELO/EHLO.
        #[arg(long)]
        helo: String,
        /// MAIL FROM (empty for a bounce).
        #[arg(long, default_value = "")]
        mail_from: String,
        #[command(flatten)]
        options: Box<ServerOptions>,
    },
    /// Injection risk, safe view and extracted codes and links of a message, as ingest computes
    /// them; with --jsonl, score each {"id", "text"} row of FILE as a plain-text body and print
    /// one {"id", "injection_risk", "level", "flags", "micros"} line per row (bench/injection).
    Risk {
        /// The message (.eml), or with --jsonl a file of rows.
        file: PathBuf,
        #[arg(long)]
        jsonl: bool,
    },
}

async fn domain_command(command: DomainCommand) -> anyhow::Result<()> {
    let DomainCommand::Records {
        name,
        json,
        options,
    } = command;
    let config = options.load()?;
    let store = crabmail::store::open(&config).await?;
    let name = name
        .unwrap_or_else(|| config.domain.clone())
        .to_ascii_lowercase();
    let result = async {
        let record = store.hosted_domain(&name).await?.with_context(|| {
            format!("{name} is not a hosted domain (custom domains must be verified first)")
        })?;
        let keys = store.dkim_keys(&record.id).await?;
        let records = crabmail::domain::records(
            &name,
            config.hostname(),
            &keys,
            record.created_at,
            SystemClock.now(),
        );
        if json {
            println!("{}", serde_json::to_string_pretty(&records)?);
        } else {
            print!("{}", crabmail::domain::zone_snippet(&records));
        }
        anyhow::Ok(())
    }
    .await;
    store.close().await;
    result
}

async fn dkim_command(command: DkimCommand) -> anyhow::Result<()> {
    let DkimCommand::Rotate { name, options } = command;
    let config = options.load()?;
    let store = crabmail::store::open(&config).await?;
    let name = name.to_ascii_lowercase();
    let result = async {
        let record = store
            .hosted_domain(&name)
            .await?
            .with_context(|| format!("{name} is not a hosted domain"))?;
        let old = store.dkim_keys(&record.id).await?;
        let now = SystemClock.now();
        let keys = crabmail::dkim::generate(&record.id, now, config.dkim.ed25519)?;
        match store.rotate_dkim_keys(&record.id, keys.clone(), now).await {
            Err(crabmail::store::StoreError::Conflict) => anyhow::bail!(
                "{name} already has keys made this second ({}); rotate again in a moment",
                keys[0].selector
            ),
            other => other?,
        }
        println!("New keys for {name}; servers sign with them within a minute. Publish:");
        for key in &keys {
            println!(
                "{}._domainkey.{name}. IN TXT \"{}\"",
                key.selector,
                crabmail::dkim::dns_record(key)
            );
        }
        let keep_until = now.plus(crabmail::domain::DKIM_GRACE).to_rfc3339();
        for key in old.iter().filter(|k| k.retired_at.is_none()) {
            println!(
                "Keep {}._domainkey.{name} published until {keep_until}, then remove it.",
                key.selector
            );
        }
        anyhow::Ok(())
    }
    .await;
    store.close().await;
    result
}

async fn check_command(command: CheckCommand) -> anyhow::Result<()> {
    let (file, ip, helo, mail_from, options) = match command {
        CheckCommand::Risk { file, jsonl } => return cli::risk::check(&file, jsonl),
        CheckCommand::Auth {
            file,
            ip,
            helo,
            mail_from,
            options,
        } => (file, ip, helo, mail_from, options),
    };
    let config = options.load()?;
    let message =
        std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
    let dns = crabmail::dns::Dns::new(&config.dns)?;
    let verifier = crabmail::verify::Verifier::new(
        &dns,
        config.hostname(),
        &config.verify,
        std::sync::Arc::new(SystemClock),
    );
    let verdict = verifier.verify(ip, &helo, &mail_from, &message).await;
    let r = &verdict.results;
    let why = |reason: &Option<String>| match reason {
        Some(reason) => format!(": {reason}"),
        None => String::new(),
    };
    println!("spf:   {}{}", r.spf.result, why(&r.spf.reason));
    if let Some(helo) = &r.spf_helo {
        println!("helo:  {}{}", helo.result, why(&helo.reason));
    }
    if r.dkim.is_empty() {
        println!("dkim:  none: the message carries no DKIM signature");
    }
    for d in &r.dkim {
        println!(
            "dkim:  {} (d={} s={} a={}){}",
            d.result,
            d.domain,
            d.selector,
            d.algorithm,
            why(&d.reason)
        );
    }
    println!("arc:   {}{}", r.arc.result, why(&r.arc.reason));
    println!(
        "dmarc: {} (policy {}){}",
        r.dmarc.result,
        r.dmarc.policy,
        why(&r.dmarc.reason)
    );
    println!(
        "action: {}",
        match verdict.action {
            crabmail::verify::Action::Deliver => "deliver",
            crabmail::verify::Action::Quarantine => "quarantine",
            crabmail::verify::Action::Reject => "reject (550 5.7.1)",
        }
    );
    print!("{}", verdict.header);
    Ok(())
}

#[derive(Subcommand)]
enum QueueCommand {
    /// Recipients not yet delivered or bounced, soonest first.
    List(Box<ServerOptions>),
    /// A message's recipients and every attempt.
    Show {
        id: String,
        #[command(flatten)]
        options: Box<ServerOptions>,
    },
    /// Make a message's unfinished recipients due now.
    Retry {
        id: String,
        #[command(flatten)]
        options: Box<ServerOptions>,
    },
    /// Stop trying a message's unfinished recipients.
    Cancel {
        id: String,
        #[command(flatten)]
        options: Box<ServerOptions>,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create a single-use invite code for signup.policy = "invite".
    Invite(Box<ServerOptions>),
    /// Print a new token for the postmaster's account: mail to postmaster@ any hosted domain
    /// arrives in its inbox (postmaster@ the shared domain).
    Postmaster(Box<ServerOptions>),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    match cli.command {
        Command::Serve(options) => {
            init_logging();
            let config = options.load()?;
            runtime.block_on(serve(config))
        }
        Command::Config {
            command: ConfigCommand::Defaults,
        } => {
            print!("{}", config::render_defaults());
            Ok(())
        }
        Command::Config {
            command: ConfigCommand::Show(options),
        } => {
            println!("{:#?}", options.load()?);
            Ok(())
        }
        Command::Admin { command } => runtime.block_on(admin_command(command)),
        Command::Queue { command } => runtime.block_on(queue_command(command)),
        Command::Domain { command } => runtime.block_on(domain_command(command)),
        Command::Dkim { command } => runtime.block_on(dkim_command(command)),
        Command::Check { command } => runtime.block_on(check_command(command)),
        Command::Agent(command) => runtime.block_on(cli::run(command)),
    }
}

/// Operator commands on the accounts, against the server's store (safe while it runs).
async fn admin_command(command: AdminCommand) -> anyhow::Result<()> {
    let (AdminCommand::Invite(options) | AdminCommand::Postmaster(options)) = &command;
    let config = options.load()?;
    let store = crabmail::store::open(&config).await?;
    let clock: SharedClock = Arc::new(SystemClock);
    let accounts = crabmail::account::Accounts::new(
        store.clone(),
        clock,
        &config.domain,
        config.signup.policy,
    );
    let printed = match command {
        AdminCommand::Invite(_) => accounts.create_invite().await,
        AdminCommand::Postmaster(_) => accounts.postmaster_token().await.map(|t| t.secret),
    };
    store.close().await;
    println!("{}", printed?);
    Ok(())
}

async fn queue_command(command: QueueCommand) -> anyhow::Result<()> {
    let options = match &command {
        QueueCommand::List(options)
        | QueueCommand::Show { options, .. }
        | QueueCommand::Retry { options, .. }
        | QueueCommand::Cancel { options, .. } => options,
    };
    let config = options.load()?;
    let store = crabmail::store::open(&config).await?;
    let now = SystemClock.now();
    let result = match &command {
        QueueCommand::List(_) => {
            for e in store.queue_entries(1000).await? {
                println!(
                    "{}\t{}\t{} -> {}\t{} attempts\tnext {}\t{}",
                    e.message_id,
                    e.status.as_str(),
                    e.return_path,
                    e.address,
                    e.attempts,
                    e.next_attempt_at
                        .map(|t| t.to_rfc3339())
                        .unwrap_or_default(),
                    e.last_text.unwrap_or_default()
                );
            }
            Ok(())
        }
        QueueCommand::Show { id, .. } => match store.outbound_owner(id).await? {
            None => Err(anyhow::anyhow!("no sent message {id}")),
            Some(owner) => {
                let record = store
                    .get_outbound(&owner, id)
                    .await?
                    .context("the message vanished")?;
                println!(
                    "{}\tfrom {}\taccount {owner}\tqueued {}",
                    record.id,
                    record.return_path,
                    record.created_at.to_rfc3339()
                );
                for r in record.recipients {
                    let next = r
                        .next_attempt_at
                        .map(|t| t.to_rfc3339())
                        .unwrap_or_default();
                    println!("  {}\t{}\tnext {next}", r.address, r.status.as_str());
                    for a in r.attempts {
                        println!(
                            "    {}\t{}\t{} {} {}\t{}",
                            a.at.to_rfc3339(),
                            a.host.unwrap_or_default(),
                            a.code.map(|c| c.to_string()).unwrap_or_default(),
                            a.enhanced.unwrap_or_default(),
                            a.text,
                            a.tls.unwrap_or_default()
                        );
                    }
                }
                Ok(())
            }
        },
        QueueCommand::Retry { id, .. } => {
            let n = store.retry_now(id, now).await?;
            println!("{n} recipient(s) of {id} due now; the server tries them at its next wake-up");
            Ok(())
        }
        QueueCommand::Cancel { id, .. } => {
            let n = store.cancel(id, now).await?;
            println!("{n} recipient(s) of {id} cancelled");
            Ok(())
        }
    };
    store.close().await;
    result
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("CRABMAIL_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::stdout().is_terminal())
        .init();
}

async fn serve(config: Config) -> anyhow::Result<()> {
    raise_open_file_limit(&config);
    let listeners = crabmail::Listeners::bind(&config).await?;
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        signal.cancel();
    });
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    crabmail::run(config, listeners, clock, shutdown).await?;
    Ok(())
}

/// Raises the soft open-file limit to the hard one, so a flood meets the connection limits
/// (`api.max_connections`, `smtp.max_connections`) before it meets the descriptor limit, and an
/// API flood cannot stop the MX from greeting. Warns when the limit stays below what they need.
fn raise_open_file_limit(config: &Config) {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
            tracing::warn!("cannot read the open-file limit");
            return;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            // SAFETY: as above.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
                limit = raised;
            }
        }
        // Each SMTP listener (MX, 587, 465) has its own gate; a few hundred more for the store,
        // outbound connections and DNS.
        let needed = config.api.max_connections + 3 * config.smtp.max_connections + 512;
        if (limit.rlim_cur as u128) < needed as u128 {
            tracing::warn!(
                open_files = limit.rlim_cur,
                needed,
                "the open-file limit is below what the connection limits allow; raise it (ulimit -n) or lower api.max_connections and smtp.max_connections"
            );
        } else {
            tracing::info!(open_files = limit.rlim_cur, "open-file limit");
        }
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// clap checks a command's arguments only when that command is parsed; check them all.
    #[test]
    fn every_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
