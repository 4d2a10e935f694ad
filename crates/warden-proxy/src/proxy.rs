//! One request from `route` to `record`: the spine of DESIGN.md, in the order it runs.
//!
//! [`handle`] is the entry point hyper calls. It wraps [`exchange`] (the stages) with the total
//! timeout, the provider-shaped error answer, the `x-warden-*` headers and the record.

use crate::body;
use crate::channel;
use crate::completion;
use crate::config::{Config, Limits, Unseen as UnseenPolicy};
use crate::record::Record;
use crate::respond::{self, full, ProxyBody, ProxyError};
use crate::route::{self, Route};
use crate::shape::sweep::{self, KeyText};
use crate::shape::{DecodedRequest, ErrorShape, ResponseInfo, Shape, UnseenKind};
use crate::stream_guard::{StreamGuard, StreamTarget};
use crate::telemetry;
use crate::upstream::{self, UpstreamResponse, Upstreams};
use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;
use warden_core::{Action, Decision, Mode, Phase, Provider, Role, RuleHit, Segment};
use warden_policy::{PolicySet, Split, Target};

/// What every request shares: the configuration, the active policy set (swapped atomically on
/// reload) and the upstream connection pool.
pub struct Shared {
    /// The configuration.
    pub config: Config,
    /// The active policy set.
    pub policies: ArcSwap<PolicySet>,
    /// The upstream client.
    pub upstreams: Upstreams,
    /// Traces and metrics.
    pub telemetry: Arc<warden_telemetry::Telemetry>,
    /// Why the policy set could not be loaded at start, until one loads: every guarded request
    /// is refused (503) and `/readyz` is unready meanwhile.
    pub not_loaded: parking_lot::RwLock<Option<String>>,
    /// The audit trail, when configured.
    pub audit: Option<Arc<warden_audit::Trail>>,
    /// Why the upstream probe last failed (`upstream_probe`), if it did.
    pub probe_failure: parking_lot::RwLock<Option<String>>,
    /// How policies are loaded (the signature to verify).
    pub load_options: warden_policy::LoadOptions,
    /// Permits to run costly detectors: the bounded pool that requests and streams await.
    pub detector_pool: Arc<tokio::sync::Semaphore>,
    /// Requests waiting for a detector permit now (bounded by `limits.detector_queue`).
    pub detector_waiting: AtomicUsize,
    /// One permit per request in flight (`limits.max_in_flight`).
    pub in_flight: Arc<tokio::sync::Semaphore>,
}

impl Shared {
    /// Evaluates `phase` of a request; `split` says which texts are swept fragments and which
    /// are for structural rules only (see `PolicySet::evaluate_split`). When a costly detector (classifier, plugin) applies, the
    /// request first waits for a permit of the detector pool, then evaluates on its own thread
    /// while the runtime moves other tasks elsewhere, so slow detectors never stall the proxy.
    ///
    /// Load never turns into a verdict: a request that finds the pool's queue full
    /// (`limits.detector_queue`) or waits longer than `limits.detector_queue_timeout_ms` is shed
    /// (503), and the detector budget starts only once the request holds its permit.
    pub async fn evaluate(
        &self,
        policies: &PolicySet,
        phase: Phase,
        target: &Target<'_>,
        texts: &[(Role, &str)],
        split: Split,
    ) -> Result<Decision, ProxyError> {
        let bytes: usize = texts.iter().map(|(_, t)| t.len()).sum();
        if !policies.has_costly(phase, target) && bytes <= HEAVY_BYTES {
            return Ok(policies.evaluate_split(phase, target, texts, split, None));
        }
        // Costly detectors, or much text even for cheap ones: on the bounded pool, off the
        // runtime's workers, so a few large requests cannot stall every other one.
        let permit = self.detector_permit().await?;
        let budget = Limits::ms(self.config.limits.detector_budget_ms);
        Ok(on_thread(permit, || {
            let deadline = std::time::Instant::now() + budget;
            policies.evaluate_split(phase, target, texts, split, Some(deadline))
        }))
    }

    /// Runs `f`, work proportional to `bytes` of the request (parsing and decoding its body): on
    /// the bounded detector pool, off the runtime's workers, when `bytes` is large.
    pub async fn heavy<R>(&self, bytes: usize, f: impl FnOnce() -> R) -> Result<R, ProxyError> {
        if bytes <= HEAVY_BYTES {
            return Ok(f());
        }
        let permit = self.detector_permit().await?;
        Ok(on_thread(permit, f))
    }

