//! Operator commands: they open the server's store (safe while it runs) or read its settings.

use super::options::ServerOptions;
use anyhow::Context;
use clap::Subcommand;
use crabmail::clock::{Clock, SharedClock, SystemClock};
use crabmail::domain::{DomainError, Domains};
use crabmail::store::SharedStore;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Subcommand)]
pub enum DomainCommand {
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
pub enum DkimCommand {
    /// Make new keys for a hosted domain and sign with them from now on.
    Rotate {
        #[arg(id = "name", value_name = "DOMAIN")]
        name: String,
        #[command(flatten)]
        options: Box<ServerOptions>,
    },
}

#[derive(Subcommand)]
pub enum CheckCommand {
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
        /// Stage two: read suspicious windows again with the encoder installed in DIR
        /// (`crabmail encoder install`; <data dir>/encoder/all-minilm-l6-v2).
        #[cfg(feature = "encoder")]
        #[arg(long, value_name = "DIR")]
        encoder: Option<PathBuf>,
    },
    /// What a bounce, complaint or auto-reply reports: one JSON line per recipient ({file, kind,
    /// path, address, status, smtp_code, action, permanent, hard, reason, ...}), or one line
    /// with kind "none" for ordinary mail. FILE may be a directory: every file in it, by name.
    Bounce {
        /// A message (.eml) or a directory of them.
        file: PathBuf,
    },
}

/// The server's store, for operator commands. They never make one: a SQLite file that does not
/// exist means the command runs elsewhere than the server (another directory, another
/// `--data-dir`), and an empty new store would only answer that nothing is there.
async fn open_store(config: &crabmail::config::Config) -> anyhow::Result<SharedStore> {
    if config.database_url.is_empty() {
        let path = config.data_dir.join("crabmail.sqlite3");
        if !path.exists() {
            anyhow::bail!(
                "no crabmail store at {}: run this where `crabmail serve` runs, or give the server's \
                 --data-dir, --config or CRABMAIL_DATA_DIR (CRABMAIL_DATABASE_URL for PostgreSQL)",
                path.display()
            );
        }
    }
    Ok(crabmail::store::open(config).await?)
}

/// The domain service over the server's store, for operator commands.
async fn domains(config: &crabmail::config::Config) -> anyhow::Result<(Domains, SharedStore)> {
    let store = open_store(config).await?;
    let domains = Domains::new(
        store.clone(),
        Arc::new(SystemClock),
        crabmail::dns::Dns::new(&config.dns)?,
        config.hostname(),
        &config.domain,
        config.dkim.ed25519,
    );
    Ok((domains, store))
}

/// `crabmail domain records [DOMAIN]`: what a hosted domain must publish.
pub async fn domain_command(command: DomainCommand) -> anyhow::Result<()> {
    let DomainCommand::Records {
        name,
        json,
        options,
    } = command;
    let config = options.load()?;
    let (domains, store) = domains(&config).await?;
    let name = name.unwrap_or_else(|| config.domain.clone());
    let result = domains.hosted(&name).await;
    store.close().await;
    let published = result.map_err(|e| match e {
        DomainError::NotHosted(name) => {
            anyhow::anyhow!("{name} is not a hosted domain (custom domains must be verified first)")
        }
        other => other.into(),
    })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&published.records)?);
    } else {
        print!("{}", crabmail::domain::zone_snippet(&published.records));
    }
    Ok(())
}

/// `crabmail dkim rotate DOMAIN`: new keys, and what to publish and when to unpublish.
pub async fn dkim_command(command: DkimCommand) -> anyhow::Result<()> {
    let DkimCommand::Rotate { name, options } = command;
    let (domains, store) = domains(&options.load()?).await?;
    let name = name.to_ascii_lowercase();
    let result = domains.rotate_keys(&name).await;
    store.close().await;
    let rotation = result?;
    println!("New keys for {name}; servers sign with them within a minute. Publish:");
    for key in &rotation.keys {
        println!(
            "{}._domainkey.{name}. IN TXT \"{}\"",
            key.selector,
            crabmail::dkim::dns_record(key)
        );
    }
    let keep_until = SystemClock
        .now()
        .plus(crabmail::domain::DKIM_GRACE)
        .to_rfc3339();
    for key in &rotation.retired {
        println!(
            "Keep {}._domainkey.{name} published until {keep_until}, then remove it.",
            key.selector
        );
    }
    Ok(())
}

