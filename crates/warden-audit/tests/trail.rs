//! Integration tests of the audit trail: what an auditor relies on.
//!
//! A trail is written through [`Trail`] (the writer thread, rotation, checkpoints, retention),
//! then read back, tampered with by hand, and checked with [`verify::verify`] and
//! [`export::export`]. The main fixture writes one record per batch (`batch_records: 1`) with
//! time-based housekeeping pushed out of reach, so where its checkpoints and segment boundaries
//! fall depends only on the number and size of the records: the tests do not race the writer.

use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use warden_audit::chain;
use warden_audit::config::{Backpressure, Fsync};
use warden_audit::export::{self, Filter, Format};
use warden_audit::verify::{self, Report};
use warden_audit::{Appended, AuditConfig, Stats, Trail};
use warden_core::keys::{SigningKey, VerifyingKey};

const CLOSE: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A key pair written as `warden keygen` writes it.
struct Keys {
    private: PathBuf,
    verifying: VerifyingKey,
}

fn keys(dir: &Path, name: &str) -> Keys {
    let (private, public) = warden_core::keys::generate().unwrap();
    let private_path = dir.join(format!("{name}.key"));
    let public_path = dir.join(format!("{name}.pub"));
    std::fs::write(&private_path, private).unwrap();
    std::fs::write(&public_path, public).unwrap();
    Keys { verifying: warden_core::keys::read_verifying_key(&public_path).unwrap(), private: private_path }
}

/// The n-th record, in the proxy's shape. Four kinds, by `i % 4`:
/// 0: blocked prompt (`pol/rule`), tenant t1; 1: allowed both ways, tenant t2;
/// 2: redacted prompt (`pii/email`), tenant t1; 3: flagged prompt (`tone/rude`) and blocked
/// completion (`pol/secret`), a tenant that needs CSV quoting.
fn body(i: usize) -> String {
    let id = format!("req_{i}");
    match i % 4 {
        0 => json!({"request_id": id, "tenant": "t1",
            "prompt": {"action": "block", "rules": [{"id": "pol/rule"}]},
            "completion": null, "outcome": "refused", "status": 400}),
        1 => json!({"request_id": id, "tenant": "t2",
            "prompt": {"action": "allow", "rules": []},
            "completion": {"action": "allow", "rules": []}, "outcome": "served", "status": 200}),
        2 => json!({"request_id": id, "tenant": "t1",
            "prompt": {"action": "redact", "rules": [{"id": "pii/email"}]},
            "completion": null, "outcome": "served", "status": 200}),
        _ => json!({"request_id": id, "tenant": TENANT3,
            "prompt": {"action": "flag", "rules": [{"id": "tone/rude"}]},
            "completion": {"action": "block", "rules": [{"id": "pol/secret"}]}, "outcome": "withheld", "status": 200}),
    }
    .to_string()
}

const TENANT3: &str = "acme, \"inc\"";

/// The small, deterministic configuration: a segment every ~4 KiB, a checkpoint every 10
/// records, signed; nothing timed.
fn config(dir: &Path, key: &Keys) -> AuditConfig {
    AuditConfig {
        dir: Some(dir.to_path_buf()),
        fsync: Fsync::Never,
        batch_records: 1,
        segment_bytes: 4096,
        segment_secs: 86_400,
        checkpoint_records: 10,
        checkpoint_secs: 3600,
        key_file: Some(key.private.clone()),
        ..Default::default()
    }
}

/// A closed trail in a temporary directory.
struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    keys: Keys,
    cfg: AuditConfig,
    stats: Stats,
}

impl Fixture {
    fn report(&self) -> Report {
        verify::verify(&self.dir, Some(&self.keys.verifying)).unwrap()
    }
    fn sidecar(&self) -> PathBuf {
        self.dir.join(chain::CHECKPOINTS)
    }
}

fn append_all(trail: &Trail, range: std::ops::Range<usize>) {
    for i in range {
        assert!(matches!(trail.append(body(i)), Appended::Queued(_)), "record {i} was shed");
    }
}

/// A trail of `n` records, closed.
fn fixture(n: usize) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let keys = keys(tmp.path(), "audit");
    let dir = tmp.path().join("trail");
    let cfg = config(&dir, &keys);
    let trail = Trail::open(&cfg).unwrap();
    append_all(&trail, 0..n);
    trail.close(CLOSE);
    let stats = trail.stats();
    assert_eq!(stats.records, n as u64);
    Fixture { _tmp: tmp, dir, keys, cfg, stats }
}

/// The segments, in chain order, with their lines.
fn segments(dir: &Path) -> Vec<(PathBuf, Vec<String>)> {
    chain::segments(dir)
        .unwrap()
        .into_iter()
        .map(|(_, p)| {
            let text = std::fs::read_to_string(&p).unwrap();
            let lines = text.lines().map(str::to_string).collect();
            (p, lines)
        })
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(path, text).unwrap();
}

fn kind(line: &str) -> String {
    chain::head(line).unwrap().kind
}

fn seq(line: &str) -> u64 {
    chain::head(line).unwrap().seq
}

fn parse(line: &str) -> Value {
    serde_json::from_str(line).unwrap()
}

/// In the middle segment, a request line (not the first line, not the last) whose next line is
/// also a request: no checkpoint covers it directly. Returns (segment index, line index).
fn middle_request(segs: &[(PathBuf, Vec<String>)], with: &str) -> (usize, usize) {
    let s = segs.len() / 2;
    let lines = &segs[s].1;
    let i = (1..lines.len() - 1)
        .find(|&i| kind(&lines[i]) == "request" && kind(&lines[i + 1]) == "request" && lines[i].contains(with))
        .unwrap_or_else(|| panic!("no suitable request line in {}", segs[s].0.display()));
    (s, i)
}

/// Asserts that `p` says the trail ending at `end` lost its tail: the first sidecar checkpoint
/// whose chain line (the seq after the one it covers) is past the end is named.
fn assert_cut_tail(fx: &Fixture, p: &verify::Problem, end: u64) -> u64 {
    let side = std::fs::read_to_string(fx.sidecar()).unwrap();
    let (line, covered) = side
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, parse(l)["covers_seq"].as_u64().unwrap()))
        .filter(|(_, s)| *s >= end)
        .min_by_key(|(_, s)| *s)
        .expect("a checkpoint covers the tail");
    // The sidecar's line of that checkpoint is named.
    assert_eq!((&p.file, p.line), (&fx.sidecar(), line), "{p}");
    let want = if covered > end {
        format!("a checkpoint covers seq {covered}, but the trail ends at seq {end}")
    } else {
        format!("the checkpoint line of seq {covered} (seq {}) is missing: the trail ends at seq {end}", covered + 1)
    };
    assert!(p.what.contains(&want), "{p}\nwanted: {want}");
    assert!(p.what.contains("removed from its end"), "{p}");
    covered
}