    /// A permit of the detector pool, or a 503 when the queue is full or the wait too long.
    async fn detector_permit(&self) -> Result<tokio::sync::SemaphorePermit<'_>, ProxyError> {
        let limits = &self.config.limits;
        if let Ok(p) = self.detector_pool.try_acquire() {
            return Ok(p);
        }
        let waiting = Waiting::join(&self.detector_waiting);
        if waiting.ahead >= limits.detector_queue {
            return Err(ProxyError::Overloaded(format!(
                "the detector pool is saturated ({} requests already waiting, limits.detector_queue); retry shortly",
                waiting.ahead
            )));
        }
        let wait = Limits::ms(limits.detector_queue_timeout_ms);
        match tokio::time::timeout(wait, self.detector_pool.acquire()).await {
            Ok(p) => Ok(p.expect("the detector pool is never closed")),
            Err(_) => Err(ProxyError::Overloaded(format!(
                "no detector was free within {wait:?} (limits.detector_queue_timeout_ms); retry shortly"
            ))),
        }
    }

    /// Why the proxy cannot serve now, if it cannot: the policy set never loaded.
    pub fn unready(&self) -> Option<String> {
        self.not_loaded.read().as_ref().map(|e| {
            format!(
                "the policy set at {} could not be loaded at start, so nothing is served until it does \
                 (fix the files: they are reloaded when changed, on SIGHUP or POST /admin/reload): {e}",
                self.config.policies.display()
            )
        })
    }

    /// Why requests are refused while the audit trail cannot be written (`audit.on_failure:
    /// closed`), if they are.
    pub fn audit_refusal(&self) -> Option<String> {
        let why = self.audit.as_ref()?.failure()?;
        (self.config.audit.on_failure == warden_audit::config::OnFailure::Closed)
            .then(|| format!("{why}; nothing is served that cannot be recorded (audit.on_failure: closed)"))
    }

    /// Requests in flight now.
    pub fn in_flight_now(&self) -> usize {
        self.config.limits.max_in_flight.clamp(1, 1 << 24).saturating_sub(self.in_flight.available_permits())
    }

    /// Whether the proxy is saturated: every in-flight slot taken, or the detector queue full.
    pub fn saturation(&self) -> Option<String> {
        let l = &self.config.limits;
        if self.in_flight.available_permits() == 0 {
            return Some(format!("{} requests in flight (limits.max_in_flight)", l.max_in_flight));
        }
        self.detector_queue_full()
    }

    /// Why the detector pool takes no more requests, if its queue is full.
    pub fn detector_queue_full(&self) -> Option<String> {
        let waiting = self.detector_waiting.load(std::sync::atomic::Ordering::Relaxed);
        (waiting >= self.config.limits.detector_queue)
            .then(|| format!("{waiting} requests waiting for a detector, limits.detector_queue"))
    }
}

/// Above this many bytes, parsing a body or judging its texts, even with cheap detectors only,
/// runs on the detector pool rather than on the runtime's workers.
const HEAVY_BYTES: usize = 256 << 10;

/// One request counted in a queue while it waits.
struct Waiting<'a> {
    count: &'a AtomicUsize,
    /// How many were waiting before this one.
    ahead: usize,
}

