//! The stream guard: inspects a streamed completion as it arrives and never lets through what a
//! rule blocks.
//!
//! Upstream bytes go through the incremental [`SseParser`]. Each event's text pieces come from the
//! API's [`Shape`]: deltas of a text (a choice's content, a tool call's arguments, a reasoning
//! field, the logprob tokens) are appended to that text's [`TextJudge`], which keeps the
//! detectors' streaming state and says up to where the text can no longer be part of a match.
//! Tool-call arguments are JSON text: they are judged by their decoded strings ([`JsonText`]), so
//! an escape split across deltas is decoded before it is judged. Then every other string of the
//! event, and every object key not seen before, is judged as a whole text (the sweep): an unknown
//! field or event type cannot carry text past the guard.
//!
//! Events are held in arrival order and released as soon as all the text they carry is before the
//! safe point of its text; for phrases, that is once they are older than the longest phrase. So a
//! trigger split over any number of chunks is caught before any of its characters is released.
//!
//! On a block the stream is cut: held events are dropped, and the client gets the provider's own
//! end of stream ([`Shape::cut_stream`]). On a redact, held events are rewritten with
//! `[REDACTED]` in place of what matched before release (in JSON text, over whole escapes, so the
//! arguments stay valid JSON; a rewritten logprob token loses its alternatives).

use crate::config::UnknownEvents;
use crate::shape::{self, sweep, EventPieces, Piece, PieceKind, ResponseInfo, Shape, StreamMemo, TextKey};
use crate::sse::{encode, SseEvent, SseParser};
use bytes::Bytes;
use serde_json::Value;
use std::collections::{HashMap, HashSet, VecDeque};
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;
use warden_core::decision::REDACTED;
use warden_core::jsontext::{JsonText, RawSpan};
use warden_core::{Action, Decision, Phase, Provider, Role, RuleHit};
use warden_policy::{PolicySet, Target, TextJudge};

/// The target of a stream, owned (the guard outlives the request's borrowed parts).
#[derive(Debug, Clone)]
pub struct StreamTarget {
    /// The provider.
    pub provider: Provider,
    /// The request path.
    pub route: String,
    /// The model.
    pub model: String,
    /// The tenant.
    pub tenant: String,
    /// Request headers (name, value), for policies that match on them.
    pub headers: Vec<(String, String)>,
}

/// Which text a piece belongs to: a streamed text of the shape's, or a whole text (a swept
/// field, a `*.done` copy), judged at once.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Slot {
    Stream(TextKey),
    Whole(usize),
}

struct Text {
    /// The streaming judge; `None` for a whole text, judged at once (its raw text is `plain`).
    judge: Option<TextJudge>,
    plain: String,
    /// JSON text: the decoder, and the raw text (the judge holds the decoded text).
    json: Option<(JsonText, String)>,
    /// What to rewrite, in raw bytes of the text.
    redactions: Vec<RawSpan>,
    /// Judged to the end: nothing can change any more.
    finished: bool,
    /// The choice the text belongs to ([`NO_CHOICE`] if none).
    choice: usize,
}

/// What a text judged whole is, for the rules that judge it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fragment {
    /// A text of the answer: every rule.
    Document,
    /// A swept field: not the structural rules.
    Field,
    /// Event names and object keys: inline detectors only.
    Identifiers,
}

/// The choice of a text outside every choice (a top-level field, keys, an event name).
const NO_CHOICE: usize = usize::MAX;

impl Text {
    /// The raw text as kept: where it starts in the whole text, and the bytes from there.
    fn raw(&self) -> (usize, &str) {
        match (&self.json, &self.judge) {
            (Some((_, raw)), _) => (0, raw),
            (None, Some(j)) => (j.text_base(), j.text()),
            (None, None) => (0, &self.plain),
        }
    }

    /// Raw bytes before which nothing can change any more.
    fn safe_until(&self) -> usize {
        if self.finished {
            return usize::MAX;
        }
        let Some(judge) = &self.judge else { return usize::MAX };
        let safe = judge.safe_until();
        match &self.json {
            Some((j, _)) => j.raw_until(safe),
            None => safe,
        }
    }
}

struct HeldPiece {
    slot: Slot,
    pointer: String,
    range: Range<usize>,
}