fn assert_clean(r: &Report) {
    assert!(r.problems.is_empty(), "verify found problems: {:#?}", r.problems);
}

/// Rebuilds the whole chain with recomputed hashes, as a forger with write access would after an
/// edit: every `prev`, every in-chain checkpoint's `covers_hash`; with `resign`, the changed
/// checkpoints (in the chain and the sidecar) are signed again with another key. Returns the new
/// hash of each seq.
fn rebuild_chain(dir: &Path, resign: Option<&SigningKey>) -> HashMap<u64, String> {
    let mut hashes = HashMap::new();
    let mut prev = chain::GENESIS.to_string();
    for (path, lines) in segments(dir) {
        let mut out = Vec::new();
        for l in &lines {
            let v = parse(l);
            let h = chain::head(l).unwrap();
            let mut rest = Map::new();
            for (k, val) in v.as_object().unwrap() {
                if !["seq", "prev", "time", "kind"].contains(&k.as_str()) {
                    rest.insert(k.clone(), val.clone());
                }
            }
            if h.kind == "checkpoint" && rest["covers_hash"] != prev.as_str() {
                rest.insert("covers_hash".into(), Value::String(prev.clone()));
                if let Some(k) = resign {
                    let note = chain::checkpoint_note(h.seq - 1, &prev);
                    rest.insert("signature".into(), Value::String(warden_core::keys::sign_b64(k, note.as_bytes())));
                }
            }
            let line = chain::line(h.seq, &prev, &h.time, &h.kind, &Value::Object(rest).to_string());
            prev = chain::hash(line.as_bytes());
            hashes.insert(h.seq, prev.clone());
            out.push(line);
        }
        write_lines(&path, &out);
    }
    if let Some(k) = resign {
        let side = dir.join(chain::CHECKPOINTS);
        let text = std::fs::read_to_string(&side).unwrap();
        let lines: Vec<String> = text
            .lines()
            .map(|l| {
                let mut v = parse(l);
                let s = v["covers_seq"].as_u64().unwrap();
                let h = &hashes[&s];
                if v["covers_hash"] != h.as_str() {
                    v["covers_hash"] = Value::String(h.clone());
                    v["signature"] =
                        Value::String(warden_core::keys::sign_b64(k, chain::checkpoint_note(s, h).as_bytes()));
                }
                v.to_string()
            })
            .collect();
        write_lines(&side, &lines);
    }
    hashes
}

fn export_string(dir: &Path, filter: &Filter, format: Format) -> (u64, String) {
    let mut out = Vec::new();
    let n = export::export(dir, filter, format, &mut out, false).unwrap();
    (n, String::from_utf8(out).unwrap())
}

fn export_count(dir: &Path, filter: &Filter) -> u64 {
    let (n, text) = export_string(dir, filter, Format::Jsonl);
    assert_eq!(n as usize, text.lines().count());
    n
}

// ---------------------------------------------------------------------------------------------
// 1. An untouched trail
// ---------------------------------------------------------------------------------------------

