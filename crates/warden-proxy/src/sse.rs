//! An incremental Server-Sent Events parser.
//!
//! Upstream bytes arrive in chunks that may end anywhere: mid-line, between `\r` and `\n`, or
//! inside a UTF-8 character. [`SseParser::feed`] buffers the incomplete tail and returns only
//! whole events, each with its raw bytes (so an event the guard does not change is forwarded
//! byte for byte) and its parsed `event` and `data` fields.

use bytes::{Bytes, BytesMut};

/// One whole SSE event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The event exactly as received, blank line included.
    pub raw: Bytes,
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n` (empty if none).
    pub data: String,
    /// The event had lines that are neither comments nor `data`, `event`, `id` or `retry`
    /// fields (a bare JSON line, say): an SSE client ignores them, but a client that reads the
    /// body otherwise might not, so the guard never forwards them.
    pub foreign: bool,
}

/// Splits a byte stream into SSE events, in time linear in the bytes fed (a partial line is
/// never searched twice) and memory bounded by the largest event allowed.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: BytesMut,
    /// Where the current event starts in `buf` is always 0; `scan` is how far lines were read.
    scan: usize,
    /// How far past `scan` the current partial line is known to hold no line break.
    searched: usize,
    /// The largest event (all its lines) that may be buffered; `None`: no bound.
    max_event: Option<usize>,
    /// The current event grew past `max_event`: the stream cannot go on.
    overflow: bool,
    event: Option<String>,
    data: Option<String>,
    foreign: bool,
    /// Whether the start of the stream (where a byte order mark may stand) is behind us.
    started: bool,
}

impl SseParser {
    /// A parser with nothing buffered.
    pub fn new() -> Self {
        Self::default()
    }

    /// A parser that refuses to buffer an event (all its lines) larger than `max` bytes: past
    /// it, [`SseParser::overflowed`] is true and nothing more is parsed.
    pub fn with_max_event(max: usize) -> Self {
        Self { max_event: Some(max), ..Self::default() }
    }

    /// Whether an event grew past the bound given to [`SseParser::with_max_event`].
    pub fn overflowed(&self) -> bool {
        self.overflow
    }

    /// Feeds a chunk; returns the events it completes.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        if self.overflow {
            return Vec::new();
        }
        self.buf.extend_from_slice(chunk);
        if !self.started {
            // A leading BOM is not part of the first field name (the SSE spec strips it).
            const BOM: &[u8] = b"\xEF\xBB\xBF";
            if self.buf.len() < BOM.len() && BOM.starts_with(&self.buf) {
                return Vec::new();
            }
            if self.buf.starts_with(BOM) {
                let _ = self.buf.split_to(BOM.len());
            }
            self.started = true;
        }
        let mut out = Vec::new();
        loop {
            let from = self.searched.max(self.scan);
            let Some(at) = self.buf[from..].iter().position(|&b| b == b'\n' || b == b'\r') else {
                self.searched = self.buf.len();
                break;
            };
            let rest = &self.buf[self.scan..];
            let nl = from - self.scan + at;
            // A `\r` at the very end may be the first half of `\r\n`: wait for the next byte.
            let term_len = if rest[nl] == b'\r' {
                match rest.get(nl + 1) {
                    None => {
                        self.searched = self.scan + nl;
                        break;
                    }
                    Some(b'\n') => 2,
                    Some(_) => 1,
                }
            } else {
                1
            };
            let line_start = self.scan;
            let line_end = self.scan + nl;
            self.scan = line_end + term_len;
            self.searched = self.scan;
            if line_end == line_start {
                // Blank line: the event is complete.
                let raw = self.buf.split_to(self.scan).freeze();
                self.scan = 0;
                self.searched = 0;
                let data = self.data.take();
                let event = self.event.take();
                let foreign = std::mem::take(&mut self.foreign);
                if data.is_some() || event.is_some() || foreign {
                    out.push(SseEvent { raw, event, data: data.unwrap_or_default(), foreign });
                } else if !raw.iter().all(|b| *b == b'\n' || *b == b'\r') {
                    // Comments only: forward as they are, with no data.
                    out.push(SseEvent { raw, event: None, data: String::new(), foreign: false });
                }
                continue;
            }
            let line = String::from_utf8_lossy(&self.buf[line_start..line_end]).into_owned();
            self.field(&line);
        }
        if self.max_event.is_some_and(|max| self.buf.len() > max) {
            self.overflow = true;
            self.buf = BytesMut::new();
            self.scan = 0;
            self.searched = 0;
            // Nothing of the event cut short survives: `finish` must not return its fields.
            self.data = None;
            self.event = None;
            self.foreign = false;
        }
        out
    }

    fn field(&mut self, line: &str) {
        if line.starts_with(':') {
            return;
        }
        let (name, value) = match line.find(':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(' ').unwrap_or(v))
            }
            None => (line, ""),
        };
        match name {
            "event" => self.event = Some(value.to_string()),
            "data" => match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            "id" | "retry" => {}
            _ => self.foreign = true,
        }
    }

    /// The stream ended: returns a last event left without its blank line, if it has data.
    pub fn finish(&mut self) -> Option<SseEvent> {
        if self.scan < self.buf.len() {
            let tail = String::from_utf8_lossy(&self.buf[self.scan..]).into_owned();
            let tail = tail.trim_end_matches(['\r', '\n']).to_string();
            if !tail.is_empty() {
                self.field(&tail);
            }
        }
        let data = self.data.take();
        let event = self.event.take();
        let foreign = std::mem::take(&mut self.foreign);
        let raw = self.buf.split().freeze().to_vec();
        self.scan = 0;
        self.searched = 0;
        if data.is_none() && event.is_none() && !foreign {
            return None;
        }
        // Forwarded as it came: a client drops an event left without its blank line, and so it
        // should through Warden too.
        Some(SseEvent { raw: raw.into(), event, data: data.unwrap_or_default(), foreign })
    }
}

/// Writes an event with an optional `event:` line and a one-line JSON `data:`.
pub fn encode(event: Option<&str>, data: &str) -> Bytes {
    let mut s = String::with_capacity(data.len() + 32);
    if let Some(e) = event {
        s.push_str("event: ");
        s.push_str(e);
        s.push('\n');
    }
    for line in data.split('\n') {
        s.push_str("data: ");
        s.push_str(line);
        s.push('\n');
    }
    s.push('\n');
    Bytes::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const STREAM: &str = "event: message_start\r\ndata: {\"a\":\"é😀\"}\r\n\r\n: keep-alive\n\ndata: line1\ndata: line2\n\ndata:[DONE]\r\rdata: {\"text\":\"日本語\"}\n\n";

    fn collect(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = SseParser::new();
        let mut v = Vec::new();
        for c in chunks {
            v.extend(p.feed(c));
        }
        v.extend(p.finish());
        v
    }

    #[test]
    fn parses_fields_and_keeps_raw_bytes() {
        let ev = collect(&[STREAM.as_bytes()]);
        assert_eq!(ev.len(), 5);
        assert_eq!(ev[0].event.as_deref(), Some("message_start"));
        assert_eq!(ev[0].data, "{\"a\":\"é😀\"}");
        assert_eq!(&ev[0].raw[..], "event: message_start\r\ndata: {\"a\":\"é😀\"}\r\n\r\n".as_bytes());
        assert_eq!(ev[1].data, "");
        assert_eq!(ev[2].data, "line1\nline2");
        assert_eq!(ev[3].data, "[DONE]");
        assert_eq!(ev[4].data, "{\"text\":\"日本語\"}");
        let joined: Vec<u8> = ev.iter().flat_map(|e| e.raw.to_vec()).collect();
        assert_eq!(joined, STREAM.as_bytes());
    }

    #[test]
    fn a_leading_bom_is_stripped_even_split() {
        let ev = collect(&[b"\xEF", b"\xBB\xBFdata: {\"x\":1}\n\n"]);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].data, "{\"x\":1}");
    }

    #[test]
    fn unterminated_last_event_is_delivered() {
        let ev = collect(&[b"data: {\"x\":1}\n\ndata: tail"]);
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[1].data, "tail");
    }

    #[test]
    fn an_event_past_the_bound_overflows_and_stops_the_parser() {
        let mut p = SseParser::with_max_event(64);
        assert_eq!(p.feed(b"data: {\"x\":1}\n\n").len(), 1);
        for _ in 0..10 {
            p.feed(&[b'a'; 16]);
        }
        assert!(p.overflowed());
        assert!(p.feed(b"\n\ndata: {}\n\n").is_empty(), "nothing is parsed after an overflow");
    }

    #[test]
    fn a_long_partial_line_is_searched_once() {
        // Fed a byte at a time, a line of n bytes costs O(n), not O(n^2): checked by the
        // `searched` mark, which must track the end of the buffer.
        let mut p = SseParser::new();
        p.feed(b"data: ");
        for _ in 0..1000 {
            p.feed(b"x");
            assert_eq!(p.searched, p.buf.len());
        }
        let ev = p.feed(b"\r\n\r\n");
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].data.len(), 1000);
    }

    proptest! {
        /// Any chunking, even inside `\r\n` or a UTF-8 character, yields the same events.
        #[test]
        fn chunking_does_not_matter(cuts in proptest::collection::vec(0usize..STREAM.len(), 0..12)) {
            let bytes = STREAM.as_bytes();
            let mut points = cuts.clone();
            points.sort();
            points.dedup();
            let mut chunks = Vec::new();
            let mut prev = 0;
            for p in points.into_iter().chain(std::iter::once(bytes.len())) {
                chunks.push(&bytes[prev..p]);
                prev = p;
            }
            prop_assert_eq!(collect(&chunks), collect(&[bytes]));
        }
    }
}