struct Held {
    raw: Bytes,
    event: Option<String>,
    /// The event's data parsed, kept only once changed (a withheld choice blanked); otherwise
    /// parsed again from `raw` when a redaction needs it, so a held stream costs its bytes, not
    /// their parsed form.
    json: Option<Value>,
    /// The data is JSON (an event that could be rewritten).
    is_json: bool,
    pieces: Vec<HeldPiece>,
    /// The JSON was changed (a withheld choice blanked): re-encode it.
    modified: bool,
}

/// What to send after feeding the guard.
#[derive(Debug, Default)]
pub struct Output {
    /// Bytes for the client, in order.
    pub send: Vec<Bytes>,
    /// The stream is over (ended or cut): stop reading the upstream.
    pub done: bool,
}

/// Guards one streamed completion.
pub struct StreamGuard {
    shape: &'static dyn Shape,
    set: Arc<PolicySet>,
    target: StreamTarget,
    unknown_events: UnknownEvents,
    parser: SseParser,
    texts: HashMap<Slot, Text>,
    order: Vec<Slot>,
    wholes: usize,
    held: VecDeque<Held>,
    memo: StreamMemo,
    /// Swept values already judged clean, by pointer: an id repeated in every chunk is judged once.
    clean: HashMap<String, String>,
    /// Object keys already judged.
    keys_seen: HashSet<String>,
    decision: Decision,
    done: bool,
    cut_sent: bool,
    /// The whole stream is cut (not only some choices withheld).
    cut_all: bool,
    /// Choices withheld while the others go on (OpenAI `n > 1`).
    blocked: std::collections::BTreeSet<usize>,
    /// Bytes to send after this feed's releases (the end of a withheld choice).
    pending: Vec<Bytes>,
    withheld: usize,
    dropped_events: usize,
    unknown: usize,
    /// Distinct streamed texts one stream may open (`limits.max_stream_texts`).
    max_texts: usize,
    /// Bytes of streamed JSON text (tool-call arguments) one stream may carry in all: a JSON
    /// text is kept whole, raw and decoded, with its offset map.
    max_json: usize,
    json_bytes: usize,
    /// Why the stream was cut by a limit, if it was.
    limit: Option<String>,
    /// Hits not kept in the decision once it holds [`MAX_HITS`] (their actions still count).
    hits_dropped: usize,
    /// Bytes of streamed text so far, and when released text is next forgotten.
    streamed: usize,
    forget_at: usize,
    /// What the events said of the answer (id, model, tokens, finish reasons), for telemetry.
    info: ResponseInfo,
    /// Events held back at least once before release.
    held_events: usize,
}

/// The most rule hits one stream's decision keeps: a rule that flags every delta of an endless
/// stream must not grow the record without bound. Blocks are always kept.
const MAX_HITS: usize = 1024;

/// How much streamed text arrives between two passes that let released text be forgotten.
const FORGET_EVERY: usize = 64 << 10;

impl StreamGuard {
    /// A guard for a stream of `shape` to `target`, judged by `set`; events of a type the shape
    /// does not know are handled as `unknown_events` says.
    pub fn new(
        shape: &'static dyn Shape,
        set: Arc<PolicySet>,
        target: StreamTarget,
        unknown_events: UnknownEvents,
    ) -> Self {
        let decision = Decision::allow(Phase::Completion, set.digest());
        Self {
            shape,
            set,
            target,
            unknown_events,
            parser: SseParser::new(),
            texts: HashMap::new(),
            order: Vec::new(),
            wholes: 0,
            held: VecDeque::new(),
            memo: StreamMemo::default(),
            clean: HashMap::new(),
            keys_seen: HashSet::new(),
            decision,
            done: false,
            cut_sent: false,
            cut_all: false,
            blocked: Default::default(),
            pending: Vec::new(),
            withheld: 0,
            dropped_events: 0,
            unknown: 0,
            max_texts: usize::MAX,
            max_json: usize::MAX,
            json_bytes: 0,
            limit: None,
            hits_dropped: 0,
            streamed: 0,
            forget_at: FORGET_EVERY,
            info: ResponseInfo::default(),
            held_events: 0,
        }
    }

