//! `warden audit export` and `warden audit tail`: the trail's request records, filtered, as
//! JSON Lines, CSV or OTLP/JSON logs. Both read line by line (constant memory, whatever the
//! trail's size); export shows a progress bar on a terminal.

use crate::chain;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::time::SystemTime;

/// Which records to export.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    /// Records at or after this time.
    pub since: Option<SystemTime>,
    /// Records before this time.
    pub until: Option<SystemTime>,
    /// The strongest action of either phase (`allow`, `flag`, `redact`, `block`).
    pub action: Option<String>,
    /// A rule of this policy fired.
    pub policy: Option<String>,
    /// This rule fired (`policy/rule`, or the rule's own id).
    pub rule: Option<String>,
    /// The tenant.
    pub tenant: Option<String>,
}

/// The output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The lines as they are in the trail.
    Jsonl,
    /// One row per record, the main fields.
    Csv,
    /// OTLP/JSON logs (`ExportLogsServiceRequest`, one per line, 256 records each): what an
    /// OpenTelemetry Collector's file receiver reads.
    Otlp,
}

impl Format {
    /// Parses `jsonl`, `csv`, `otlp`.
    pub fn parse(s: &str) -> Result<Format, String> {
        match s {
            "jsonl" => Ok(Format::Jsonl),
            "csv" => Ok(Format::Csv),
            "otlp" => Ok(Format::Otlp),
            other => Err(format!("--format must be jsonl, csv or otlp, not `{other}`")),
        }
    }
}

/// Parses a time for `--since` / `--until`: RFC 3339 (`2026-12-01T10:00:00Z`, a date alone
/// means its midnight UTC) or a duration ago (`2h`, `7days`).
pub fn parse_time(s: &str) -> Result<SystemTime, String> {
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        return Ok(t);
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(&format!("{s}T00:00:00Z")) {
        return Ok(t);
    }
    humantime::parse_duration(s)
        .map(|d| SystemTime::now() - d)
        .map_err(|_| format!("`{s}` is not a time (2026-12-01T10:00:00Z, 2026-12-01) or a duration ago (2h, 7days)"))
}

fn strongest(v: &Value) -> &str {
    let rank = |a: &str| ["allow", "flag", "redact", "block"].iter().position(|x| *x == a).unwrap_or(0);
    let p = v["prompt"]["action"].as_str().unwrap_or("allow");
    let c = v["completion"]["action"].as_str().unwrap_or("allow");
    if rank(c) > rank(p) {
        c
    } else {
        p
    }
}

fn rules(v: &Value) -> impl Iterator<Item = &str> {
    ["prompt", "completion"]
        .into_iter()
        .flat_map(move |ph| v[ph]["rules"].as_array().into_iter().flatten())
        .filter_map(|r| r["id"].as_str())
}

impl Filter {
    /// Whether a request record passes.
    pub fn keeps(&self, v: &Value) -> bool {
        if self.since.is_some() || self.until.is_some() {
            let Some(t) = v["time"].as_str().and_then(|t| humantime::parse_rfc3339_weak(t).ok()) else { return false };
            if self.since.is_some_and(|s| t < s) || self.until.is_some_and(|u| t >= u) {
                return false;
            }
        }
        if self.action.as_deref().is_some_and(|a| strongest(v) != a) {
            return false;
        }
        if let Some(p) = &self.policy {
            if !rules(v).any(|id| id.split_once('/').is_some_and(|(pol, _)| pol == p)) {
                return false;
            }
        }
        if let Some(want) = &self.rule {
            if !rules(v).any(|id| id == want || id.split_once('/').is_some_and(|(_, r)| r == want)) {
                return false;
            }
        }
        if self.tenant.as_deref().is_some_and(|t| v["tenant"].as_str() != Some(t)) {
            return false;
        }
        true
    }
}

const CSV_COLUMNS: &[&str] = &[
    "seq",
    "time",
    "request_id",
    "trace_id",
    "tenant",
    "route",
    "provider",
    "model",
    "stream",
    "prompt_action",
    "completion_action",
    "rules",
    "outcome",
    "status",
    "upstream_status",
    "withheld_bytes",
    "duration_ms",
    "policy_digest",
];

fn csv_row(v: &Value) -> Vec<String> {
    let s = |k: &str| match &v[k] {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    vec![
        s("seq"),
        s("time"),
        s("request_id"),
        s("trace_id"),
        s("tenant"),
        s("route"),
        s("provider"),
        s("model"),
        s("stream"),
        v["prompt"]["action"].as_str().unwrap_or("").into(),
        v["completion"]["action"].as_str().unwrap_or("").into(),
        rules(v).collect::<Vec<_>>().join(" "),
        s("outcome"),
        s("status"),
        s("upstream_status"),
        s("withheld_bytes"),
        s("duration_ms"),
        s("policy_digest"),
    ]
}

/// One CSV row, quoted as needed.
fn csv_line(fields: Vec<String>) -> Result<Vec<u8>, String> {
    let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
    w.write_record(&fields).map_err(|e| e.to_string())?;
    w.into_inner().map_err(|e| e.to_string())
}

fn otlp_record(line: &str, v: &Value) -> Value {
    let nanos = v["time"]
        .as_str()
        .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let attr = |k: &str, val: &Value| json!({"key": k, "value": {"stringValue": val.as_str().map(str::to_string).unwrap_or_else(|| val.to_string())}});
    json!({
        "timeUnixNano": nanos.to_string(),
        "severityText": "INFO",
        "eventName": "warden.decision",
        "body": {"stringValue": line},
        "traceId": v["trace_id"].as_str().unwrap_or(""),
        "attributes": [
            attr("warden.request_id", &v["request_id"]),
            attr("warden.decision", &Value::String(strongest(v).to_string())),
            attr("warden.outcome", &v["outcome"]),
            attr("warden.audit.seq", &v["seq"]),
            attr("warden.audit.hash", &Value::String(chain::hash(line.as_bytes()))),
        ],
    })
}

fn otlp_batch(records: Vec<Value>) -> Value {
    json!({"resourceLogs": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "warden"}}]},
        "scopeLogs": [{"scope": {"name": "warden.audit"}, "logRecords": records}],
    }]})
}

