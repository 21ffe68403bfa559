//! Wake-ups for long-polls: "inbox X has new readable messages", "account Y has new events";
//! and how an event looks to the account (`view`).
//!
//! Writers announce after their commit; on PostgreSQL, changes committed by other nodes come in
//! through `Store::follow_arrivals`. A waiter subscribes before it looks at the store, so a change
//! between its look and its wait still wakes it (no lost wake-up). A wake-up carries nothing the
//! waiter trusts: it always reads the store again.

use crate::store::{EventRecord, Wake};
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::watch;

/// Beyond this many entries, subscribing sweeps out topics nobody waits on.
const SWEEP_AT: usize = 4096;

#[derive(Default)]
pub struct Wakeups {
    topics: Mutex<HashMap<String, watch::Sender<i64>>>,
    /// Any account's event log grew (the webhook dispatcher waits on this).
    any_event: tokio::sync::Notify,
}

impl Wakeups {
    pub fn new() -> Self {
        Self::default()
    }

    /// A receiver whose `changed()` fires at the topic's next wake-up.
    pub fn subscribe(&self, topic: &str) -> watch::Receiver<i64> {
        let mut topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        if topics.len() >= SWEEP_AT {
            topics.retain(|_, tx| tx.receiver_count() > 0);
        }
        topics
            .entry(topic.to_owned())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    pub fn announce(&self, wake: &Wake) {
        if wake.topic.starts_with("events:") {
            self.any_event.notify_one();
        }
        let mut topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = topics.get(&wake.topic) {
            if tx.receiver_count() == 0 {
                topics.remove(&wake.topic);
            } else {
                tx.send_replace(wake.seq);
            }
        }
    }

    /// Resolves at the next event of any account (or at once if one came since the last call).
    pub async fn any_event(&self) {
        self.any_event.notified().await
    }

    pub fn announce_all(&self, wakes: &[Wake]) {
        for wake in wakes {
            self.announce(wake);
        }
    }
}

/// An event as the account sees it: in `GET /v1/events`, its stream, and webhook payloads.
pub fn view(record: EventRecord, account_id: &str) -> crabmail_api::Event {
    crabmail_api::Event {
        id: event_id(account_id, record.seq),
        seq: record.seq,
        kind: record.kind,
        at: record.created_at.to_rfc3339(),
        message_id: record.message_id,
        inbox_id: record.inbox_id,
        recipient: record.recipient,
        detail: record.detail,
    }
}

/// `evt_<account's hex>_<seq>`: unique among accounts, as webhook receivers need.
pub fn event_id(account_id: &str, seq: i64) -> String {
    let account = account_id
        .split_once('_')
        .map_or(account_id, |(_, hex)| hex);
    format!("evt_{account}_{seq}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_subscriber_wakes_on_its_topic_only() {
        let wakeups = Wakeups::new();
        let mut a = wakeups.subscribe("inbox:inb_a");
        let b = wakeups.subscribe("inbox:inb_b");
        wakeups.announce(&Wake::inbox("inb_a", 3));
        a.changed().await.unwrap();
        assert_eq!(*a.borrow(), 3);
        assert!(!b.has_changed().unwrap());
    }

    #[test]
    fn topics_without_waiters_are_dropped() {
        let wakeups = Wakeups::new();
        drop(wakeups.subscribe("inbox:inb_a"));
        wakeups.announce(&Wake::inbox("inb_a", 1));
        assert!(wakeups.topics.lock().unwrap().is_empty());
    }
}
