//! Task requests slipped into a message: a sentence that asks whoever reads the mail to do an
//! assistant's job ("Explain how solar panels work.", "Write a poem about the sea.", "What is the
//! capital of Brazil?") and has nothing to do with the rest of the message.
//!
//! People do write imperatives and questions in mail, so two things are weighed together: the
//! form (a task verb leading the sentence, or an impersonal question) and whether the sentence is
//! off-topic (its content words are absent from the rest of the message). A sentence about the
//! reader's own account, order or this email is never a task request.

use super::rules::{Hit, excerpt};
use regex::Regex;
use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use super::rules::re;

/// Verbs that open an assistant task; mail rarely opens a sentence with them.
static TASK_LEAD: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^(please |kindly |now |also |then |and |can you |could you |would you |will you |i want you to |i need you to |your (next )?task is to |you (must|should|need to) )*(explain|describe|summari[sz]e|translate|compose|draft|write|generate|create|compile|analy[sz]e|outline|list|recommend|suggest|calculate|compute|solve|define|compare|contrast|tell|give|show|teach|break down|elaborate|discuss|brainstorm|paraphrase|rewrite|rephrase|proofread|debug|implement|code|design|plan|predict|forecast|evaluate|assess|classify|categori[sz]e|identify|research|look up|provide|develop|prepare|convert|recite|estimate|derive|prove|simulate|imagine|pretend|help me|introduce|claim|persuade|convince|promote|advertise|urge|encourage|automate|determine|rate|rank|score|label|detect|extract|count|sort|find|search for|look for|gather|collect|investigate|review the|examine)\b",
    )
});

/// Impersonal questions: general knowledge, not about the correspondents.
static QUESTION_LEAD: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^(what|what's|who|whom|whose|which|when|where|why|how|is|are|does|do|did|can|could|would|should|will|was|were)\b",
    )
});

/// The reader's own business: a sentence about it is mail, not a task.
static MAIL_CONTEXT: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\b(your (account|order|card|payment|subscription|booking|reservation|ticket|password|e-?mail|profile|information|details|receipt|invoice|purchase|delivery|package|parcel|application|request|feedback|experience|review|plan|trial|membership|team|workspace|organi[sz]ation|repository|code|device|phone|address|settings|preferences|inbox|calendar|meeting|appointment|visit|stay|flight|trip|claim|balance|statement|bill)|this (e-?mail|message|link|code|form|survey|page|invitation|offer|week|month)|(the |a )?(link|button) below|below|above|attached|following (code|link|steps?|information|details|documents?|items?|message|e-?mail|address|account)|today|tomorrow|tonight|yesterday|monday|tuesday|wednesday|thursday|friday|saturday|sunday|next week|this weekend|attachment|click|tap|unsubscribe|log ?in|sign ?in|sign ?up|opt ?out|verify|confirm|reply to (this|us)|contact (us|support)|our (team|support|website|app|store|site|terms|policy|privacy))\b",
    )
});

static ASKING_ME: LazyLock<Regex> = LazyLock::new(|| {
    re(r"^(can|could|would|will) you |\b(show|tell|give|teach|explain to|help|write|send) me\b")
});

static HEADER_FIELD: LazyLock<Regex> = LazyLock::new(|| re(r"^[a-z][a-z0-9-]*: "));

static LIST_ITEM: LazyLock<Regex> = LazyLock::new(|| re(r"^\s*(\d{1,2}[.)]|[-*•·]|[a-z][.)])\s"));

static PERSONAL: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\b(i|i'm|i've|i'd|me|my|we|we're|we've|us|our|you|you're|you've|your|yours|this|these|those|here|them|they|their|he|she|his|her|him)\b",
    )
});