pub async fn check_command(command: CheckCommand) -> anyhow::Result<()> {
    #[cfg(feature = "encoder")]
    if let CheckCommand::Risk {
        encoder: Some(dir), ..
    } = &command
    {
        crabmail::ingest::risk::encoder::activate(dir)?;
    }
    let (file, ip, helo, mail_from, options) = match command {
        CheckCommand::Risk { file, jsonl, .. } => return super::risk::check(&file, jsonl),
        CheckCommand::Bounce { file } => return check_bounce(&file),
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
pub enum QueueCommand {
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
pub enum AdminCommand {
    /// Create a single-use invite code for signup.policy = "invite".
    Invite(Box<ServerOptions>),
    /// Print a new token for the postmaster's account: mail to postmaster@ any hosted domain
    /// arrives in its inbox (postmaster@ the shared domain).
    Postmaster(Box<ServerOptions>),
    /// List accounts, oldest first: id, created, disabled, inboxes, messages received and sent,
    /// live tokens.
    Accounts {
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        #[command(flatten)]
        options: Box<ServerOptions>,
    },
    /// List an account's inboxes: address, id, created.
    Inboxes {
        account: String,
        #[command(flatten)]
        options: Box<ServerOptions>,
    },
    /// Disable an account: its tokens stop working (API, MCP, SMTP AUTH); mail to its inboxes is
    /// still accepted.
    Disable {
        account: String,
        #[command(flatten)]
        options: Box<ServerOptions>,
    },
    /// Enable a disabled account again.
    Enable {
        account: String,
        #[command(flatten)]
        options: Box<ServerOptions>,
    },
    /// Revoke every token of an account and print a new one (shown once).
    ResetToken {
        account: String,
        #[command(flatten)]
        options: Box<ServerOptions>,
    },
}

/// Operator commands on the accounts, against the server's store (safe while it runs).
pub async fn admin_command(command: AdminCommand) -> anyhow::Result<()> {
    let options = match &command {
        AdminCommand::Invite(options) | AdminCommand::Postmaster(options) => options,
        AdminCommand::Accounts { options, .. }
        | AdminCommand::Inboxes { options, .. }
        | AdminCommand::Disable { options, .. }
        | AdminCommand::Enable { options, .. }
        | AdminCommand::ResetToken { options, .. } => options,
    };
    let config = options.load()?;
    let store = open_store(&config).await?;
    let clock: SharedClock = Arc::new(SystemClock);
    let accounts = crabmail::account::Accounts::new(
        store.clone(),
        clock,
        &config.domain,
        config.signup.policy,
    );
    let printed = match command {
        AdminCommand::Invite(_) => accounts.create_invite().await.map_err(Into::into),
        AdminCommand::Postmaster(_) => accounts
            .postmaster_token()
            .await
            .map(|t| t.secret)
            .map_err(Into::into),
        AdminCommand::Accounts { limit, .. } => list_accounts(&store, limit).await,
        AdminCommand::Inboxes { account, .. } => list_account_inboxes(&store, &account).await,
        AdminCommand::Disable { account, .. } => {
            set_disabled(&store, &account, Some(SystemClock.now())).await
        }
        AdminCommand::Enable { account, .. } => set_disabled(&store, &account, None).await,
        AdminCommand::ResetToken { account, .. } => reset_token(&store, &account).await,
    };
    store.close().await;
    println!("{}", printed?);
    Ok(())
}

async fn list_accounts(store: &SharedStore, limit: usize) -> anyhow::Result<String> {
    let mut out = vec!["account\tcreated\tdisabled\tinboxes\treceived\tsent\ttokens".to_owned()];
    for a in store.account_usage(limit).await? {
        out.push(format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            a.id,
            a.created_at.to_rfc3339(),
            a.disabled_at.map_or("-".into(), |t| t.to_rfc3339()),
            a.inboxes,
            a.received,
            a.sent,
            a.tokens
        ));
    }
    Ok(out.join("\n"))
}

async fn list_account_inboxes(store: &SharedStore, account: &str) -> anyhow::Result<String> {
    let inboxes = store.list_inboxes(account).await?;
    if inboxes.is_empty() && !account_exists(store, account).await? {
        anyhow::bail!("no account {account}");
    }
    let lines: Vec<String> = inboxes
        .iter()
        .map(|i| format!("{}\t{}\t{}", i.address, i.id, i.created_at.to_rfc3339()))
        .collect();
    Ok(lines.join("\n"))
}

async fn account_exists(store: &SharedStore, account: &str) -> anyhow::Result<bool> {
    Ok(store.one_account_usage(account).await?.is_some())
}

async fn set_disabled(
    store: &SharedStore,
    account: &str,
    when: Option<crabmail::clock::Timestamp>,
) -> anyhow::Result<String> {
    if !store.set_account_disabled(account, when).await? {
        anyhow::bail!("no account {account}");
    }
    Ok(match when {
        Some(_) => {
            format!("{account} disabled: its tokens no longer work; its inboxes still receive")
        }
        None => format!("{account} enabled"),
    })
}

async fn reset_token(store: &SharedStore, account: &str) -> anyhow::Result<String> {
    if !account_exists(store, account).await? {
        anyhow::bail!("no account {account}");
    }
    let now = SystemClock.now();
    let secret = crabmail::account::token::mint();
    let token = crabmail::store::NewToken {
        id: crabmail::id::new_id(crabmail::id::TOKEN, now),
        account_id: account.to_owned(),
        hash: secret.hash,
        inbox_id: None,
        name: Some("reset by the operator".into()),
        created_at: now,
        scopes: None,
    };
    let revoked = store.replace_tokens(token, now).await?;
    eprintln!("{revoked} token(s) of {account} revoked; the new one (shown once):");
    Ok(secret.secret)
}

pub async fn queue_command(command: QueueCommand) -> anyhow::Result<()> {
    let options = match &command {
        QueueCommand::List(options)
        | QueueCommand::Show { options, .. }
        | QueueCommand::Retry { options, .. }
        | QueueCommand::Cancel { options, .. } => options,
    };
    let config = options.load()?;
    let store = open_store(&config).await?;
    let result = match &command {
        QueueCommand::List(_) => queue_list(&store).await,
        QueueCommand::Show { id, .. } => queue_show(&store, id).await,
        QueueCommand::Retry { id, .. } => queue_retry(&store, id).await,
        QueueCommand::Cancel { id, .. } => queue_cancel(&store, id).await,
    };
    store.close().await;
    result
}

/// `crabmail queue list`: recipients not yet final, soonest first.
async fn queue_list(store: &SharedStore) -> anyhow::Result<()> {
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

/// `crabmail queue show ID`: a sent message's recipients and every attempt.
async fn queue_show(store: &SharedStore, id: &str) -> anyhow::Result<()> {
    let owner = store
        .outbound_owner(id)
        .await?
        .with_context(|| format!("no sent message {id}"))?;
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

/// `crabmail queue retry ID`: the message's unfinished recipients due now.
async fn queue_retry(store: &SharedStore, id: &str) -> anyhow::Result<()> {
    let n = store.retry_now(id, SystemClock.now()).await?;
    println!("{n} recipient(s) of {id} due now; the server tries them at its next wake-up");
    Ok(())
}

/// `crabmail queue cancel ID`: stop trying the message's unfinished recipients.
async fn queue_cancel(store: &SharedStore, id: &str) -> anyhow::Result<()> {
    let n = store.cancel(id, SystemClock.now()).await?;
    println!("{n} recipient(s) of {id} cancelled");
    Ok(())
}

/// `check bounce`: one JSON line per recipient of each file.
fn check_bounce(path: &std::path::Path) -> anyhow::Result<()> {
    let mut files = if path.is_dir() {
        std::fs::read_dir(path)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect::<Vec<_>>()
    } else {
        vec![path.to_owned()]
    };
    files.sort();
    for file in files {
        let raw = std::fs::read(&file).with_context(|| format!("{}", file.display()))?;
        let name = file.display().to_string();
        match crabmail::bounce::analyse(&raw) {
            None => println!("{}", serde_json::json!({ "file": name, "kind": "none" })),
            Some(report) if report.recipients.is_empty() => {
                let mut line = serde_json::to_value(&report)?;
                line["file"] = name.into();
                println!("{line}");
            }
            Some(report) => {
                for r in &report.recipients {
                    let mut line = serde_json::to_value(r)?;
                    line["file"] = name.clone().into();
                    line["kind"] = serde_json::to_value(report.kind)?;
                    line["path"] = report.path.into();
                    line["reporting_mta"] = serde_json::to_value(&report.reporting_mta)?;
                    line["original_message_id"] =
                        serde_json::to_value(&report.original_message_id)?;
                    println!("{line}");
                }
            }
        }
    }
    Ok(())
}