impl<'a> Waiting<'a> {
    fn join(count: &'a AtomicUsize) -> Self {
        let ahead = count.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Self { count, ahead }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.count.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Runs costly detector work (classifier, plugins) holding a detector permit, on the current
/// thread after handing this worker's other tasks to the rest of the runtime, so that a slow
/// model or plugin never stalls other requests.
fn on_thread<P, R>(_permit: P, f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::current().runtime_flavor() {
        tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// The header naming the decision: `allow`, `flag`, `redact`, `block`, or `error` when the
/// request failed before a decision.
pub const DECISION_HEADER: &str = "x-warden-decision";
/// The header carrying the request id, which the record carries too.
pub const REQUEST_ID_HEADER: &str = "x-warden-request-id";

fn set_decision(r: &mut Response<ProxyBody>, a: Action) {
    r.headers_mut().insert(DECISION_HEADER, HeaderValue::from_static(a.as_str()));
}

/// The spine: serves one request, from route to respond. Never fails: every error becomes an
/// answer in the provider's shape. The layers around it ([`crate::layers`]) give it the request
/// id, the record and the error shape, and take care of admission and the total deadline.
pub async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<ProxyBody>, Infallible> {
    let record = match req.extensions().get::<Record>() {
        Some(r) => r.clone(),
        None => Record::start(String::new(), req.method().as_str(), req.uri().path(), Default::default(), None),
    };
    let errors = req.extensions().get::<ErrorShape>().copied().unwrap_or(ErrorShape::OpenAi);
    let http1 = req.version() < http::Version::HTTP_2;
    Ok(match exchange(&shared, req, &record).await {
        Ok(r) => r,
        Err(e) => {
            let outcome = match e {
                ProxyError::Overloaded(_) => "shed",
                _ if e.status().is_server_error() => "failed",
                _ => "rejected",
            };
            record.fail(outcome, e.to_string());
            respond::error_response(&e, errors, http1)
        }
    })
}

/// The tenant: the configured header's value, else a hash of the API key (never the key), else
/// `anonymous`.
pub fn tenant(headers: &HeaderMap, tenant_header: &str) -> String {
    if let Some(t) = headers.get(tenant_header).and_then(|v| v.to_str().ok()).filter(|t| !t.is_empty()) {
        return t.chars().take(128).collect();
    }
    let key = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.strip_prefix("Bearer ").unwrap_or(v))
        .or_else(|| {
            ["x-api-key", "api-key", "x-goog-api-key"]
                .iter()
                .find_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))
        });
    match key {
        Some(k) if !k.is_empty() => format!("key-{}", &hex::encode(Sha256::digest(k.as_bytes()))[..16]),
        _ => "anonymous".into(),
    }
}

fn parse_json(raw: &[u8]) -> Result<Value, ProxyError> {
    if let Err(e) = std::str::from_utf8(raw) {
        return Err(ProxyError::BadRequest(format!(
            "the request body is not valid UTF-8 (at byte {}); send JSON encoded as UTF-8",
            e.valid_up_to()
        )));
    }
    crate::json::parse(raw).map_err(|e| ProxyError::BadRequest(format!("the request body is not valid JSON: {e}")))
}

/// The stages of one guarded request: route, decode, guard(prompt), forward, guard(completion),
/// respond. The record is filled in as it goes.
async fn exchange(shared: &Shared, req: Request<Incoming>, rec: &Record) -> Result<Response<ProxyBody>, ProxyError> {
    let started = std::time::Instant::now();
    let (parts, body) = req.into_parts();
    let limits = &shared.config.limits;

    // route
    let path = route::decode_unreserved(parts.uri.path()).into_owned();
    let query = parts.uri.query();
    let g = match route::resolve(&parts.method, &path, query, &parts.headers, &shared.config.passthrough)? {
        Route::Passthrough(p) => return passthrough(shared, p, parts, body, rec).await,
        Route::Guarded(g) => g,
    };
    let shape = g.shape;
    let errors = shape.errors();
    let tel = &*shared.telemetry;
    {
        let template = route::template(&path);
        let span = rec.span();
        span.rename(format!("{} {template}", parts.method));
        span.set([warden_telemetry::KeyValue::new(warden_telemetry::names::HTTP_ROUTE, template.clone())]);
        let mut d = rec.data();
        d.provider = Some(g.provider.as_str());
        d.api = Some(shape.name());
        d.route = Some(template);
    }

    // decode
    body::check_json_content_type(&parts.headers)?;
    let raw = body::read_limited(body, &parts.headers, limits.max_body_bytes, Limits::ms(limits.body_read_timeout_ms))
        .await?;
    let raw = body::decode_content(&parts.headers, raw, limits.max_decompressed_bytes)?;
    let (json, (request, keys, known)) = shared
        .heavy(raw.len(), || {
            let json = parse_json(&raw)?;
            let decoded = decode(shape, &g.info, &json, limits)?;
            Ok::<_, ProxyError>((json, decoded))
        })
        .await??;
    let tenant = tenant(&parts.headers, &shared.config.tenant_header);
    {
        let mut d = rec.data();
        d.model = Some(request.model.clone());
        d.tenant = Some(tenant.clone());
        d.stream = request.stream;
        d.unseen = request.unseen.iter().map(|u| format!("{} at {}", unseen_name(u.kind), u.pointer)).collect();
    }
    unseen_refusal(&shared.config, &request)?;
    let policies = shared.policies.load_full();
    let header_pairs: Vec<(&str, &str)> =
        parts.headers.iter().filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v))).collect();
    let target =
        Target { provider: g.provider, route: &path, model: &request.model, tenant: &tenant, headers: &header_pairs };

    // guard(prompt)
    let texts: Vec<(Role, &str)> = request.segments.iter().map(|s| (s.role, s.text.as_str())).collect();
    let keys_at = request.segments.iter().position(|s| s.origin == KEYS_ORIGIN);
    let split = Split { fragments_from: known, structure_from: texts.len(), keys_at };
    let span = telemetry::guard_span(tel, rec, Phase::Prompt);
    let mut prompt = shared.evaluate(&policies, Phase::Prompt, &target, &texts, split).await?;
    flag_unseen(&shared.config, &request, &mut prompt);
    telemetry::guard_done(tel, &span, &policies, &prompt);
    rec.data().prompt = Some((&prompt).into());
    rec.data().policy_digest = Some(policies.digest().to_string());
    let privacy = shared.config.audit.privacy;
    if rec.audited() {
        rec.texts(crate::evidence::prompt(privacy, &request.segments[..known.min(request.segments.len())], &prompt));
    }
    if let Some(hit) = prompt.blocking_hit() {
        rec.data().outcome = "refused";
        let mut r = respond::prompt_refusal(errors, hit);
        set_decision(&mut r, Action::Block);
        return Ok(r);
    }
    let upstream_body =
        if prompt.action == Action::Redact { redact_request(json, &request.segments, &keys, &prompt) } else { raw };

    // forward: the decoded path (what was routed), with the query as sent.
    let pq = match query {
        Some(q) => format!("{path}?{q}"),
        None => path.clone(),
    };
    let base = shared.upstreams.base(g.provider);
    let client = telemetry::client_span(tel, rec, shape, g.provider, &request.model, request.stream, base);
    // The texts the shape knows (the swept fragments and key names are not messages).
    telemetry::capture_input(tel, &client, &request.segments[..known.min(request.segments.len())], &prompt);
    // The upstream call continues the trace: its `traceparent` is the CLIENT span's.
    let mut trace_headers = HeaderMap::new();
    client.inject(&mut trace_headers);
    let trace_headers: Vec<_> = trace_headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let sent = std::time::Instant::now();
    let resp = match shared
        .upstreams
        .send(g.provider, parts.method.clone(), &pq, &parts.headers, upstream_body, &trace_headers)
        .await
    {
        Ok(r) => r,
        Err(e) => {
            telemetry::client_done(&client, None, &ResponseInfo::default(), Some(&e.to_string()), None);
            return Err(e);
        }
    };
    let status = resp.status();
    {
        let mut d = rec.data();
        d.upstream_status = Some(status.as_u16());
        d.upstream_ms = Some(sent.elapsed().as_secs_f64() * 1000.0);
    }
    if let Err(e) = undecodable(resp.headers()) {
        telemetry::client_done(&client, Some(status.as_u16()), &ResponseInfo::default(), Some(&e.to_string()), None);
        return Err(e);
    }
    let headers = upstream::filter_headers(resp.headers(), &["content-encoding", "content-length"]);
    // A stream only if the client asked for one: an answer labelled as a stream to a request
    // for a whole answer is judged whole (the client will read it whole).
    let is_sse = request.stream
        && headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));

    if !status.is_success() && !is_sse {
        // The provider's own error: its message is text a user sees, so it is judged too.
        let body = read_upstream(resp, limits).await;
        telemetry::client_done(
            &client,
            Some(status.as_u16()),
            &ResponseInfo::default(),
            body.as_ref().err().map(|e| e.to_string()).as_deref(),
            None,
        );
        let span = telemetry::guard_span(tel, rec, Phase::Completion);
        let (body, d) = guard_error_body(shared, errors, &policies, &target, status, body?).await?;
        telemetry::guard_done(tel, &span, &policies, &d);
        rec.data().completion = Some((&d).into());
        return Ok(response(status, headers, full(body), prompt.action.max(d.action)));
    }

    // guard(completion), streamed: the stream guard runs in its own task.
    if is_sse {
        let costly = policies.has_costly(Phase::Completion, &target);
        let target = StreamTarget {
            provider: g.provider,
            route: path.clone(),
            model: request.model.clone(),
            tenant: tenant.clone(),
            headers: header_pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        let guard = StreamGuard::new(shape, Arc::clone(&policies), target, shared.config.coverage.unknown_events)
            .bounded(limits.max_event_bytes, limits.max_stream_texts, limits.max_stream_bytes / 8);
        let (tx, body) = channel::channel(32);
        let bounds = StreamBounds {
            idle: Limits::ms(limits.stream_idle_timeout_ms),
            deadline: tokio::time::Instant::from_std(started) + Limits::ms(limits.total_timeout_ms),
            write: Limits::ms(limits.write_timeout_ms),
            max_bytes: limits.max_stream_bytes,
            budget: Limits::ms(limits.stream_detector_budget_ms),
        };
        rec.data().status = status.as_u16();
        let pool = costly.then(|| Arc::clone(&shared.detector_pool));
        rec.streaming();
        let trace = StreamTrace {
            telemetry: Arc::clone(&shared.telemetry),
            policies: Arc::clone(&policies),
            guard: telemetry::guard_span(tel, rec, Phase::Completion),
            client,
            status: status.as_u16(),
        };
        tokio::spawn(pump(resp, guard, pool, tx, rec.clone(), bounds, trace).instrument(tracing::Span::current()));
        return Ok(response(status, headers, body.boxed(), prompt.action));
    }

    // guard(completion), whole
    let body = match read_upstream(resp, limits).await {
        Ok(b) => b,
        Err(e) => {
            telemetry::client_done(
                &client,
                Some(status.as_u16()),
                &ResponseInfo::default(),
                Some(&e.to_string()),
                None,
            );
            return Err(e);
        }
    };
    let read_at = std::time::SystemTime::now();
    let span = telemetry::guard_span(tel, rec, Phase::Completion);
    let judged = guard_completion(shared, shape, &policies, &target, body).await;
    let (body, completion, info) = match judged {
        Ok(j) => j,
        Err(e) => {
            telemetry::client_done(&client, Some(status.as_u16()), &ResponseInfo::default(), None, Some(read_at));
            return Err(e);
        }
    };
    telemetry::guard_done(tel, &span, &policies, &completion);
    if tel.capture_content && client.recording() {
        let sent: Vec<String> = crate::json::parse(&body)
            .map(|j| shape.completion_texts(&j).into_iter().map(|t| t.text).collect())
            .unwrap_or_default();
        telemetry::capture_output(tel, &client, &sent, &info.finish_reasons);
    }
    telemetry::client_done(&client, Some(status.as_u16()), &info, None, Some(read_at));
    if rec.audited() {
        rec.texts(crate::evidence::completion(privacy, &body, || {
            crate::json::parse(&body)
                .map(|j| shape.completion_texts(&j).into_iter().map(|t| t.text).collect())
                .unwrap_or_default()
        }));
    }
    rec.data().response = Some(info);
    rec.data().completion = Some((&completion).into());
    if completion.action == Action::Block {
        rec.data().outcome = "refused";
    }
    Ok(response(status, headers, full(body), prompt.action.max(completion.action)))
}

