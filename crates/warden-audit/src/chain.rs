//! The chain: how a record is written as a line, how lines link, and where segments are.
//!
//! Every line is one JSON object that begins with the same four fields:
//!
//! ```text
//! {"seq":42,"prev":"<sha256 of line 41, hex>","time":"2026-12-01T15:40:00.123Z","kind":"request",...}
//! ```
//!
//! `prev` is the sha256 of the previous line's bytes (without its newline); the first line of a
//! trail has [`GENESIS`]. A segment file is named after the `seq` of its first line
//! (`segment-0000000000000042.jsonl`) and begins with a `segment` line that names the segment
//! before it, so the chain runs on across files. Kinds: `request` (one per request), `segment`,
//! `checkpoint` (a signed statement of the line before it), `gap` (a torn tail was moved aside at
//! start), `retention` (old segments were deleted).

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The `prev` of the first line of a trail.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The sidecar file of checkpoints (one JSON line each), kept beside the segments.
pub const CHECKPOINTS: &str = "checkpoints.jsonl";

/// Where torn tails are moved at start.
pub const QUARANTINE: &str = "quarantine";

/// The sha256 of a line, hex.
pub fn hash(line: &[u8]) -> String {
    hex::encode(Sha256::digest(line))
}

/// A line, given its place in the chain and a JSON object body (`{...}`, possibly `{}`).
pub fn line(seq: u64, prev: &str, time: &str, kind: &str, body: &str) -> String {
    let rest = body.trim().strip_prefix('{').unwrap_or("}");
    let sep = if rest.trim_start().starts_with('}') { "" } else { "," };
    format!("{{\"seq\":{seq},\"prev\":\"{prev}\",\"time\":\"{time}\",\"kind\":\"{kind}\"{sep}{rest}")
}

/// Now, as the trail writes times: RFC 3339, UTC, milliseconds.
pub fn now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// The segment file that begins at `seq`.
pub fn segment_name(seq: u64) -> String {
    format!("segment-{seq:016}.jsonl")
}

/// The segments of a trail, in chain order, with the `seq` each begins at.
pub fn segments(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(n) = name.strip_prefix("segment-").and_then(|n| n.strip_suffix(".jsonl")) {
            if let Ok(seq) = n.parse::<u64>() {
                out.push((seq, e.path()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The four leading fields of a line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Head {
    /// Its place in the chain.
    pub seq: u64,
    /// The hash of the line before it.
    pub prev: String,
    /// When it was written.
    pub time: String,
    /// What it records.
    pub kind: String,
}

/// The head of a line, if it is a chain line.
pub fn head(line: &str) -> Option<Head> {
    serde_json::from_str(line).ok()
}

/// The text a checkpoint signs: the trail covers `seq` lines up to and including the line of
/// that `seq`, whose hash is `hash` (a transparency-log style note).
pub fn checkpoint_note(seq: u64, hash: &str) -> String {
    format!("warden-audit checkpoint v1\n{seq}\n{hash}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_leads_with_its_place_and_keeps_the_body() {
        let l = line(7, GENESIS, "2026-12-01T00:00:00.000Z", "request", r#"{"request_id":"req_1","x":[1]}"#);
        assert!(l.starts_with(r#"{"seq":7,"prev":"0000"#), "{l}");
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["kind"], "request");
        assert_eq!(v["request_id"], "req_1");
        let empty = line(8, GENESIS, "t", "segment", "{}");
        assert!(serde_json::from_str::<serde_json::Value>(&empty).is_ok(), "{empty}");
        assert_eq!(head(&empty).unwrap().seq, 8);
    }

    #[test]
    fn segments_sort_by_their_first_seq() {
        let d = tempfile::tempdir().unwrap();
        for s in [10u64, 2, 300] {
            std::fs::write(d.path().join(segment_name(s)), "").unwrap();
        }
        std::fs::write(d.path().join("checkpoints.jsonl"), "").unwrap();
        let seqs: Vec<u64> = segments(d.path()).unwrap().into_iter().map(|(s, _)| s).collect();
        assert_eq!(seqs, vec![2, 10, 300]);
    }
}