#[test]
fn an_untouched_trail_verifies_and_exports_exactly_its_records() {
    const N: usize = 120;
    let fx = fixture(N);
    let segs = segments(&fx.dir);
    assert!(segs.len() >= 4, "the fixture should rotate into several segments, got {}", segs.len());

    let r = fx.report();
    assert_clean(&r);
    assert_eq!(r.segments, segs.len());
    assert!(r.checkpoints >= (N / 10) as u64, "{r:?}");
    assert_eq!(r.signed, r.checkpoints, "every checkpoint carries the key's signature");
    assert_eq!(r.checkpoints, fx.stats.checkpoints);
    let sidecar_lines = std::fs::read_to_string(fx.sidecar()).unwrap().lines().count() as u64;
    assert_eq!(sidecar_lines, r.checkpoints, "every checkpoint is in the sidecar too");
    // Records plus housekeeping: one `segment` line per segment and the checkpoints.
    assert_eq!(r.lines, N as u64 + r.segments as u64 + r.checkpoints);
    assert_eq!((r.first_seq, r.last_seq), (1, r.lines));
    assert_eq!((r.shed, r.gaps, r.uncovered), (0, 0, 0), "close() leaves nothing uncovered");

    // Each segment begins with its `segment` line naming the file before it.
    let mut previous = Value::Null;
    for (path, lines) in &segs {
        let first = parse(&lines[0]);
        let name = path.file_name().unwrap().to_str().unwrap();
        assert_eq!(first["kind"], "segment");
        assert_eq!(first["segment"], name);
        assert_eq!(first["previous"], previous);
        assert_eq!(chain::segment_name(first["seq"].as_u64().unwrap()), name);
        previous = Value::String(name.to_string());
    }
    assert_eq!(kind(segs.last().unwrap().1.last().unwrap()), "checkpoint", "close() writes a last checkpoint");

    // The export is exactly the request lines, byte for byte, in order.
    let trail_requests: Vec<&String> =
        segs.iter().flat_map(|(_, l)| l.iter()).filter(|l| kind(l) == "request").collect();
    let (n, text) = export_string(&fx.dir, &Filter::default(), Format::Jsonl);
    assert_eq!(n, N as u64);
    let exported: Vec<&str> = text.lines().collect();
    assert_eq!(exported.len(), N);
    for (i, (e, t)) in exported.iter().zip(&trail_requests).enumerate() {
        assert_eq!(e, t);
        assert_eq!(parse(e)["request_id"], format!("req_{i}"));
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Tampering
// ---------------------------------------------------------------------------------------------

#[test]
fn an_edited_field_breaks_the_link_of_the_next_line() {
    let fx = fixture(120);
    let mut segs = segments(&fx.dir);
    let (s, i) = middle_request(&segs, "\"action\":\"block\"");
    let (path, lines) = &mut segs[s];
    let original = lines[i].clone();
    lines[i] = original.replacen("\"action\":\"block\"", "\"action\":\"allow\"", 1);
    assert_ne!(lines[i], original);
    write_lines(path, lines);

    let r = fx.report();
    let p = r.problems.first().unwrap_or_else(|| panic!("an edit went unnoticed"));
    assert_eq!(p.file, *path);
    assert_eq!(p.line, i + 2, "the line after the edited one (line {}) no longer follows it: {p}", i + 1);
    assert!(p.what.contains(&format!("seq {} does not follow the line before it", seq(&original) + 1)), "{p}");
    assert!(p.what.contains("edited"), "{p}");
    // And the edit shows in the export of that record, which is why the chain matters.
    let (_, text) =
        export_string(&fx.dir, &Filter { action: Some("block".into()), ..Default::default() }, Format::Jsonl);
    assert!(!text.contains(&original));
}

#[test]
fn an_edited_line_that_a_checkpoint_signed_is_named_itself() {
    let fx = fixture(120);
    let mut segs = segments(&fx.dir);
    // The line right before an in-chain checkpoint (in the middle segment): the sidecar has its hash.
    let s = segs.len() / 2;
    let i = (1..segs[s].1.len())
        .find(|&i| kind(&segs[s].1[i]) == "checkpoint" && kind(&segs[s].1[i - 1]) == "request")
        .expect("a checkpoint after a request in the middle segment")
        - 1;
    let (path, lines) = &mut segs[s];
    let at = lines[i].find("\"status\":").unwrap() + "\"status\":".len();
    let mut bytes = lines[i].clone().into_bytes();
    bytes[at] += 1; // 400 -> 500, 200 -> 300: one byte
    let edited_seq = seq(&lines[i]);
    lines[i] = String::from_utf8(bytes).unwrap();
    write_lines(path, lines);

    let r = fx.report();
    let p = r.problems.first().expect("an edit went unnoticed");
    assert_eq!((&p.file, p.line), (&*path, i + 1), "{p}");
    assert!(p.what.contains(&format!("seq {edited_seq} is not the line checkpoints.jsonl signed for it")), "{p}");
    // The checkpoint after it no longer covers it.
    assert!(
        r.problems.iter().any(|q| q.file == *path && q.line == i + 2 && q.what.contains("does not cover")),
        "{:#?}",
        r.problems
    );
}

#[test]
fn a_deleted_line_is_reported_where_it_was() {
    let fx = fixture(120);
    let mut segs = segments(&fx.dir);
    let (s, i) = middle_request(&segs, "");
    let (path, lines) = &mut segs[s];
    let gone = seq(&lines.remove(i));
    write_lines(path, lines);

    let r = fx.report();
    let p = r.problems.first().expect("a deletion went unnoticed");
    assert_eq!((&p.file, p.line), (&*path, i + 1), "{p}");
    assert!(p.what.contains(&format!("seq {} where {gone} was expected", gone + 1)), "{p}");
    assert!(p.what.contains("deleted"), "{p}");
}

#[test]
fn an_inserted_copy_of_a_line_is_reported_where_it_was_put() {
    let fx = fixture(120);
    let mut segs = segments(&fx.dir);
    let (s, i) = middle_request(&segs, "");
    let (path, lines) = &mut segs[s];
    let copy = lines[i].clone();
    lines.insert(i + 1, copy.clone());
    write_lines(path, lines);

    let r = fx.report();
    let p = r.problems.first().expect("an insertion went unnoticed");
    assert_eq!((&p.file, p.line), (&*path, i + 2), "{p}");
    assert!(p.what.contains(&format!("seq {} where {} was expected", seq(&copy), seq(&copy) + 1)), "{p}");
    assert!(p.what.contains("inserted"), "{p}");
    // Only the inserted line is wrong: the chain picks up again after it.
    assert!(r.problems.iter().all(|q| q.file == *path && q.line == i + 2), "{:#?}", r.problems);
}

#[test]
fn two_swapped_lines_are_reported_at_the_first() {
    let fx = fixture(120);
    let mut segs = segments(&fx.dir);
    let (s, i) = middle_request(&segs, "");
    let (path, lines) = &mut segs[s];
    let first = seq(&lines[i]);
    lines.swap(i, i + 1);
    write_lines(path, lines);

    let r = fx.report();
    let p = r.problems.first().expect("a reordering went unnoticed");
    assert_eq!((&p.file, p.line), (&*path, i + 1), "{p}");
    assert!(p.what.contains(&format!("seq {} where {first} was expected", first + 1)), "{p}");
    assert!(p.what.contains("reordered"), "{p}");
}

#[test]
fn a_cut_tail_is_caught_by_the_checkpoint_that_covers_it() {
    const K: usize = 3;
    let fx = fixture(120);
    let segs = segments(&fx.dir);
    let (path, lines) = segs.last().unwrap();
    assert!(lines.len() > K + 1, "the last segment is too short to cut {K} lines: {}", lines.len());
    let last_kept = seq(&lines[lines.len() - K - 1]);
    write_lines(path, &lines[..lines.len() - K]);

    let r = fx.report();
    let p = r.problems.first().expect("a cut tail went unnoticed");
    // close() wrote a checkpoint of the line before its own, so one covers the cut lines.
    assert_cut_tail(&fx, p, last_kept);
    assert_eq!(r.problems.len(), 1, "{:#?}", r.problems);
}

#[test]
fn a_deleted_last_segment_is_caught_by_the_sidecar() {
    let fx = fixture(120);
    let segs = segments(&fx.dir);
    let (path, lines) = segs.last().unwrap();
    std::fs::remove_file(path).unwrap();
    let end = seq(segs[segs.len() - 2].1.last().unwrap());

    let r = fx.report();
    let p = r.problems.first().expect("a deleted last segment went unnoticed");
    let covered = assert_cut_tail(&fx, p, end);
    assert!(covered >= seq(&lines[0]), "a checkpoint covers a line of the deleted segment");
    assert_eq!(r.problems.len(), 1, "{:#?}", r.problems);
}

#[test]
fn a_deleted_middle_segment_is_reported_at_the_start_of_the_next() {
    let fx = fixture(120);
    let segs = segments(&fx.dir);
    let s = segs.len() / 2;
    std::fs::remove_file(&segs[s].0).unwrap();
    let expected = seq(segs[s - 1].1.last().unwrap()) + 1;

    let r = fx.report();
    let p = r.problems.first().expect("a deleted segment went unnoticed");
    assert_eq!((&p.file, p.line), (&segs[s + 1].0, 1), "{p}");
    assert!(p.what.contains(&format!("seq {} where {expected} was expected", seq(&segs[s + 1].1[0]))), "{p}");
    assert!(p.what.contains("a segment is missing before this one"), "{p}");
}

#[test]
fn a_deleted_first_segment_without_a_retention_line_is_reported() {
    let fx = fixture(120);
    let segs = segments(&fx.dir);
    std::fs::remove_file(&segs[0].0).unwrap();

    let r = fx.report();
    let p = r.problems.first().expect("a deleted first segment went unnoticed");
    assert_eq!((&p.file, p.line), (&segs[1].0, 1), "{p}");
    assert!(p.what.contains("does not start at its beginning") && p.what.contains("no retention line"), "{p}");
}

#[test]
fn a_rewritten_chain_is_caught_by_the_signed_checkpoints() {
    let fx = fixture(120);
    // The forger's model of a line is exact: rebuilding an untouched chain changes nothing.
    let before: Vec<_> = segments(&fx.dir);
    rebuild_chain(&fx.dir, None);
    assert_eq!(segments(&fx.dir), before);

    let mut segs = before.clone();
    let (s, i) = middle_request(&segs, "\"action\":\"block\"");
    let edited_seq = seq(&segs[s].1[i]);
    segs[s].1[i] = segs[s].1[i].replacen("\"action\":\"block\"", "\"action\":\"allow\"", 1);
    write_lines(&segs[s].0, &segs[s].1);
    rebuild_chain(&fx.dir, None);
    let segs = segments(&fx.dir);

    // The first checkpoint after the edit, in chain order.
    let (cs, ci) = segs
        .iter()
        .enumerate()
        .flat_map(|(s, (_, l))| l.iter().enumerate().map(move |(i, line)| (s, i, line)))
        .find(|(_, _, l)| kind(l) == "checkpoint" && seq(l) > edited_seq)
        .map(|(s, i, _)| (s, i))
        .unwrap();
    let r = fx.report();
    let p = r.problems.first().expect("a rewritten chain went unnoticed");
    // The sidecar signed the line before that checkpoint...
    assert_eq!((&p.file, p.line), (&segs[cs].0, ci), "{p}");
    assert!(p.what.contains("is not the line checkpoints.jsonl signed for it"), "{p}");
    // ...and the in-chain checkpoint's signature is not for the new hash.
    let q = &r.problems[1];
    assert_eq!((&q.file, q.line), (&segs[cs].0, ci + 1), "{q}");
    assert!(q.what.contains("the signature is not the key's"), "{q}");
    // Every link holds (the forger recomputed them): only the signatures tell.
    for p in &r.problems {
        assert!(
            p.what.contains("checkpoints.jsonl signed for it") || p.what.contains("signature is not the key's"),
            "{p}"
        );
    }
    let later_checkpoints =
        segs.iter().flat_map(|(_, l)| l).filter(|l| kind(l) == "checkpoint" && seq(l) > edited_seq).count();
    assert_eq!(r.problems.len(), 2 * later_checkpoints, "{:#?}", r.problems);
}

#[test]
fn a_rewritten_chain_signed_with_another_key_fails_with_the_right_key() {
    let fx = fixture(120);
    let other = keys(fx.dir.parent().unwrap(), "forger");
    let forger = warden_core::keys::read_signing_key(&other.private).unwrap();
    let old_side: Vec<String> = std::fs::read_to_string(fx.sidecar()).unwrap().lines().map(str::to_string).collect();

    let mut segs = segments(&fx.dir);
    let (s, i) = middle_request(&segs, "\"action\":\"block\"");
    let edited_seq = seq(&segs[s].1[i]);
    segs[s].1[i] = segs[s].1[i].replacen("\"action\":\"block\"", "\"action\":\"allow\"", 1);
    write_lines(&segs[s].0, &segs[s].1);
    rebuild_chain(&fx.dir, Some(&forger));

    // Without the key, a consistent forgery cannot be told apart: the key is what the auditor relies on.
    assert_clean(&verify::verify(&fx.dir, None).unwrap());

    let r = fx.report();
    let first_forged = old_side.iter().position(|l| parse(l)["covers_seq"].as_u64().unwrap() >= edited_seq).unwrap();
    let p = r.problems.first().expect("a re-signed chain went unnoticed");
    assert_eq!((&p.file, p.line), (&fx.sidecar(), first_forged + 1), "{p}");
    assert!(p.what.contains("is not signed by the key"), "{p}");
    let forged = old_side.len() - first_forged;
    let sidecar_problems = r.problems.iter().filter(|p| p.file == fx.sidecar()).count();
    let chain_problems: Vec<_> = r.problems.iter().filter(|p| p.file != fx.sidecar()).collect();
    assert_eq!(sidecar_problems, forged, "{:#?}", r.problems);
    assert!(!chain_problems.is_empty());
    assert!(chain_problems.iter().all(|p| p.what.contains("the signature is not the key's")), "{chain_problems:#?}");
}

#[test]
fn a_sidecar_checkpoint_with_a_forged_signature_is_reported() {
    let fx = fixture(120);
    let other = keys(fx.dir.parent().unwrap(), "forger");
    let forger = warden_core::keys::read_signing_key(&other.private).unwrap();
    let mut side: Vec<String> = std::fs::read_to_string(fx.sidecar()).unwrap().lines().map(str::to_string).collect();
    let k = side.len() / 2;
    let mut v = parse(&side[k]);
    let note = chain::checkpoint_note(v["covers_seq"].as_u64().unwrap(), v["covers_hash"].as_str().unwrap());
    v["signature"] = Value::String(warden_core::keys::sign_b64(&forger, note.as_bytes()));
    side[k] = v.to_string();
    write_lines(&fx.sidecar(), &side);

    let r = fx.report();
    assert_eq!(r.problems.len(), 1, "{:#?}", r.problems);
    let p = &r.problems[0];
    assert_eq!((&p.file, p.line), (&fx.sidecar(), k + 1), "{p}");
    assert!(p.what.contains(&format!("the checkpoint of seq {} is not signed by the key", v["covers_seq"])), "{p}");
}

// ---------------------------------------------------------------------------------------------
// 3. Recovery
// ---------------------------------------------------------------------------------------------

#[test]
fn a_torn_tail_is_quarantined_and_the_chain_resumes_after_a_gap_line() {
    const N: usize = 40;
    const M: usize = 25;
    let fx = fixture(N);
    let segs = segments(&fx.dir);
    let (path, lines) = segs.last().unwrap();
    let last_good = lines.last().unwrap().clone();
    let torn = format!(
        "{{\"seq\":{},\"prev\":\"{}\",\"time\":\"2026-",
        seq(&last_good) + 1,
        chain::hash(last_good.as_bytes())
    );
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    std::io::Write::write_all(&mut f, torn.as_bytes()).unwrap();
    drop(f);

    // Before recovery an auditor sees the torn line.
    let r = fx.report();
    let p = r.problems.first().expect("a torn line went unnoticed");
    assert_eq!((&p.file, p.line), (path, lines.len() + 1), "{p}");
    assert!(p.what.contains("torn"), "{p}");

    let trail = Trail::open(&fx.cfg).unwrap();
    append_all(&trail, N..N + M);
    trail.close(CLOSE);
    assert_eq!(trail.stats().records, M as u64);

    // The torn bytes are in quarantine/, whole.
    let q: Vec<_> = std::fs::read_dir(fx.dir.join(chain::QUARANTINE)).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(std::fs::read_to_string(&q[0]).unwrap(), torn);

    // The gap line follows the last good line and names what was moved; new records chain on.
    let after = std::fs::read_to_string(path).unwrap();
    let after: Vec<&str> = after.lines().collect();
    assert_eq!(after[..lines.len()], lines.iter().map(String::as_str).collect::<Vec<_>>()[..]);
    let gap = parse(after[lines.len()]);
    assert_eq!(gap["kind"], "gap");
    assert_eq!(gap["seq"], seq(&last_good) + 1);
    assert_eq!(gap["prev"], chain::hash(last_good.as_bytes()));
    assert_eq!(gap["bytes"], torn.len());
    let rel = q[0].strip_prefix(&fx.dir).unwrap().to_str().unwrap();
    assert_eq!(gap["quarantined"], rel);
    let next = parse(after[lines.len() + 1]);
    assert_eq!(
        (next["kind"].as_str(), next["request_id"].as_str()),
        (Some("request"), Some(format!("req_{N}").as_str()))
    );

    let r = fx.report();
    assert_clean(&r);
    assert_eq!(r.gaps, 1);
    assert_eq!(r.signed, r.checkpoints);
    assert_eq!(r.uncovered, 0);
    assert_eq!(export_count(&fx.dir, &Filter::default()), (N + M) as u64);
}

// ---------------------------------------------------------------------------------------------
// 4. A crash: every acknowledged record is in the file
// ---------------------------------------------------------------------------------------------

#[test]
fn every_acknowledged_record_is_on_file_without_close() {
    const N: usize = 60;
    let tmp = tempfile::tempdir().unwrap();
    let keys = keys(tmp.path(), "audit");
    let dir = tmp.path().join("trail");
    // fsync: always; no rotation and no checkpoint during the test, so once the last
    // acknowledgement is in, the writer is idle and the files can be read as a crash leaves them.
    let cfg = AuditConfig {
        fsync: Fsync::Always,
        segment_bytes: 64 << 20,
        checkpoint_records: 1_000_000,
        ..config(&dir, &keys)
    };
    let trail = Trail::open(&cfg).unwrap();
    assert!(trail.durable());
    for i in 0..N {
        match trail.append(body(i)) {
            Appended::Queued(Some(ack)) => assert_eq!(ack.blocking_recv().unwrap(), Ok(()), "record {i}"),
            Appended::Queued(None) => panic!("fsync: always gives an acknowledgement"),
            Appended::Shed => panic!("record {i} was shed"),
        }
        // Acknowledged means written: the record is in the file before the next one is sent.
        let text: String = segments(&dir).into_iter().flat_map(|(_, l)| l).collect::<Vec<_>>().join("\n");
        assert!(text.contains(&format!("\"request_id\":\"req_{i}\"")), "acknowledged record {i} is not in the trail");
    }
    assert!(trail.stats().fsyncs >= N as u64, "{:?}", trail.stats());

    // The crash image: a copy of the directory while the trail is still open.
    let image = tmp.path().join("image");
    std::fs::create_dir(&image).unwrap();
    for e in std::fs::read_dir(&dir).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), image.join(e.file_name())).unwrap();
    }
    // The writer is never closed: it "crashed".
    std::mem::forget(trail);

    let segs = segments(&image);
    let requests: Vec<Value> =
        segs.iter().flat_map(|(_, l)| l).filter(|l| kind(l) == "request").map(|l| parse(l)).collect();
    assert_eq!(requests.len(), N);
    for (i, v) in requests.iter().enumerate() {
        assert_eq!(v["request_id"], format!("req_{i}"));
    }
    // Whole lines, linked; only not yet covered by a checkpoint.
    let r = verify::verify(&image, Some(&keys.verifying)).unwrap();
    assert_clean(&r);
    assert_eq!(r.checkpoints, 0);
    assert_eq!(r.uncovered, N as u64 + 1);

    // Restarted on the image: nothing torn, nothing lost, and the next close covers it all.
    let trail = Trail::open(&AuditConfig { dir: Some(image.clone()), ..cfg }).unwrap();
    trail.close(CLOSE);
    let r = verify::verify(&image, Some(&keys.verifying)).unwrap();
    assert_clean(&r);
    assert_eq!((r.gaps, r.uncovered, r.signed), (0, 0, 1));
    assert!(!image.join(chain::QUARANTINE).exists());
    assert_eq!(export_count(&image, &Filter::default()), N as u64);
}

