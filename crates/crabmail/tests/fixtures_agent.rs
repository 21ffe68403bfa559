//! Real-shaped mail through ingest's own path (`insight::prepare`): verification mail from many
//! kinds of senders must yield the exact code and the action links; replies written by real
//! mail clients (talon's fixtures) must yield just the new text.

use crabmail::ingest::insight;
use crabmail::ingest::risk::Policy;
use crabmail::store::IngestJob;
use std::path::Path;
use std::sync::Arc;

fn prepare(path: &Path) -> crabmail_api::ParsedMessage {
    let job = IngestJob {
        blob_id: "fixture".into(),
        bytes: Arc::new(std::fs::read(path).unwrap()),
        auth: None,
    };
    insight::prepare(&job, &Policy::default()).view().clone()
}

#[test]
fn verification_mail_yields_its_code_and_links() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/extraction");
    let expected: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    assert!(expected.len() >= 18);
    let mut failures = Vec::new();
    for (name, want) in &expected {
        let view = prepare(&dir.join(format!("{name}.eml")));
        let extracted = view.extracted.clone().unwrap();
        let got_code = extracted.codes.first().map(|c| c.value.clone());
        let want_code = want["code"].as_str().map(str::to_owned);
        if got_code != want_code {
            failures.push(format!(
                "{name}: code {got_code:?}, expected {want_code:?} ({:?})",
                extracted.codes
            ));
        }
        for link in want["links"].as_array().unwrap() {
            let (url, kind) = (link[0].as_str().unwrap(), link[1].as_str().unwrap());
            if !extracted
                .links
                .iter()
                .any(|l| l.url == url && l.kind == kind)
            {
                failures.push(format!(
                    "{name}: no {kind} link {url} in {:?}",
                    extracted.links
                ));
            }
        }
        // Verification mail is ordinary mail: it must not look like an attack.
        let security = view.security.unwrap();
        if security.level != "low" {
            failures.push(format!("{name}: scored {security:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn client_replies_yield_only_the_new_text() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/replies");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "eml") {
            continue;
        }
        let view = prepare(&path);
        // talon's expectation is "Hello" for every client (its own files keep the signature,
        // which reply_text drops).
        assert_eq!(
            view.reply_text.as_deref(),
            Some("Hello"),
            "{}",
            path.display()
        );
        checked += 1;
    }
    assert_eq!(checked, 12);
}
