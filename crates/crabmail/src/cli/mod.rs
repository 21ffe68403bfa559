//! The agent CLI: the same binary, talking to a running crabmail over its HTTP API.
//!
//! The token comes from `CRABMAIL_TOKEN`, else `~/.crabmail/token`; when neither exists, the first
//! command signs up and saves the new token there (mode 0600). `receive` keeps a per-inbox cursor
//! in `~/.crabmail/cursors/`, so each run shows only what arrived since the last one.

pub mod operator;
pub mod options;
pub mod risk;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use crabmail_api::client::{Client, ClientError};
use crabmail_api::{AddressList, CreateInbox, Inbox, MessageSummary};
use std::path::PathBuf;

#[derive(Args, Clone)]
pub struct Connection {
    /// Server URL.
    #[arg(
        long,
        env = "CRABMAIL_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    server: String,
}

#[derive(Subcommand)]
pub enum AgentCommand {
    /// Create or list inboxes.
    Inbox {
        #[command(subcommand)]
        command: InboxCommand,
        #[command(flatten)]
        conn: Connection,
    },
    /// Show messages that arrived since the last `receive` (waiting up to --wait seconds).
    Receive(ReceiveArgs),
    /// Send a message from one of your inboxes.
    Send(SendArgs),
    /// Wait for a verification code to arrive and print just the code.
    WaitForCode(WaitForCodeArgs),
    /// Show one message.
    Read(ReadArgs),
    /// Sending limits, what each window holds, held mail and any pause: the account's, or one
    /// inbox's.
    Quota(QuotaArgs),
    /// Serve MCP over stdio (for desktop agents and IDEs): every crabmail verb as a tool, with
    /// this CLI's token (signing up on first use).
    Mcp {
        #[command(flatten)]
        conn: Connection,
    },
    /// Mail waiting for approval: list it, approve it (it is sent) or reject it.
    Approvals {
        #[command(subcommand)]
        command: ApprovalCommand,
        #[command(flatten)]
        conn: Connection,
    },
}

#[derive(Args)]
pub struct QuotaArgs {
    /// Inbox address or id; the account's quota when absent.
    #[arg(long)]
    pub inbox: Option<String>,
    #[command(flatten)]
    pub conn: Connection,
}

#[derive(Subcommand)]
pub enum ApprovalCommand {
    /// List the messages waiting for approval: id, inbox, recipients, subject.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Approve a held message: it is queued now (within the sending quotas).
    Approve { message_id: String },
    /// Reject a held message: it is never sent.
    Reject { message_id: String },
}

#[derive(Args)]
pub struct ReceiveArgs {
    /// Inbox address or id; the oldest inbox of the account when absent.
    #[arg(long)]
    pub inbox: Option<String>,
    /// Seconds to wait for a message when none is new.
    #[arg(long, default_value_t = 0)]
    pub wait: u64,
    /// Start from this cursor instead of the saved one.
    #[arg(long)]
    pub after: Option<String>,
    /// List from the first message, without moving the saved cursor.
    #[arg(long)]
    pub all: bool,
    /// Print the API's JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: Connection,
}

#[derive(Args)]
pub struct SendArgs {
    /// Inbox address or id to send from.
    #[arg(long)]
    pub from: String,
    /// Recipient (repeatable).
    #[arg(long, required_unless_present = "reply_to")]
    pub to: Vec<String>,
    #[arg(long)]
    pub cc: Vec<String>,
    #[arg(long)]
    pub bcc: Vec<String>,
    #[arg(long)]
    pub subject: Option<String>,
    /// Plain-text body.
    #[arg(long)]
    pub text: Option<String>,
    /// File holding an HTML body.
    #[arg(long)]
    pub html_file: Option<PathBuf>,
    /// File to attach (repeatable).
    #[arg(long)]
    pub attach: Vec<PathBuf>,
    /// Id of a received message to answer (threads the reply).
    #[arg(long)]
    pub reply_to: Option<String>,
    /// Makes a retried command send only once.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Seconds to wait for every recipient's outcome before returning. The exit code then says
    /// how it ended: 0 all delivered, 3 a recipient bounced, expired or was cancelled, 4 a
    /// recipient was still pending when the wait ended.
    #[arg(long, default_value_t = 0)]
    pub wait: u64,
    #[command(flatten)]
    pub conn: Connection,
}

