//! The `record` stage: one structured line per request, written when the request is over,
//! whichever way it ended (answered, refused, failed, shed, cut, or the client went away).
//! Nothing is lost: the record is emitted when its last handle is dropped, so a request that
//! ends by a panic or a vanished client is recorded too. The record layer
//! ([`crate::layers::record`]) starts it; the layers inside and the spine fill it in.
//!
//! A record never holds prompt or completion text, an API key or an `Authorization` header: it
//! holds the decision (policies, rules, detectors, labels of what matched, byte spans) and the
//! tenant, which is a header value or a hash of the key.
//!
//! When the request is over the record feeds its sinks, in [`crate::telemetry::finish`]: the
//! decision record line (target `warden::record`, which no log filter switches off), the access
//! log line, the request's metrics, and the end of its SERVER span.

use crate::shape::ResponseInfo;
use parking_lot::{MappedMutexGuard, Mutex, MutexGuard};
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;
use warden_core::{Action, Decision};
use warden_telemetry::{SpanCx, Telemetry};

/// A decision, as recorded.
#[derive(Debug, Clone, Serialize)]
pub struct DecisionRecord {
    /// The strongest applied action.
    pub action: Action,
    /// Rules that fired.
    pub rules: Vec<RuleRecord>,
    /// Microseconds spent deciding.
    pub elapsed_us: u64,
}

/// One rule that fired, as recorded.
#[derive(Debug, Clone, Serialize)]
pub struct RuleRecord {
    /// `policy/rule`.
    pub id: String,
    /// The detector kind.
    pub detector: &'static str,
    /// Configured action.
    pub action: Action,
    /// Applied action (monitor caps at flag).
    pub applied: Action,
    /// `enforce` or `monitor`.
    pub mode: warden_core::Mode,
    /// What matched (phrases as listed, pattern sources, invisible classes).
    pub labels: Vec<String>,
    /// How many findings.
    pub findings: usize,
    /// The highest finding score.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
    /// Where the first findings are: `[text index, start byte, end byte]` (16 at most).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub spans: Vec<[usize; 3]>,
    /// The detector error, if it failed.
    pub error: Option<String>,
}

impl From<&Decision> for DecisionRecord {
    fn from(d: &Decision) -> Self {
        DecisionRecord {
            action: d.action,
            elapsed_us: d.elapsed_us,
            rules: d
                .hits
                .iter()
                .map(|h| {
                    let mut labels: Vec<String> = h.findings.iter().map(|f| f.label.clone()).collect();
                    labels.dedup();
                    RuleRecord {
                        id: format!("{}/{}", h.policy, h.rule),
                        detector: h.detector,
                        action: h.action,
                        applied: h.applied,
                        mode: h.mode,
                        labels,
                        findings: h.findings.len(),
                        score: h.findings.iter().map(|f| f.score).reduce(f32::max),
                        spans: h.findings.iter().take(16).map(|f| [f.segment, f.span.start, f.span.end]).collect(),
                        error: h.error.clone(),
                    }
                })
                .collect(),
        }
    }
}