    /// The same guard, bounded: no SSE event larger than `max_event_bytes`, no more than
    /// `max_texts` streamed texts, no more than `max_json` bytes of streamed JSON text (tool-call
    /// arguments). Past any, the stream is cut with the provider's error event
    /// ([`StreamGuard::limit`] says why).
    pub fn bounded(mut self, max_event_bytes: usize, max_texts: usize, max_json: usize) -> Self {
        self.parser = SseParser::with_max_event(max_event_bytes);
        self.max_texts = max_texts;
        self.max_json = max_json;
        self
    }

    /// Why the stream was cut by a limit (an event too large, too many texts), if it was.
    pub fn limit(&self) -> Option<&str> {
        self.limit.as_deref()
    }

    /// Rule hits left out of the decision because it already held the most it keeps.
    pub fn hits_dropped(&self) -> usize {
        self.hits_dropped
    }

    /// Ends the stream because a limit was passed: held events are dropped and the client gets
    /// the provider's error event naming the limit.
    fn over_limit(&mut self, message: String) {
        if self.done {
            return;
        }
        self.withheld += self.held.drain(..).map(|h| h.raw.len()).sum::<usize>();
        self.done = true;
        self.pending.push(self.shape.stream_error(&message));
        self.limit = Some(message);
    }

    /// The completion decision so far.
    pub fn decision(&self) -> &Decision {
        &self.decision
    }

    /// Bytes withheld from the client by a block.
    pub fn withheld_bytes(&self) -> usize {
        self.withheld
    }

