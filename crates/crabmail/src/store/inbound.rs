//! Mail accepted into inboxes: stored before the 250, made readable by ingest jobs that any node may lease.

use super::*;
use crabmail_api::AuthResults;

/// The SMTP envelope and connection facts of an inbound message, kept with every copy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Envelope {
    pub return_path: String,
    pub remote_ip: String,
    pub helo: String,
    pub tls: bool,
}

/// One copy of an inbound message for one inbox.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub message_id: String,
    pub inbox_id: String,
    pub account_id: String,
    /// The RCPT TO address as the client gave it.
    pub recipient: String,
    /// This inbox holds it out of its default list (its lists did not accept the sender).
    pub quarantined: bool,
    /// Sent to a signed return path: the recipient of ours it reports on (`bounce::return_path`).
    pub report_for: Option<String>,
}

/// A message accepted from the network: its bytes (stored once) and a copy per inbox.
#[derive(Debug, Clone)]
pub struct InboundMessage {
    pub blob_id: String,
    pub bytes: Arc<Vec<u8>>,
    pub received_at: Timestamp,
    pub envelope: Envelope,
    pub deliveries: Vec<Delivery>,
    /// What SPF, DKIM, DMARC and ARC said (none for mail that never crossed the network).
    pub auth: Option<AuthResults>,
    /// Held out of the default list (DMARC p=quarantine failed).
    pub quarantined: bool,
}

/// What completing ingest changed.
#[derive(Debug, Default)]
pub struct Completed {
    /// The inboxes that grew and the events written.
    pub wakes: Vec<Wake>,
    /// `(account, inbox)` that sent mail a report just bounced or complained about: their
    /// circuit breakers are judged again.
    pub reported_senders: Vec<(String, String)>,
}

/// A stored message whose parsed view is still to be made (after a crash, or queued).
#[derive(Debug, Clone)]
pub struct IngestJob {
    pub blob_id: String,
    pub bytes: Arc<Vec<u8>>,
    /// As verified on arrival (none for local mail).
    pub auth: Option<AuthResults>,
}

/// The parsed view of one blob, applied to every copy of it.
#[derive(Debug, Clone)]
pub struct Ingested {
    pub blob_id: String,
    pub from_address: Option<String>,
    pub subject: Option<String>,
    pub summary: Json<crabmail_api::SummaryContent>,
    pub parsed: Json<crabmail_api::ParsedMessage>,
    /// Where the message joins a conversation.
    pub thread: crate::ingest::thread::ThreadKeys,
    /// What it reports about mail we sent (a bounce, a complaint, an auto-reply), if anything:
    /// the store links it to the recipient and applies `bounce::act::decide` as it lists it.
    pub report: Option<crate::bounce::Report>,
}

impl Ingested {
    /// Where one copy of this message joins its inbox's conversations.
    pub(super) fn thread_join<'a>(
        &'a self,
        copy: &'a super::rows::UnreadCopy,
    ) -> crate::ingest::thread::ThreadJoin<'a> {
        crate::ingest::thread::ThreadJoin {
            message_id: &copy.message_id,
            account_id: &copy.account_id,
            inbox_id: &copy.inbox_id,
            direction: "inbound",
            subject: self.subject.as_deref(),
            keys: &self.thread,
            own_address: &copy.own_address,
            at: copy.received_at,
        }
    }
}

#[async_trait]
pub trait Inbound: Send + Sync {
    /// Stores the bytes, a copy per delivery and an ingest job, in one transaction.
    async fn accept_inbound(&self, message: InboundMessage) -> Result<()>;
    /// At start, before any worker: the ingest jobs, queue recipients and webhook endpoints this
    /// node held in an earlier run are free now (it died or stopped), without waiting out their leases. Returns
    /// how many.
    async fn resume_own_work(&self) -> Result<u64>;
    /// Leases up to `limit` ingest jobs that nobody holds at `now`, until `now + lease`, oldest
    /// first. A claimed job is held until its lease ends, so a dead node's jobs are taken over.
    /// A job never claimed is held by the node that accepted it until `created_at + lease` on a
    /// store several nodes share (PostgreSQL); on one a single node opens (SQLite) it is free.
    async fn claim_ingest(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<IngestJob>>;
    /// Makes the copies of each blob readable (and applies the reports among them), in one
    /// transaction.
    async fn complete_ingest(&self, done: Vec<Ingested>, now: Timestamp) -> Result<Completed>;
}
