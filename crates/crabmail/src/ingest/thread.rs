//! Conversations. A message joins the thread of any message it names in References or
//! In-Reply-To (RFC 5322 3.6.4); failing that, the thread of a message in the same inbox with the
//! same normalised subject and a shared participant within `SUBJECT_WINDOW`; failing that, it
//! starts a thread of its own. The store fetches the candidates (it holds the other messages) and
//! `choose` applies the rule; this module also computes the keys they need and the new part of a
//! reply.

use crabmail_api::ParsedMessage;
use regex::Regex;
use std::sync::LazyLock;
use std::time::Duration;

/// How long a subject-and-participants match may reach back.
pub const SUBJECT_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

/// What the store needs to place a message in a thread.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThreadKeys {
    /// Its own Message-ID (without angle brackets).
    pub message_id: Option<String>,
    /// Message-IDs it refers to: In-Reply-To first, then References newest first.
    pub refs: Vec<String>,
    /// The subject without reply and forward prefixes, lower-cased, whitespace collapsed.
    pub subject_key: String,
    /// Every address on From, To, Cc and Reply-To, lower-cased.
    pub participants: Vec<String>,
}

static PREFIX: LazyLock<Regex> = LazyLock::new(|| {
    // Re, Fwd and their translations, with counters ("Re[2]:") and list tags ("[dev]").
    Regex::new(r"(?i)^\s*((re|fw|fwd|aw|wg|sv|vs|antw|rif|r|tr|ref|odp|res|enc|回复|回覆|答复|転送)\s*(\[\d+\]|\(\d+\))?\s*[:：]|\[[^\]]{1,40}\])\s*")
        .expect("subject prefix pattern")
});

/// A message about to join a thread, with what the rules need of it.
pub struct ThreadJoin<'a> {
    pub message_id: &'a str,
    pub account_id: &'a str,
    pub inbox_id: &'a str,
    pub direction: &'static str,
    pub subject: Option<&'a str>,
    pub keys: &'a ThreadKeys,
    /// The inbox's address: left out of participants, since every message has it.
    pub own_address: &'a str,
    pub at: crate::clock::Timestamp,
}

impl ThreadJoin<'_> {
    /// References tried, at most: a long References list cannot make a join slow.
    pub const MAX_REFS: usize = 20;

    pub fn participants(&self) -> String {
        others(&self.keys.participants, self.own_address)
    }

    /// The oldest time a subject match may have.
    pub fn window_start(&self) -> i64 {
        self.at.0 - SUBJECT_WINDOW.as_millis() as i64
    }

    /// Whether a candidate found by subject shares a participant.
    pub fn shares_participant(&self, candidate: &str) -> bool {
        let mine = self.participants();
        let mine: Vec<&str> = mine.split_whitespace().collect();
        candidate.split_whitespace().any(|p| mine.contains(&p))
    }
}

/// The thread a message joins, given what the store found: `by_reference` is the thread of the
/// first message it refers to (None if none is known), `by_subject` the recent threads of its
/// subject key with their participants, newest first (empty if a reference matched or the subject
/// is empty). A new thread id when nothing fits.
pub fn choose(
    join: &ThreadJoin<'_>,
    by_reference: Option<String>,
    by_subject: Vec<(String, String)>,
) -> String {
    by_reference
        .or_else(|| {
            by_subject
                .into_iter()
                .find(|(_, participants)| join.shares_participant(participants))
                .map(|(thread, _)| thread)
        })
        .unwrap_or_else(|| crate::id::new_id(crate::id::THREAD, join.at))
}

/// The participants column: space-separated addresses, deduplicated in first-seen order.
pub fn split_participants(joined: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for p in joined.split_whitespace() {
        if !out.iter().any(|o| o == p) {
            out.push(p.to_owned());
        }
    }
    out
}