#[derive(Args)]
pub struct WaitForCodeArgs {
    /// Inbox address or id; the oldest inbox of the account when absent.
    #[arg(long)]
    pub inbox: Option<String>,
    /// Sender address or domain (github.com matches noreply@github.com).
    #[arg(long)]
    pub from: Option<String>,
    /// Text the subject must contain.
    #[arg(long)]
    pub subject: Option<String>,
    /// Seconds to wait.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    /// Messages received this long before the command count too (the code may already be
    /// there when you ask), e.g. 0s, 2m.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub since: std::time::Duration,
    /// Print the whole message JSON instead of the code.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: Connection,
}

#[derive(Args)]
pub struct ReadArgs {
    pub message_id: String,
    /// Print the API's JSON.
    #[arg(long)]
    pub json: bool,
    /// Print the raw message exactly as received.
    #[arg(long, conflicts_with = "json")]
    pub raw: bool,
    #[command(flatten)]
    pub conn: Connection,
}

#[derive(Subcommand)]
pub enum InboxCommand {
    /// Create an inbox and print its address.
    Create {
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List the account's inboxes.
    List {
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(command: AgentCommand) -> anyhow::Result<()> {
    match command {
        AgentCommand::Inbox { command, conn } => inbox(command, &conn).await,
        AgentCommand::WaitForCode(args) => wait_for_code(args).await,
        AgentCommand::Receive(args) => receive(args).await,
        AgentCommand::Send(args) => send(args).await,
        AgentCommand::Read(args) => read(args).await,
        AgentCommand::Approvals { command, conn } => approvals(command, &conn).await,
        AgentCommand::Quota(args) => quota(args).await,
        AgentCommand::Mcp { conn } => mcp(&conn).await,
    }
}

/// MCP on stdin and stdout: stdout carries only the protocol (the signup note goes to stderr).
async fn mcp(conn: &Connection) -> anyhow::Result<()> {
    let client = client(conn).await?;
    let token = client.token().unwrap_or_default().to_owned();
    crabmail::mcp::serve_stdio(&conn.server, token)
        .await
        .map_err(anyhow::Error::msg)
}

async fn quota(args: QuotaArgs) -> anyhow::Result<()> {
    let client = client(&args.conn).await?;
    let inbox = match &args.inbox {
        Some(which) => Some(pick_inbox(&client, Some(which)).await?.id),
        None => None,
    };
    let quota = client.get_quota(inbox.as_deref()).await.map_err(explain)?;
    println!("{}", serde_json::to_string_pretty(&quota)?);
    Ok(())
}

async fn approvals(command: ApprovalCommand, conn: &Connection) -> anyhow::Result<()> {
    let client = client(conn).await?;
    match command {
        ApprovalCommand::List { json } => {
            let list = client.list_approvals().await.map_err(explain)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            }
            for message in list.messages.iter().filter(|_| !json) {
                let to: Vec<String> = message
                    .delivery
                    .iter()
                    .flat_map(|d| d.recipients.iter().map(|r| r.address.clone()))
                    .collect();
                println!(
                    "{}\t{}\t{}\t{}",
                    message.id,
                    message.inbox_id,
                    to.join(","),
                    message.parsed.subject.as_deref().unwrap_or("")
                );
            }
        }
        ApprovalCommand::Approve { message_id } => {
            let sent = client.approve(&message_id).await.map_err(explain)?;
            println!("{}\t{}\t{}", sent.id, sent.status, sent.release_at);
        }
        ApprovalCommand::Reject { message_id } => {
            let sent = client.reject(&message_id).await.map_err(explain)?;
            println!("{}\t{}", sent.id, sent.status);
        }
    }
    Ok(())
}

async fn inbox(command: InboxCommand, conn: &Connection) -> anyhow::Result<()> {
    let client = client(conn).await?;
    match command {
        InboxCommand::Create {
            name,
            display_name,
            json,
        } => {
            let inbox = client
                .create_inbox(&CreateInbox {
                    name: name.clone(),
                    display_name,
                    domain: None,
                })
                .await
                .map_err(explain)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&inbox)?);
            } else {
                println!("{}\t{}", inbox.address, inbox.id);
            }
            let got = inbox.address.split('@').next().unwrap_or_default();
            if let Some(asked) = name.filter(|n| !n.eq_ignore_ascii_case(got)) {
                eprintln!(
                    "note: {asked} was taken (or reserved); the inbox is {}",
                    inbox.address
                );
            }
        }
        InboxCommand::List { json } => {
            let list = client.list_inboxes().await.map_err(explain)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                for inbox in list.inboxes {
                    println!("{}\t{}", inbox.address, inbox.id);
                }
            }
        }
    }
    Ok(())
}

