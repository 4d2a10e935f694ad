//! Raw replay: answer with exactly the bytes a test gives, from a header
//! (`x-mock-raw-b64`) or from a fixture file (`x-mock-replay`), so an attack
//! test can plant a trigger in any field of any shape, real or broken.
//!
//! Bytes that look like server-sent events (after an optional UTF-8 BOM they
//! start with `data:`, `event:`, `id:`, `retry:` or a `:` comment) are served
//! as `text/event-stream`, one piece per event (cut after each blank line),
//! so `x-mock-delay-ms` and `x-mock-byte-split` apply; anything else is
//! served whole as `application/json`.

use std::path::Path;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use bytes::Bytes;
use http::HeaderMap;

use crate::body::{Event, Events};
use crate::headers;

/// Standard alphabet, padding optional.
const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Where the replayed bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// `x-mock-raw-b64`: the decoded header value.
    Raw(Bytes),
    /// `x-mock-replay`: a file name in the fixtures directory.
    Fixture(String),
}

/// How the bytes are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `text/event-stream`, one piece per event.
    Sse,
    /// `application/json`, whole.
    Json,
}

/// The bytes to answer with, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Replay {
    pub bytes: Bytes,
    pub kind: Kind,
}

/// The replay a request asks for, if any.
pub(crate) fn requested(h: &HeaderMap) -> Result<Option<Source>, String> {
    let raw = h.get(headers::RAW_B64);
    let fixture = h.get(headers::REPLAY);
    match (raw, fixture) {
        (None, None) => Ok(None),
        (Some(_), Some(_)) => {
            Err(format!("{} and {} cannot be used together; pick one", headers::RAW_B64, headers::REPLAY))
        }
        (Some(v), None) => B64
            .decode(v.as_bytes().trim_ascii())
            .map(|b| Some(Source::Raw(Bytes::from(b))))
            .map_err(|e| format!("{}: not valid base64 (standard alphabet): {e}", headers::RAW_B64)),
        (None, Some(v)) => {
            let name =
                v.to_str().map_err(|_| format!("{}: the file name must be ASCII", headers::REPLAY))?.trim().to_owned();
            check_name(&name)?;
            Ok(Some(Source::Fixture(name)))
        }
    }
}

/// A fixture name is a plain file name: not empty, no `/`, `\`, `..` or NUL.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.contains(['/', '\\', '\0']) || name.contains("..") {
        return Err(format!(
            "{}: {name:?} is not a plain file name in the fixtures directory (no `/`, `\\` or `..`)",
            headers::REPLAY
        ));
    }
    Ok(())
}

/// Reads the bytes of `source`; fixtures are looked up in `fixtures`.
pub(crate) fn load(source: Source, fixtures: Option<&Path>) -> Result<Replay, String> {
    match source {
        Source::Raw(bytes) => {
            let kind = sniff(&bytes);
            Ok(Replay { bytes, kind })
        }
        Source::Fixture(name) => {
            let Some(dir) = fixtures else {
                return Err(format!(
                    "{}: no fixtures directory; start mock-llm with --fixtures DIR or set MOCK_FIXTURES",
                    headers::REPLAY
                ));
            };
            let path = dir.join(&name);
            let bytes = std::fs::read(&path)
                .map(Bytes::from)
                .map_err(|e| format!("{}: cannot read fixture {}: {e}", headers::REPLAY, path.display()))?;
            let kind = match path.extension().and_then(|e| e.to_str()) {
                Some("sse") => Kind::Sse,
                Some("json") => Kind::Json,
                _ => sniff(&bytes),
            };
            Ok(Replay { bytes, kind })
        }
    }
}

/// Whether `bytes` look like an event stream.
pub(crate) fn sniff(bytes: &[u8]) -> Kind {
    let b = bytes.strip_prefix(BOM).unwrap_or(bytes);
    let sse = [&b"data:"[..], b"event:", b"id:", b"retry:", b":"].iter().any(|p| b.starts_with(p));
    if sse {
        Kind::Sse
    } else {
        Kind::Json
    }
}

