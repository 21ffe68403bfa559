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
        Command::Admin {
            command: AdminCommand::Invite(options),
        } => {
            let config = options.load()?;
            runtime.block_on(async {
                let store = crabmail::store::open(&config).await?;
                let clock: SharedClock = Arc::new(SystemClock);
                let accounts = crabmail::account::Accounts::new(
                    store.clone(),
                    clock,
                    &config.domain,
                    config.signup.policy,
                );
                let code = accounts.create_invite().await;
                store.close().await;
                println!("{}", code?);
                anyhow::Ok(())
            })
        }
        Command::Queue { command } => runtime.block_on(queue_command(command)),
        Command::Agent(command) => runtime.block_on(cli::run(command)),
    }
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