// ---------------------------------------------------------------------------------------------
// 5. Back-pressure
// ---------------------------------------------------------------------------------------------

#[test]
fn shed_records_are_counted_and_named_by_the_checkpoints() {
    const N: usize = 10_000;
    let tmp = tempfile::tempdir().unwrap();
    let keys = keys(tmp.path(), "audit");
    let dir = tmp.path().join("trail");
    let cfg = AuditConfig {
        dir: Some(dir.clone()),
        queue: 1,
        backpressure: Backpressure::Shed,
        segment_bytes: 256 << 10,
        checkpoint_records: 100,
        checkpoint_secs: 3600,
        key_file: Some(keys.private.clone()),
        ..Default::default()
    };
    let trail = Trail::open(&cfg).unwrap();
    let mut shed = 0u64;
    for i in 0..N {
        if matches!(trail.append(body(i)), Appended::Shed) {
            shed += 1;
        }
    }
    trail.close(CLOSE);
    let stats = trail.stats();
    assert!(stats.shed > 0, "a queue of 1 under 10 000 quick appends sheds: {stats:?}");
    assert_eq!(stats.shed, shed);
    assert_eq!(stats.records + stats.shed, N as u64, "{stats:?}");

    let r = verify::verify(&dir, Some(&keys.verifying)).unwrap();
    assert_clean(&r);
    assert_eq!(r.shed, stats.shed, "the checkpoints name every shed record");
    assert_eq!(r.signed, r.checkpoints);
    assert_eq!(export_count(&dir, &Filter::default()), stats.records);
}

