//! The stream guard: inspects a streamed completion as it arrives and never lets through what a
//! rule blocks.
//!
//! Upstream bytes go through the incremental [`SseParser`]. Each event's text pieces (OpenAI
//! `delta.content` per choice, tool-call arguments; Anthropic `content_block_delta` per block) are
//! appended to their text's [`TextJudge`], which keeps the detectors' streaming state (the phrase
//! automaton's state, for one) and says up to where the text can no longer be part of a match.
//! Events are held in arrival order and released as soon as all the text they carry is before
//! that point; for phrases, that is once they are older than the longest phrase. So a trigger split
//! over any number of chunks is caught before any of its characters is released.
//!
//! On a block the stream is cut: held events are dropped, and the client gets the provider's own
//! end of stream (OpenAI: a last chunk with `finish_reason: "content_filter"`, then
//! `data: [DONE]`; Anthropic: an `error` event). On a redact, held events are rewritten with
//! `[REDACTED]` in place of what matched before release.

use crate::adapter::{self, anthropic, openai, Api, Piece};
use crate::sse::{encode, SseEvent, SseParser};
use bytes::Bytes;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;
use warden_core::decision::{merge_spans, REDACTED};
use warden_core::{Action, Decision, Phase, Provider, RuleHit};
use warden_policy::{PolicySet, Target, TextJudge};

/// The target of a stream, owned (the guard outlives the request's borrowed parts).
#[derive(Debug, Clone)]
pub struct StreamTarget {
    /// The API shape.
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

struct Text {
    judge: TextJudge,
    redactions: Vec<Range<usize>>,
}

struct HeldPiece {
    key: String,
    pointer: String,
    range: Range<usize>,
}

struct Held {
    raw: Bytes,
    event: Option<String>,
    json: Option<Value>,
    pieces: Vec<HeldPiece>,
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
    api: Api,
    set: Arc<PolicySet>,
    target: StreamTarget,
    parser: SseParser,
    texts: HashMap<String, Text>,
    order: Vec<String>,
    held: VecDeque<Held>,
    first_chunk: Option<Value>,
    choices: BTreeSet<usize>,
    decision: Decision,
    done: bool,
    cut_sent: bool,
    withheld: usize,
    dropped_events: usize,
}

impl StreamGuard {
    /// A guard for a stream of `api` to `target`, judged by `set`.
    pub fn new(api: Api, set: Arc<PolicySet>, target: StreamTarget) -> Self {
        let decision = Decision::allow(Phase::Completion, set.digest());
        Self {
            api,
            set,
            target,
            parser: SseParser::new(),
            texts: HashMap::new(),
            order: Vec::new(),
            held: VecDeque::new(),
            first_chunk: None,
            choices: BTreeSet::new(),
            decision,
            done: false,
            cut_sent: false,
            withheld: 0,
            dropped_events: 0,
        }
    }

    /// The completion decision so far.
    pub fn decision(&self) -> &Decision {
        &self.decision
    }

    /// Bytes withheld from the client by a block.
    pub fn withheld_bytes(&self) -> usize {
        self.withheld
    }

    /// Events dropped because their data was not JSON (and so could not be inspected).
    pub fn dropped_events(&self) -> usize {
        self.dropped_events
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
        self.decision.elapsed_us += started.elapsed().as_micros() as u64;
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
            let data = match self.target.provider {
                Provider::OpenAi => serde_json::json!({
                    "error": { "message": message, "type": "server_error", "param": null, "code": "upstream_error" }
                }),
                Provider::Anthropic => serde_json::json!({
                    "type": "error", "error": { "type": "api_error", "message": message }
                }),
            };
            let event = (self.target.provider == Provider::Anthropic).then_some("error");
            out.send.push(encode(event, &data.to_string()));
        }
        out.done = true;
        out
    }

    fn on_event(&mut self, ev: SseEvent, out: &mut Output) {
        let is_end = ev.data == "[DONE]";
        if is_end {
            self.end(Some(EndEvent::Sse(ev)), out);
            return;
        }
        if ev.data.is_empty() {
            // A comment or an event without data carries no text.
            self.hold(Held { raw: ev.raw, event: ev.event, json: None, pieces: Vec::new() }, out);
            return;
        }
        let json: Value = match serde_json::from_str(&ev.data) {
            Ok(v) => v,
            Err(_) => {
                // Data that cannot be parsed cannot be inspected: it is not forwarded.
                self.dropped_events += 1;
                tracing::warn!("dropped an upstream SSE event whose data is not JSON");
                return;
            }
        };
        let kind = json.get("type").and_then(Value::as_str).or(ev.event.as_deref()).map(str::to_string);
        if self.api.provider() == Provider::OpenAi {
            if self.first_chunk.is_none() {
                self.first_chunk = Some(json.clone());
            }
            if let Some(cs) = json.get("choices").and_then(Value::as_array) {
                for (k, c) in cs.iter().enumerate() {
                    self.choices.insert(c.get("index").and_then(Value::as_u64).map_or(k, |i| i as usize));
                }
            }
        }
        let pieces = adapter::stream_pieces(self.api, ev.event.as_deref(), &json);
        let mut held_pieces = Vec::with_capacity(pieces.len());
        for Piece { key, pointer, text, .. } in pieces {
            let range = self.push_text(&key, &text);
            held_pieces.push(HeldPiece { key, pointer, range });
            if self.done {
                return;
            }
        }
        let held = Held { raw: ev.raw, event: ev.event, json: Some(json), pieces: held_pieces };
        if kind.as_deref() == Some("message_stop") {
            self.end(Some(EndEvent::Held(Box::new(held))), out);
        } else {
            self.hold(held, out);
        }
    }