/// The decode stage: the shape's known texts, then the sweep of every other string and of the
/// object keys (one text). Returns the request, the keys (for writing redactions back) and how
/// many segments the shape knew (the rest are swept fragments).
fn decode(
    shape: &dyn Shape,
    info: &crate::shape::RouteInfo,
    json: &Value,
    limits: &Limits,
) -> Result<(DecodedRequest, KeyText, usize), ProxyError> {
    let strings = count_strings(json, limits.max_segments);
    if strings > limits.max_segments {
        return Err(ProxyError::TooMuch(format!(
            "the request holds more than {} strings (limits.max_segments); send fewer or larger texts",
            limits.max_segments
        )));
    }
    // Checked before the shape copies it anywhere (the body's own `model`, then the one the
    // shape found, which for Gemini is in the path).
    let too_long = |model: &str| {
        (model.len() > limits.max_identifier_bytes).then(|| {
            ProxyError::BadRequest(format!(
                "the model name is {} bytes long; Warden accepts at most {} (limits.max_identifier_bytes)",
                model.len(),
                limits.max_identifier_bytes
            ))
        })
    };
    if let Some(e) = json.get("model").and_then(Value::as_str).and_then(too_long) {
        return Err(e);
    }
    let mut request = shape.decode(json, info).map_err(|e| ProxyError::BadRequest(e.0))?;
    if let Some(e) = too_long(&request.model) {
        return Err(e);
    }
    join_parts(&mut request.segments);
    let known = request.segments.len();
    let covered: HashSet<String> = request
        .segments
        .iter()
        .map(|s| s.origin.strip_prefix(crate::shape::openai_chat::JSON_ORIGIN).unwrap_or(&s.origin).to_string())
        .collect();
    let mut keys = KeyText::default();
    sweep::sweep_request(json, &mut String::new(), &covered, shape.request_skip(), &mut keys, &mut request.segments);
    if !keys.text.is_empty() {
        request.segments.push(Segment { role: Role::Tool, text: keys.text.clone(), origin: KEYS_ORIGIN.into() });
    }
    let text: usize = request.segments.iter().map(|s| s.text.len()).sum();
    if text > limits.max_text_bytes {
        return Err(ProxyError::TooMuch(format!(
            "the request holds {text} bytes of text to inspect, more than {} (limits.max_text_bytes)",
            limits.max_text_bytes
        )));
    }
    Ok((request, keys, known))
}

