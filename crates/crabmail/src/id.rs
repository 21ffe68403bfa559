//! Identifiers: a type prefix and a time-ordered UUIDv7, e.g. `msg_0193a6f2c4e87c3a9b1e0f5d2c7a4b86`.
//!
//! The prefix tells a reader (human or agent) what an id names; the time order keeps inserts at the
//! end of every index. Ids carry no authority: access is always checked against the caller.

use crate::clock::Timestamp;
use uuid::{NoContext, Uuid};

pub const ACCOUNT: &str = "acc";
pub const TOKEN: &str = "tok";
pub const INBOX: &str = "inb";
pub const MESSAGE: &str = "msg";
pub const BLOB: &str = "blob";
pub const THREAD: &str = "thr";
pub const DOMAIN: &str = "dom";
pub const SUBMISSION: &str = "sub";
pub const RECIPIENT: &str = "rcpt";
/// An entry of an allow or block list.
pub const LIST_ENTRY: &str = "lst";

pub fn new_id(prefix: &str, now: Timestamp) -> String {
    let millis = now.millis().max(0) as u64;
    let ts = uuid::Timestamp::from_unix(
        NoContext,
        millis / 1000,
        ((millis % 1000) * 1_000_000) as u32,
    );
    format!("{prefix}_{}", Uuid::new_v7(ts).simple())
}

/// Whether `id` has the shape of an id with this prefix; lets handlers answer 404 without a query.
pub fn looks_like(prefix: &str, id: &str) -> bool {
    id.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('_'))
        .is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_prefixed_unique_and_time_ordered() {
        let a = new_id(MESSAGE, Timestamp(1_000_000));
        let b = new_id(MESSAGE, Timestamp(2_000_000));
        assert!(looks_like(MESSAGE, &a));
        assert!(!looks_like(INBOX, &a));
        assert!(a < b);
        assert_ne!(new_id(MESSAGE, Timestamp(1)), new_id(MESSAGE, Timestamp(1)));
        assert!(!looks_like(MESSAGE, "msg_xyz"));
    }
}