/// Everything recorded about one request.
#[derive(Debug, Serialize, Default)]
pub struct RecordData {
    /// The request id (also in `x-warden-request-id`).
    pub request_id: String,
    /// HTTP method.
    pub method: String,
    /// Request path.
    pub path: String,
    /// The route template (`/v1/chat/completions`, `/openai/deployments/{deployment}/chat/completions`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// The trace id, when the request is traced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// The upstream provider: `openai`, `anthropic`, `azure` or `gemini`.
    pub provider: Option<&'static str>,
    /// The API shape (`openai.chat`, `openai.responses`, `anthropic.messages`...).
    pub api: Option<&'static str>,
    /// What the request held that Warden could not read (`media at /messages/0/content/1`,
    /// `provider_state at /previous_response_id`): the prompt decision did not cover it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unseen: Vec<String>,
    /// Stream events of a type the API shape does not know (judged, dropped or cut by
    /// `coverage.unknown_events`).
    #[serde(skip_serializing_if = "is_zero")]
    pub unknown_events: usize,
    /// The model requested.
    pub model: Option<String>,
    /// The tenant (never the key).
    pub tenant: Option<String>,
    /// Whether the answer was streamed.
    pub stream: bool,
    /// The digest of the policy set that decided.
    pub policy_digest: Option<String>,
    /// The prompt decision.
    pub prompt: Option<DecisionRecord>,
    /// The completion decision.
    pub completion: Option<DecisionRecord>,
    /// Bytes of streamed completion withheld from the client by a block.
    pub withheld_bytes: usize,
    /// The upstream's status code.
    pub upstream_status: Option<u16>,
    /// What the answer said of itself (id, model, tokens, finish reasons).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<ResponseInfo>,
    /// Milliseconds the upstream took to its response head.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_ms: Option<f64>,
    /// Streams: milliseconds from the request to the first event sent to the client.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_token_ms: Option<f64>,
    /// Streams: events the guard held back before releasing (or withholding) them.
    #[serde(skip_serializing_if = "is_zero")]
    pub events_held: usize,
    /// The status sent to the client.
    pub status: u16,
    /// `answered`, `refused`, `rejected` (bad request), `failed`, `client_gone`, `shed` (turned
    /// away at capacity, before any judgement) or `cut` (a stream ended by a limit).
    pub outcome: &'static str,
    /// What failed.
    pub error: Option<String>,
    /// Wall time in milliseconds.
    pub duration_ms: f64,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// A record in progress, shared by the layers and the stage that fills it in (the stream's task,
/// for a streamed answer); emitted when the last handle is dropped.
#[derive(Clone)]
pub struct Record(Arc<Mutex<Open>>);

/// The record's data and when its request began.
pub(crate) struct Open {
    pub(crate) data: RecordData,
    pub(crate) started: Instant,
    /// The outcome is decided later, by the task that streams the answer.
    streaming: bool,
    /// The request's SERVER span (nothing when traces are off).
    pub(crate) span: SpanCx,
    /// Where the record's metrics go.
    pub(crate) telemetry: Option<Arc<Telemetry>>,
    /// The audit trail, if there is one.
    pub(crate) trail: Option<Arc<warden_audit::Trail>>,
    /// What the trail records of the texts (hashes, excerpts or the texts, by `audit.privacy`);
    /// never in the log line.
    pub(crate) texts: Option<serde_json::Value>,
    /// Which requests the trail records.
    pub(crate) findings_only: bool,
    /// The record went to its sinks already (committed before the answer was released).
    committed: bool,
}

impl Record {
    /// Starts the record of a request, with its SERVER span and the telemetry it reports to.
    pub fn start(
        request_id: String,
        method: &str,
        path: &str,
        span: SpanCx,
        telemetry: Option<Arc<Telemetry>>,
    ) -> Self {
        Self::with_trail(request_id, method, path, span, telemetry, None)
    }

    /// Starts the record of a request that the audit trail records too (`true`: only requests
    /// with a finding, and failures).
    pub fn with_trail(
        request_id: String,
        method: &str,
        path: &str,
        span: SpanCx,
        telemetry: Option<Arc<Telemetry>>,
        trail: Option<(Arc<warden_audit::Trail>, bool)>,
    ) -> Self {
        let data = RecordData {
            request_id,
            method: method.to_string(),
            path: path.to_string(),
            trace_id: span.trace_id(),
            ..Default::default()
        };
        let (trail, findings_only) = match trail {
            Some((t, f)) => (Some(t), f),
            None => (None, false),
        };
        Record(Arc::new(Mutex::new(Open {
            data,
            started: Instant::now(),
            streaming: false,
            span,
            telemetry,
            trail,
            texts: None,
            findings_only,
            committed: false,
        })))
    }