/// The strings and object keys in `json`, counting no further than just past `max`.
fn count_strings(json: &Value, max: usize) -> usize {
    let mut n = 0;
    let mut stack = vec![json];
    while let Some(v) = stack.pop() {
        if n > max {
            break;
        }
        match v {
            Value::String(_) => n += 1,
            Value::Array(a) => stack.extend(a.iter()),
            Value::Object(o) => {
                n += o.len();
                stack.extend(o.values());
            }
            _ => {}
        }
    }
    n
}

/// The decode stage as the fuzz targets (`fuzz/`) and their corpus replay drive it: the same
/// function the spine calls. Not for other uses.
#[doc(hidden)]
pub fn fuzz_decode(
    shape: &dyn Shape,
    info: &crate::shape::RouteInfo,
    json: &Value,
    limits: &Limits,
) -> Result<(DecodedRequest, KeyText, usize), ProxyError> {
    decode(shape, info, json, limits)
}

/// Writing a prompt's redactions back, as the fuzz targets drive it (see [`fuzz_decode`]).
#[doc(hidden)]
pub fn fuzz_redact(json: Value, segments: &[Segment], keys: &KeyText, d: &Decision) -> Bytes {
    redact_request(json, segments, keys, d)
}

/// The prefix of a segment that joins the text parts of one message (judged, never written
/// back: its parts are judged and redacted on their own too).
const JOINED_ORIGIN: &str = "joined:";

/// Adds, for each message whose text comes in several parts (`.../content/0/text`,
/// `.../content/1/text`), one segment of the parts joined: the model reads them as one text, so
/// a phrase split over parts is found.
fn join_parts(segments: &mut Vec<Segment>) {
    fn parent(origin: &str) -> Option<&str> {
        let (head, last) = origin.rsplit_once('/')?;
        let (prefix, index) = head.rsplit_once('/')?;
        (index.parse::<usize>().is_ok() && matches!(last, "text" | "refusal" | "thinking")).then_some(prefix)
    }
    let mut joined: Vec<Segment> = Vec::new();
    let mut run: Option<(String, Role, String, usize)> = None;
    let flush = |run: &mut Option<(String, Role, String, usize)>, joined: &mut Vec<Segment>| {
        if let Some((prefix, role, text, n)) = run.take() {
            if n > 1 {
                joined.push(Segment { role, text, origin: format!("{JOINED_ORIGIN}{prefix}") });
            }
        }
    };
    for s in segments.iter() {
        let p = parent(&s.origin);
        match (&mut run, p) {
            (Some((prefix, role, text, n)), Some(p)) if prefix == p && *role == s.role => {
                text.push_str(&s.text);
                *n += 1;
            }
            (_, p) => {
                flush(&mut run, &mut joined);
                run = p.map(|p| (p.to_string(), s.role, s.text.clone(), 1));
            }
        }
    }
    flush(&mut run, &mut joined);
    segments.extend(joined);
}

/// The origin of the segment that holds a request's object keys.
const KEYS_ORIGIN: &str = "keys:";

fn unseen_name(kind: UnseenKind) -> &'static str {
    match kind {
        UnseenKind::Media => "media",
        UnseenKind::ProviderState => "provider_state",
    }
}

fn unseen_policy(config: &Config, kind: UnseenKind) -> UnseenPolicy {
    match kind {
        UnseenKind::Media => config.coverage.unreadable,
        UnseenKind::ProviderState => config.coverage.provider_state,
    }
}

/// Refuses a request holding what Warden cannot read, where the config says so.
fn unseen_refusal(config: &Config, request: &DecodedRequest) -> Result<(), ProxyError> {
    match request.unseen.iter().find(|u| unseen_policy(config, u.kind) == UnseenPolicy::Refuse) {
        Some(u) => Err(ProxyError::BadRequest(format!(
            "Warden cannot inspect the {} at `{}`, and this deployment refuses what it cannot inspect ({}: refuse)",
            match u.kind {
                UnseenKind::Media => "image, audio or file",
                UnseenKind::ProviderState => "conversation state kept by the provider",
            },
            u.pointer,
            match u.kind {
                UnseenKind::Media => "coverage.unreadable",
                UnseenKind::ProviderState => "coverage.provider_state",
            },
        ))),
        None => Ok(()),
    }
}

/// Flags the prompt decision for what Warden could not read, where the config says so: a
/// dashboard never counts such a request as fully inspected.
fn flag_unseen(config: &Config, request: &DecodedRequest, prompt: &mut Decision) {
    for kind in [UnseenKind::Media, UnseenKind::ProviderState] {
        let n = request.unseen.iter().filter(|u| u.kind == kind).count();
        if n == 0 || unseen_policy(config, kind) != UnseenPolicy::Flag {
            continue;
        }
        prompt.push(RuleHit {
            policy: "warden".into(),
            rule: match kind {
                UnseenKind::Media => "unreadable-content".into(),
                UnseenKind::ProviderState => "provider-state".into(),
            },
            detector: "coverage",
            action: Action::Flag,
            applied: Action::Flag,
            mode: Mode::Enforce,
            findings: Vec::new(),
            error: Some(format!("{n} part(s) of the request could not be inspected")),
        });
    }
}

fn response(status: http::StatusCode, headers: HeaderMap, body: ProxyBody, decision: Action) -> Response<ProxyBody> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    *r.headers_mut() = headers;
    set_decision(&mut r, decision);
    r
}