/// Length of the line terminator (`\r\n`, `\n` or `\r`) at `i`, or 0.
fn eol_len(b: &[u8], i: usize) -> usize {
    match b.get(i) {
        Some(b'\r') if b.get(i + 1) == Some(&b'\n') => 2,
        Some(b'\r' | b'\n') => 1,
        _ => 0,
    }
}

/// Cuts an event stream after each blank line (any further blank lines stay
/// with the event before them). The pieces concatenate to `data` exactly.
pub(crate) fn split_events(data: &Bytes) -> Vec<Bytes> {
    let b = &data[..];
    let mut out = Vec::new();
    let (mut start, mut i, mut line_start) = (0, 0, true);
    while i < b.len() {
        let n = eol_len(b, i);
        if n == 0 {
            line_start = false;
            i += 1;
        } else if line_start && i > start {
            let mut end = i + n;
            while eol_len(b, end) > 0 {
                end += eol_len(b, end);
            }
            out.push(data.slice(start..end));
            (start, i) = (end, end);
        } else {
            line_start = true;
            i += n;
        }
    }
    if start < b.len() {
        out.push(data.slice(start..));
    }
    out
}

/// The events of a replayed stream: each a delta (paused before, except the
/// first; counted for `reset-mid-stream`).
pub(crate) fn events(data: &Bytes) -> Vec<Event> {
    let mut ev = Events::default();
    for piece in split_events(data) {
        ev.delta_bytes(piece);
    }
    ev.into_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn pieces(s: &'static str) -> Vec<&'static str> {
        let data = Bytes::from_static(s.as_bytes());
        let out: Vec<Bytes> = split_events(&data);
        let joined: Vec<u8> = out.iter().flat_map(|b| b.iter().copied()).collect();
        assert_eq!(joined, s.as_bytes(), "pieces must concatenate to the input");
        let mut at = 0;
        out.iter()
            .map(|b| {
                let p = &s[at..at + b.len()];
                at += b.len();
                p
            })
            .collect()
    }

    #[test]
    fn split_at_blank_lines() {
        assert_eq!(pieces("data: a\n\ndata: b\n\n"), vec!["data: a\n\n", "data: b\n\n"]);
        assert_eq!(
            pieces("event: x\r\ndata: 1\r\n\r\ndata: 2\r\n\r\n"),
            vec!["event: x\r\ndata: 1\r\n\r\n", "data: 2\r\n\r\n"]
        );
        assert_eq!(pieces("data: a\r\rdata: b"), vec!["data: a\r\r", "data: b"]);
        assert_eq!(pieces("data: a\n\n\n\ndata: b\n"), vec!["data: a\n\n\n\n", "data: b\n"]);
        assert_eq!(pieces("\ndata: a\n\n"), vec!["\ndata: a\n\n"]);
        assert_eq!(pieces(""), Vec::<&str>::new());
    }

    #[test]
    fn sniffing() {
        assert_eq!(sniff(b"data: {}"), Kind::Sse);
        assert_eq!(sniff(b"\xEF\xBB\xBFevent: x"), Kind::Sse);
        assert_eq!(sniff(b": comment\n\n"), Kind::Sse);
        assert_eq!(sniff(b"{\"data:\": 1}"), Kind::Json);
        assert_eq!(sniff(b" data: x"), Kind::Json);
    }

    #[test]
    fn requests_and_names() {
        let mut h = HeaderMap::new();
        assert_eq!(requested(&h), Ok(None));
        h.insert("x-mock-raw-b64", HeaderValue::from_static("ZGF0YTogeAoK"));
        assert_eq!(requested(&h), Ok(Some(Source::Raw(Bytes::from_static(b"data: x\n\n")))));
        h.insert("x-mock-replay", HeaderValue::from_static("a.sse"));
        assert!(requested(&h).is_err(), "both at once");
        for bad in ["../etc/passwd", "a/b.sse", "..", "a\\b", ""] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name("ok-1.sse").is_ok());
        assert!(load(Source::Fixture("x.json".into()), None).is_err());
    }
}