#[test]
fn blocking_back_pressure_loses_nothing() {
    const N: usize = 3000;
    let tmp = tempfile::tempdir().unwrap();
    let keys = keys(tmp.path(), "audit");
    let dir = tmp.path().join("trail");
    let cfg = AuditConfig {
        queue: 1,
        backpressure: Backpressure::Block,
        batch_records: 256,
        segment_bytes: 256 << 10,
        checkpoint_records: 100,
        ..config(&dir, &keys)
    };
    let trail = Trail::open(&cfg).unwrap();
    append_all(&trail, 0..N);
    trail.close(CLOSE);
    assert_eq!((trail.stats().records, trail.stats().shed), (N as u64, 0));
    let r = verify::verify(&dir, Some(&keys.verifying)).unwrap();
    assert_clean(&r);
    assert_eq!(r.shed, 0);
    assert_eq!(export_count(&dir, &Filter::default()), N as u64);
}

// ---------------------------------------------------------------------------------------------
// 6. Retention
// ---------------------------------------------------------------------------------------------

#[test]
fn retention_deletes_the_oldest_segments_says_so_and_the_rest_verifies() {
    const RETAIN: u64 = 10_000;
    const N: usize = 200;
    let tmp = tempfile::tempdir().unwrap();
    let keys = keys(tmp.path(), "audit");
    let dir = tmp.path().join("trail");
    let cfg = AuditConfig { segment_bytes: 2048, retain_bytes: RETAIN, ..config(&dir, &keys) };
    let trail = Trail::open(&cfg).unwrap();
    append_all(&trail, 0..N);
    trail.close(CLOSE);

    let segs = segments(&dir);
    assert!(!dir.join(chain::segment_name(1)).exists(), "the first segment is gone");
    // What is left, but the segment being written, fits the bound.
    let older: u64 = segs[..segs.len() - 1].iter().map(|(p, _)| std::fs::metadata(p).unwrap().len()).sum();
    assert!(older <= RETAIN, "{older} bytes in {} older segments", segs.len() - 1);

    let retention: Vec<Value> =
        segs.iter().flat_map(|(_, l)| l).filter(|l| kind(l) == "retention").map(|l| parse(l)).collect();
    assert!(!retention.is_empty(), "a retention line records the deletions");
    for v in &retention {
        assert_eq!(v["retain_bytes"], RETAIN);
        for name in v["deleted"].as_array().unwrap() {
            assert!(!dir.join(name.as_str().unwrap()).exists(), "{name} is named as deleted but is there");
        }
    }
    // The latest retention line names the segment the first kept one follows, and its last hash.
    let latest = retention.last().unwrap();
    let first = parse(&segs[0].1[0]);
    assert_eq!(latest["deleted"].as_array().unwrap().last().unwrap(), &first["previous"]);
    assert_eq!(latest["last_hash"], first["prev"]);

    let r = verify::verify(&dir, Some(&keys.verifying)).unwrap();
    assert_clean(&r);
    assert!(r.first_seq > 1);
    assert_eq!(r.signed, r.checkpoints);
    // The requests kept are the newest ones, in order, up to the last.
    let (_, text) = export_string(&dir, &Filter::default(), Format::Jsonl);
    let ids: Vec<String> = text.lines().map(|l| parse(l)["request_id"].as_str().unwrap().to_string()).collect();
    assert!(!ids.is_empty() && ids.len() < N);
    let from = N - ids.len();
    assert_eq!(ids, (from..N).map(|i| format!("req_{i}")).collect::<Vec<_>>());

    // Deleting the oldest kept segment by hand is not retention: no retention line says so.
    assert!(segs.len() >= 2);
    std::fs::remove_file(&segs[0].0).unwrap();
    let r = verify::verify(&dir, Some(&keys.verifying)).unwrap();
    let p = r.problems.first().expect("a segment deleted by hand went unnoticed");
    assert_eq!((&p.file, p.line), (&segs[1].0, 1), "{p}");
    assert!(p.what.contains("does not start at its beginning"), "{p}");
}

