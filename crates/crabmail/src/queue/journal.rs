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
use crate::delivery::outcome::{Outcome, Verdict};
use crate::store::{AttemptRecord, Claimed, Outcomes, RecipientResult, SharedStore, Status};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Entries per segment before a new one starts, when outcomes never all settle at once.
const SEGMENT_ENTRIES: usize = 4096;

/// This node's journal in `data_dir`, after recording what a previous run left in it. Run it
/// before this node's leases are freed: once they are, another node sharing PostgreSQL may
/// claim, and send again, a recipient only this journal knows was delivered. None (with a
/// warning) if the journal cannot be opened; delivery works without it.
pub async fn open_and_replay(
    data_dir: &Path,
    store: &SharedStore,
    clock: &SharedClock,
) -> Option<Journal> {
    let (journal, mut left) = match Journal::open(&data_dir.join("queue-journal")) {
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
        results: std::mem::take(&mut left.results),
        ..Outcomes::default()
    };
    let Some(wakes) = super::record::commit_outcomes(store, clock, &outcomes).await else {
        tracing::error!(
            journaled,
            "queue: the delivery journal is kept for the next start; these recipients may be sent again"
        );
        return Some(journal);
    };
    // One wake-up per outcome that changed its recipient; the rest had committed before the
    // restart but not yet left the journal.
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
    Some(journal)
}

/// One delivered recipient, as written: borrowed from the delivery when written, owned when read.
#[derive(Serialize, Deserialize)]
struct Line<'a> {
    recipient: Cow<'a, str>,
    account: Cow<'a, str>,
    message: Cow<'a, str>,
    inbox: Cow<'a, str>,
    address: Cow<'a, str>,
    at: i64,
    host: Option<Cow<'a, str>>,
    code: Option<u16>,
    enhanced: Option<Cow<'a, str>>,
    text: Cow<'a, str>,
    tls: Option<Cow<'a, str>>,
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

    /// Writes the delivered ones among `attempts` (each recipient with its outcome), as of `at`;
    /// an error is logged and delivery goes on (the journal only narrows the duplicate window;
    /// the store stays the record).
    pub fn delivered<'a>(
        &self,
        attempts: impl IntoIterator<Item = (&'a Claimed, &'a Outcome)>,
        at: Timestamp,
    ) -> Written {
        let mut text = String::new();
        let mut count = 0;
        let delivered = attempts
            .into_iter()
            .filter(|(_, outcome)| outcome.verdict == Verdict::Delivered);
        for (recipient, outcome) in delivered {
            let borrowed = |s: &'a Option<String>| s.as_deref().map(Cow::Borrowed);
            let line = Line {
                recipient: Cow::Borrowed(&recipient.recipient_id),
                account: Cow::Borrowed(&recipient.account_id),
                message: Cow::Borrowed(&recipient.message_id),
                inbox: Cow::Borrowed(&recipient.inbox_id),
                address: Cow::Borrowed(&recipient.address),
                at: at.0,
                host: borrowed(&outcome.host),
                code: outcome.code,
                enhanced: borrowed(&outcome.enhanced),
                text: Cow::Borrowed(&outcome.text),
                tls: borrowed(&outcome.tls),
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
            recipient_id: line.recipient.into_owned(),
            account_id: line.account.into_owned(),
            message_id: line.message.into_owned(),
            inbox_id: line.inbox.into_owned(),
            address: line.address.into_owned(),
            status: Status::Delivered,
            next_attempt_at: None,
            attempt: AttemptRecord {
                at: Timestamp(line.at),
                host: line.host.map(Cow::into_owned),
                code: line.code,
                enhanced: line.enhanced.map(Cow::into_owned),
                text: line.text.into_owned(),
                tls: line.tls.map(Cow::into_owned),
            },
        });
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One attempt at `id`, with the remote's answer and the verdict given.
    fn attempt(id: &str, verdict: Verdict) -> (Claimed, Outcome) {
        let recipient = Claimed {
            recipient_id: id.into(),
            message_id: "msg".into(),
            account_id: "acc".into(),
            inbox_id: "inb".into(),
            return_path: "bot@example.test".into(),
            blob_id: "blob".into(),
            address: format!("{id}@example.test"),
            domain: "example.test".into(),
            attempts: 0,
            queued_at: Timestamp(1_700_000_000_000),
        };
        let mut outcome =
            Outcome::from_reply(250, "2.0.0 Ok: queued as ABC", "mx.example.test", None);
        outcome.verdict = verdict;
        (recipient, outcome)
    }

    /// Journals these attempts as the queue does.
    fn write(journal: &Journal, attempts: &[(&str, Verdict)]) -> Written {
        let made: Vec<(Claimed, Outcome)> =
            attempts.iter().map(|&(id, v)| attempt(id, v)).collect();
        journal.delivered(
            made.iter().map(|(r, o)| (r, o)),
            Timestamp(1_700_000_000_000),
        )
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
        let settled = write(&journal, &[("r1", Verdict::Delivered)]);
        // Deferred and bounced outcomes have no duplicate to prevent.
        let pending = write(
            &journal,
            &[
                ("r2", Verdict::Delivered),
                ("r3", Verdict::Deferred),
                ("r4", Verdict::Bounced),
            ],
        );
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
        let written = write(&journal, &[("r5", Verdict::Delivered)]);
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
        let _kept = write(&journal, &[("r1", Verdict::Delivered)]);
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
            first.add(write(&journal, &[(&format!("a{i}"), Verdict::Delivered)]));
        }
        // Never all settled at once: the next entry starts a second segment.
        let second = write(&journal, &[("b", Verdict::Delivered)]);
        assert_eq!(files(dir.path()).len(), 2);
        journal.settle(first);
        let names: Vec<String> = files(dir.path()).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["000000000001.journal"]);
        journal.settle(second);
        assert_eq!(files(dir.path()), [("000000000001.journal".to_owned(), 0)]);
    }
}
