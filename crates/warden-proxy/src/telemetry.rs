//! What one request writes into its spans, metrics and logs, stage by stage. The spine calls
//! these at its stages; the names are in [`warden_telemetry::names`].
//!
//! - [`guard_span`] / [`guard_done`]: the `warden.guard prompt|completion` span of a phase, with
//!   the decision, an event per rule that fired (Warden's `warden.rule` and the GenAI
//!   `gen_ai.evaluation.result`), an event per costly detector with its time; and the phase's
//!   metrics (rule hits, guard and detector time);
//! - [`client_span`] / [`client_done`]: the CLIENT span of the upstream call, `chat gpt-4o`, with
//!   the GenAI attributes, carried to the upstream as `traceparent`;
//! - [`finish`]: the record's last stage: the SERVER span's end, the request metrics, the access
//!   log line and the decision record line.
//!
//! No span, event, metric or log line holds a prompt or completion text, a key or an
//! `Authorization` header. With `telemetry.capture_content` on, [`capture_input`] and
//! [`capture_output`] add the texts (as the upstream and the client got them: redactions
//! applied) and nothing else.

use crate::record::{Open, Record};
use crate::shape::{ResponseInfo, Shape};
use warden_core::{Action, Decision, Mode, Phase, Provider, Role, Segment};
use warden_policy::PolicySet;
use warden_telemetry::metrics::{RequestLabels, RuleLabels};
use warden_telemetry::names as n;
use warden_telemetry::{Array, KeyValue, SpanCx, SpanKind, StringValue, Telemetry, Value};

/// Detector kinds whose time gets an event of its own in the phase span.
const COSTLY: &[&str] = &["classifier", "plugin"];
/// Labels kept per rule event, and their length.
const MAX_LABELS: usize = 8;
const MAX_LABEL_LEN: usize = 64;
/// Rule events per phase span (the span's count says how many fired).
const MAX_RULE_EVENTS: usize = 48;
/// Captured text per direction, when content capture is on.
const MAX_CAPTURE_BYTES: usize = 64 << 10;

fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Prompt => "prompt",
        Phase::Completion => "completion",
    }
}

/// The GenAI provider name of an upstream.
pub fn genai_provider(p: Provider) -> &'static str {
    match p {
        Provider::OpenAi => "openai",
        Provider::Anthropic => "anthropic",
        Provider::Azure => "azure.ai.openai",
        Provider::Gemini => "gcp.gemini",
    }
}