// ---------------------------------------------------------------------------------------------
// 7. Export
// ---------------------------------------------------------------------------------------------

/// The requests of `0..n` of class `i % 4` in `classes`.
fn count(range: std::ops::Range<usize>, classes: &[usize]) -> u64 {
    range.filter(|i| classes.contains(&(i % 4))).count() as u64
}

#[test]
fn export_filters_by_time_action_policy_rule_and_tenant() {
    const A: usize = 300;
    const B: usize = 300;
    let tmp = tempfile::tempdir().unwrap();
    let keys = keys(tmp.path(), "audit");
    let dir = tmp.path().join("trail");
    let cfg = AuditConfig { segment_bytes: 16 << 10, ..config(&dir, &keys) };
    let start = SystemTime::now() - Duration::from_secs(1);

    let trail = Trail::open(&cfg).unwrap();
    append_all(&trail, 0..A);
    trail.close(CLOSE);
    // A millisecond boundary between the two halves (times are written to the millisecond).
    let mid = UNIX_EPOCH
        + Duration::from_millis(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64 + 1);
    let deadline = Instant::now() + Duration::from_millis(100);
    while SystemTime::now() < mid && Instant::now() < deadline {
        std::thread::yield_now();
    }
    let trail = Trail::open(&cfg).unwrap();
    append_all(&trail, A..A + B);
    trail.close(CLOSE);
    assert_clean(&verify::verify(&dir, Some(&keys.verifying)).unwrap());

    let all = 0..A + B;
    let f = |f: Filter| export_count(&dir, &f);
    let s = |x: &str| Some(x.to_string());
    assert_eq!(f(Filter::default()), (A + B) as u64);
    // Time: since is inclusive, until exclusive.
    assert_eq!(f(Filter { since: Some(start), ..Default::default() }), (A + B) as u64);
    assert_eq!(f(Filter { until: Some(start), ..Default::default() }), 0);
    assert_eq!(f(Filter { until: Some(mid), ..Default::default() }), A as u64);
    assert_eq!(f(Filter { since: Some(mid), ..Default::default() }), B as u64);
    assert_eq!(f(Filter { since: Some(start), until: Some(mid), ..Default::default() }), A as u64);
    assert_eq!(f(Filter { since: Some(SystemTime::now() + Duration::from_secs(60)), ..Default::default() }), 0);
    // Action: the strongest of either phase.
    assert_eq!(f(Filter { action: s("block"), ..Default::default() }), count(all.clone(), &[0, 3]));
    assert_eq!(f(Filter { action: s("allow"), ..Default::default() }), count(all.clone(), &[1]));
    assert_eq!(f(Filter { action: s("redact"), ..Default::default() }), count(all.clone(), &[2]));
    assert_eq!(f(Filter { action: s("flag"), ..Default::default() }), 0, "a flag under a block is a block");
    // Policy and rule, in either phase.
    assert_eq!(f(Filter { policy: s("pol"), ..Default::default() }), count(all.clone(), &[0, 3]));
    assert_eq!(f(Filter { policy: s("pii"), ..Default::default() }), count(all.clone(), &[2]));
    assert_eq!(f(Filter { policy: s("tone"), ..Default::default() }), count(all.clone(), &[3]));
    assert_eq!(f(Filter { policy: s("rule"), ..Default::default() }), 0);
    assert_eq!(f(Filter { rule: s("pol/rule"), ..Default::default() }), count(all.clone(), &[0]));
    assert_eq!(f(Filter { rule: s("rule"), ..Default::default() }), count(all.clone(), &[0]));
    assert_eq!(f(Filter { rule: s("pol/secret"), ..Default::default() }), count(all.clone(), &[3]));
    assert_eq!(f(Filter { rule: s("email"), ..Default::default() }), count(all.clone(), &[2]));
    assert_eq!(f(Filter { rule: s("pol"), ..Default::default() }), 0);
    // Tenant.
    assert_eq!(f(Filter { tenant: s("t1"), ..Default::default() }), count(all.clone(), &[0, 2]));
    assert_eq!(f(Filter { tenant: s("t2"), ..Default::default() }), count(all.clone(), &[1]));
    assert_eq!(f(Filter { tenant: s(TENANT3), ..Default::default() }), count(all.clone(), &[3]));
    assert_eq!(f(Filter { tenant: s("nobody"), ..Default::default() }), 0);
    // Together: every condition holds.
    assert_eq!(f(Filter { tenant: s("t1"), action: s("block"), ..Default::default() }), count(all.clone(), &[0]));
    assert_eq!(
        f(Filter { tenant: s("t1"), action: s("block"), since: Some(mid), ..Default::default() }),
        count(A..A + B, &[0])
    );
    assert_eq!(f(Filter { tenant: s("t2"), policy: s("pol"), ..Default::default() }), 0);
    // The exported lines are the filtered records themselves.
    let (_, text) =
        export_string(&dir, &Filter { tenant: s("t1"), action: s("block"), ..Default::default() }, Format::Jsonl);
    let ids: Vec<String> = text.lines().map(|l| parse(l)["request_id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids, all.clone().filter(|i| i % 4 == 0).map(|i| format!("req_{i}")).collect::<Vec<_>>());
}

#[test]
fn export_as_csv_has_a_header_and_one_row_per_record() {
    const N: usize = 200;
    let fx = fixture(N);
    let (n, csv_text) = export_string(&fx.dir, &Filter::default(), Format::Csv);
    assert_eq!(n, N as u64);
    let (_, jsonl) = export_string(&fx.dir, &Filter::default(), Format::Jsonl);
    let lines: Vec<Value> = jsonl.lines().map(parse).collect();

    let mut rd = csv::Reader::from_reader(csv_text.as_bytes());
    let header: Vec<String> = rd.headers().unwrap().iter().map(str::to_string).collect();
    assert_eq!(
        header,
        [
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
            "policy_digest"
        ]
    );
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = rd.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), N);
    for (i, (row, v)) in rows.iter().zip(&lines).enumerate() {
        assert_eq!(row.len(), header.len());
        assert_eq!(row[col("seq")], v["seq"].to_string());
        assert_eq!(&row[col("time")], v["time"].as_str().unwrap());
        assert_eq!(row[col("request_id")], format!("req_{i}"));
        assert_eq!(&row[col("status")], if i % 4 == 0 { "400" } else { "200" });
        assert_eq!(&row[col("trace_id")], "");
        let (tenant, prompt, completion, rules, outcome) = match i % 4 {
            0 => ("t1", "block", "", "pol/rule", "refused"),
            1 => ("t2", "allow", "allow", "", "served"),
            2 => ("t1", "redact", "", "pii/email", "served"),
            _ => (TENANT3, "flag", "block", "tone/rude pol/secret", "withheld"),
        };
        assert_eq!(&row[col("tenant")], tenant, "a tenant with a comma and quotes survives");
        assert_eq!(&row[col("prompt_action")], prompt);
        assert_eq!(&row[col("completion_action")], completion);
        assert_eq!(&row[col("rules")], rules);
        assert_eq!(&row[col("outcome")], outcome);
    }

    // Filtered: the header, and the rows kept.
    let (n, text) = export_string(&fx.dir, &Filter { tenant: Some("t2".into()), ..Default::default() }, Format::Csv);
    assert_eq!(n, count(0..N, &[1]));
    let mut rd = csv::Reader::from_reader(text.as_bytes());
    assert_eq!(rd.headers().unwrap().len(), header.len());
    assert_eq!(rd.records().count() as u64, n);
    let (n, text) =
        export_string(&fx.dir, &Filter { tenant: Some("nobody".into()), ..Default::default() }, Format::Csv);
    assert_eq!((n, text.lines().count()), (0, 1), "an empty export still has its header");
}

