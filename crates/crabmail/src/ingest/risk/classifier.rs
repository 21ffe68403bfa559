//! An optional external classifier: `[scoring] classifier_url` receives the message JSON (with
//! crabmail's own `security` verdict) by POST and answers `{"score": 0.0-1.0}` and optionally
//! `"label"`. Its score is combined with ours (the higher wins, and it is named in the evidence).
//! If it does not answer within the timeout, or answers badly, our score stands alone and the
//! evidence says the classifier was unavailable: ingest never waits on it for longer.

use crabmail_api::{Evidence, Security};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Classifier {
    url: String,
    timeout: Duration,
    http: reqwest::Client,
}

#[derive(serde::Deserialize)]
struct Verdict {
    score: f64,
    #[serde(default)]
    label: Option<String>,
}

impl Classifier {
    pub fn new(url: String, timeout: Duration) -> Classifier {
        Classifier {
            url,
            timeout,
            http: reqwest::Client::new(),
        }
    }

    /// `message` is the JSON the classifier sees; `ours` is updated in place.
    pub async fn combine(&self, message: &serde_json::Value, ours: &mut Security) {
        let answer = tokio::time::timeout(self.timeout, async {
            let response = self.http.post(&self.url).json(message).send().await?;
            response.error_for_status()?.json::<Verdict>().await
        })
        .await;
        match answer {
            Ok(Ok(verdict)) if (0.0..=1.0).contains(&verdict.score) => {
                let mut excerpt = format!("external classifier score {:.3}", verdict.score);
                if let Some(label) = verdict.label {
                    excerpt.push_str(&format!(" ({label})"));
                }
                if verdict.score > ours.injection_risk {
                    ours.injection_risk = (verdict.score * 1000.0).round() / 1000.0;
                    ours.level = super::level(ours.injection_risk).to_owned();
                }
                ours.flags.push("external_classifier".into());
                ours.evidence.push(Evidence {
                    rule: "external_classifier".into(),
                    excerpt,
                    location: "message".into(),
                });
            }
            Ok(Ok(verdict)) => {
                self.unavailable(ours, &format!("score {} out of range", verdict.score))
            }
            Ok(Err(e)) => self.unavailable(ours, &e.to_string()),
            Err(_) => self.unavailable(ours, &format!("no answer within {:?}", self.timeout)),
        }
    }

    fn unavailable(&self, ours: &mut Security, why: &str) {
        tracing::warn!(url = %self.url, reason = why, "scoring: external classifier unavailable; using crabmail's score alone");
        ours.evidence.push(Evidence {
            rule: "external_classifier_unavailable".into(),
            excerpt: why.chars().take(200).collect(),
            location: "message".into(),
        });
    }
}