fn cut(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// Starts the span of one guard phase, a child of the request's SERVER span.
pub fn guard_span(tel: &Telemetry, rec: &Record, phase: Phase) -> SpanCx {
    let span = tel.child(
        &rec.span(),
        match phase {
            Phase::Prompt => "warden.guard prompt",
            Phase::Completion => "warden.guard completion",
        },
        SpanKind::Internal,
    );
    if span.recording() {
        span.set([
            KeyValue::new("openinference.span.kind", "GUARDRAIL"),
            KeyValue::new(n::GUARDRAIL_TARGET, if phase == Phase::Prompt { "input" } else { "output" }),
            KeyValue::new(n::GUARDRAIL_COMPONENT, "warden"),
        ]);
    }
    span
}

/// A guard phase decided: writes the decision into its span and ends it, and counts its rule
/// hits and detector time.
pub fn guard_done(tel: &Telemetry, span: &SpanCx, policies: &PolicySet, d: &Decision) {
    let phase = phase_name(d.phase);
    tel.metrics.guard(phase, d.elapsed_us, &d.timings);
    for h in &d.hits {
        tel.metrics.rule_hit(RuleLabels {
            phase,
            policy: h.policy.clone(),
            rule: h.rule.clone(),
            action: h.applied.as_str(),
            would: h.action.as_str(),
            mode: mode_name(h.mode),
        });
    }
    if !span.recording() {
        span.end();
        return;
    }
    let monitor = (!d.hits.is_empty() && d.hits.iter().all(|h| h.mode == Mode::Monitor))
        || policies.policies().iter().all(|p| p.mode == Mode::Monitor);
    // What the strongest rule would have done, for the verdict; what was done, for the action.
    let would = d.hits.iter().map(|h| h.action).max().unwrap_or(Action::Allow);
    let verdict = match would {
        Action::Allow => "allow",
        Action::Flag => "warn",
        Action::Redact => "modify",
        Action::Block => "deny",
    };
    let enforced = match d.action {
        Action::Allow => "allow",
        Action::Flag => "audit",
        Action::Redact => "modify",
        Action::Block => "block",
    };
    span.set([
        KeyValue::new(n::DECISION, d.action.as_str()),
        KeyValue::new(n::POLICY_DIGEST, d.policy_digest.clone()),
        KeyValue::new(n::MODE, if monitor { "monitor" } else { "enforce" }),
        KeyValue::new(n::RULES_FIRED, d.hits.len() as i64),
        KeyValue::new(n::GUARD_US, d.elapsed_us as i64),
        KeyValue::new(n::GUARDRAIL_VERDICT, verdict),
        KeyValue::new(n::GUARDRAIL_ACTION, enforced),
        KeyValue::new(n::GUARDRAIL_POLICY_VERSION, d.policy_digest.clone()),
        // What a trace UI shows as the guard's output: the verdict and the rules behind it.
        KeyValue::new("output.value", verdict_line(d)),
    ]);
    for h in d.hits.iter().take(MAX_RULE_EVENTS) {
        let id = format!("{}/{}", h.policy, h.rule);
        let score = h.findings.iter().map(|f| f.score).fold(None, |m: Option<f32>, s| Some(m.map_or(s, |m| m.max(s))));
        let mut labels: Vec<StringValue> = Vec::new();
        for f in &h.findings {
            let l = cut(&f.label, MAX_LABEL_LEN);
            if labels.len() < MAX_LABELS && !labels.iter().any(|x| x.as_str() == l) {
                labels.push(l.into());
            }
        }
        let explanation =
            format!("{} detector: {}", h.detector, labels.iter().map(|l| l.as_str()).collect::<Vec<_>>().join(", "));
        let mut rule = vec![
            KeyValue::new(n::RULE_POLICY, h.policy.clone()),
            KeyValue::new(n::RULE_ID, id.clone()),
            KeyValue::new(n::RULE_DETECTOR, h.detector),
            KeyValue::new(n::RULE_ACTION, h.applied.as_str()),
            KeyValue::new(n::RULE_FINDINGS, h.findings.len() as i64),
            KeyValue::new(n::GUARDRAIL_POLICY_ID, h.policy.clone()),
            KeyValue::new(n::GUARDRAIL_RULE_ID, id.clone()),
            KeyValue::new(n::GUARDRAIL_SOURCE, phase),
            KeyValue::new(n::GUARDRAIL_RISK_CATEGORY, h.detector),
            KeyValue::new(n::RULE_LABELS, Value::Array(Array::String(labels))),
        ];
        if h.mode == Mode::Monitor && h.applied != h.action {
            rule.push(KeyValue::new(n::RULE_WOULD, h.action.as_str()));
        }
        if let Some(s) = score {
            rule.push(KeyValue::new(n::RULE_SCORE, s as f64));
            rule.push(KeyValue::new(n::GUARDRAIL_RISK_SCORE, s as f64));
        }
        if let Some(e) = &h.error {
            rule.push(KeyValue::new(n::RULE_ERROR, cut(e, 256)));
        }
        span.event(n::RULE_EVENT, rule);
        let mut eval = vec![
            KeyValue::new(n::GENAI_EVALUATION_NAME, id),
            KeyValue::new(n::GENAI_EVALUATION_LABEL, h.applied.as_str()),
            KeyValue::new(n::GENAI_EVALUATION_EXPLANATION, explanation),
        ];
        if let Some(s) = score {
            eval.push(KeyValue::new(n::GENAI_EVALUATION_SCORE, s as f64));
        }
        if h.error.is_some() {
            eval.push(KeyValue::new(n::ERROR_TYPE, "detector_error"));
        }
        span.event(n::GENAI_EVALUATION_EVENT, eval);
    }
    for (kind, us) in &d.timings {
        if COSTLY.contains(kind) {
            span.event(
                n::DETECTOR_EVENT,
                vec![KeyValue::new(n::DETECTOR_KIND, *kind), KeyValue::new(n::DETECTOR_US, *us as i64)],
            );
        }
    }
    if d.action == Action::Block {
        span.set([KeyValue::new(n::ERROR_TYPE, "blocked")]);
    }
    span.end();
}

/// `block backdoor-triggers/published-triggers`: the action and the rules that fired (at most 8).
fn verdict_line(d: &Decision) -> String {
    let mut line = d.action.as_str().to_string();
    for h in d.hits.iter().take(8) {
        line.push(' ');
        line.push_str(&h.policy);
        line.push('/');
        line.push_str(&h.rule);
    }
    if d.hits.len() > 8 {
        line.push_str(&format!(" (+{} more)", d.hits.len() - 8));
    }
    line
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Enforce => "enforce",
        Mode::Monitor => "monitor",
    }
}