/// Participants worth matching on: everyone but the inbox itself.
fn others(participants: &[String], own_address: &str) -> String {
    participants
        .iter()
        .filter(|p| !p.eq_ignore_ascii_case(own_address))
        .cloned()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The subject without its reply and forward prefixes and list tags, case kept.
pub fn strip_prefixes(subject: &str) -> &str {
    let mut s = subject.trim();
    loop {
        match PREFIX.find(s) {
            Some(m) if m.end() > 0 => s = &s[m.end()..],
            _ => break,
        }
    }
    s
}

pub fn normalise_subject(subject: &str) -> String {
    strip_prefixes(subject)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

pub fn keys(view: &ParsedMessage) -> ThreadKeys {
    let mut refs: Vec<String> = Vec::new();
    // A bounce or complaint names the message it returns: it joins that message's thread.
    let returned = [&view.bounce, &view.complaint]
        .into_iter()
        .flatten()
        .filter_map(|r| r.original_message_id.as_ref());
    for id in view
        .in_reply_to
        .iter()
        .chain(view.references.iter().rev())
        .chain(returned)
    {
        let id = id.trim_matches(['<', '>', ' ']).to_owned();
        if !id.is_empty() && !refs.contains(&id) {
            refs.push(id);
        }
    }
    let mut participants: Vec<String> = Vec::new();
    for m in view
        .from
        .iter()
        .chain(&view.to)
        .chain(&view.cc)
        .chain(&view.reply_to)
    {
        if let Some(a) = &m.address {
            let a = a.to_lowercase();
            if !participants.contains(&a) {
                participants.push(a);
            }
        }
    }
    ThreadKeys {
        message_id: view
            .message_id
            .as_ref()
            .map(|m| m.trim_matches(['<', '>', ' ']).to_owned()),
        refs,
        subject_key: normalise_subject(view.subject.as_deref().unwrap_or("")),
        participants,
    }
}

static ATTRIBUTION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?ix)^\s*(
            on\s.{4,200}\swrote:?\s*$                      # On Mon, Ann <a@x> wrote:
          | le\s.{4,200}\sa\s[ée]crit\s?:\s*$             # Le lundi ... a écrit :
          | am\s.{4,200}\sschrieb\s.{0,100}:\s*$           # Am Montag schrieb Ann:
          | el\s.{4,200}\sescribi[óo]:\s*$                # El lunes ... escribió:
          | il\s.{4,200}\sha\sscritto:\s*$                # Il giorno ... ha scritto:
          | op\s.{4,200}\sschreef\s.{0,100}:\s*$          # Op maandag schreef Ann:
          | em\s.{4,200}\sescreveu:\s*$                   # Em seg, ... escreveu:
          | .{1,200}\s(wrote|writes|a\sécrit|schrieb|escribió|scrive|escreveu|написал|написала|napisał|skrev|kirjoitti):\s*$
          | -{2,}\s*original\s+message\s*-{2,}.*$        # -----Original Message-----
          | -{2,}\s*(ursprüngliche\s+nachricht|message\s+d'origine|mensaje\s+original)\s*-{2,}.*$
          | _{10,}\s*$                                    # Outlook's rule before From:
          | from:\s.+\s*$                                 # a header block of a quoted message
        )",
    )
    .expect("attribution pattern")
});

/// Words every attribution line has one of (see `ATTRIBUTION`).
const ATTRIBUTION_WORDS: &[&str] = &[
    "wrote",
    "writes",
    "écrit",
    "schrieb",
    "escribi",
    "scritto",
    "schreef",
    "escreveu",
    "original",
    "ursprüngliche",
    "d'origine",
    "mensaje",
    "____",
    "from:",
    "написал",
    "napisał",
    "skrev",
    "kirjoitti",
];

static SIGNATURE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\s*(--\s?|sent from my .{1,40}|sent from (outlook|mail|yahoo mail|gmail)( for \w+)?|get outlook for \w+.*|envoyé de mon .{1,40}|von meinem .{1,40} gesendet|enviado desde mi .{1,40})\s*$")
        .expect("signature pattern")
});