#[test]
fn export_as_otlp_is_batches_of_log_records() {
    const N: usize = 600;
    let tmp = tempfile::tempdir().unwrap();
    let keys = keys(tmp.path(), "audit");
    let dir = tmp.path().join("trail");
    let trail =
        Trail::open(&AuditConfig { segment_bytes: 32 << 10, batch_records: 256, ..config(&dir, &keys) }).unwrap();
    append_all(&trail, 0..N);
    trail.close(CLOSE);

    let (_, jsonl) = export_string(&dir, &Filter::default(), Format::Jsonl);
    let trail_lines: Vec<&str> = jsonl.lines().collect();
    let (n, text) = export_string(&dir, &Filter::default(), Format::Otlp);
    assert_eq!(n, N as u64);
    let mut records = Vec::new();
    let mut sizes = Vec::new();
    for l in text.lines() {
        let v: Value = serde_json::from_str(l).expect("each OTLP line is JSON");
        let rl = &v["resourceLogs"][0];
        assert_eq!(rl["resource"]["attributes"][0]["key"], "service.name");
        assert_eq!(rl["resource"]["attributes"][0]["value"]["stringValue"], "warden");
        assert_eq!(rl["scopeLogs"][0]["scope"]["name"], "warden.audit");
        let logs = rl["scopeLogs"][0]["logRecords"].as_array().expect("resourceLogs[0].scopeLogs[0].logRecords");
        sizes.push(logs.len());
        records.extend(logs.iter().cloned());
    }
    assert_eq!(sizes, [256, 256, 88]);
    assert_eq!(records.len(), N);
    for (i, (rec, line)) in records.iter().zip(&trail_lines).enumerate() {
        assert_eq!(rec["body"]["stringValue"], *line, "the record is the trail's line");
        let v = parse(line);
        let attr = |k: &str| {
            rec["attributes"].as_array().unwrap().iter().find(|a| a["key"] == k).unwrap_or_else(|| panic!("{k}"))
                ["value"]["stringValue"]
                .as_str()
                .unwrap()
                .to_string()
        };
        assert_eq!(attr("warden.request_id"), format!("req_{i}"));
        assert_eq!(attr("warden.audit.seq"), v["seq"].to_string());
        assert_eq!(attr("warden.audit.hash"), chain::hash(line.as_bytes()));
        assert_eq!(attr("warden.decision"), ["block", "allow", "redact", "block"][i % 4]);
        assert_eq!(attr("warden.outcome"), v["outcome"].as_str().unwrap());
        let nanos: u128 = rec["timeUnixNano"].as_str().unwrap().parse().unwrap();
        let t = humantime::parse_rfc3339_weak(v["time"].as_str().unwrap()).unwrap();
        assert_eq!(nanos, t.duration_since(UNIX_EPOCH).unwrap().as_nanos());
    }
    // Filtered.
    let (n, text) = export_string(&dir, &Filter { action: Some("redact".into()), ..Default::default() }, Format::Otlp);
    assert_eq!(n, count(0..N, &[2]));
    let total: usize = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["resourceLogs"][0]["scopeLogs"][0]["logRecords"]
                .as_array()
                .unwrap()
                .len()
        })
        .sum();
    assert_eq!(total as u64, n);
}