/// The GenAI operation of a shape (the Responses API is a `chat`, told apart by
/// `openai.api.type`).
fn operation(shape: &dyn Shape) -> &'static str {
    match shape.operation() {
        "responses" => "chat",
        op => op,
    }
}

/// Starts the CLIENT span of the upstream call: `{operation} {model}`.
pub fn client_span(
    tel: &Telemetry,
    rec: &Record,
    shape: &dyn Shape,
    provider: Provider,
    model: &str,
    stream: bool,
    base: &str,
) -> SpanCx {
    let op = operation(shape);
    let name = if model.is_empty() { op.to_string() } else { format!("{op} {}", cut(model, 128)) };
    let span = tel.child(&rec.span(), name, SpanKind::Client);
    if span.recording() {
        let mut attrs = vec![
            KeyValue::new(n::GENAI_OPERATION, op),
            KeyValue::new(n::GENAI_PROVIDER, genai_provider(provider)),
            KeyValue::new(n::GENAI_REQUEST_MODEL, cut(model, 256)),
            KeyValue::new("openinference.span.kind", "LLM"),
        ];
        if shape.operation() == "responses" {
            attrs.push(KeyValue::new("openai.api.type", "responses"));
        } else if shape.name() == "openai.chat" {
            attrs.push(KeyValue::new("openai.api.type", "chat_completions"));
        }
        if stream {
            attrs.push(KeyValue::new(n::GENAI_REQUEST_STREAM, true));
        }
        if let Ok(uri) = base.parse::<http::Uri>() {
            if let Some(host) = uri.host() {
                attrs.push(KeyValue::new(n::SERVER_ADDRESS, host.to_string()));
                let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("https") { 443 } else { 80 });
                attrs.push(KeyValue::new(n::SERVER_PORT, port as i64));
            }
        }
        span.set(attrs);
    }
    span
}

