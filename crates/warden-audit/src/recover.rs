//! Recovery at start: where the chain resumes. A torn last line (a crash mid-write) or a last
//! line that is not a chain line is moved aside into `quarantine/`, and the segment is cut back
//! to its last good line; the writer then records a `gap` line naming what was moved.

use crate::chain::{self, GENESIS, QUARANTINE};
use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Where the chain resumes.
#[derive(Debug)]
pub struct Resume {
    /// The `seq` of the next line.
    pub next_seq: u64,
    /// The hash of the last good line (or [`GENESIS`]).
    pub last_hash: String,
    /// The segment to append to (its first `seq`, its path), if any is left.
    pub segment: Option<(u64, PathBuf)>,
    /// What was moved aside: the quarantine file and how many bytes.
    pub quarantined: Option<(PathBuf, u64)>,
}

/// Finds where the chain of `dir` resumes, moving a torn tail aside.
pub fn recover(dir: &Path) -> std::io::Result<Resume> {
    cut_torn_sidecar(dir)?;
    let mut segments = chain::segments(dir)?;
    let mut quarantined = None;
    while let Some((first, path)) = segments.pop() {
        let bytes = std::fs::read(&path)?;
        let (good_end, last) = last_good_line(&bytes);
        if good_end < bytes.len() {
            let moved = quarantine(dir, &path, &bytes[good_end..])?;
            let f = OpenOptions::new().write(true).open(&path)?;
            f.set_len(good_end as u64)?;
            f.sync_all()?;
            let total = quarantined.as_ref().map_or(0, |(_, n)| *n) + (bytes.len() - good_end) as u64;
            quarantined = Some((moved, total));
        }
        match last {
            Some(line) => {
                let head = chain::head(line).expect("last_good_line parsed it");
                return Ok(Resume {
                    next_seq: head.seq + 1,
                    last_hash: chain::hash(line.as_bytes()),
                    segment: Some((first, path)),
                    quarantined,
                });
            }
            // Nothing good in it: it goes, and the segment before it is the last.
            None => std::fs::remove_file(&path)?,
        }
    }
    Ok(Resume { next_seq: 1, last_hash: GENESIS.to_string(), segment: None, quarantined })
}

/// The end of the last good line (a whole line that is a chain line) and that line.
fn last_good_line(bytes: &[u8]) -> (usize, Option<&str>) {
    // A tail with no newline is torn.
    let Some(nl) = bytes.iter().rposition(|b| *b == b'\n') else { return (0, None) };
    let mut end = nl + 1;
    loop {
        let body_end = end - 1;
        let start = bytes[..body_end].iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
        if let Ok(line) = std::str::from_utf8(&bytes[start..body_end]) {
            if chain::head(line).is_some() {
                return (end, Some(line));
            }
        }
        if start == 0 {
            return (0, None);
        }
        end = start;
    }
}

/// A torn last line of the sidecar (a crash while it was written; the chain's checkpoint line is
/// synced before it, so nothing is lost) is moved aside too: else the next checkpoint would be
/// glued to it, and the trail would never verify again.
fn cut_torn_sidecar(dir: &Path) -> std::io::Result<()> {
    let path = dir.join(chain::CHECKPOINTS);
    let Ok(mut f) = OpenOptions::new().read(true).write(true).open(&path) else { return Ok(()) };
    let len = f.metadata()?.len();
    // Back from the end, a chunk at a time, to the last newline (the file can be large).
    let mut end = len;
    let keep = loop {
        if end == 0 {
            break 0;
        }
        let start = end.saturating_sub(64 << 10);
        let mut chunk = vec![0; (end - start) as usize];
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut chunk)?;
        if let Some(nl) = chunk.iter().rposition(|b| *b == b'\n') {
            break start + nl as u64 + 1;
        }
        end = start;
    };
    if keep < len {
        let mut torn = Vec::new();
        f.seek(SeekFrom::Start(keep))?;
        f.read_to_end(&mut torn)?;
        quarantine(dir, &path, &torn)?;
        f.set_len(keep)?;
        f.sync_all()?;
    }
    Ok(())
}

fn quarantine(dir: &Path, segment: &Path, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let q = dir.join(QUARANTINE);
    std::fs::create_dir_all(&q)?;
    let name = segment.file_name().and_then(|n| n.to_str()).unwrap_or("segment");
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let path = q.join(format!("{name}.{stamp}.torn"));
    let mut f = OpenOptions::new().create_new(true).write(true).open(&path)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    tracing::warn!(
        "the audit trail's {name} ended in a torn line (a crash mid-write?): {} bytes moved to {}",
        bytes.len(),
        path.display()
    );
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{line, segment_name};

    fn two_lines() -> (String, String) {
        let a = line(1, GENESIS, "t", "segment", "{}");
        let b = line(2, &chain::hash(a.as_bytes()), "t", "request", r#"{"x":1}"#);
        (a, b)
    }

    #[test]
    fn a_torn_tail_is_moved_aside_and_the_chain_resumes_after_the_last_good_line() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = two_lines();
        let seg = d.path().join(segment_name(1));
        std::fs::write(&seg, format!("{a}\n{b}\n{{\"seq\":3,\"pre")).unwrap();
        let r = recover(d.path()).unwrap();
        assert_eq!(r.next_seq, 3);
        assert_eq!(r.last_hash, chain::hash(b.as_bytes()));
        let (moved, n) = r.quarantined.unwrap();
        assert_eq!(std::fs::read_to_string(moved).unwrap(), "{\"seq\":3,\"pre");
        assert_eq!(n, 13);
        assert_eq!(std::fs::read_to_string(&seg).unwrap(), format!("{a}\n{b}\n"));
    }

    #[test]
    fn a_clean_trail_resumes_as_it_is_and_an_empty_one_at_genesis() {
        let d = tempfile::tempdir().unwrap();
        let r = recover(d.path()).unwrap();
        assert_eq!((r.next_seq, r.last_hash.as_str()), (1, GENESIS));
        let (a, b) = two_lines();
        std::fs::write(d.path().join(segment_name(1)), format!("{a}\n{b}\n")).unwrap();
        let r = recover(d.path()).unwrap();
        assert_eq!(r.next_seq, 3);
        assert!(r.quarantined.is_none());
    }

    #[test]
    fn a_last_segment_with_nothing_good_goes_and_the_one_before_resumes() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = two_lines();
        std::fs::write(d.path().join(segment_name(1)), format!("{a}\n{b}\n")).unwrap();
        std::fs::write(d.path().join(segment_name(3)), "garbage without a newline").unwrap();
        let r = recover(d.path()).unwrap();
        assert_eq!(r.next_seq, 3);
        assert!(!d.path().join(segment_name(3)).exists());
        assert!(r.quarantined.is_some());
    }
}
