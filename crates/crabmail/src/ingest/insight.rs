//! What ingest adds to a parsed message for agents: injection risk and the safe view (`risk`),
//! codes and links (`extract`), the new part of a reply and the thread keys (`thread`).

use super::parse;
use crate::ingest::risk::{self, Policy, classifier::Classifier, safe};
use crate::ingest::{extract, thread};
use crate::store::{IngestJob, Ingested, Json};
use crabmail_api::{AuthResults, Evidence, ParsedMessage, Security};

/// A message parsed and scored, not yet serialised for the store.
pub struct Prepared {
    blob_id: String,
    view: ParsedMessage,
    thread: thread::ThreadKeys,
    report: Option<crate::bounce::Report>,
}

/// The injection-risk assessment of a parsed message: what the scorer reads of it.
pub fn score(
    parsed: &parse::Parsed,
    auth: Option<&AuthResults>,
    policy: &Policy,
) -> risk::Assessment {
    risk::assess(&content(parsed, auth), policy)
}

/// What the scorer reads of a parsed message.
fn content<'a>(parsed: &'a parse::Parsed, auth: Option<&'a AuthResults>) -> risk::Content<'a> {
    let view = &parsed.view;
    risk::Content {
        subject: view.subject.as_deref(),
        // mail-parser derives text from HTML when there is no text part, hidden parts
        // included: the scorer reads the HTML itself instead.
        text: view.text.as_deref().filter(|_| parsed.has_plain_text),
        html: view.html.as_deref(),
        attachments: &parsed.attachment_texts,
        headers: &view.headers,
        from: view.from.as_ref(),
        auth,
    }
}

/// What the injection model reads of a raw message, exactly as ingest would give it (for
/// training on whole messages).
pub fn model_input(raw: &[u8]) -> (Vec<risk::model::Segment>, risk::model::MessageFacts) {
    let parsed = parse::parse(raw);
    risk::model_input(&content(&parsed, None), &Policy::default())
}

/// The scorer's two opinions of a raw message with a given stage-one model (`risk::opinions`).
pub fn opinions(raw: &[u8], model: &risk::model::Model) -> (f64, risk::model::Verdict) {
    let parsed = parse::parse(raw);
    risk::opinions(model, &content(&parsed, None), &Policy::default())
}

/// Flag of a message whose structure went past the parsing limits.
pub const MIME_LIMIT: &str = "mime_limit";
/// Flag of a message ingest could not analyse at all (over its time budget, or a failure).
pub const NOT_ANALYSED: &str = "not_analysed";
/// The score given to a message that could not be analysed: unknown is not safe.
const UNANALYSED_RISK: f64 = 0.5;

fn note(security: &mut Security, flag: &str, why: &str) {
    if !security.flags.iter().any(|f| f == flag) {
        security.flags.push(flag.to_owned());
    }
    security.evidence.push(Evidence {
        rule: flag.to_owned(),
        excerpt: why.to_owned(),
        location: "structure".to_owned(),
    });
}

/// The stand-in for a message ingest could not analyse (`why`): listed with its envelope data and
/// raw bytes, a warning, and a medium risk flagged `not_analysed`.
pub fn unanalysed(job: &IngestJob, why: &str) -> Prepared {
    let mut security = Security {
        injection_risk: UNANALYSED_RISK,
        level: "medium".to_owned(),
        ..Default::default()
    };
    note(&mut security, NOT_ANALYSED, why);
    let view = ParsedMessage {
        parse_warnings: vec![format!("{why}; stored as received, not parsed")],
        security: Some(security),
        ..Default::default()
    };
    Prepared {
        blob_id: job.blob_id.clone(),
        thread: thread::keys(&view),
        view,
        report: None,
    }
}

pub fn prepare(job: &IngestJob, policy: &Policy) -> Prepared {
    let parsed = parse::parse(&job.bytes);
    let mut assessment = score(&parsed, job.auth.as_ref(), policy);
    if let Some(why) = &parsed.limited {
        // What lies past the limit was not read, so not scored either: the agent is told.
        note(&mut assessment.security, MIME_LIMIT, why);
    }
    let report = parsed.report;
    let mut view = parsed.view;
    let extracted = extract::extract(
        view.subject.as_deref(),
        &assessment.visible_text,
        &assessment.links,
        &view.headers,
    );
    let reply = thread::reply_text(&assessment.visible_text);
    view.safe_text = Some(safe::safe_text(&safe::SafeInput {
        from: view.from.as_ref(),
        subject: view.subject.as_deref(),
        date: view.date.as_deref(),
        visible_text: &assessment.visible_text,
        hidden_count: assessment.hidden.len(),
        attachment_names: view
            .attachments
            .iter()
            .map(|a| {
                a.filename
                    .clone()
                    .unwrap_or_else(|| format!("#{}", a.index))
            })
            .collect(),
        security: &assessment.security,
    }));
    view.reply_text = (!reply.is_empty()).then_some(reply);
    view.hidden_content = assessment.hidden;
    view.security = Some(assessment.security);
    view.extracted = Some(extracted);
    Prepared {
        blob_id: job.blob_id.clone(),
        thread: thread::keys(&view),
        view,
        report,
    }
}

impl Prepared {
    /// The parsed view with everything ingest added.
    pub fn view(&self) -> &ParsedMessage {
        &self.view
    }

    /// Lets the external classifier raise the score; on its failure ours stands.
    pub async fn consult(&mut self, classifier: &Classifier) {
        let Ok(json) = serde_json::to_value(&self.view) else {
            return;
        };
        if let Some(security) = self.view.security.as_mut() {
            classifier.combine(&json, security).await;
        }
    }

    pub fn finish(self) -> Ingested {
        let view = self.view;
        let summary = parse::summarize(&view);
        Ingested {
            blob_id: self.blob_id,
            from_address: view
                .from
                .as_ref()
                .and_then(|f| f.address.as_ref())
                .map(|a| a.to_ascii_lowercase()),
            subject: view.subject.clone(),
            summary: Json::encode(&summary),
            parsed: Json::encode(&view),
            thread: self.thread,
            report: self.report,
        }
    }
}
