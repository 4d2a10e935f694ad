//! `warden audit verify DIR [--key PUB]`: checks every link of the chain, every segment's start,
//! and every checkpoint (in the chain and in the sidecar file, signatures included with a key).
//! It reads line by line, in constant memory, and reports each break with its file and line:
//! a line edited, deleted, inserted, reordered or truncated, a segment deleted, a tail cut off
//! (a checkpoint names a line the trail no longer has).

use crate::chain::{self, CHECKPOINTS, GENESIS};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use warden_core::keys::VerifyingKey;

/// One break in the trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file.
    pub file: PathBuf,
    /// The line (from 1), 0 for the file as a whole.
    pub line: usize,
    /// What is wrong, and what it means.
    pub what: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            0 => write!(f, "{}: {}", self.file.display(), self.what),
            n => write!(f, "{}:{n}: {}", self.file.display(), self.what),
        }
    }
}

/// What `verify` found.
#[derive(Debug, Default)]
pub struct Report {
    /// Segments read.
    pub segments: usize,
    /// Lines read.
    pub lines: u64,
    /// The first and last `seq`.
    pub first_seq: u64,
    /// The last `seq`.
    pub last_seq: u64,
    /// Checkpoints in the chain, and how many had a valid signature.
    pub checkpoints: u64,
    /// Signed checkpoints whose signature the key confirmed.
    pub signed: u64,
    /// Records shed (named by checkpoints).
    pub shed: u64,
    /// `gap` lines (torn tails moved aside at start).
    pub gaps: u64,
    /// Lines after the last checkpoint (not yet covered by a signature).
    pub uncovered: u64,
    /// Every break found.
    pub problems: Vec<Problem>,
}

/// Verifies the trail in `dir`; with `key`, every checkpoint must carry its valid signature.
pub fn verify(dir: &Path, key: Option<&VerifyingKey>) -> std::io::Result<Report> {
    let mut r = Report::default();
    let segments = chain::segments(dir)?;
    let side = sidecar(dir, key, &mut r)?;
    if segments.is_empty() {
        r.problems.push(Problem {
            file: dir.to_path_buf(),
            line: 0,
            what: "no segment files: the trail is empty or was deleted".into(),
        });
        return Ok(r);
    }
    let mut prev: Option<String> = None;
    let mut expect_seq: Option<u64> = None;
    for (first, path) in &segments {
        r.segments += 1;
        let mut reader = BufReader::new(std::fs::File::open(path)?);
        let mut n = 0usize;
        let mut buf = Vec::new();
        loop {
            buf.clear();
            if reader.read_until(b'\n', &mut buf)? == 0 {
                break;
            }
            n += 1;
            let problem = |what: String| Problem { file: path.clone(), line: n, what };
            if buf.last() != Some(&b'\n') {
                r.problems
                    .push(problem("the last line is torn (no newline): a crash mid-write, or the file was cut".into()));
                break;
            }
            let bytes = &buf[..buf.len() - 1];
            let Some((text, head)) = std::str::from_utf8(bytes).ok().and_then(|t| chain::head(t).map(|h| (t, h)))
            else {
                r.problems.push(problem("not a chain line (edited or corrupted)".into()));
                prev = Some(chain::hash(bytes));
                expect_seq = expect_seq.map(|s| s + 1);
                continue;
            };
            r.lines += 1;
            if r.lines == 1 {
                r.first_seq = head.seq;
                // Only a trail that does not start at genesis needs the retention lines (a second
                // read of the segments).
                if head.prev != GENESIS && !retention_hashes(&segments)?.contains(&head.prev) {
                    r.problems.push(problem(format!(
                        "the trail does not start at its beginning (seq {}): earlier segments were deleted, and no retention line says so",
                        head.seq
                    )));
                }
            }
            if n == 1 && (head.kind != "segment" || head.seq != *first) {
                r.problems.push(problem(format!(
                    "a segment must begin with its `segment` line at seq {first}; this is a `{}` line at seq {}",
                    head.kind, head.seq
                )));
            }
            if let Some(want) = expect_seq {
                if head.seq != want {
                    r.problems.push(problem(format!(
                        "seq {} where {want} was expected: lines were deleted, inserted or reordered{}",
                        head.seq,
                        if n == 1 { " (or a segment is missing before this one)" } else { "" }
                    )));
                }
            }
            if let Some(p) = &prev {
                if &head.prev != p {
                    r.problems.push(problem(format!(
                        "seq {} does not follow the line before it (its prev is not that line's hash): the line before was edited, or lines were deleted, inserted or reordered",
                        head.seq
                    )));
                }
            }
            let hash = chain::hash(bytes);
            if head.kind == "checkpoint" {
                check_checkpoint(text, &head, prev.as_deref(), key, &mut r, &problem);
                r.uncovered = 0;
            } else {
                r.uncovered += 1;
            }
            if head.kind == "gap" {
                r.gaps += 1;
            }
            if let Some((want, _)) = side.get(&head.seq) {
                if want != &hash {
                    r.problems.push(problem(format!(
                        "seq {} is not the line checkpoints.jsonl signed for it: the line was edited (or the chain rewritten)",
                        head.seq
                    )));
                }
            }
            r.last_seq = head.seq;
            prev = Some(hash);
            expect_seq = Some(head.seq + 1);
        }
        let _ = reader.read_to_end(&mut Vec::new());
    }
    // A sidecar checkpoint covers `seq` with its chain line at `seq + 1`, written (and synced)
    // before the sidecar's: the trail must reach that line too, or the last checkpoint line (and
    // the shed records it names) could be cut unseen.
    if let Some((seq, (_, line))) = side.range(r.last_seq..).next() {
        let what = if *seq > r.last_seq {
            format!(
                "a checkpoint covers seq {seq}, but the trail ends at seq {}: lines or whole segments were removed from its end",
                r.last_seq
            )
        } else {
            format!(
                "the checkpoint line of seq {seq} (seq {}) is missing: the trail ends at seq {}: lines were removed from its end",
                seq + 1,
                r.last_seq
            )
        };
        r.problems.push(Problem { file: dir.join(CHECKPOINTS), line: *line, what });
    }
    Ok(r)
}