async fn wait_for_code(args: WaitForCodeArgs) -> anyhow::Result<()> {
    let WaitForCodeArgs {
        inbox,
        from,
        subject,
        timeout,
        since,
        json,
        conn,
    } = args;
    let client = client(&conn).await?;
    let inbox = pick_inbox(&client, inbox.as_deref()).await?;
    let now = crabmail::clock::Clock::now(&crabmail::clock::SystemClock);
    let since = crabmail::clock::Timestamp(now.0 - since.as_millis() as i64);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(timeout);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        // The server holds a wait for at most a minute or two; ask again until ours ends.
        let chunk = left.as_secs().min(60);
        let filter = crabmail_api::client::WaitFilter {
            from: from.clone(),
            subject_contains: subject.clone(),
            has_code: true,
            timeout: Some(chunk),
            since: Some(since.to_rfc3339()),
            ..Default::default()
        };
        match client.wait_for(&inbox.id, &filter).await.map_err(explain)? {
            crabmail_api::WaitResult::Message(message) => {
                if json {
                    println!("{}", serde_json::to_string_pretty(&message)?);
                } else if let Some(code) = message
                    .parsed
                    .extracted
                    .as_ref()
                    .and_then(|e| e.codes.first())
                {
                    println!("{}", code.value);
                }
                return Ok(());
            }
            crabmail_api::WaitResult::TimedOut(_) if chunk == 0 || left.as_secs() <= chunk => {
                bail!("no code arrived in {} within {timeout} s", inbox.address);
            }
            crabmail_api::WaitResult::TimedOut(_) => {}
        }
    }
}

async fn receive(args: ReceiveArgs) -> anyhow::Result<()> {
    let ReceiveArgs {
        inbox,
        wait,
        after,
        all,
        json,
        conn,
    } = args;
    let client = client(&conn).await?;
    let inbox = pick_inbox(&client, inbox.as_deref()).await?;
    let saved = cursor_path(&inbox.id)?;
    let cursor = match (&after, all) {
        (Some(after), _) => Some(after.clone()),
        (None, true) => None,
        (None, false) => std::fs::read_to_string(&saved)
            .ok()
            .map(|s| s.trim().to_owned()),
    };
    let wait = u32::try_from(wait).unwrap_or(u32::MAX);
    let list = client
        .list_messages(&inbox.id, cursor.as_deref(), Some(100), Some(wait))
        .await
        .map_err(explain)?;
    if !all {
        if let Some(dir) = saved.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&saved, &list.next_cursor)?;
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else if list.messages.is_empty() {
        eprintln!("no new messages in {}", inbox.address);
    } else {
        for m in &list.messages {
            println!("{}", summary_line(m));
        }
    }
    Ok(())
}