    /// The API shape of the stream.
    pub fn shape(&self) -> &'static dyn Shape {
        self.shape
    }

    /// What the events said of the answer: id, model, tokens, finish reasons.
    pub fn response_info(&self) -> &ResponseInfo {
        &self.info
    }

    /// Events held back at least once before they were released (or withheld).
    pub fn held_events(&self) -> usize {
        self.held_events
    }

    /// Events dropped because their data was not JSON (and so could not be inspected), or because
    /// their type was unknown and `coverage.unknown_events` is `drop`.
    pub fn dropped_events(&self) -> usize {
        self.dropped_events
    }

    /// Events of a type the shape does not know.
    pub fn unknown_events(&self) -> usize {
        self.unknown
    }

    /// Feeds upstream bytes.
    pub fn feed(&mut self, chunk: &[u8]) -> Output {
        let mut out = Output::default();
        if self.done {
            out.done = true;
            return out;
        }
        let started = Instant::now();
        for ev in self.parser.feed(chunk) {
            self.on_event(ev, &mut out);
            if self.done {
                break;
            }
        }
        if self.parser.overflowed() {
            self.over_limit(
                "the upstream sent a stream event larger than limits.max_event_bytes; the stream was cut".into(),
            );
        }
        self.decision.elapsed_us += started.elapsed().as_micros() as u64;
        out.send.append(&mut self.pending);
        self.send_cut(&mut out);
        out.done = self.done;
        out
    }

    /// The upstream ended cleanly: judge what is left and release or cut.
    pub fn finish(&mut self) -> Output {
        let mut out = Output::default();
        if !self.done {
            if let Some(ev) = self.parser.finish() {
                self.on_event(ev, &mut out);
            }
        }
        if !self.done {
            self.end(None, &mut out);
        }
        out.send.append(&mut self.pending);
        self.send_cut(&mut out);
        out.done = true;
        out
    }

    /// The upstream failed mid-stream: held events are dropped (they were not fully judged) and
    /// the client gets an error in the provider's stream shape.
    pub fn fail(&mut self, message: &str) -> Output {
        let mut out = Output::default();
        if !self.done {
            self.withheld += self.held.drain(..).map(|h| h.raw.len()).sum::<usize>();
            self.done = true;
            out.send.push(self.shape.stream_error(message));
        }
        out.done = true;
        out
    }

    fn on_event(&mut self, mut ev: SseEvent, out: &mut Output) {
        if ev.foreign {
            // Lines that are not SSE fields are never forwarded: the event is rebuilt from its
            // fields, or dropped if it has none.
            self.dropped_events += 1;
            if ev.data.is_empty() && ev.event.is_none() {
                return;
            }
            ev.raw = encode(ev.event.as_deref(), &ev.data);
        }
        if ev.data == "[DONE]" {
            // Its `event:` name reaches the client too: judged like any other.
            if let Some(name) = ev.event.as_deref() {
                self.judge_whole(name, true);
                if self.done {
                    return;
                }
            }
            let held =
                Held { raw: ev.raw, event: ev.event, json: None, is_json: false, pieces: Vec::new(), modified: false };
            self.end(Some(held), out);
            return;
        }
        if ev.data.is_empty() {
            // A comment or an event without data carries no text; its `event:` name is judged.
            if let Some(name) = ev.event.as_deref() {
                self.judge_whole(name, true);
                if self.done {
                    return;
                }
            }
            let held =
                Held { raw: ev.raw, event: ev.event, json: None, is_json: false, pieces: Vec::new(), modified: false };
            self.hold(held, out);
            return;
        }
        // Duplicate keys count as not JSON: which value a client keeps is anyone's guess.
        let json: Value = match crate::json::parse_str(&ev.data) {
            Ok(v) => v,
            Err(_) => {
                // Data that cannot be parsed cannot be inspected: it is not forwarded.
                self.dropped_events += 1;
                tracing::warn!("dropped an upstream SSE event whose data is not JSON");
                return;
            }
        };
        let mut json = json;
        let mut modified = false;
        for &k in &self.blocked {
            modified |= self.shape.blank_stream_choice(&mut json, k);
        }
        let EventPieces { pieces, known, last } = self.shape.stream_pieces(ev.event.as_deref(), &json);
        if !known {
            self.unknown += 1;
            match self.unknown_events {
                UnknownEvents::Judge => {}
                UnknownEvents::Drop => {
                    self.dropped_events += 1;
                    return;
                }
                UnknownEvents::Cut => {
                    let kind = json.get("type").and_then(Value::as_str).or(ev.event.as_deref()).unwrap_or("");
                    self.cut_unknown(kind);
                    return;
                }
            }
        }
        let mut held_pieces = Vec::with_capacity(pieces.len() + 2);
        let covered: Vec<String> = pieces.iter().map(|p| p.pointer.clone()).collect();
        for piece in pieces {
            held_pieces.push(self.push_piece(piece));
            if self.done {
                return;
            }
        }
        self.sweep(&ev, &json, &covered, &mut held_pieces);
        if self.done {
            return;
        }
        // A choice withheld by this very event loses its part of it too.
        if !self.blocked.is_empty() {
            for &k in &self.blocked {
                modified |= self.shape.blank_stream_choice(&mut json, k);
            }
            let (texts, blocked) = (&self.texts, &self.blocked);
            held_pieces.retain(|p| texts.get(&p.slot).is_none_or(|t| !blocked.contains(&t.choice)));
        }
        // Only what was judged, as it is rewritten, may reappear in the shape's cut.
        if self.touched(&held_pieces) {
            let mut rewritten = json.clone();
            self.rewrite(&mut rewritten, &held_pieces);
            self.shape.remember(&mut self.memo, &rewritten);
        } else {
            self.shape.remember(&mut self.memo, &json);
        }
        self.shape.response_info(ev.event.as_deref(), &json, &mut self.info);
        let json = modified.then_some(json);
        let held = Held { raw: ev.raw, event: ev.event, json, is_json: true, pieces: held_pieces, modified };
        if last {
            self.end(Some(held), out);
        } else {
            self.hold(held, out);
        }
    }

    /// Judges every string of the event that no known piece covered, as a whole text, and the
    /// event's name and object keys not seen before.
    fn sweep(&mut self, ev: &SseEvent, json: &Value, covered: &[String], held: &mut Vec<HeldPiece>) {
        if let Some(name) = ev.event.as_deref() {
            if !self.keys_seen.contains(name) {
                self.keys_seen.insert(name.to_string());
                self.judge_whole(name, true);
            }
        }
        // One walk: the keys not seen before, and the strings not covered and not already
        // judged clean at the same place (an id repeated in every chunk is judged once).
        let mut strings: Vec<(String, String)> = Vec::new();
        let mut new_keys: Vec<String> = Vec::new();
        {
            let (keys_seen, clean) = (&self.keys_seen, &self.clean);
            sweep::walk_each(
                json,
                &mut String::new(),
                &mut |_, k| {
                    if !keys_seen.contains(k) && !new_keys.iter().any(|n| n == k) {
                        new_keys.push(k.to_string());
                    }
                },
                &mut |p, s| {
                    if !covered.iter().any(|c| c == p) && clean.get(p).is_none_or(|v| v != s) {
                        strings.push((p.to_string(), s.to_string()));
                    }
                },
            );
        }
        if !new_keys.is_empty() {
            let joined = new_keys.join("\n");
            self.keys_seen.extend(new_keys);
            // A key cannot be rewritten in place: anything a rule would redact in one cuts.
            self.judge_whole(&joined, true);
            if self.done {
                return;
            }
        }
        for (pointer, text) in strings {
            let choice = self.shape.choice_of(json, &pointer);
            if self.shape.streams_at(&pointer) {
                // An unknown field inside a delta: the same field of later events continues it.
                let field: Vec<&str> =
                    pointer.split('/').map(|s| if s.parse::<usize>().is_ok() { "*" } else { s }).collect();
                let key = TextKey::new(choice.unwrap_or(0), format!("swept:{}", field.join("/")));
                held.push(self.push_piece(Piece::delta(key, pointer, &text)));
                if self.done {
                    return;
                }
                continue;
            }
            let piece = Piece {
                key: TextKey::new(choice.unwrap_or(NO_CHOICE), ""),
                pointer: pointer.clone(),
                text: text.clone(),
                kind: PieceKind::Whole,
            };
            let hp = self.push_piece(piece);
            if self.done {
                return;
            }
            // Not clean if a rule redacts it, nor if one blocks it and only its choice is withheld
            // (the same value at the same place in another choice's entry must be judged again).
            let clean =
                self.texts.get(&hp.slot).is_some_and(|t| t.redactions.is_empty() && !self.blocked.contains(&t.choice));
            if clean && text.len() <= 256 && self.clean.len() < 4096 {
                self.clean.insert(pointer, text);
            }
            held.push(hp);
        }
    }

    /// Judges a text that is not written back (an event name, object keys): a redaction there
    /// counts as a block.
    fn judge_whole(&mut self, text: &str, strict: bool) {
        let (slot, hits) = self.whole_text(text.to_string(), None, Fragment::Identifiers, NO_CHOICE);
        let redacts = hits.iter().any(|h| h.applied == Action::Redact);
        self.apply(&slot, hits);
        self.texts.remove(&slot);
        if strict && redacts && !self.done {
            if let Some(h) = self.decision.hits.iter().find(|h| h.applied == Action::Redact).cloned() {
                let mut h = h;
                h.applied = Action::Block;
                self.decision.push(h);
            }
            self.cut();
        }
    }

    fn cut_unknown(&mut self, kind: &str) {
        let hit = RuleHit {
            policy: "warden".into(),
            rule: "unknown-stream-event".into(),
            detector: "coverage",
            action: Action::Block,
            applied: Action::Block,
            mode: warden_core::Mode::Enforce,
            findings: Vec::new(),
            error: Some(format!(
                "the upstream sent a `{kind}` event, which Warden does not know (coverage.unknown_events: cut)"
            )),
        };
        self.decision.push(hit);
        self.cut();
    }

    /// Calls `f` with the stream's target, borrowed.
    fn with_target<R>(&self, f: impl FnOnce(&Target<'_>) -> R) -> R {
        let st = &self.target;
        let headers: Vec<(&str, &str)> = st.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        f(&Target { provider: st.provider, route: &st.route, model: &st.model, tenant: &st.tenant, headers: &headers })
    }

    /// The slot of a streamed text, created with its judge on first use.
    fn new_slot(&mut self, key: &TextKey, choice: usize) -> Slot {
        let slot = Slot::Stream(key.clone());
        if !self.texts.contains_key(&slot) {
            let index = self.order.len() + self.wholes;
            let judge = self.with_target(|t| self.set.judge_stream(t, index));
            self.order.push(slot.clone());
            self.texts.insert(
                slot.clone(),
                Text {
                    judge: Some(judge),
                    plain: String::new(),
                    json: None,
                    redactions: Vec::new(),
                    finished: false,
                    choice,
                },
            );
        }
        slot
    }

    /// Appends a piece to its text and applies what fires. Returns where the piece is held.
    fn push_piece(&mut self, p: Piece) -> HeldPiece {
        let json = matches!(p.kind, PieceKind::JsonDelta | PieceKind::WholeJson);
        if matches!(p.kind, PieceKind::Whole | PieceKind::WholeJson) {
            let range = 0..p.text.len();
            let decoded = json.then(|| JsonText::decode(&p.text));
            let kind = if p.kind == PieceKind::Whole { Fragment::Field } else { Fragment::Document };
            let (slot, hits) = self.whole_text(p.text, decoded, kind, p.key.choice);
            self.apply(&slot, hits);
            return HeldPiece { slot, pointer: p.pointer, range };
        }
        if self.order.len() >= self.max_texts && !self.texts.contains_key(&Slot::Stream(p.key.clone())) {
            self.over_limit(format!(
                "the upstream's stream opened more than {} texts (limits.max_stream_texts); the stream was cut",
                self.max_texts
            ));
            return HeldPiece { slot: Slot::Whole(0), pointer: p.pointer, range: 0..0 };
        }
        let slot = self.new_slot(&p.key, p.key.choice);
        self.streamed += p.text.len();
        if json {
            self.json_bytes += p.text.len();
            if self.json_bytes > self.max_json {
                self.over_limit(format!(
                    "the upstream's stream carried more than {} bytes of tool-call arguments \
                     (limits.max_stream_bytes / 8); the stream was cut",
                    self.max_json
                ));
                return HeldPiece { slot, pointer: p.pointer, range: 0..0 };
            }
        }
        let Some(t) = self.texts.get_mut(&slot) else { return HeldPiece { slot, pointer: p.pointer, range: 0..0 } };
        let Some(judge) = t.judge.as_mut() else { return HeldPiece { slot, pointer: p.pointer, range: 0..0 } };
        let (range, hits) = if json {
            let (dec, raw) = t.json.get_or_insert_with(|| (JsonText::new(), String::new()));
            let start = raw.len();
            raw.push_str(&p.text);
            let added = dec.push(&p.text);
            let decoded = dec.text()[added].to_string();
            (start..start + p.text.len(), judge.push(&decoded))
        } else {
            let start = judge.text_len();
            (start..start + p.text.len(), judge.push(&p.text))
        };
        self.apply(&slot, hits);
        HeldPiece { slot, pointer: p.pointer, range }
    }

    /// Judges a whole text at once (no streaming state: the policy set's whole-text path), as a
    /// new slot that is finished from the start. `decoded` is given for JSON text. A fragment (a
    /// swept field) is not judged by structural rules; identifiers (event names, object keys)
    /// only by inline ones (see [`warden_policy::Split::keys_at`]). Returns the slot and what
    /// fired; the caller applies it.
    fn whole_text(
        &mut self,
        raw: String,
        decoded: Option<JsonText>,
        kind: Fragment,
        choice: usize,
    ) -> (Slot, Vec<RuleHit>) {
        self.wholes += 1;
        let slot = Slot::Whole(self.wholes);
        let text = decoded.as_ref().map_or(raw.as_str(), |d| d.text());
        let split = warden_policy::Split {
            fragments_from: usize::from(kind == Fragment::Document),
            structure_from: 1,
            keys_at: (kind == Fragment::Identifiers).then_some(0),
        };
        let hits = self.with_target(|t| {
            self.set.evaluate_split(Phase::Completion, t, &[(Role::Assistant, text)], split, None).hits
        });
        let json = decoded.map(|d| (d, raw.clone()));
        let plain = if json.is_some() { String::new() } else { raw };
        self.texts
            .insert(slot.clone(), Text { judge: None, plain, json, redactions: Vec::new(), finished: true, choice });
        (slot, hits)
    }

    fn apply(&mut self, slot: &Slot, hits: Vec<RuleHit>) {
        for h in hits {
            if h.applied == Action::Redact {
                if let Some(t) = self.texts.get_mut(slot) {
                    let mut spans: Vec<RawSpan> = Vec::new();
                    for f in h.findings.iter().filter(|f| f.redacts()) {
                        match &t.json {
                            Some((j, _)) => spans.extend(j.raw_spans(f.span.clone())),
                            None => spans.push(RawSpan { range: f.span.clone(), quote: false }),
                        }
                    }
                    spans.append(&mut t.redactions);
                    t.redactions = merge_raw(spans);
                }
            }
            let block = h.applied == Action::Block;
            let choice = self.texts.get(slot).map_or(NO_CHOICE, |t| t.choice);
            let one_choice = block && choice != NO_CHOICE && !h.findings.is_empty();
            let end = one_choice.then(|| self.shape.end_stream_choice(&self.memo, choice, &h)).flatten();
            if !block && self.decision.hits.len() >= MAX_HITS {
                self.decision.action = self.decision.action.max(h.applied);
                self.hits_dropped += 1;
                continue;
            }
            self.decision.push(h);
            if !block || self.done {
                continue;
            }
            match end {
                Some(end) => self.withhold_choice(choice, end),
                None => self.cut(),
            }
        }
    }

    fn hold(&mut self, held: Held, out: &mut Output) {
        if self.done {
            return;
        }
        self.held.push_back(held);
        self.release(false, out);
        if !self.held.is_empty() {
            self.held_events += 1;
        }
    }

    /// Sends held events from the front while their text is safe (or all, at the end).
    fn release(&mut self, all: bool, out: &mut Output) {
        // The end of a choice withheld meanwhile goes first (and so before `[DONE]`).
        out.send.append(&mut self.pending);
        while let Some(front) = self.held.front() {
            let ready = all
                || front.pieces.iter().all(|p| self.texts.get(&p.slot).is_none_or(|t| p.range.end <= t.safe_until()));
            if !ready {
                break;
            }
            let Some(h) = self.held.pop_front() else { break };
            out.send.push(self.render(h));
        }
        self.forget_released();
    }

    /// Lets each streamed text forget what was released: everything before the first of its
    /// pieces still held (or all of it, if none is), with the redactions there. Runs once per
    /// [`FORGET_EVERY`] bytes of streamed text, and not at all while a whole-text rule holds the
    /// texts (nothing can be forgotten then).
    fn forget_released(&mut self) {
        if self.streamed < self.forget_at {
            return;
        }
        self.forget_at = self.streamed + FORGET_EVERY;
        let forgetful = |t: &Text| t.json.is_none() && t.judge.as_ref().is_some_and(|j| !j.keeps_all());
        if !self.texts.values().any(forgetful) {
            return;
        }
        let mut first: HashMap<&Slot, usize> = HashMap::new();
        for p in self.held.iter().flat_map(|h| h.pieces.iter()) {
            let e = first.entry(&p.slot).or_insert(p.range.start);
            *e = (*e).min(p.range.start);
        }
        for (slot, t) in self.texts.iter_mut() {
            if !forgetful(t) {
                continue;
            }
            let Some(j) = t.judge.as_mut() else { continue };
            let keep = first.get(slot).copied().unwrap_or(j.text_len());
            j.forget_text_before(keep);
            let base = j.text_base();
            t.redactions.retain(|r| r.range.end > base);
        }
    }

    /// The event's bytes: as received, or rewritten where a redaction touches its text.
    fn render(&mut self, mut h: Held) -> Bytes {
        let touched = self.touched(&h.pieces);
        let bytes = match (touched || h.modified) && h.is_json {
            true => {
                let mut json = h.json.take().unwrap_or_else(|| reparse(&h.raw));
                self.rewrite(&mut json, &h.pieces);
                encode(h.event.as_deref(), &json.to_string())
            }
            false => h.raw,
        };
        // A whole text is done with once its event is out.
        for p in &h.pieces {
            if let Slot::Whole(_) = p.slot {
                self.texts.remove(&p.slot);
            }
        }
        bytes
    }

    /// Whether a redaction touches one of `pieces`.
    fn touched(&self, pieces: &[HeldPiece]) -> bool {
        pieces.iter().any(|p| {
            self.texts.get(&p.slot).is_some_and(|t| {
                t.redactions.iter().any(|r| r.range.start < p.range.end && p.range.start < r.range.end)
            })
        })
    }

    /// Writes the redactions that touch `pieces` into the event's JSON.
    fn rewrite(&self, json: &mut Value, pieces: &[HeldPiece]) {
        for p in pieces {
            let Some(t) = self.texts.get(&p.slot) else { continue };
            let overlapping: Vec<&RawSpan> =
                t.redactions.iter().filter(|r| r.range.start < p.range.end && p.range.start < r.range.end).collect();
            if overlapping.is_empty() {
                continue;
            }
            // Every offset sliced is at or past the piece's start, which is kept.
            let (base, kept) = t.raw();
            let whole = |r: Range<usize>| &kept[r.start - base..r.end - base];
            let mut s = String::new();
            let mut at = p.range.start;
            for r in overlapping {
                if r.range.start >= at {
                    s.push_str(whole(at..r.range.start));
                    s.push_str(&if t.json.is_some() { r.replacement() } else { REDACTED.to_string() });
                }
                at = r.range.end.min(p.range.end).max(at);
            }
            s.push_str(whole(at.min(p.range.end)..p.range.end));
            sweep::set_string(json, &p.pointer, s);
            shape::openai_chat::fix_logprob_siblings(json, &p.pointer);
        }
    }

    /// Cuts the stream: held events are dropped, the provider's end-of-stream is sent.
    fn cut(&mut self) {
        self.withheld += self.held.drain(..).map(|h| h.raw.len()).sum::<usize>();
        self.done = true;
        self.cut_all = true;
    }

    /// Withholds one choice while the others go on: its held text is blanked out of the held
    /// events, its later events are blanked as they come, and `end` (the choice's own
    /// `content_filter` finish) is sent. When no choice is left, the stream is cut.
    fn withhold_choice(&mut self, choice: usize, end: Bytes) {
        self.blocked.insert(choice);
        if self.memo.choices.is_empty() || self.memo.choices.iter().all(|c| self.blocked.contains(c)) {
            self.cut();
            return;
        }
        let texts = &self.texts;
        for h in self.held.iter_mut() {
            if !h.is_json {
                continue;
            }
            let json = h.json.get_or_insert_with(|| reparse(&h.raw));
            if self.shape.blank_stream_choice(json, choice) {
                h.modified = true;
                self.withheld += h.raw.len();
                h.pieces.retain(|p| texts.get(&p.slot).is_none_or(|t| t.choice != choice));
            }
            if !h.modified {
                h.json = None;
            }
        }
        self.pending.push(end);
    }

    /// The stream ended (`[DONE]`, the shape's last event, or a clean EOF): settle every text,
    /// then release everything or cut.
    fn end(&mut self, last: Option<Held>, out: &mut Output) {
        let slots: Vec<Slot> = self.order.clone();
        for slot in slots {
            let hits = match self.texts.get_mut(&slot) {
                Some(t) if !t.finished => {
                    t.finished = true;
                    t.judge.as_mut().map(TextJudge::finish).unwrap_or_default()
                }
                _ => continue,
            };
            self.apply(&slot, hits);
        }
        if !self.done {
            if let Some(last) = last {
                self.held.push_back(last);
            }
            self.release(true, out);
            self.done = true;
        }
    }

    /// After a block, sends the provider's end of stream, once.
    fn send_cut(&mut self, out: &mut Output) {
        if self.cut_all && !self.cut_sent {
            if let Some(hit) = self.decision.blocking_hit() {
                self.cut_sent = true;
                out.send.extend(self.shape.cut_stream(&self.memo, hit));
            }
        }
    }
}

/// The data of one event's raw bytes, parsed again (it parsed when it arrived).
fn reparse(raw: &[u8]) -> Value {
    let mut p = SseParser::new();
    let ev = p.feed(raw).into_iter().next().or_else(|| p.finish());
    ev.and_then(|e| crate::json::parse_str(&e.data).ok()).unwrap_or(Value::Null)
}

/// Sorts and merges overlapping raw spans (a quoted span absorbs what it overlaps).
fn merge_raw(mut v: Vec<RawSpan>) -> Vec<RawSpan> {
    v.retain(|r| !r.range.is_empty());
    v.sort_by_key(|r| r.range.start);
    let mut out: Vec<RawSpan> = Vec::with_capacity(v.len());
    for r in v {
        match out.last_mut() {
            Some(last)
                if r.range.start < last.range.end || (r.range.start == last.range.end && r.quote == last.quote) =>
            {
                last.range.end = last.range.end.max(r.range.end);
                last.quote |= r.quote;
            }
            _ => out.push(r),
        }
    }
    out
}

#[cfg(test)]
mod tests;
