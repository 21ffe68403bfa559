//! `crabmail check risk`: what ingest would say of a message, without a server; and the scoring
//! loop of `bench/injection` (`--jsonl`).

use anyhow::Context;
use crabmail::ingest::insight;
use crabmail::ingest::risk::{self, Policy};
use crabmail::store::IngestJob;
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::Arc;

pub fn check(file: &Path, jsonl: bool) -> anyhow::Result<()> {
    if jsonl {
        return score_rows(file);
    }
    if file.is_dir() {
        return score_dir(file);
    }
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let job = IngestJob {
        blob_id: "check".into(),
        bytes: Arc::new(bytes),
        auth: None,
    };
    let prepared = insight::prepare(&job, &Policy::default());
    let view = prepared.view();
    let out = serde_json::json!({
        "security": view.security,
        "extracted": view.extracted,
        "hidden_content": view.hidden_content,
        "reply_text": view.reply_text,
        "safe_text": view.safe_text,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// Every .eml under `dir`, through ingest's own path, one JSON line each (id: the file name).
fn score_dir(dir: &Path) -> anyhow::Result<()> {
    let mut files: Vec<std::path::PathBuf> = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in
            std::fs::read_dir(&d).with_context(|| format!("cannot read {}", d.display()))?
        {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "eml") {
                files.push(path);
            }
        }
    }
    files.sort();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let policy = Policy::default();
    for path in files {
        let bytes = std::fs::read(&path)?;
        let job = IngestJob {
            blob_id: "check".into(),
            bytes: Arc::new(bytes),
            auth: None,
        };
        let started = tokio::time::Instant::now();
        let prepared = insight::prepare(&job, &policy);
        let micros = started.elapsed().as_secs_f64() * 1e6;
        // The scoring alone, on the same parse, for the bench's split of the time.
        let parsed = crabmail::ingest::parse::parse(&job.bytes);
        let started = tokio::time::Instant::now();
        let _ = insight::score(&parsed, None, &policy);
        let scoring_micros = started.elapsed().as_secs_f64() * 1e6;
        let s = prepared.view().security.clone().unwrap_or_default();
        let id = path
            .strip_prefix(dir)
            .unwrap_or(&path)
            .display()
            .to_string();
        writeln!(
            out,
            "{}",
            serde_json::json!({
                "id": id,
                "injection_risk": s.injection_risk,
                "level": s.level,
                "flags": s.flags,
                "evidence": s.evidence,
                "micros": (micros * 10.0).round() / 10.0,
                "scoring_micros": (scoring_micros * 10.0).round() / 10.0,
            })
        )?;
    }
    Ok(())
}

#[derive(serde::Deserialize)]
struct Row {
    id: serde_json::Value,
    text: String,
}

fn score_rows(file: &Path) -> anyhow::Result<()> {
    let reader = std::io::BufReader::new(
        std::fs::File::open(file).with_context(|| format!("cannot read {}", file.display()))?,
    );
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let policy = Policy::default();
    for (n, line) in reader.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let row: Row =
            serde_json::from_str(&line).with_context(|| format!("line {}: not a row", n + 1))?;
        let started = tokio::time::Instant::now();
        let assessment = risk::assess(
            &risk::Content {
                text: Some(&row.text),
                ..Default::default()
            },
            &policy,
        );
        let micros = started.elapsed().as_secs_f64() * 1e6;
        let s = assessment.security;
        writeln!(
            out,
            "{}",
            serde_json::json!({
                "id": row.id,
                "injection_risk": s.injection_risk,
                "level": s.level,
                "flags": s.flags,
                "micros": (micros * 10.0).round() / 10.0,
            })
        )?;
    }
    Ok(())
}
