//! The delivery journal: a remote's acceptance written down the moment it arrives, before the
//! store commits it.
//!
//! Between a remote MX's `250` and the commit of that outcome lies the window in which a crash
//! makes a duplicate: the lease brings the recipient back and the message is sent again. The
//! commit waits for the disk and for the write batch it joins; one `write()` to this file does
//! not, and a killed process loses nothing it wrote. At start, what the journal holds and the
//! store does not is recorded as delivered before this node's leases are freed
//! (`open_and_replay`), so no node claims those recipients again. Like Postfix's queue-file
//! marks, the journal is not synced: an operating-system crash can lose its tail, which only
//! means the duplicates the store alone would have given, never lost mail.
//!
//! Only remote deliveries are journaled: a local delivery commits the message and its outcome in
//! one transaction, so it has no window. Entries settle when their outcome commits; a segment
//! with nothing unsettled is emptied, so the journal stays a few lines long.

use crate::clock::{SharedClock, Timestamp};
use crate::store::{AttemptRecord, Outcomes, RecipientResult, SharedStore, Status};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Entries per segment before a new one starts, when outcomes never all settle at once.
const SEGMENT_ENTRIES: usize = 4096;
/// Tries at recording what a previous run left, a second apart, before starting without it.
const REPLAY_ATTEMPTS: usize = 10;

