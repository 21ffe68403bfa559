//! Operational metrics in the Prometheus text format (`GET /metrics`): counters and latency
//! histograms kept in this process, and the store's backlog read at each scrape. Names and labels
//! are documented in docs/OPERATIONS.md; a counter counts since this process started.
//!
//! One registry per process (a counter is a map entry under a mutex: a few increments per message
//! against an fsync per batch). Label values are ours (roles, reply codes, route templates,
//! outcomes), never text from the network, so the series stay few.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{LazyLock, Mutex};

/// Upper bounds (seconds) of the latency histograms' buckets.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
struct Registry {
    /// (name, rendered labels) -> value
    counters: BTreeMap<(&'static str, String), u64>,
    histograms: BTreeMap<(&'static str, String), Histogram>,
}

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(Mutex::default);

/// What each metric is, for the `# HELP` lines.
const HELP: &[(&str, &str, &str)] = &[
    (
        "crabmail_smtp_sessions_total",
        "counter",
        "SMTP sessions opened, by role (mx, submission).",
    ),
    (
        "crabmail_smtp_replies_total",
        "counter",
        "SMTP replies sent, by role and reply code.",
    ),
    (
        "crabmail_messages_accepted_total",
        "counter",
        "Messages committed and acknowledged, by path (mx, submission, api).",
    ),
    (
        "crabmail_deliveries_total",
        "counter",
        "Delivery attempts' outcomes as recorded for recipients, by outcome (delivered, deferred, bounced, expired, cancelled).",
    ),
    (
        "crabmail_ingest_analysis_seconds",
        "histogram",
        "Time to parse and score one received message (risk scoring included).",
    ),
    (
        "crabmail_http_request_duration_seconds",
        "histogram",
        "HTTP API latency, by method, route template and status class.",
    ),
    (
        "crabmail_store_errors_total",
        "counter",
        "Store operations that failed, by where (api, ingest, queue).",
    ),
    (
        "crabmail_queue_recipients",
        "gauge",
        "Recipients not yet final (queued, deferred, held), read from the store at scrape.",
    ),
    (
        "crabmail_queue_oldest_age_seconds",
        "gauge",
        "Age of the oldest recipient not yet final (0 when none).",
    ),
    (
        "crabmail_ingest_backlog",
        "gauge",
        "Received messages stored but not yet readable (ingest jobs).",
    ),
    (
        "crabmail_ingest_lag_seconds",
        "gauge",
        "Age of the oldest message stored but not yet readable (0 when none).",
    ),
];

/// The label set as the text format writes it; one string built in place, since counters are
/// bumped on hot paths (every SMTP reply).
fn labels(pairs: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(48);
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push(' '),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out
}

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Adds one to a counter.
pub fn count(name: &'static str, pairs: &[(&str, &str)]) {
    add(name, pairs, 1);
}

/// Adds `n` to a counter.
pub fn add(name: &'static str, pairs: &[(&str, &str)], n: u64) {
    *registry()
        .counters
        .entry((name, labels(pairs)))
        .or_default() += n;
}

/// Records one observation (seconds) in a histogram.
pub fn observe(name: &'static str, pairs: &[(&str, &str)], seconds: f64) {
    let mut r = registry();
    let h = r.histograms.entry((name, labels(pairs))).or_default();
    for (i, bound) in BUCKETS.iter().enumerate() {
        if seconds <= *bound {
            h.counts[i] += 1;
        }
    }
    h.count += 1;
    h.sum += seconds;
}

/// The store's backlog at a scrape.
#[derive(Debug, Clone, Copy, Default)]
pub struct Backlog {
    pub queue_recipients: i64,
    pub queue_oldest_age: f64,
    pub ingest_jobs: i64,
    pub ingest_oldest_age: f64,
}

impl Backlog {
    /// From the queue's and ingest's (count, oldest time in ms since the epoch), read at `now`.
    pub fn at(
        now: crate::clock::Timestamp,
        (queued, queued_since): (i64, Option<i64>),
        (jobs, jobs_since): (i64, Option<i64>),
    ) -> Backlog {
        let age = |since: Option<i64>| since.map_or(0.0, |t| (now.0 - t).max(0) as f64 / 1000.0);
        Backlog {
            queue_recipients: queued,
            queue_oldest_age: age(queued_since),
            ingest_jobs: jobs,
            ingest_oldest_age: age(jobs_since),
        }
    }
}

/// Every metric in the Prometheus text format (version 0.0.4).
pub fn render(backlog: Option<Backlog>) -> String {
    let r = registry();
    let mut out = String::new();
    for (name, kind, help) in HELP {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        match *kind {
            "counter" => {
                for ((n, l), v) in r.counters.range((*name, String::new())..) {
                    if *n != *name {
                        break;
                    }
                    let _ = writeln!(out, "{name}{{{l}}} {v}");
                }
            }
            "histogram" => {
                for ((n, l), h) in r.histograms.range((*name, String::new())..) {
                    if *n != *name {
                        break;
                    }
                    let sep = if l.is_empty() { "" } else { "," };
                    for (i, bound) in BUCKETS.iter().enumerate() {
                        let _ = writeln!(
                            out,
                            "{name}_bucket{{{l}{sep}le=\"{bound}\"}} {}",
                            h.counts[i]
                        );
                    }
                    let _ = writeln!(out, "{name}_bucket{{{l}{sep}le=\"+Inf\"}} {}", h.count);
                    let _ = writeln!(out, "{name}_sum{{{l}}} {}", h.sum);
                    let _ = writeln!(out, "{name}_count{{{l}}} {}", h.count);
                }
            }
            _ => {
                let Some(b) = backlog else { continue };
                let value = match *name {
                    "crabmail_queue_recipients" => b.queue_recipients as f64,
                    "crabmail_queue_oldest_age_seconds" => b.queue_oldest_age,
                    "crabmail_ingest_backlog" => b.ingest_jobs as f64,
                    "crabmail_ingest_lag_seconds" => b.ingest_oldest_age,
                    _ => continue,
                };
                let _ = writeln!(out, "{name} {value}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped_as_the_text_format_wants() {
        assert_eq!(
            labels(&[("route", "a\"b\\c\nd"), ("code", "250")]),
            r#"route="a\"b\\c d",code="250""#
        );
    }

    #[test]
    fn counters_and_histograms_render_in_the_text_format() {
        count(
            "crabmail_smtp_replies_total",
            &[("role", "mx"), ("code", "250")],
        );
        count(
            "crabmail_smtp_replies_total",
            &[("role", "mx"), ("code", "250")],
        );
        observe(
            "crabmail_http_request_duration_seconds",
            &[("method", "GET"), ("route", "/v1/x"), ("status", "2xx")],
            0.003,
        );
        let text = render(Some(Backlog {
            queue_recipients: 3,
            ..Backlog::default()
        }));
        assert!(
            text.contains("crabmail_smtp_replies_total{role=\"mx\",code=\"250\"} 2"),
            "{text}"
        );
        assert!(text.contains(
            "crabmail_http_request_duration_seconds_bucket{method=\"GET\",route=\"/v1/x\",status=\"2xx\",le=\"0.0025\"} 0"
        ));
        assert!(text.contains(
            "crabmail_http_request_duration_seconds_bucket{method=\"GET\",route=\"/v1/x\",status=\"2xx\",le=\"0.005\"} 1"
        ));
        assert!(text.contains("crabmail_queue_recipients 3\n"));
        assert!(text.contains("# TYPE crabmail_deliveries_total counter"));
    }
}