/// The upstream call is over (the whole answer read, or the stream ended): what the answer said
/// of itself, and the error if it failed. Ends the span, at `end` if given (when the answer was
/// read, before it was judged).
pub fn client_done(
    span: &SpanCx,
    status: Option<u16>,
    info: &ResponseInfo,
    error: Option<&str>,
    end: Option<std::time::SystemTime>,
) {
    if span.recording() {
        let mut attrs = Vec::new();
        if let Some(s) = status {
            attrs.push(KeyValue::new(n::HTTP_STATUS, s as i64));
        }
        if let Some(m) = &info.model {
            attrs.push(KeyValue::new(n::GENAI_RESPONSE_MODEL, m.clone()));
        }
        if let Some(id) = &info.id {
            attrs.push(KeyValue::new(n::GENAI_RESPONSE_ID, id.clone()));
        }
        if let Some(t) = info.input_tokens {
            attrs.push(KeyValue::new(n::GENAI_INPUT_TOKENS, t as i64));
        }
        if let Some(t) = info.output_tokens {
            attrs.push(KeyValue::new(n::GENAI_OUTPUT_TOKENS, t as i64));
        }
        if !info.finish_reasons.is_empty() {
            let reasons = info.finish_reasons.iter().map(|r| StringValue::from(r.clone())).collect();
            attrs.push(KeyValue::new(n::GENAI_FINISH_REASONS, Value::Array(Array::String(reasons))));
        }
        let error_type = match (error, status) {
            (Some(_), _) => Some("upstream_error".to_string()),
            (None, Some(s)) if s >= 400 => Some(s.to_string()),
            _ => None,
        };
        if let Some(e) = error_type {
            attrs.push(KeyValue::new(n::ERROR_TYPE, e));
            span.error(error.map(|e| cut(e, 256)).unwrap_or_default());
        }
        span.set(attrs);
    }
    match end {
        Some(at) => span.end_at(at),
        None => span.end(),
    }
}

/// Streams: the stream's own figures on its CLIENT span.
pub fn stream_figures(span: &SpanCx, first_token_s: Option<f64>, held: usize, withheld: usize, events: usize) {
    if span.recording() {
        let mut attrs = vec![
            KeyValue::new(n::STREAM_HELD, held as i64),
            KeyValue::new(n::STREAM_WITHHELD, withheld as i64),
            KeyValue::new(n::STREAM_EVENTS, events as i64),
        ];
        if let Some(s) = first_token_s {
            attrs.push(KeyValue::new(n::STREAM_TTFT, s));
        }
        span.set(attrs);
    }
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    }
}

/// Content capture: the prompt's texts, as the upstream got them, on the CLIENT span.
pub fn capture_input(tel: &Telemetry, span: &SpanCx, segments: &[Segment], prompt: &Decision) {
    if !tel.capture_content || !span.recording() {
        return;
    }
    let texts = segments.iter().enumerate().map(|(i, s)| {
        let text = warden_core::decision::redact(&s.text, &prompt.redactions(i));
        (text, serde_json::json!({"role": role_name(s.role)}))
    });
    span.set([KeyValue::new(n::GENAI_INPUT_MESSAGES, messages(texts))]);
}

/// Content capture: the completion's texts, as the client got them, on the CLIENT span.
pub fn capture_output(tel: &Telemetry, span: &SpanCx, texts: &[String], finish: &[String]) {
    if !tel.capture_content || !span.recording() {
        return;
    }
    let texts = texts.iter().enumerate().map(|(i, t)| {
        let reason = finish.get(i).filter(|r| !r.is_empty()).map_or("stop", String::as_str);
        (t.clone(), serde_json::json!({"role": "assistant", "finish_reason": reason}))
    });
    span.set([KeyValue::new(n::GENAI_OUTPUT_MESSAGES, messages(texts))]);
}

/// Content capture of a stream: the text of the events the client got, by choice, read back
/// from the bytes sent (so a withheld text is never captured).
pub struct StreamCapture {
    shape: &'static dyn Shape,
    parser: crate::sse::SseParser,
    texts: Vec<String>,
    bytes: usize,
}

impl StreamCapture {
    /// A capture for a stream of `shape`, when content capture is on and `span` records.
    pub fn new(tel: &Telemetry, shape: &'static dyn Shape, span: &SpanCx) -> Option<Self> {
        (tel.capture_content && span.recording()).then(|| StreamCapture {
            shape,
            parser: crate::sse::SseParser::with_max_event(MAX_CAPTURE_BYTES),
            texts: Vec::new(),
            bytes: 0,
        })
    }