async fn send(args: SendArgs) -> anyhow::Result<()> {
    let SendArgs {
        from,
        to,
        cc,
        bcc,
        subject,
        text,
        html_file,
        attach,
        reply_to,
        idempotency_key,
        wait,
        conn,
    } = args;
    let client = client(&conn).await?;
    let inbox = pick_inbox(&client, Some(&from)).await?;
    let html = match html_file {
        Some(path) => Some(
            std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?,
        ),
        None => None,
    };
    let mut attachments = Vec::new();
    for path in attach {
        use base64::Engine;
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        attachments.push(crabmail_api::OutgoingAttachment {
            filename: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "attachment".into()),
            content_type: Some(content_type_for(&path).to_owned()),
            content_base64: Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
            upload_id: None,
        });
    }
    let list = |v: Vec<String>| {
        if v.is_empty() {
            AddressList::None
        } else {
            AddressList::Many(v)
        }
    };
    let message = crabmail_api::SendMessage {
        to: list(to),
        cc: list(cc),
        bcc: list(bcc),
        subject,
        text,
        html,
        attachments,
        in_reply_to: reply_to,
        ..Default::default()
    };
    let sent = client
        .send_message(&inbox.id, &message, idempotency_key.as_deref())
        .await
        .map_err(explain)?;
    println!("{}\t{}", sent.id, sent.status);
    if wait > 0 {
        let (shown, outcome) = wait_for_outcome(&client, &sent.id, wait).await?;
        println!("{shown}");
        if let Some(unfinished) = outcome {
            return Err(unfinished.into());
        }
    }
    Ok(())
}

/// How a `send --wait` that did not end with every recipient delivered ended (exit 3 or 4).
#[derive(Debug, thiserror::Error)]
pub enum Unfinished {
    #[error("message {0} was not delivered to every recipient (see above)")]
    Failed(String),
    #[error("message {0} was still pending when the wait ended (see above)")]
    Pending(String),
}

impl Unfinished {
    pub fn exit_code(&self) -> u8 {
        match self {
            Unfinished::Failed(_) => 3,
            Unfinished::Pending(_) => 4,
        }
    }
}

async fn read(args: ReadArgs) -> anyhow::Result<()> {
    let ReadArgs {
        message_id,
        json,
        raw,
        conn,
    } = args;
    let client = client(&conn).await?;
    if raw {
        use std::io::Write;
        let bytes = client.get_raw(&message_id).await.map_err(explain)?;
        std::io::stdout().write_all(&bytes)?;
        return Ok(());
    }
    let m = client.get_message(&message_id).await.map_err(explain)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&m)?);
        return Ok(());
    }
    let p = &m.parsed;
    let who = |mb: &crabmail_api::Mailbox| match (&mb.name, &mb.address) {
        (Some(n), Some(a)) => format!("{n} <{a}>"),
        (None, Some(a)) => a.clone(),
        (Some(n), None) => n.clone(),
        (None, None) => String::new(),
    };
    println!("From: {}", p.from.as_ref().map(who).unwrap_or_default());
    println!(
        "To: {}",
        p.to.iter().map(who).collect::<Vec<_>>().join(", ")
    );
    if !p.cc.is_empty() {
        println!(
            "Cc: {}",
            p.cc.iter().map(who).collect::<Vec<_>>().join(", ")
        );
    }
    println!("Subject: {}", p.subject.as_deref().unwrap_or(""));
    println!("Date: {}", p.date.as_deref().unwrap_or(&m.received_at));
    for a in &p.attachments {
        println!(
            "Attachment {}: {} ({}, {} bytes)",
            a.index,
            a.filename.as_deref().unwrap_or("(unnamed)"),
            a.content_type,
            a.size
        );
    }
    println!();
    println!("{}", p.text.as_deref().unwrap_or("").trim_end());
    Ok(())
}