/// Writes the prompt's redactions back into the body, in place.
fn redact_request(mut json: Value, segments: &[Segment], keys: &KeyText, d: &Decision) -> Bytes {
    for (i, s) in segments.iter().enumerate() {
        let spans = d.redactions(i);
        if spans.is_empty() {
            continue;
        }
        if s.origin == KEYS_ORIGIN {
            keys.write_back(&mut json, &spans);
        } else if s.origin.starts_with(JOINED_ORIGIN) {
            continue;
        } else {
            sweep::write_segment(&mut json, s, &spans);
        }
    }
    Bytes::from(serde_json::to_vec(&json).unwrap_or_default())
}

/// Reads a whole upstream answer within the size limit and the idle timeout.
async fn read_upstream(mut resp: UpstreamResponse, limits: &crate::config::Limits) -> Result<Bytes, ProxyError> {
    let idle = Limits::ms(limits.stream_idle_timeout_ms);
    let mut buf = Vec::new();
    loop {
        match tokio::time::timeout(idle, resp.chunk()).await {
            Err(_) => {
                return Err(ProxyError::GatewayTimeout(format!(
                    "the upstream went silent for {idle:?} mid-answer (limits.stream_idle_timeout_ms)"
                )))
            }
            Ok(Err(e)) => {
                return Err(ProxyError::BadGateway(format!(
                    "the upstream broke off its answer: {}",
                    upstream::describe(&e)
                )))
            }
            Ok(Ok(None)) => return Ok(buf.into()),
            Ok(Ok(Some(b))) => {
                if buf.len() + b.len() > limits.max_response_bytes {
                    return Err(ProxyError::BadGateway(format!(
                        "the upstream's answer is larger than {} bytes (limits.max_response_bytes)",
                        limits.max_response_bytes
                    )));
                }
                buf.extend_from_slice(&b);
            }
        }
    }
}

/// Judges a whole completion and withholds or redacts in place. An unchanged answer is returned
/// byte for byte.
///
/// Every text the shape knows is judged, then every other string and key (the sweep). The
/// choices of every text that a rule blocks are withheld (all of them if the text is outside any
/// choice, or a detector failed), and the other choices get their redactions.
async fn guard_completion(
    shared: &Shared,
    shape: &dyn Shape,
    policies: &PolicySet,
    target: &Target<'_>,
    body: Bytes,
) -> Result<(Bytes, Decision, ResponseInfo), ProxyError> {
    let (mut json, texts) = shared
        .heavy(body.len(), || {
            let json: Value = crate::json::parse(&body).map_err(|_| {
                ProxyError::BadGateway("the upstream's answer is not JSON, so it cannot be inspected".into())
            })?;
            let texts = shape.judges_completion().then(|| completion::texts(shape, &json));
            Ok::<_, ProxyError>((json, texts))
        })
        .await??;
    let mut info = ResponseInfo::default();
    shape.response_info(None, &json, &mut info);
    let Some(texts) = texts else {
        return Ok((body, Decision::allow(Phase::Completion, policies.digest()), info));
    };
    let d = shared.evaluate(policies, Phase::Completion, target, &texts.pairs(), texts.split()).await?;
    if d.action < Action::Redact {
        return Ok((body, d, info));
    }
    completion::apply(shape, &mut json, &texts, &d);
    Ok((Bytes::from(serde_json::to_vec(&json).unwrap_or_default()), d, info))
}

/// Judges an upstream error body (its message is text a user sees): a blocked message is
/// replaced by an error in the provider's shape that says so; redactions are written in.
async fn guard_error_body(
    shared: &Shared,
    errors: ErrorShape,
    policies: &PolicySet,
    target: &Target<'_>,
    status: http::StatusCode,
    body: Bytes,
) -> Result<(Bytes, Decision), ProxyError> {
    let withheld = |hit: &RuleHit| {
        let message = format!(
            "the upstream answered {status} with an error message that Warden withheld: policy `{}`, rule `{}` ({} detector)",
            hit.policy, hit.rule, hit.detector
        );
        Bytes::from(errors.error_body(status, "upstream_error_withheld", &message).to_string())
    };
    match crate::json::parse(&body) {
        Ok(mut json) => {
            let (texts, keys) = sweep::sweep_completion(&json, &HashSet::new(), &|_| None);
            let pairs: Vec<(Role, &str)> = texts.iter().map(|t| (Role::Assistant, t.text.as_str())).collect();
            let split = Split { fragments_from: 0, structure_from: pairs.len(), keys_at: None };
            let d = shared.evaluate(policies, Phase::Completion, target, &pairs, split).await?;
            if let Some(hit) = d.blocking_hit() {
                return Ok((withheld(hit), d));
            }
            if d.action == Action::Redact {
                for (i, t) in texts.iter().enumerate() {
                    sweep::write_completion(&mut json, t, &d.redactions(i), Some(&keys));
                }
                return Ok((Bytes::from(serde_json::to_vec(&json).unwrap_or_default()), d));
            }
            Ok((body, d))
        }
        // Text the client may decode otherwise than Warden would: withheld.
        Err(_) if std::str::from_utf8(&body).is_err() => {
            let message = format!(
                "the upstream answered {status} with an error body that is not UTF-8, which Warden cannot inspect"
            );
            let d = Decision::allow(Phase::Completion, policies.digest());
            Ok((Bytes::from(errors.error_body(status, "upstream_error_withheld", &message).to_string()), d))
        }
        Err(_) => {
            let text = String::from_utf8_lossy(&body).into_owned();
            let split = Split { fragments_from: 0, structure_from: 1, keys_at: None };
            let d = shared
                .evaluate(policies, Phase::Completion, target, &[(Role::Assistant, text.as_str())], split)
                .await?;
            if let Some(hit) = d.blocking_hit() {
                return Ok((withheld(hit), d));
            }
            if d.action == Action::Redact {
                return Ok((Bytes::from(warden_core::decision::redact(&text, &d.redactions(0))), d));
            }
            Ok((body, d))
        }
    }
}