/// Exports the request records of `dir` that `filter` keeps to `out`. Returns how many.
pub fn export(dir: &Path, filter: &Filter, format: Format, out: &mut dyn Write, progress: bool) -> Result<u64, String> {
    let segments = chain::segments(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let total: u64 = segments.iter().map(|(_, p)| std::fs::metadata(p).map_or(0, |m| m.len())).sum();
    let bar = progress.then(|| {
        let b = indicatif::ProgressBar::new(total);
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let io = |e: std::io::Error| format!("cannot write the export: {e}");
    if format == Format::Csv {
        out.write_all(&csv_line(CSV_COLUMNS.iter().map(|c| c.to_string()).collect())?).map_err(io)?;
    }
    let mut batch = Vec::new();
    let mut n = 0u64;
    for (_, path) in &segments {
        let f = std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        for line in BufReader::new(f).lines() {
            let line = line.map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            if let Some(b) = &bar {
                b.inc(line.len() as u64 + 1);
            }
            if !line.contains("\"kind\":\"request\"") {
                continue;
            }
            let Ok(v) = serde_json::from_str::<Value>(&line) else { continue };
            if v["kind"] != "request" || !filter.keeps(&v) {
                continue;
            }
            n += 1;
            match format {
                Format::Jsonl => writeln!(out, "{line}").map_err(io)?,
                Format::Csv => out.write_all(&csv_line(csv_row(&v))?).map_err(io)?,
                Format::Otlp => {
                    batch.push(otlp_record(&line, &v));
                    if batch.len() == 256 {
                        writeln!(out, "{}", otlp_batch(std::mem::take(&mut batch))).map_err(io)?;
                    }
                }
            }
        }
    }
    if !batch.is_empty() {
        writeln!(out, "{}", otlp_batch(batch)).map_err(io)?;
    }
    if let Some(b) = bar {
        b.finish_with_message(format!("{n} records"));
    }
    out.flush().map_err(io)?;
    Ok(n)
}

/// One request record as an operator reads it: time, request id, status, decision, outcome, the
/// rules that fired, the tenant.
pub fn readable(v: &Value) -> String {
    let rules: Vec<&str> = rules(v).collect();
    format!(
        "{}  {}  {} {:<6} {:<11} {:<9} {}  {}",
        v["time"].as_str().unwrap_or(""),
        v["request_id"].as_str().unwrap_or(""),
        v["status"],
        strongest(v),
        v["outcome"].as_str().unwrap_or(""),
        v["tenant"].as_str().unwrap_or(""),
        v["route"].as_str().or(v["path"].as_str()).unwrap_or(""),
        if rules.is_empty() { String::new() } else { format!("[{}]", rules.join(" ")) },
    )
}

/// Prints the last `n` request records, then, with `follow`, new ones as they are written.
pub fn tail(dir: &Path, n: usize, follow: bool, out: &mut dyn Write) -> Result<(), String> {
    let io = |e: std::io::Error| e.to_string();
    let mut last: std::collections::VecDeque<String> = std::collections::VecDeque::with_capacity(n + 1);
    let mut seen_seq = 0u64;
    let read_new = |from_seq: u64, keep: &mut dyn FnMut(&Value)| -> Result<u64, String> {
        let mut max = from_seq;
        for (_, path) in chain::segments(dir).map_err(io)? {
            let f = std::fs::File::open(&path).map_err(io)?;
            for line in BufReader::new(f).lines() {
                let line = line.map_err(io)?;
                let Some(h) = chain::head(&line) else { continue };
                if h.seq <= from_seq {
                    continue;
                }
                max = max.max(h.seq);
                if h.kind == "request" {
                    if let Ok(v) = serde_json::from_str::<Value>(&line) {
                        keep(&v);
                    }
                }
            }
        }
        Ok(max)
    };
    seen_seq = read_new(seen_seq, &mut |v| {
        last.push_back(readable(v));
        if last.len() > n {
            last.pop_front();
        }
    })?;
    for l in &last {
        writeln!(out, "{l}").map_err(io)?;
    }
    out.flush().map_err(io)?;
    if !follow {
        return Ok(());
    }
    loop {
        std::thread::sleep(std::time::Duration::from_millis(500));
        let mut lines = Vec::new();
        seen_seq = read_new(seen_seq, &mut |v| lines.push(readable(v)))?;
        for l in lines {
            writeln!(out, "{l}").map_err(io)?;
        }
        out.flush().map_err(io)?;
    }
}