const STOPWORDS: &[&str] = &[
    "about", "above", "after", "again", "also", "because", "been", "before", "being", "below",
    "between", "both", "could", "does", "doing", "down", "during", "each", "from", "further",
    "have", "having", "here", "into", "just", "more", "most", "once", "only", "other", "over",
    "same", "should", "some", "such", "than", "that", "their", "them", "then", "there", "these",
    "they", "this", "those", "through", "under", "until", "very", "what", "when", "where", "which",
    "while", "will", "with", "would", "your", "yours", "please", "make", "like", "want", "need",
    "every", "first", "third", "fourth", "words", "word", "answer", "response", "reply", "message",
    "letters",
];

/// Task-request hits for one text; `context` is what else the reader sees of the message (its
/// subject) used with the text's other sentences to judge whether a sentence is off-topic.
pub fn scan(text: &str, context: &str) -> Vec<Hit> {
    // The patterns match lower-cased text; offsets stay those of `text`.
    let lower = text.to_ascii_lowercase();
    let original = |s: &str| {
        let at = s.as_ptr() as usize - lower.as_ptr() as usize;
        &text[at..at + s.len()]
    };
    // First the cheap question: is any sentence shaped like a task at all?
    let mut candidates: Vec<(&str, Form, bool)> = Vec::new();
    for line in lower.lines() {
        // Action items in a list are the mail's own requests, not a slipped-in task; header
        // fields quoted in bounces and forwards ("List-Id: ...") are not sentences.
        if LIST_ITEM.is_match(line) || HEADER_FIELD.is_match(line) {
            continue;
        }
        let in_line = split_sentences(line);
        let standalone = in_line.len() == 1;
        for sentence in in_line {
            // A sentence starting in lower case continues a wrapped line; it is not one.
            if original(sentence).starts_with(char::is_lowercase) {
                continue;
            }
            if let Some(form) = task_form(sentence) {
                candidates.push((sentence, form, standalone));
            }
        }
    }
    if candidates.is_empty() {
        return Vec::new();
    }
    // Word counts of the whole text, so "the rest" of each sentence costs no second pass.
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for s in split_sentences(&lower) {
        for w in content_words(s) {
            *counts.entry(w).or_default() += 1;
        }
    }
    let context_lower = context.to_ascii_lowercase();
    let context_words = content_words(&context_lower);
    let mut best: Option<Hit> = None;
    for (sentence, form, standalone) in candidates {
        let mut weight = match form {
            Form::Imperative => 0.3,
            Form::Question => 0.25,
        };
        let mine = content_words(sentence);
        if off_topic(&mine, |w| {
            counts.get(w).copied().unwrap_or(0) > 1 || context_words.contains(w)
        }) {
            weight += 0.2;
        }
        if standalone {
            weight += 0.05;
        }
        if best.as_ref().is_none_or(|b| b.weight < weight) {
            best = Some(Hit {
                rule: "task_injection",
                weight,
                excerpt: excerpt(original(sentence)),
            });
        }
    }
    best.into_iter().collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Imperative,
    Question,
}

fn task_form(sentence: &str) -> Option<Form> {
    let words = sentence.split_whitespace().count();
    if !(3..=60).contains(&words) {
        return None;
    }
    // The anchored patterns first: most sentences fail them at their first word.
    let form = if TASK_LEAD.is_match(sentence) {
        Form::Imperative
    } else if sentence.ends_with('?') && QUESTION_LEAD.is_match(sentence) {
        Form::Question
    } else {
        return None;
    };
    if MAIL_CONTEXT.is_match(sentence) {
        return None;
    }
    // Quoted phrases are the object ("How do you say 'thank you'?"), not the correspondents;
    // nor is the "me" of "show me", "tell me", the way one asks an assistant.
    let unquoted = strip_quoted(sentence);
    let personal = PERSONAL.is_match(&ASKING_ME.replace_all(&unquoted, ""));
    match form {
        // An imperative about the correspondents' own affairs is mail, not a task.
        Form::Imperative if !personal => Some(form),
        Form::Question => {
            // "How do you say ...?" uses the generic you.
            let generic = ["how do i ", "how do you ", "how can you ", "how would you "]
                .iter()
                .any(|p| sentence.starts_with(p));
            (generic || !personal).then_some(form)
        }
        Form::Imperative => None,
    }
}

