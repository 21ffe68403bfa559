//! Mail that stays on this server: deliveries to inboxes we host and bounce reports into the
//! sending inbox, both through `ingest::accept` like mail from the network.

use super::*;

impl Queue {
    /// Straight into the recipients' inboxes, one stored copy for all of them.
    pub(super) async fn deliver_locally(
        &self,
        recipients: &[Claimed],
        body: &[u8],
        outcomes: &mut Outcomes,
    ) -> Vec<Outcome> {
        let now = self.clock.now();
        let mut copies = Copies::default();
        let mut results = Vec::with_capacity(recipients.len());
        for recipient in recipients {
            results.push(match self.accounts.resolve(&recipient.address).await {
                Ok(Resolved::Inbox(target)) => {
                    copies.add(target, &recipient.address, now);
                    Outcome::delivered_locally("delivered to a local inbox").at_host(&self.hostname)
                }
                Ok(_) => Outcome::bounced(
                    "5.1.1",
                    format!("<{}>: no such mailbox here", recipient.address),
                )
                .at_host(&self.hostname),
                Err(e) => Outcome::deferred("4.3.0", format!("local store unavailable: {e}")),
            });
        }
        if !copies.is_empty() {
            let envelope = accept::local_envelope(&recipients[0].return_path, &self.hostname);
            outcomes.inbound.push(accept::accept(
                body.to_vec(),
                envelope,
                copies,
                None,
                false,
                now,
            ));
        }
        results
    }

    /// An RFC 3464 report into the inbox that sent the message (never for a null sender).
    pub(super) async fn bounce_report(
        &self,
        sent: &Claimed,
        original: &[u8],
        failed: &[Failed],
        now: Timestamp,
    ) -> Option<InboundMessage> {
        if sent.return_path.is_empty() {
            return None;
        }
        let report_id = id::new_id(id::BLOB, now);
        let domain = Domain::of(&sent.return_path)
            .map(Domain::into_string)
            .unwrap_or_default();
        let bytes = dsn::bounce(&dsn::Report {
            reporting_mta: &self.hostname,
            from_domain: &domain,
            to: &sent.return_path,
            original,
            arrival: sent.queued_at,
            now,
            id: &report_id,
            failed,
        });
        // Signed like everything we send, by the sending inbox's domain.
        // The report must not be lost to a key lookup: unsigned if the store cannot answer.
        let bytes = self
            .signer
            .sign(&domain, bytes.clone())
            .await
            .unwrap_or(bytes);
        let mut copies = Copies::default();
        let sender = InboxTarget {
            inbox_id: sent.inbox_id.clone(),
            account_id: sent.account_id.clone(),
            approval_required: false,
        };
        copies.add(sender, &sent.return_path, now);
        // A report has a null return path: nothing ever answers it.
        let envelope = accept::local_envelope("", &self.hostname);
        Some(accept::accept(bytes, envelope, copies, None, false, now))
    }
}