/// The new part of a reply: text before the quoted history and the signature. For mail that
/// quotes nothing, the whole text without its signature.
pub fn reply_text(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let may_attribute: Vec<bool> = text
        .to_lowercase()
        .lines()
        .map(|l| ATTRIBUTION_WORDS.iter().any(|w| l.contains(w)))
        .collect();
    let mut end = lines.len();
    for (i, line) in lines.iter().enumerate() {
        if line.trim_start().starts_with('>') {
            end = i;
            break;
        }
        // The regex is costly; only lines with one of its words can match it.
        if !may_attribute[i] && !may_attribute.get(i + 1).copied().unwrap_or(false) {
            continue;
        }
        if ATTRIBUTION.is_match(line) {
            // "From:" starts a quoted header block only when "Sent:"/"Date:" follows it.
            if line.trim_start().to_lowercase().starts_with("from:") {
                let next = lines
                    .get(i + 1)
                    .map(|l| l.trim_start().to_lowercase())
                    .unwrap_or_default();
                if !(next.starts_with("sent:")
                    || next.starts_with("date:")
                    || next.starts_with("to:"))
                {
                    continue;
                }
            }
            end = i;
            break;
        }
        // Attributions are often wrapped over two lines.
        // The first half carries a date or an address and does not end a sentence.
        if i + 1 < lines.len()
            && line.contains(|c: char| c.is_ascii_digit() || c == '@')
            && !line.trim_end().ends_with(['.', '!', '?'])
            && ATTRIBUTION.is_match(&format!("{} {}", line, lines[i + 1]))
        {
            end = i;
            break;
        }
    }
    let top: Vec<&str> = lines[..end].to_vec();
    let body = if top.iter().any(|l| !l.trim().is_empty()) {
        top
    } else {
        // Bottom-posted: the quote comes first and the answer after it (or between its parts).
        lines[end..]
            .iter()
            .enumerate()
            .filter(|(i, l)| {
                let quoted = l.trim_start().starts_with('>');
                let attribution = *i == 0 && ATTRIBUTION.is_match(l);
                !(quoted || attribution)
            })
            .map(|(_, l)| *l)
            .collect()
    };
    let cut = body
        .iter()
        .position(|l| SIGNATURE.is_match(l))
        .unwrap_or(body.len());
    body[..cut].join("\n").trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys_with(participants: &[&str]) -> ThreadKeys {
        ThreadKeys {
            message_id: Some("<new@x>".into()),
            refs: vec![],
            subject_key: "plans".into(),
            participants: participants.iter().map(|p| p.to_string()).collect(),
        }
    }

    fn join<'a>(keys: &'a ThreadKeys) -> ThreadJoin<'a> {
        ThreadJoin {
            message_id: "msg_1",
            account_id: "acc_1",
            inbox_id: "inb_1",
            direction: "inbound",
            subject: Some("Re: plans"),
            keys,
            own_address: "agent@example.com",
            at: crate::clock::Timestamp(1_800_000_000_000),
        }
    }

    #[test]
    fn a_reference_wins_then_a_subject_shared_with_someone_then_a_new_thread() {
        let keys = keys_with(&["bob@example.org", "agent@example.com"]);
        let join = join(&keys);
        let by_subject = || {
            vec![
                ("thr_strangers".to_owned(), "eve@example.net".to_owned()),
                (
                    "thr_bob".to_owned(),
                    "carol@example.org bob@example.org".to_owned(),
                ),
            ]
        };
        assert_eq!(
            choose(&join, Some("thr_ref".into()), by_subject()),
            "thr_ref"
        );
        assert_eq!(choose(&join, None, by_subject()), "thr_bob");
        // The inbox itself is every message's participant: sharing only it is no match.
        let only_us = vec![("thr_us".to_owned(), "agent@example.com".to_owned())];
        let fresh = choose(&join, None, only_us);
        assert!(
            fresh.starts_with(crate::id::THREAD) && fresh != "thr_us",
            "{fresh}"
        );
        assert_eq!(join.participants(), "bob@example.org");
        assert_eq!(split_participants("a b a c b"), vec!["a", "b", "c"]);
    }
    use crabmail_api::Mailbox;

    #[test]
    fn subjects_lose_their_prefixes() {
        for (subject, key) in [
            ("Re: Re: Lunch?", "lunch?"),
            ("RE[2]: Lunch?", "lunch?"),
            ("Fwd: AW: lunch?", "lunch?"),
            ("[dev-list] Re:  Build   broken", "build broken"),
            ("回复：会议", "会议"),
            ("Regarding the plan", "regarding the plan"),
        ] {
            assert_eq!(normalise_subject(subject), key, "{subject}");
        }
    }

    #[test]
    fn keys_collect_references_and_participants() {
        let view = ParsedMessage {
            from: Some(Mailbox {
                name: None,
                address: Some("Ann@X.test".into()),
            }),
            to: vec![Mailbox {
                name: None,
                address: Some("bot@crab.test".into()),
            }],
            subject: Some("Re: Plan".into()),
            message_id: Some("m3@x.test".into()),
            in_reply_to: vec!["m2@x.test".into()],
            references: vec!["m1@x.test".into(), "m2@x.test".into()],
            ..Default::default()
        };
        let k = keys(&view);
        assert_eq!(k.refs, vec!["m2@x.test", "m1@x.test"]);
        assert_eq!(k.participants, vec!["ann@x.test", "bot@crab.test"]);
        assert_eq!(k.subject_key, "plan");
        assert_eq!(k.message_id.as_deref(), Some("m3@x.test"));
    }

    #[test]
    fn reply_text_drops_quotes_attributions_and_signatures() {
        let cases = [
            (
                "Sounds good, ship it.\n\nOn Tue, 24 Nov 2026 at 10:00, Bot <bot@crab.test> wrote:\n> Shall I ship?\n",
                "Sounds good, ship it.",
            ),
            ("Yes.\n-- \nAnn Example\nCTO", "Yes."),
            ("Agreed\n\nSent from my iPhone\n\n> earlier", "Agreed"),
            (
                "Ok!\n\n-----Original Message-----\nFrom: Bot\nSent: Monday\n",
                "Ok!",
            ),
            (
                "Merci\n\nLe lun. 23 nov. 2026 à 10:00, Bot <bot@crab.test> a écrit :\n> Salut",
                "Merci",
            ),
            (
                "Ja\n\nAm 23.11.2026 um 10:00 schrieb Bot <bot@crab.test>:\n> Hallo",
                "Ja",
            ),
            (
                "Fine by me\n\n________________________________\nFrom: Bot <bot@crab.test>\nSent: Monday\n",
                "Fine by me",
            ),
            (
                "From: the team, with thanks.\nSee you.",
                "From: the team, with thanks.\nSee you.",
            ),
            (
                "Works\n\nOn Tue, 24 Nov 2026 at 10:00, A Very Long Name\n<bot@crab.test> wrote:\n> q",
                "Works",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(reply_text(text), want, "{text:?}");
        }
    }
}
