//! Wake-ups for long-polls: "inbox X has new readable messages".
//!
//! Ingest announces each arrival after its commit; on PostgreSQL, arrivals committed by other nodes
//! come in through `Store::follow_arrivals`. A waiter subscribes before it looks at the store, so an
//! arrival between its look and its wait still wakes it (no lost wake-up). Announcements carry no
//! data the waiter trusts: it always reads the store again.

use crate::store::Arrival;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::watch;

/// Beyond this many idle entries, subscribing sweeps out inboxes nobody waits on.
const SWEEP_AT: usize = 4096;

#[derive(Default)]
pub struct Arrivals {
    inboxes: Mutex<HashMap<String, watch::Sender<i64>>>,
}

impl Arrivals {
    pub fn new() -> Self {
        Self::default()
    }

    /// A receiver whose `changed()` fires at the inbox's next arrival.
    pub fn subscribe(&self, inbox_id: &str) -> watch::Receiver<i64> {
        let mut inboxes = self.inboxes.lock().unwrap_or_else(|e| e.into_inner());
        if inboxes.len() >= SWEEP_AT {
            inboxes.retain(|_, tx| tx.receiver_count() > 0);
        }
        inboxes
            .entry(inbox_id.to_owned())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    pub fn announce(&self, arrival: &Arrival) {
        let mut inboxes = self.inboxes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = inboxes.get(&arrival.inbox_id) {
            if tx.receiver_count() == 0 {
                inboxes.remove(&arrival.inbox_id);
            } else {
                tx.send_replace(arrival.seq);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_subscriber_wakes_on_its_inbox_only() {
        let arrivals = Arrivals::new();
        let mut a = arrivals.subscribe("inb_a");
        let b = arrivals.subscribe("inb_b");
        arrivals.announce(&Arrival {
            inbox_id: "inb_a".into(),
            seq: 3,
        });
        a.changed().await.unwrap();
        assert_eq!(*a.borrow(), 3);
        assert!(!b.has_changed().unwrap());
    }

    #[test]
    fn entries_without_waiters_are_dropped() {
        let arrivals = Arrivals::new();
        drop(arrivals.subscribe("inb_a"));
        arrivals.announce(&Arrival {
            inbox_id: "inb_a".into(),
            seq: 1,
        });
        assert!(arrivals.inboxes.lock().unwrap().is_empty());
    }
}