/// Follows the message's delivery until every recipient is final or `wait` seconds pass.
/// The delivery state once every recipient is final (or the wait ended), as text, and whether
/// it fell short.
async fn wait_for_outcome(
    client: &Client,
    id: &str,
    wait: u64,
) -> anyhow::Result<(String, Option<Unfinished>)> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(wait);
    let mut cursor: Option<String> = None;
    loop {
        let message = client.get_message(id).await.map_err(explain)?;
        let delivery = message.delivery.context("not a sent message")?;
        let left = deadline
            .saturating_duration_since(tokio::time::Instant::now())
            .as_secs();
        if delivery.status != "pending" || left == 0 {
            let lines: Vec<String> = delivery
                .recipients
                .iter()
                .map(|r| {
                    let last = r
                        .attempts
                        .last()
                        .map(|a| format!(" ({})", a.text))
                        .unwrap_or_default();
                    format!("{}\t{}{last}", r.address, r.status)
                })
                .collect();
            let shown = format!("{}\n{}", delivery.status, lines.join("\n"));
            let statuses = || delivery.recipients.iter().map(|r| r.status.as_str());
            let outcome = if statuses().any(|s| matches!(s, "bounced" | "expired" | "cancelled")) {
                Some(Unfinished::Failed(id.to_owned()))
            } else if statuses().any(|s| s != "delivered") {
                Some(Unfinished::Pending(id.to_owned()))
            } else {
                None
            };
            return Ok((shown, outcome));
        }
        let page = client
            .list_events(cursor.as_deref(), Some(left.min(60) as u32))
            .await
            .map_err(explain)?;
        cursor = Some(page.next_cursor);
    }
}

fn content_type_for(path: &std::path::Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "txt" | "log" | "md" => "text/plain",
        "csv" => "text/csv",
        "html" | "htm" => "text/html",
        "json" => "application/json",
        "pdf" => "application/pdf",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "zip" => "application/zip",
        "eml" => "message/rfc822",
        _ => "application/octet-stream",
    }
}

fn summary_line(m: &MessageSummary) -> String {
    let from = m
        .content
        .from
        .as_ref()
        .and_then(|f| f.address.clone().or(f.name.clone()))
        .unwrap_or_default();
    format!(
        "{}\t{}\t{}\t{}",
        m.id,
        m.received_at,
        from,
        m.content.subject.as_deref().unwrap_or("(no subject)")
    )
}

async fn pick_inbox(client: &Client, wanted: Option<&str>) -> anyhow::Result<Inbox> {
    let list = client.list_inboxes().await.map_err(explain)?;
    let found = match wanted {
        Some(w) => list
            .inboxes
            .into_iter()
            .find(|i| i.id == w || i.address.eq_ignore_ascii_case(w)),
        None => list.inboxes.into_iter().next(),
    };
    match (found, wanted) {
        (Some(inbox), _) => Ok(inbox),
        (None, Some(w)) => bail!("no inbox {w} in this account (see `crabmail inbox list`)"),
        (None, None) => bail!("this account has no inbox yet: run `crabmail inbox create`"),
    }
}

fn home() -> anyhow::Result<PathBuf> {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .context("HOME is not set; set CRABMAIL_TOKEN instead")
}

fn cursor_path(inbox_id: &str) -> anyhow::Result<PathBuf> {
    Ok(home()?.join(".crabmail").join("cursors").join(inbox_id))
}

/// A client with a token: from the environment, the token file, or a fresh signup.
async fn client(conn: &Connection) -> anyhow::Result<Client> {
    let (client, signed_up) = Client::connect(&conn.server, None).await.map_err(explain)?;
    if signed_up {
        let path = crabmail_api::client::default_token_file().map_err(explain)?;
        eprintln!("signed up; token saved to {}", path.display());
    }
    Ok(client)
}

fn explain(e: ClientError) -> anyhow::Error {
    match e {
        ClientError::Transport(t) if t.is_connect() => anyhow::anyhow!(
            "cannot reach the crabmail server ({t}); is `crabmail serve` running, and is --server / CRABMAIL_URL right?"
        ),
        other => other.into(),
    }
}