/// What bounds one stream end to end.
struct StreamBounds {
    /// Longest upstream silence.
    idle: Duration,
    /// The exchange's total deadline.
    deadline: tokio::time::Instant,
    /// Longest the client may leave released events unread.
    write: Duration,
    /// Upstream bytes the stream may carry.
    max_bytes: usize,
    /// Detector time the stream may use.
    budget: Duration,
}

/// Why a stream stopped early, for the record: the outcome and the message.
type Stop = (&'static str, String);

/// The spans a stream ends, and what it needs to fill them.
struct StreamTrace {
    telemetry: Arc<warden_telemetry::Telemetry>,
    policies: Arc<PolicySet>,
    /// `warden.guard completion`, for the whole stream.
    guard: warden_telemetry::SpanCx,
    /// The upstream call.
    client: warden_telemetry::SpanCx,
    status: u16,
}

/// Moves a streamed answer from the upstream through the stream guard to the client.
///
/// Every way a stream can run on is bounded: the upstream's silence, the total deadline, the
/// bytes it carries, the detector time it costs, and a client that stops reading. A client that
/// leaves is noticed at once, even while the guard holds events back, and the upstream is
/// released (dropped) then.
async fn pump(
    mut resp: UpstreamResponse,
    mut guard: StreamGuard,
    pool: Option<Arc<tokio::sync::Semaphore>>,
    tx: tokio::sync::mpsc::Sender<Bytes>,
    rec: Record,
    b: StreamBounds,
    trace: StreamTrace,
) {
    let started = rec.started();
    let mut sent_hash = Sha256::new();
    let mut recorded = false;
    let mut capture = telemetry::StreamCapture::new(&trace.telemetry, guard.shape(), &trace.client);
    let mut first_sent: Option<Duration> = None;
    let mut events_sent = 0usize;
    let mut carried = 0usize;
    let mut spent = Duration::ZERO;
    let mut stop: Option<Stop> = None;
    loop {
        let wait = b.idle.min(b.deadline.saturating_duration_since(tokio::time::Instant::now()));
        let next = tokio::select! {
            biased;
            _ = tx.closed() => {
                stop = Some(("client_gone", "the client went away mid-stream, or stopped reading it for limits.write_timeout_ms".into()));
                break;
            }
            next = tokio::time::timeout(wait, resp.chunk()) => next,
        };
        let mut out = match next {
            Ok(Ok(Some(chunk))) => {
                carried += chunk.len();
                if carried > b.max_bytes {
                    let m = format!(
                        "the upstream's stream passed {} bytes (limits.max_stream_bytes); it was cut",
                        b.max_bytes
                    );
                    stop = Some(("cut", m.clone()));
                    guard.fail(&m)
                } else {
                    judge(&pool, &mut spent, || guard.feed(&chunk)).await
                }
            }
            Ok(Ok(None)) => judge(&pool, &mut spent, || guard.finish()).await,
            Ok(Err(e)) => {
                let m = format!("the upstream broke off the stream: {}", upstream::describe(&e));
                stop = Some(("failed", m.clone()));
                guard.fail(&m)
            }
            Err(_) if tokio::time::Instant::now() >= b.deadline => {
                let m = "the exchange took longer than limits.total_timeout_ms; the stream was ended".to_string();
                stop = Some(("failed", m.clone()));
                guard.fail(&m)
            }
            Err(_) => {
                let m = format!("the upstream went silent for {:?} mid-stream (limits.stream_idle_timeout_ms)", b.idle);
                stop = Some(("failed", m.clone()));
                guard.fail(&m)
            }
        };
        if let Some(m) = guard.limit() {
            stop.get_or_insert(("cut", m.to_string()));
        } else if spent > b.budget && !out.done {
            let m = format!(
                "judging the stream took more than {:?} of detector time (limits.stream_detector_budget_ms); it was cut",
                b.budget
            );
            let mut end = guard.fail(&m);
            out.send.append(&mut end.send);
            out.done = true;
            stop = Some(("cut", m));
        }
        events_sent += out.send.len();
        // Events released together go out as one write.
        let batch = match out.send.len() {
            0 => None,
            1 => out.send.into_iter().next(),
            _ => Some(Bytes::from(out.send.concat())),
        };
        let mut batch = batch;
        // `fsync: always`: the stream's last bytes leave only once its record is on disk.
        if out.done && rec.durable() {
            record_stream(&rec, &guard, stop.clone(), first_sent, sent_hash.clone());
            recorded = true;
            if let Err(e) = rec.commit().await {
                let m = format!("the end of the answer was withheld: its audit record could not be written ({e})");
                batch = Some(guard.shape().stream_error(&m));
            }
        }
        if let Some(b) = &batch {
            sent_hash.update(b);
        }
        if let Some(batch) = batch {
            let left = b.deadline.saturating_duration_since(tokio::time::Instant::now());
            // Content capture reads back what the client got (a cheap clone of the bytes).
            let sent_copy = if capture.is_some() { batch.clone() } else { Bytes::new() };
            match tokio::time::timeout(b.write.min(left), tx.send(batch)).await {
                Ok(Ok(())) => {
                    first_sent.get_or_insert_with(|| started.elapsed());
                    if let Some(c) = capture.as_mut() {
                        c.sent(&sent_copy);
                    }
                }
                Ok(Err(_)) => {
                    stop.get_or_insert((
                        "client_gone",
                        "the client went away mid-stream, or stopped reading it for limits.write_timeout_ms".into(),
                    ));
                    break;
                }
                Err(_) => {
                    stop.get_or_insert((
                        "cut",
                        "the client stopped reading the stream (limits.write_timeout_ms); it was cut".into(),
                    ));
                    break;
                }
            }
        }
        if out.done {
            break;
        }
    }
    // The upstream is released before the record is written.
    drop(resp);
    let tel = &*trace.telemetry;
    telemetry::guard_done(tel, &trace.guard, &trace.policies, guard.decision());
    let first_token_s = first_sent.map(|d| d.as_secs_f64());
    telemetry::stream_figures(&trace.client, first_token_s, guard.held_events(), guard.withheld_bytes(), events_sent);
    if let Some(c) = capture {
        c.finish(tel, &trace.client, &guard.response_info().finish_reasons);
    }
    let upstream_error = stop.as_ref().filter(|(o, _)| *o == "failed").map(|(_, m)| m.as_str());
    telemetry::client_done(&trace.client, Some(trace.status), guard.response_info(), upstream_error, None);
    // Once committed (fsync: always, before the last bytes), the record is final.
    if !recorded {
        record_stream(&rec, &guard, stop, first_sent, sent_hash);
    }
}

/// What a stream's record says once it is over: its outcome, the completion decision, the
/// stream's figures, and (for the audit trail) the sha256 of every byte the client got.
fn record_stream(rec: &Record, guard: &StreamGuard, stop: Option<Stop>, first_sent: Option<Duration>, sent: Sha256) {
    if let Some((outcome, message)) = stop {
        rec.fail(outcome, message);
    }
    if guard.decision().action == Action::Block {
        rec.finish("refused");
    }
    rec.finish("answered");
    if rec.audited() {
        rec.texts(serde_json::json!({ "stream_sha256": hex::encode(sent.finalize()) }));
    }
    let mut d = rec.data();
    d.completion = Some(guard.decision().into());
    d.response = Some(guard.response_info().clone());
    d.first_token_ms = first_sent.map(|t| t.as_secs_f64() * 1000.0);
    d.events_held = guard.held_events();
    d.withheld_bytes = guard.withheld_bytes();
    d.unknown_events = guard.unknown_events();
    if guard.dropped_events() > 0 && d.error.is_none() {
        d.error = Some(format!("{} upstream events were not JSON and were dropped", guard.dropped_events()));
    }
}

/// Runs the stream guard on one piece, adding the time it took to `spent`. With costly detectors
/// (classifier, plugins) in play, it first waits for a permit of the detector pool and runs off
/// the runtime. A piece that took long makes the stream wait as long (see [`FAIR_SHARE_AFTER`]).
async fn judge<R>(pool: &Option<Arc<tokio::sync::Semaphore>>, spent: &mut Duration, f: impl FnOnce() -> R) -> R {
    let permit = match pool {
        Some(p) => Some(p.acquire().await.expect("the detector pool is never closed")),
        None => None,
    };
    let t = std::time::Instant::now();
    let r = match permit {
        Some(p) => on_thread(p, f),
        None => f(),
    };
    let took = t.elapsed();
    *spent += took;
    // A stream that keeps the guard busy (a flood of text to judge) gets at most half a core:
    // it waits as long as it worked, so other requests and /healthz keep their turn.
    if took > FAIR_SHARE_AFTER {
        tokio::time::sleep(took).await;
    }
    r
}

/// Judging one piece of a stream for longer than this makes the stream wait as long again.
const FAIR_SHARE_AFTER: Duration = Duration::from_millis(2);

/// Forwards a request on a `passthrough` path without inspection.
async fn passthrough(
    shared: &Shared,
    provider: Provider,
    parts: http::request::Parts,
    body: Incoming,
    rec: &Record,
) -> Result<Response<ProxyBody>, ProxyError> {
    let limits = &shared.config.limits;
    rec.data().provider = Some(provider.as_str());
    let raw = body::read_limited(body, &parts.headers, limits.max_body_bytes, Limits::ms(limits.body_read_timeout_ms))
        .await?;
    let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let resp = shared.upstreams.send(provider, parts.method.clone(), &pq, &parts.headers, raw, &[]).await?;
    let status = resp.status();
    rec.data().upstream_status = Some(status.as_u16());
    // The body goes out as it came, so its `Content-Encoding` does too (an encoding the client
    // decodes itself; gzip, deflate and brotli were decoded on the way in, and their header gone).
    let headers = upstream::filter_headers(resp.headers(), &["content-length"]);
    let body = read_upstream(resp, limits).await?;
    Ok(response(status, headers, full(body), Action::Allow))
}

/// Refuses an upstream answer in an encoding Warden cannot decode for inspection (the upstream
/// client decodes gzip, deflate and brotli itself, and removes their header).
fn undecodable(headers: &HeaderMap) -> Result<(), ProxyError> {
    match headers.get(http::header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()) {
        Some(e) if !e.trim().eq_ignore_ascii_case("identity") => Err(ProxyError::BadGateway(format!(
            "the upstream answered in Content-Encoding `{}`, which Warden cannot decode to inspect; \
             it was asked for `identity`",
            e.chars().take(64).collect::<String>()
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_never_contains_the_key() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer sk-secret-123".parse().unwrap());
        let t = tenant(&h, "x-warden-tenant");
        assert!(t.starts_with("key-") && !t.contains("secret"));
        h.insert("x-warden-tenant", "team-a".parse().unwrap());
        assert_eq!(tenant(&h, "x-warden-tenant"), "team-a");
        assert_eq!(tenant(&HeaderMap::new(), "x-warden-tenant"), "anonymous");
    }
}