    /// Reads what was just sent to the client.
    pub fn sent(&mut self, bytes: &[u8]) {
        if self.bytes >= MAX_CAPTURE_BYTES {
            return;
        }
        for ev in self.parser.feed(bytes) {
            let Ok(json) = serde_json::from_str::<serde_json::Value>(&ev.data) else { continue };
            for p in self.shape.stream_pieces(ev.event.as_deref(), &json).pieces {
                let f = p.key.field.as_str();
                let answer = p.kind == crate::shape::PieceKind::Delta
                    && !["logprobs", "tool", "function_call", "arguments", "input", "reasoning", "thinking"]
                        .iter()
                        .any(|x| f.starts_with(x));
                if !answer || p.key.choice >= crate::shape::ResponseInfo::MAX_CHOICES {
                    continue;
                }
                if self.texts.len() <= p.key.choice {
                    self.texts.resize(p.key.choice + 1, String::new());
                }
                let text = cut(&p.text, MAX_CAPTURE_BYTES - self.bytes);
                self.bytes += text.len();
                self.texts[p.key.choice].push_str(&text);
            }
        }
    }

    /// Writes the captured texts on `span`.
    pub fn finish(self, tel: &Telemetry, span: &SpanCx, finish: &[String]) {
        capture_output(tel, span, &self.texts, finish);
    }
}

/// GenAI messages as JSON text (`[{role, parts: [{type: text, content}], ...}]`), at most
/// [`MAX_CAPTURE_BYTES`] of text in all.
fn messages(texts: impl Iterator<Item = (String, serde_json::Value)>) -> String {
    let mut budget = MAX_CAPTURE_BYTES;
    let list: Vec<serde_json::Value> = texts
        .map_while(|(text, mut message)| {
            if budget == 0 {
                return None;
            }
            let text = cut(&text, budget);
            budget -= text.len();
            message["parts"] = serde_json::json!([{"type": "text", "content": text}]);
            Some(message)
        })
        .collect();
    serde_json::Value::Array(list).to_string()
}