#[test]
fn export_times_parse_as_dates_instants_and_durations_ago() {
    let day = export::parse_time("2026-12-01").unwrap();
    assert_eq!(day, export::parse_time("2026-12-01T00:00:00Z").unwrap());
    assert_eq!(export::parse_time("2026-12-01T10:00:00Z").unwrap(), day + Duration::from_secs(10 * 3600));
    let ago = export::parse_time("2h").unwrap();
    let want = SystemTime::now() - Duration::from_secs(7200);
    let diff = want.duration_since(ago).unwrap_or_else(|e| e.duration());
    assert!(diff < Duration::from_secs(5), "{diff:?}");
    assert!(export::parse_time("yesterday-ish").is_err());
}

// ---------------------------------------------------------------------------------------------
// 8. A larger export
// ---------------------------------------------------------------------------------------------

#[test]
fn a_20_mb_trail_exports_every_record() {
    const N: usize = 9_000;
    let tmp = tempfile::tempdir().unwrap();
    let keys = keys(tmp.path(), "audit");
    let dir = tmp.path().join("trail");
    let cfg = AuditConfig {
        dir: Some(dir.clone()),
        fsync: Fsync::Never,
        segment_bytes: 4 << 20,
        checkpoint_records: 1000,
        checkpoint_secs: 3600,
        key_file: Some(keys.private.clone()),
        ..Default::default()
    };
    let pad = "x".repeat(2200);
    let started = Instant::now();
    let trail = Trail::open(&cfg).unwrap();
    for i in 0..N {
        let mut v = parse(&body(i));
        v["excerpt"] = Value::String(pad.clone());
        assert!(matches!(trail.append(v.to_string()), Appended::Queued(_)));
    }
    trail.close(Duration::from_secs(60));
    let written = started.elapsed();
    let size: u64 = chain::segments(&dir).unwrap().iter().map(|(_, p)| std::fs::metadata(p).unwrap().len()).sum();
    assert!(size >= 20 << 20, "the trail is {size} bytes");
    assert!(chain::segments(&dir).unwrap().len() >= 5);

    struct Count(u64, u64);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.iter().filter(|c| **c == b'\n').count() as u64;
            self.1 += b.len() as u64;
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let started = Instant::now();
    let mut out = Count(0, 0);
    let n = export::export(&dir, &Filter::default(), Format::Jsonl, &mut out, false).unwrap();
    assert_eq!((n, out.0), (N as u64, N as u64));
    assert!(out.1 >= 20 << 20);
    let mut out = Count(0, 0);
    let n =
        export::export(&dir, &Filter { tenant: Some("t2".into()), ..Default::default() }, Format::Csv, &mut out, false)
            .unwrap();
    assert_eq!((n, out.0), (count(0..N, &[1]), count(0..N, &[1]) + 1));
    eprintln!("20 MB trail: written in {written:?}, exported twice in {:?}", started.elapsed());
}

// ---------------------------------------------------------------------------------------------
// Crash windows and edges found while writing these tests
// ---------------------------------------------------------------------------------------------

#[test]
fn a_cut_final_checkpoint_line_is_reported_and_does_not_hide_shed_records() {
    let fx = fixture(120);
    let segs = segments(&fx.dir);
    let (path, lines) = segs.last().unwrap();
    let last = lines.last().unwrap();
    assert_eq!(kind(last), "checkpoint");
    write_lines(path, &lines[..lines.len() - 1]);

    let r = fx.report();
    let p = r.problems.first().expect("the cut of the last checkpoint line went unnoticed");
    assert_eq!(assert_cut_tail(&fx, p, seq(last) - 1), seq(last) - 1);

    // Where it matters: the one checkpoint of a trail that shed records is its last line.
    let tmp = tempfile::tempdir().unwrap();
    let keys = keys(tmp.path(), "audit");
    let dir = tmp.path().join("trail");
    let cfg = AuditConfig {
        dir: Some(dir.clone()),
        queue: 1,
        backpressure: Backpressure::Shed,
        checkpoint_records: 1_000_000,
        checkpoint_secs: 3600,
        key_file: Some(keys.private.clone()),
        ..Default::default()
    };
    let trail = Trail::open(&cfg).unwrap();
    for i in 0..10_000 {
        trail.append(body(i));
    }
    trail.close(CLOSE);
    let stats = trail.stats();
    assert!(stats.shed > 0 && stats.checkpoints == 1, "{stats:?}");
    assert_eq!(verify::verify(&dir, Some(&keys.verifying)).unwrap().shed, stats.shed);
    let segs = segments(&dir);
    let (path, lines) = segs.last().unwrap();
    write_lines(path, &lines[..lines.len() - 1]);
    let r = verify::verify(&dir, Some(&keys.verifying)).unwrap();
    assert_eq!(r.shed, 0);
    assert!(!r.problems.is_empty(), "{} shed records vanished from the report unseen", stats.shed);
}

#[test]
fn a_torn_checkpoints_line_is_cut_back_at_start() {
    let fx = fixture(40);
    let side = fx.sidecar();
    let before = std::fs::read_to_string(&side).unwrap();
    // A crash while the sidecar line was being written (the chain's checkpoint line is synced first).
    let torn = "{\"time\":\"2026-12-01T00:00:00.000Z\",\"segm";
    std::fs::write(&side, format!("{before}{torn}")).unwrap();

    let trail = Trail::open(&fx.cfg).unwrap();
    append_all(&trail, 40..60);
    trail.close(CLOSE);

    let r = fx.report();
    assert_clean(&r);
    assert_eq!(r.signed, r.checkpoints);
    let after = std::fs::read_to_string(&side).unwrap();
    assert!(after.starts_with(&before) && !after.contains(torn), "the torn sidecar bytes are cut back");
    assert_eq!(after.lines().count() as u64, r.checkpoints, "every checkpoint is in the sidecar");
}

#[test]
fn appends_racing_close_are_written_or_counted_as_shed() {
    for round in 0..20 {
        let tmp = tempfile::tempdir().unwrap();
        let keys = keys(tmp.path(), "audit");
        let dir = tmp.path().join("trail");
        let cfg =
            AuditConfig { batch_records: 64, segment_bytes: 1 << 20, checkpoint_records: 1000, ..config(&dir, &keys) };
        let trail = std::sync::Arc::new(Trail::open(&cfg).unwrap());
        let t = std::sync::Arc::clone(&trail);
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let writer = std::thread::spawn(move || {
            let mut n = 0usize;
            loop {
                t.append(body(n));
                n += 1;
                if n == 200 {
                    started_tx.send(()).unwrap();
                }
                // Stop a while after close() made appends shed.
                if n >= 200 && t.stats().shed > 100 {
                    return n as u64;
                }
            }
        });
        started_rx.recv().unwrap();
        trail.close(CLOSE);
        let appended = writer.join().unwrap();
        let stats = trail.stats();
        let in_trail = export_count(&dir, &Filter::default());
        assert_eq!(in_trail, stats.records, "round {round}: {stats:?}");
        assert_eq!(
            stats.records + stats.shed,
            appended,
            "round {round}: records lost at close, neither written nor counted: {stats:?}"
        );
    }
}