    /// Appends text to its judge; applies what fires. Returns the piece's range in the text.
    fn push_text(&mut self, key: &str, text: &str) -> Range<usize> {
        if !self.texts.contains_key(key) {
            let headers: Vec<(&str, &str)> =
                self.target.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let t = Target {
                provider: self.target.provider,
                route: &self.target.route,
                model: &self.target.model,
                tenant: &self.target.tenant,
                headers: &headers,
            };
            let judge = self.set.judge_stream(&t, self.order.len());
            self.order.push(key.to_string());
            self.texts.insert(key.to_string(), Text { judge, redactions: Vec::new() });
        }
        let Some(t) = self.texts.get_mut(key) else { return 0..0 };
        let start = t.judge.text().len();
        let hits = t.judge.push(text);
        let range = start..start + text.len();
        self.apply(key, hits);
        range
    }

    fn apply(&mut self, key: &str, hits: Vec<RuleHit>) {
        for h in hits {
            if h.applied == Action::Redact {
                if let Some(t) = self.texts.get_mut(key) {
                    let spans =
                        h.findings.iter().filter(|f| f.redacts()).map(|f| f.span.clone()).chain(t.redactions.drain(..));
                    t.redactions = merge_spans(spans);
                }
            }
            let block = h.applied == Action::Block;
            self.decision.push(h);
            if block && !self.done {
                self.cut();
            }
        }
    }

    fn hold(&mut self, held: Held, out: &mut Output) {
        if self.done {
            return;
        }
        self.held.push_back(held);
        self.release(false, out);
    }

    /// Sends held events from the front while their text is safe (or all, at the end).
    fn release(&mut self, all: bool, out: &mut Output) {
        while let Some(front) = self.held.front() {
            let ready = all
                || front
                    .pieces
                    .iter()
                    .all(|p| self.texts.get(&p.key).is_none_or(|t| p.range.end <= t.judge.safe_until()));
            if !ready {
                break;
            }
            let Some(h) = self.held.pop_front() else { break };
            out.send.push(self.render(h));
        }
    }

    /// The event's bytes: as received, or rewritten where a redaction touches its text.
    fn render(&self, mut h: Held) -> Bytes {
        let touched = h.pieces.iter().any(|p| {
            self.texts
                .get(&p.key)
                .is_some_and(|t| t.redactions.iter().any(|r| r.start < p.range.end && p.range.start < r.end))
        });
        let Some(json) = h.json.as_mut().filter(|_| touched) else { return h.raw };
        for p in &h.pieces {
            let Some(t) = self.texts.get(&p.key) else { continue };
            let whole = t.judge.text();
            let mut s = String::new();
            let mut at = p.range.start;
            for r in t.redactions.iter().filter(|r| r.start < p.range.end && p.range.start < r.end) {
                if r.start >= at {
                    s.push_str(&whole[at..r.start]);
                    s.push_str(REDACTED);
                }
                at = r.end.min(p.range.end).max(at);
            }
            s.push_str(&whole[at.min(p.range.end)..p.range.end]);
            adapter::set_string(json, &p.pointer, s);
        }
        encode(h.event.as_deref(), &json.to_string())
    }

    /// Cuts the stream: held events are dropped, the provider's end-of-stream is sent.
    fn cut(&mut self) {
        self.withheld += self.held.drain(..).map(|h| h.raw.len()).sum::<usize>();
        self.done = true;
    }

    fn cut_bytes(&self) -> Vec<Bytes> {
        let Some(hit) = self.decision.blocking_hit() else { return Vec::new() };
        match self.api {
            Api::OpenAiChat | Api::OpenAiCompletions => {
                let mut choices: Vec<usize> = self.choices.iter().copied().collect();
                if choices.is_empty() {
                    choices.push(0);
                }
                let legacy = self.api == Api::OpenAiCompletions;
                let chunk = openai::cut_chunk(self.first_chunk.as_ref(), &choices, legacy, hit);
                vec![encode(None, &chunk.to_string()), encode(None, "[DONE]")]
            }
            Api::AnthropicMessages => vec![encode(Some("error"), &anthropic::cut_event(hit).to_string())],
        }
    }

    /// The stream ended (`[DONE]`, `message_stop`, or a clean EOF): settle every text, then
    /// release everything or cut.
    fn end(&mut self, last: Option<EndEvent>, out: &mut Output) {
        let keys = self.order.clone();
        for key in keys {
            let hits = match self.texts.get_mut(&key) {
                Some(t) => t.judge.finish(),
                None => continue,
            };
            self.apply(&key, hits);
        }
        if !self.done {
            if let Some(last) = last {
                let held = match last {
                    EndEvent::Sse(ev) => Held { raw: ev.raw, event: ev.event, json: None, pieces: Vec::new() },
                    EndEvent::Held(h) => *h,
                };
                self.held.push_back(held);
            }
            self.release(true, out);
            self.done = true;
        }
    }

    /// After a block, sends the provider's end of stream, once.
    fn send_cut(&mut self, out: &mut Output) {
        if self.done && !self.cut_sent && self.decision.blocking_hit().is_some() {
            self.cut_sent = true;
            out.send.extend(self.cut_bytes());
        }
    }
}

/// The event that ended a stream.
enum EndEvent {
    Sse(SseEvent),
    Held(Box<Held>),
}

#[cfg(test)]
mod tests;