fn check_checkpoint(
    text: &str,
    head: &chain::Head,
    prev: Option<&str>,
    key: Option<&VerifyingKey>,
    r: &mut Report,
    problem: &dyn Fn(String) -> Problem,
) {
    r.checkpoints += 1;
    let v: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    let covers_seq = v["covers_seq"].as_u64();
    let covers_hash = v["covers_hash"].as_str();
    r.shed += v["shed"].as_u64().unwrap_or(0);
    if covers_seq != Some(head.seq.saturating_sub(1)) || covers_hash != prev {
        r.problems.push(problem(format!("checkpoint at seq {} does not cover the line before it", head.seq)));
        return;
    }
    if let Some(key) = key {
        let note = chain::checkpoint_note(head.seq - 1, covers_hash.unwrap_or(""));
        match v["signature"].as_str() {
            Some(sig) if warden_core::keys::verify_b64(key, note.as_bytes(), sig) => r.signed += 1,
            Some(_) => {
                r.problems.push(problem(format!("checkpoint at seq {}: the signature is not the key's", head.seq)))
            }
            None => r.problems.push(problem(format!("checkpoint at seq {} is not signed", head.seq))),
        }
    }
}

/// The sidecar checkpoints: `covers_seq` to (`covers_hash`, the line it is on), signatures
/// checked with a key.
fn sidecar(dir: &Path, key: Option<&VerifyingKey>, r: &mut Report) -> std::io::Result<BTreeMap<u64, (String, usize)>> {
    let path = dir.join(CHECKPOINTS);
    let mut out = BTreeMap::new();
    let Ok(f) = std::fs::File::open(&path) else { return Ok(out) };
    for (i, line) in BufReader::new(f).lines().enumerate() {
        let line = line?;
        let problem = |what: String| Problem { file: path.clone(), line: i + 1, what };
        let v: serde_json::Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(_) => {
                r.problems.push(problem("not a checkpoint line (edited or corrupted)".into()));
                continue;
            }
        };
        let (Some(seq), Some(hash)) = (v["covers_seq"].as_u64(), v["covers_hash"].as_str()) else {
            r.problems.push(problem("a checkpoint line without covers_seq and covers_hash".into()));
            continue;
        };
        if let Some(key) = key {
            let note = chain::checkpoint_note(seq, hash);
            if !v["signature"].as_str().is_some_and(|s| warden_core::keys::verify_b64(key, note.as_bytes(), s)) {
                r.problems.push(problem(format!("the checkpoint of seq {seq} is not signed by the key")));
                continue;
            }
        }
        out.insert(seq, (hash.to_string(), i + 1));
    }
    Ok(out)
}

/// The hashes retention lines say the first kept segment follows.
fn retention_hashes(segments: &[(u64, PathBuf)]) -> std::io::Result<Vec<String>> {
    let mut out = Vec::new();
    for (_, path) in segments {
        for line in BufReader::new(std::fs::File::open(path)?).lines() {
            let line = line.unwrap_or_default();
            if line.contains("\"kind\":\"retention\"") {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                    if let Some(h) = v["last_hash"].as_str() {
                        out.push(h.to_string());
                    }
                }
            }
        }
    }
    Ok(out)
}