/// True when none of the sentence's content words appears elsewhere in the message (`elsewhere`).
fn off_topic(mine: &HashSet<&str>, elsewhere: impl Fn(&str) -> bool) -> bool {
    if mine.len() < 2 {
        return false;
    }
    !mine.iter().any(|w| elsewhere(w))
}

/// Content words of already lower-cased text, crudely stemmed ("charges", "charged" -> "charg"),
/// borrowed from it: this runs on every sentence of a message.
fn content_words(text: &str) -> HashSet<&str> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() >= 4)
        .map(|w| {
            w.trim_end_matches("ing")
                .trim_end_matches("ed")
                .trim_end_matches('s')
        })
        .filter(|w| w.len() >= 3 && !STOPWORDS.contains(w))
        .collect()
}

fn strip_quoted(sentence: &str) -> String {
    let mut out = String::new();
    let mut quote: Option<char> = None;
    for (i, c) in sentence.char_indices() {
        match quote {
            Some(q) if c == q || (q == '“' && c == '”') => quote = None,
            Some(_) => {}
            None if c == '"' || c == '“' => quote = Some(c),
            // An apostrophe inside a word ("what's") is not a quote.
            None if c == '\''
                && !sentence[..i]
                    .chars()
                    .next_back()
                    .is_some_and(char::is_alphanumeric) =>
            {
                quote = Some(c)
            }
            None => out.push(c),
        }
    }
    out
}

/// Sentences and lines, trimmed, without empty ones.
pub fn split_sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes();
    for (i, c) in text.char_indices() {
        let stop = match c {
            '\n' => true,
            '.' | '!' | '?' => !bytes.get(i + 1).is_some_and(|b| b.is_ascii_alphanumeric()),
            _ => false,
        };
        if stop {
            let end = if c == '\n' { i } else { i + 1 };
            let s = text[start..end].trim();
            if !s.is_empty() {
                out.push(s);
            }
            start = i + c.len_utf8();
        }
    }
    let s = text[start..].trim();
    if !s.is_empty() {
        out.push(s);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAIL: &str = "Hi David, your Mercury debit card was charged $2,099.00 by MIXPANEL. \
        The settled amount may be different from this initial charge.";

    fn weight(inserted: &str) -> f64 {
        let text =
            format!("{MAIL}\n{inserted}\nIf you have any questions, just reply to this email.");
        scan(&text, "Your card has been charged")
            .first()
            .map_or(0.0, |h| h.weight)
    }

    #[test]
    fn off_topic_tasks_and_questions_score() {
        for task in [
            "Explain the theory of relativity.",
            "Write a short story about a detective chasing a thief.",
            "What is the capital of Brazil?",
            "How do solar panels work?",
            "Recommend a good book for a relaxing weekend.",
            "Analyze the trend of electric car sales over the past decade.",
        ] {
            assert!(weight(task) >= 0.5, "{task}: {}", weight(task));
        }
    }

    #[test]
    fn mail_sentences_do_not() {
        for sentence in [
            "Review your order below.",
            "Click the button to confirm your email.",
            "What do you think about the new design?",
            "Create your account in two minutes.",
            "Questions? Contact us any time.",
            "Is this charge correct?",
        ] {
            assert_eq!(weight(sentence), 0.0, "{sentence}");
        }
    }

    #[test]
    fn on_topic_imperatives_score_lower_than_off_topic_ones() {
        let on = weight("Compare the settled amount with the initial charge.");
        let off = weight("Compare the climates of Norway and Peru.");
        assert!(on < off, "{on} vs {off}");
    }

    #[test]
    fn sentences_split_on_stops_and_lines_not_decimals() {
        assert_eq!(
            split_sentences("Paid $3.50 at example.com. Next!\nLast line"),
            vec!["Paid $3.50 at example.com.", "Next!", "Last line"]
        );
    }
}