/// The record's last stage: the request's line in the audit trail, its metrics, the end of its
/// SERVER span, its access log line and its decision record line. Returns the trail's
/// acknowledgement when it confirms durable writes (`fsync: always`).
pub(crate) fn finish(o: &mut Open) -> Option<tokio::sync::oneshot::Receiver<Result<(), String>>> {
    let ack = audit(o);
    let d = &o.data;
    let decision = match (&d.prompt, &d.completion) {
        (None, None) => None,
        (p, c) => {
            Some(p.as_ref().map_or(Action::Allow, |p| p.action).max(c.as_ref().map_or(Action::Allow, |c| c.action)))
        }
    };
    let decision_name = decision.map_or("none", Action::as_str);
    if let Some(tel) = &o.telemetry {
        let m = &tel.metrics;
        let route = d.api.unwrap_or(if d.provider.is_some() { "passthrough" } else { "none" });
        m.request(RequestLabels {
            route,
            provider: d.provider.unwrap_or("none"),
            status: d.status,
            decision: decision_name,
            outcome: d.outcome,
        });
        m.withheld(d.withheld_bytes);
        if d.stream {
            let blocked = d.completion.as_ref().is_some_and(|c| c.action == Action::Block);
            match d.outcome {
                "cut" => m.stream_cut("limit"),
                "failed" if d.upstream_status.is_some() => m.stream_cut("upstream"),
                _ if blocked => m.stream_cut("rule"),
                _ => {}
            }
        }
        let provider = d.provider.unwrap_or("none");
        let model = d.response.as_ref().and_then(|r| r.model.as_deref()).or(d.model.as_deref()).unwrap_or("");
        if let Some(ms) = d.upstream_ms {
            m.upstream(provider, model, ms / 1000.0);
        }
        if let Some(ms) = d.first_token_ms {
            m.first_token(provider, model, ms / 1000.0);
        }
        if let Some(r) = &d.response {
            m.tokens(provider, model, r.input_tokens, r.output_tokens);
        }
    }
    let span = &o.span;
    if span.recording() {
        let mut attrs = vec![
            KeyValue::new(n::HTTP_STATUS, d.status as i64),
            KeyValue::new(n::OUTCOME, d.outcome),
            KeyValue::new(n::REQUEST_ID, d.request_id.clone()),
            KeyValue::new(n::DECISION, decision_name),
        ];
        if let Some(api) = d.api {
            attrs.push(KeyValue::new(n::API, api));
        }
        // The GenAI names belong to the CLIENT span (the model call); this span is the request.
        attrs.push(KeyValue::new("openinference.span.kind", "CHAIN"));
        if let Some(p) = d.provider {
            attrs.push(KeyValue::new(n::PROVIDER, p));
        }
        if let Some(m) = &d.model {
            attrs.push(KeyValue::new(n::MODEL, cut(m, 256)));
        }
        if let Some(t) = &d.tenant {
            attrs.push(KeyValue::new(n::TENANT, t.clone()));
        }
        if let Some(digest) = &d.policy_digest {
            attrs.push(KeyValue::new(n::POLICY_DIGEST, digest.clone()));
        }
        if !d.unseen.is_empty() {
            let unseen = d.unseen.iter().take(16).map(|u| StringValue::from(cut(u, 128))).collect();
            attrs.push(KeyValue::new(n::UNSEEN, Value::Array(Array::String(unseen))));
        }
        let error_type = match d.outcome {
            "shed" | "cut" | "client_gone" => Some(d.outcome.to_string()),
            _ if d.status >= 500 => Some(d.status.to_string()),
            _ => None,
        };
        if let Some(e) = error_type {
            attrs.push(KeyValue::new(n::ERROR_TYPE, e));
        }
        span.set(attrs);
        // Server spans: a 5xx is an error; a 4xx (a refusal included) is the client's.
        if d.status >= 500 {
            span.error(d.error.as_deref().map(|e| cut(e, 256)).unwrap_or_default());
        }
    }
    span.end();
    tracing::info!(
        target: warden_telemetry::logs::ACCESS_TARGET,
        request_id = %d.request_id,
        trace_id = d.trace_id.as_deref().unwrap_or(""),
        method = %d.method,
        path = %cut(&d.path, 256),
        status = d.status,
        decision = decision_name,
        outcome = d.outcome,
        duration_ms = (d.duration_ms * 1000.0).round() / 1000.0,
        "request"
    );
    // Serialise only if the line will be written (no subscriber in unit tests).
    let ship = o.telemetry.as_ref().and_then(|t| t.records());
    if ship.is_some() || tracing::enabled!(target: "warden::record", tracing::Level::INFO) {
        let line = serde_json::to_string(d).unwrap_or_default();
        tracing::info!(target: "warden::record", "{line}");
        if let Some(r) = ship {
            r.emit(&line, &d.request_id, decision_name, d.outcome, span.ids());
        }
    }
    ack
}

/// The request's line in the audit trail: the record, with the texts as `audit.privacy` says.
fn audit(o: &mut Open) -> Option<tokio::sync::oneshot::Receiver<Result<(), String>>> {
    let trail = o.trail.as_ref()?;
    let d = &o.data;
    let found = d.prompt.as_ref().is_some_and(|p| !p.rules.is_empty())
        || d.completion.as_ref().is_some_and(|c| !c.rules.is_empty());
    if o.findings_only && !found && d.outcome == "answered" {
        return None;
    }
    let mut body = serde_json::to_value(d).unwrap_or_default();
    if let (Some(m), Some(t)) = (body.as_object_mut(), o.texts.take()) {
        m.insert("texts".into(), t);
    }
    match trail.append(body.to_string()) {
        warden_audit::Appended::Queued(ack) => ack,
        warden_audit::Appended::Shed => None,
    }
}