    /// Whether a stream's task decides the outcome.
    pub fn is_streaming(&self) -> bool {
        self.0.lock().streaming
    }

    /// Sets what the trail records of the texts.
    pub fn texts(&self, texts: serde_json::Value) {
        let mut o = self.0.lock();
        match (o.texts.as_mut().and_then(|t| t.as_object_mut()), texts) {
            (Some(have), serde_json::Value::Object(more)) => have.extend(more),
            (_, t) => o.texts = Some(t),
        }
    }

    /// Whether an audit trail records this request.
    pub fn audited(&self) -> bool {
        self.0.lock().trail.is_some()
    }

    /// Whether the trail waits for the disk before an answer is released (`fsync: always`).
    pub fn durable(&self) -> bool {
        self.0.lock().trail.as_ref().is_some_and(|t| t.durable())
    }

    /// The record's last stage, now rather than when the last handle goes: the record goes to
    /// its sinks (trail, span, metrics, logs) with the outcome it has (`answered` if none). With
    /// `fsync: always`, returns once the trail has it on disk, or why it could not; the caller
    /// then withholds the answer. Later calls, and the drop, do nothing.
    pub async fn commit(&self) -> Result<(), String> {
        let ack = {
            let mut o = self.0.lock();
            if o.committed {
                return Ok(());
            }
            if o.data.outcome.is_empty() {
                o.data.outcome = "answered";
            }
            o.committed = true;
            o.data.duration_ms = o.started.elapsed().as_secs_f64() * 1000.0;
            crate::telemetry::finish(&mut o)
        };
        match ack {
            Some(rx) => match tokio::time::timeout(DURABLE_WAIT, rx).await {
                Ok(Ok(Ok(()))) => Ok(()),
                Ok(Ok(Err(e))) => Err(e),
                Ok(Err(_)) => Err("the audit writer stopped".into()),
                Err(_) => Err(format!("the audit trail did not confirm the record within {DURABLE_WAIT:?}")),
            },
            None => Ok(()),
        }
    }

    /// The request's SERVER span, to start children of.
    pub fn span(&self) -> SpanCx {
        self.0.lock().span.clone()
    }

    /// When the request began.
    pub fn started(&self) -> Instant {
        self.0.lock().started
    }

    /// The data, to fill in. Hold the guard for a statement, never across an `.await`.
    pub fn data(&self) -> MappedMutexGuard<'_, RecordData> {
        MutexGuard::map(self.0.lock(), |o| &mut o.data)
    }

    /// Hands the outcome to the task that streams the answer: [`Record::answered`] leaves it
    /// alone from now on.
    pub fn streaming(&self) {
        self.0.lock().streaming = true;
    }

    /// The response left Warden: sets the status sent, and the outcome `answered` unless one is
    /// set already or a stream still decides it.
    pub fn answered(&self, status: u16) {
        let mut o = self.0.lock();
        if o.data.status == 0 {
            o.data.status = status;
        }
        if !o.streaming && o.data.outcome.is_empty() {
            o.data.outcome = "answered";
        }
    }

    /// Sets the outcome unless one is set already (a refusal or failure stays).
    pub fn finish(&self, outcome: &'static str) {
        let mut o = self.0.lock();
        if o.data.outcome.is_empty() {
            o.data.outcome = outcome;
        }
    }

    /// Marks the request failed.
    pub fn fail(&self, outcome: &'static str, error: impl Into<String>) {
        let mut d = self.data();
        d.outcome = outcome;
        d.error = Some(error.into());
    }
}

/// How long an answer waits for its record to be on disk (`fsync: always`) before it is refused.
const DURABLE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

impl Drop for Open {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        // Never given an outcome: the request's future was dropped, which hyper does when the
        // client goes away before the answer.
        if self.data.outcome.is_empty() {
            self.data.outcome = "client_gone";
            self.data.error.get_or_insert_with(|| "the client went away before the answer".into());
        }
        self.data.duration_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        let _ = crate::telemetry::finish(self);
    }
}