/// This node's journal in `data_dir`, after recording what a previous run left in it. Run it
/// before this node's leases are freed: once they are, another node sharing PostgreSQL may
/// claim, and send again, a recipient only this journal knows was delivered. None (with a
/// warning) if the journal cannot be opened; delivery works without it.
pub async fn open_and_replay(
    data_dir: &Path,
    store: &SharedStore,
    clock: &SharedClock,
) -> Option<Journal> {
    let (journal, left) = match Journal::open(&data_dir.join("queue-journal")) {
        Ok(opened) => opened,
        Err(e) => {
            tracing::warn!(error = %e, "queue: no delivery journal; a crash may repeat more deliveries");
            return None;
        }
    };
    if left.results.is_empty() {
        left.forget();
        return Some(journal);
    }
    let journaled = left.results.len();
    let outcomes = Outcomes {
        results: left.results.clone(),
        ..Outcomes::default()
    };
    for _ in 0..REPLAY_ATTEMPTS {
        match store.record_outcomes(outcomes.clone(), clock.now()).await {
            Ok(wakes) => {
                // One event per outcome that changed its recipient; the rest had committed
                // before the restart but not yet left the journal.
                let recorded = wakes.len();
                crate::metrics::add(
                    "crabmail_deliveries_total",
                    &[("outcome", Status::Delivered.as_str())],
                    recorded as u64,
                );
                tracing::info!(
                    target: "crabmail::queue::journal",
                    journaled,
                    recorded,
                    "queue: deliveries journaled before a restart recorded"
                );
                left.forget();
                return Some(journal);
            }
            Err(e) => {
                tracing::error!(error = %e, "queue: cannot record the delivery journal; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    }
    tracing::error!(
        journaled,
        "queue: the delivery journal is kept for the next start; these recipients may be sent again"
    );
    Some(journal)
}

/// One delivered recipient, as written.
#[derive(Serialize, Deserialize)]
struct Line {
    recipient: String,
    account: String,
    message: String,
    inbox: String,
    address: String,
    at: i64,
    host: Option<String>,
    code: Option<u16>,
    enhanced: Option<String>,
    text: String,
    tls: Option<String>,
}

/// Which segment a group of entries went to, and how many; handed back once they commit.
#[derive(Debug, Default)]
#[must_use = "settle it once its outcomes commit"]
pub struct Written {
    entries: Vec<(u64, usize)>,
}

impl Written {
    pub fn add(&mut self, other: Written) {
        self.entries.extend(other.entries);
    }
}

pub struct Journal {
    dir: PathBuf,
    state: Mutex<State>,
}

struct State {
    current: Option<Segment>,
    next_seq: u64,
    /// Unsettled entries per segment, the current one included.
    unsettled: BTreeMap<u64, usize>,
}

struct Segment {
    seq: u64,
    file: File,
    entries: usize,
}

impl Journal {
    /// The journal in `dir` (created if missing), with what a previous run left in it: delivered
    /// outcomes to record before claiming anything, and the segments they came from, to remove
    /// once they are recorded (`forget`).
    pub fn open(dir: &Path) -> std::io::Result<(Journal, LeftBehind)> {
        std::fs::create_dir_all(dir)?;
        let mut segments = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if let Some(seq) = segment_seq(&path) {
                segments.push((seq, path));
            }
        }
        segments.sort();
        let mut results = Vec::new();
        for (_, path) in &segments {
            results.extend(read_segment(path)?);
        }
        let next_seq = segments.last().map(|(seq, _)| seq + 1).unwrap_or(0);
        let journal = Journal {
            dir: dir.to_owned(),
            state: Mutex::new(State {
                current: None,
                next_seq,
                unsettled: BTreeMap::new(),
            }),
        };
        let left = LeftBehind {
            results,
            segments: segments.into_iter().map(|(_, path)| path).collect(),
        };
        Ok((journal, left))
    }

    /// Writes the delivered ones among `results`; an error is logged and delivery goes on (the
    /// journal only narrows the duplicate window; the store stays the record).
    pub fn delivered(&self, results: &[RecipientResult]) -> Written {
        let mut text = String::new();
        let mut count = 0;
        for r in results.iter().filter(|r| r.status == Status::Delivered) {
            let line = Line {
                recipient: r.recipient_id.clone(),
                account: r.account_id.clone(),
                message: r.message_id.clone(),
                inbox: r.inbox_id.clone(),
                address: r.address.clone(),
                at: r.attempt.at.0,
                host: r.attempt.host.clone(),
                code: r.attempt.code,
                enhanced: r.attempt.enhanced.clone(),
                text: r.attempt.text.clone(),
                tls: r.attempt.tls.clone(),
            };
            if let Ok(json) = serde_json::to_string(&line) {
                text.push_str(&json);
                text.push('\n');
                count += 1;
            }
        }
        if count == 0 {
            return Written::default();
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match self.append(&mut state, text.as_bytes(), count) {
            Ok(seq) => Written {
                entries: vec![(seq, count)],
            },
            Err(e) => {
                tracing::warn!(error = %e, dir = %self.dir.display(), "queue: cannot write the delivery journal");
                Written::default()
            }
        }
    }

    /// The outcomes behind `written` are committed: their entries are no longer needed.
    pub fn settle(&self, written: Written) {
        if written.entries.is_empty() {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for (seq, count) in written.entries {
            let Some(left) = state.unsettled.get_mut(&seq) else {
                continue;
            };
            *left = left.saturating_sub(count);
            if *left > 0 {
                continue;
            }
            state.unsettled.remove(&seq);
            let current = state.current.as_mut().filter(|s| s.seq == seq);
            let outcome = match current {
                // Nothing in it is needed: empty it in place (appends go to the new end).
                Some(segment) => segment.file.set_len(0).map(|()| segment.entries = 0),
                None => std::fs::remove_file(self.segment_path(seq)),
            };
            if let Err(e) = outcome {
                tracing::warn!(error = %e, "queue: cannot trim the delivery journal");
            }
        }
    }

    fn append(&self, state: &mut State, bytes: &[u8], count: usize) -> std::io::Result<u64> {
        let full = state
            .current
            .as_ref()
            .is_some_and(|s| s.entries >= SEGMENT_ENTRIES);
        if full || state.current.is_none() {
            if let Some(old) = state.current.take()
                && !state.unsettled.contains_key(&old.seq)
            {
                std::fs::remove_file(self.segment_path(old.seq))?;
            }
            let seq = state.next_seq;
            state.next_seq += 1;
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.segment_path(seq))?;
            state.current = Some(Segment {
                seq,
                file,
                entries: 0,
            });
        }
        let Some(segment) = state.current.as_mut() else {
            return Err(std::io::Error::other("no journal segment"));
        };
        // One write per group: a kill leaves whole lines, or a torn last line that is skipped.
        segment.file.write_all(bytes)?;
        segment.entries += count;
        *state.unsettled.entry(segment.seq).or_default() += count;
        Ok(segment.seq)
    }

    fn segment_path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:012}.journal"))
    }
}

/// What a previous run journaled: outcomes that may not have reached the store.
pub struct LeftBehind {
    pub results: Vec<RecipientResult>,
    segments: Vec<PathBuf>,
}

impl LeftBehind {
    /// The outcomes are recorded: remove the segments that held them.
    pub fn forget(self) {
        for path in self.segments {
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(error = %e, path = %path.display(), "queue: cannot remove a replayed journal segment");
            }
        }
    }
}

fn segment_seq(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    name.strip_suffix(".journal")?.parse().ok()
}

/// A segment's delivered outcomes; a torn or unreadable line (the kill came mid-write) is skipped.
fn read_segment(path: &Path) -> std::io::Result<Vec<RecipientResult>> {
    let mut results = Vec::new();
    for line in BufReader::new(File::open(path)?).split(b'\n') {
        let Ok(line) = serde_json::from_slice::<Line>(&line?) else {
            continue;
        };
        results.push(RecipientResult {
            recipient_id: line.recipient,
            account_id: line.account,
            message_id: line.message,
            inbox_id: line.inbox,
            address: line.address,
            status: Status::Delivered,
            next_attempt_at: None,
            attempt: AttemptRecord {
                at: Timestamp(line.at),
                host: line.host,
                code: line.code,
                enhanced: line.enhanced,
                text: line.text,
                tls: line.tls,
            },
        });
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(id: &str, status: Status) -> RecipientResult {
        RecipientResult {
            recipient_id: id.into(),
            account_id: "acc".into(),
            message_id: "msg".into(),
            inbox_id: "inb".into(),
            address: format!("{id}@example.test"),
            status,
            next_attempt_at: None,
            attempt: AttemptRecord {
                at: Timestamp(1_700_000_000_000),
                host: Some("mx.example.test".into()),
                code: Some(250),
                enhanced: Some("2.0.0".into()),
                text: "Ok: queued as ABC".into(),
                tls: None,
            },
        }
    }

    fn files(dir: &Path) -> Vec<(String, u64)> {
        let mut out: Vec<(String, u64)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    e.metadata().unwrap().len(),
                )
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn unsettled_deliveries_survive_a_crash_and_settled_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, left) = Journal::open(dir.path()).unwrap();
        assert!(left.results.is_empty());
        let settled = journal.delivered(&[result("r1", Status::Delivered)]);
        // Deferred and bounced outcomes have no duplicate to prevent.
        let pending = journal.delivered(&[
            result("r2", Status::Delivered),
            result("r3", Status::Deferred),
            result("r4", Status::Bounced),
        ]);
        journal.settle(settled);
        drop(journal); // the crash: r2 was never settled
        drop(pending);

        let (journal, left) = Journal::open(dir.path()).unwrap();
        let ids: Vec<&str> = left
            .results
            .iter()
            .map(|r| r.recipient_id.as_str())
            .collect();
        assert_eq!(ids, ["r1", "r2"], "r1's line is still in the file");
        let r2 = &left.results[1];
        assert_eq!(r2.status, Status::Delivered);
        assert_eq!(r2.attempt.code, Some(250));
        assert_eq!(r2.attempt.text, "Ok: queued as ABC");
        assert_eq!(r2.address, "r2@example.test");
        left.forget();
        let written = journal.delivered(&[result("r5", Status::Delivered)]);
        assert_eq!(files(dir.path()).len(), 1, "{:?}", files(dir.path()));
        journal.settle(written);
        assert_eq!(
            files(dir.path()),
            [("000000000001.journal".to_owned(), 0)],
            "a new segment after the old ones, emptied once everything in it settled"
        );
        drop(journal);
        let (_, left) = Journal::open(dir.path()).unwrap();
        assert!(left.results.is_empty());
    }

    #[test]
    fn a_torn_last_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, _) = Journal::open(dir.path()).unwrap();
        let _kept = journal.delivered(&[result("r1", Status::Delivered)]);
        drop(journal);
        let path = dir.path().join("000000000000.journal");
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"recipient\":\"r2\",\"acc").unwrap();
        let (_, left) = Journal::open(dir.path()).unwrap();
        assert_eq!(left.results.len(), 1);
        assert_eq!(left.results[0].recipient_id, "r1");
    }

    #[test]
    fn full_segments_rotate_and_go_once_settled() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, _) = Journal::open(dir.path()).unwrap();
        let mut first = Written::default();
        for i in 0..SEGMENT_ENTRIES {
            first.add(journal.delivered(&[result(&format!("a{i}"), Status::Delivered)]));
        }
        // Never all settled at once: the next entry starts a second segment.
        let second = journal.delivered(&[result("b", Status::Delivered)]);
        assert_eq!(files(dir.path()).len(), 2);
        journal.settle(first);
        let names: Vec<String> = files(dir.path()).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["000000000001.journal"]);
        journal.settle(second);
        assert_eq!(files(dir.path()), [("000000000001.journal".to_owned(), 0)]);
    }
}
