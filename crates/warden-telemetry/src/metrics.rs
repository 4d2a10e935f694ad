//! The Prometheus metrics the admin listener serves at `/metrics` (text format 0.0.4), kept with
//! the `prometheus-client` crate. Every label value is bounded: routes, providers, actions,
//! outcomes and detector kinds are Warden's own words; policy and rule names come from the
//! operator's policy files; a model name a client sends is kept only for the first
//! [`MAX_MODELS`] seen, later ones count as `other`.
//!
//! | metric | labels |
//! | --- | --- |
//! | `warden_requests_total` | route, provider, status, decision, outcome |
//! | `warden_rule_hits_total` | phase, policy, rule, action (applied), would (configured), mode |
//! | `warden_detector_duration_seconds` | detector |
//! | `warden_guard_duration_seconds` | phase |
//! | `warden_upstream_duration_seconds` | provider, model |
//! | `warden_time_to_first_token_seconds` | provider, model |
//! | `warden_tokens_total` | provider, model, kind (`input`, `output`) |
//! | `warden_streams_cut_total` | reason (`rule`, `limit`, `upstream`) |
//! | `warden_withheld_bytes_total` | |
//! | `warden_classifier_cache_total` | result (`hit`, `miss`) |
//! | `warden_plugin_errors_total` | kind |
//! | `warden_policy_reloads_total`, `warden_policy_reload_failures_total` | |
//! | `warden_policy_info` | digest, policies, rules |
//! | `warden_in_flight_requests` | |
//! | `warden_spans_dropped_total` | |

use parking_lot::RwLock;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::collections::HashSet;
use warden_core::stats::{self, PluginFailure};

/// Distinct model names kept as label values; later ones are `other`.
pub const MAX_MODELS: usize = 32;
/// Longer model names are `other`.
const MAX_MODEL_LEN: usize = 64;

/// `warden_requests_total` labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The API shape (`openai.chat`, ...), `passthrough`, or `none` when routing failed.
    pub route: &'static str,
    /// `openai`, `anthropic`, `azure`, `gemini` or `none`.
    pub provider: &'static str,
    /// The status sent.
    pub status: u16,
    /// The strongest action of the request (`allow`, `flag`, `redact`, `block`) or `none`.
    pub decision: &'static str,
    /// How it ended (`answered`, `refused`, `shed`...).
    pub outcome: &'static str,
}

/// `warden_rule_hits_total` labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabels {
    /// `prompt` or `completion`.
    pub phase: &'static str,
    /// The policy.
    pub policy: String,
    /// The rule.
    pub rule: String,
    /// The action applied.
    pub action: &'static str,
    /// The action the rule is configured with (what it would have done enforced).
    pub would: &'static str,
    /// `enforce` or `monitor`.
    pub mode: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DetectorLabels {
    detector: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    provider: &'static str,
    model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    provider: &'static str,
    model: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyInfoLabels {
    digest: String,
    policies: usize,
    rules: usize,
}

/// Every metric Warden keeps.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    rule_hits: Family<RuleLabels, Counter>,
    detector: Family<DetectorLabels, Histogram>,
    guard: Family<PhaseLabels, Histogram>,
    upstream: Family<ModelLabels, Histogram>,
    first_token: Family<ModelLabels, Histogram>,
    tokens: Family<TokenLabels, Counter>,
    cut: Family<ReasonLabels, Counter>,
    withheld: Counter,
    /// Policy reloads that swapped in a new set.
    pub reloads: Counter,
    /// Policy reloads refused (the previous set kept serving).
    pub reload_failures: Counter,
    policy_info: Family<PolicyInfoLabels, Gauge>,
    /// Requests in flight.
    pub in_flight: Gauge,
    /// Spans dropped before export.
    pub spans_dropped: Counter,
    /// Decision records shipped as OTLP logs that were dropped before export.
    pub records_dropped: Counter,
    audit_records: Counter,
    audit_shed: Counter,
    audit_failures: Counter,
    audit_failing: Gauge,
    models: RwLock<HashSet<String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("warden");
        let requests = Family::default();
        r.register("requests", "Requests, by route, provider, status sent, decision and outcome", requests.clone());
        let rule_hits = Family::default();
        r.register(
            "rule_hits",
            "Rules that fired, by phase, policy, rule, applied action, configured action and mode",
            rule_hits.clone(),
        );
        let fast = || Histogram::new(exponential_buckets(0.00001, 4.0, 11));
        let detector = Family::new_with_constructor(fast as fn() -> Histogram);
        r.register("detector_duration_seconds", "Time a detector kind spent on one request's phase", detector.clone());
        let guard = Family::new_with_constructor(fast as fn() -> Histogram);
        r.register("guard_duration_seconds", "Time one guard phase took to decide", guard.clone());
        let slow = || Histogram::new(exponential_buckets(0.005, 2.0, 14));
        let upstream = Family::new_with_constructor(slow as fn() -> Histogram);
        r.register("upstream_duration_seconds", "Upstream time to the response head", upstream.clone());
        let first_token = Family::new_with_constructor(slow as fn() -> Histogram);
        r.register(
            "time_to_first_token_seconds",
            "Streams: time from the request to the first event sent",
            first_token.clone(),
        );
        let tokens = Family::default();
        r.register("tokens", "Tokens the upstream reported, by provider, model and kind", tokens.clone());
        let cut = Family::default();
        r.register("streams_cut", "Streams ended early, by reason (rule, limit, upstream)", cut.clone());
        let withheld = Counter::default();
        r.register("withheld_bytes", "Bytes of streamed completions withheld from clients", withheld.clone());
        let reloads = Counter::default();
        r.register("policy_reloads", "Policy reloads that swapped in a new set", reloads.clone());
        let reload_failures = Counter::default();
        r.register(
            "policy_reload_failures",
            "Policy reloads refused (the previous set kept serving)",
            reload_failures.clone(),
        );
        let policy_info = Family::default();
        r.register("policy_info", "The active policy set", policy_info.clone());
        let in_flight = Gauge::default();
        r.register("in_flight_requests", "Requests in flight", in_flight.clone());
        let spans_dropped = Counter::default();
        r.register(
            "spans_dropped",
            "Spans dropped before export (queue full, export failed or timed out)",
            spans_dropped.clone(),
        );
        let records_dropped = Counter::default();
        r.register(
            "records_dropped",
            "Decision records shipped as OTLP logs dropped before export (queue full, export failed)",
            records_dropped.clone(),
        );
        let audit_records = Counter::default();
        r.register("audit_records", "Request records written to the audit trail", audit_records.clone());
        let audit_shed = Counter::default();
        r.register(
            "audit_shed",
            "Request records shed because the audit queue was full (named in the next checkpoint)",
            audit_shed.clone(),
        );
        let audit_failures = Counter::default();
        r.register(
            "audit_write_failures",
            "Audit trail writes that failed (full or read-only disk)",
            audit_failures.clone(),
        );
        let audit_failing = Gauge::default();
        r.register("audit_failing", "1 while the audit trail cannot be written", audit_failing.clone());
        r.register_collector(Box::new(DetectorStats));
        Metrics {
            registry: r,
            requests,
            rule_hits,
            detector,
            guard,
            upstream,
            first_token,
            tokens,
            cut,
            withheld,
            reloads,
            reload_failures,
            policy_info,
            in_flight,
            spans_dropped,
            records_dropped,
            audit_records,
            audit_shed,
            audit_failures,
            audit_failing,
            models: RwLock::new(HashSet::new()),
        }
    }

    /// The metrics as Prometheus text (format 0.0.4).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
            .expect("writing to a String does not fail");
        out
    }

    /// The `Content-Type` of [`Metrics::encode`].
    pub const CONTENT_TYPE: &'static str = "text/plain; version=0.0.4; charset=utf-8";

    /// One request ended.
    pub fn request(&self, labels: RequestLabels) {
        self.requests.get_or_create(&labels).inc();
    }

    /// One rule fired.
    pub fn rule_hit(&self, labels: RuleLabels) {
        self.rule_hits.get_or_create(&labels).inc();
    }

    /// A guard phase decided, after `total_us`, with `timings` per detector kind.
    pub fn guard(&self, phase: &'static str, total_us: u64, timings: &[(&'static str, u64)]) {
        self.guard.get_or_create(&PhaseLabels { phase }).observe(total_us as f64 / 1e6);
        for (detector, us) in timings {
            self.detector.get_or_create(&DetectorLabels { detector }).observe(*us as f64 / 1e6);
        }
    }

    /// The upstream answered its head after `secs`.
    pub fn upstream(&self, provider: &'static str, model: &str, secs: f64) {
        self.upstream.get_or_create(&ModelLabels { provider, model: self.model(model) }).observe(secs);
    }

    /// A stream's first event reached the client `secs` after the request began.
    pub fn first_token(&self, provider: &'static str, model: &str, secs: f64) {
        self.first_token.get_or_create(&ModelLabels { provider, model: self.model(model) }).observe(secs);
    }

    /// Tokens the upstream reported.
    pub fn tokens(&self, provider: &'static str, model: &str, input: Option<u64>, output: Option<u64>) {
        let model = self.model(model);
        for (kind, n) in [("input", input), ("output", output)] {
            if let Some(n) = n {
                self.tokens.get_or_create(&TokenLabels { provider, model: model.clone(), kind }).inc_by(n);
            }
        }
    }

    /// A stream ended early.
    pub fn stream_cut(&self, reason: &'static str) {
        self.cut.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// Bytes withheld from a client.
    pub fn withheld(&self, bytes: usize) {
        if bytes > 0 {
            self.withheld.inc_by(bytes as u64);
        }
    }

    /// The audit trail's counts, read at scrape time.
    pub fn audit(&self, records: u64, shed: u64, failures: u64, failing: bool) {
        let catch_up = |c: &Counter, v: u64| {
            let now = c.get();
            if v > now {
                c.inc_by(v - now);
            }
        };
        catch_up(&self.audit_records, records);
        catch_up(&self.audit_shed, shed);
        catch_up(&self.audit_failures, failures);
        self.audit_failing.set(failing as i64);
    }

    /// The active policy set changed.
    pub fn policy_set(&self, digest: &str, policies: usize, rules: usize) {
        self.policy_info.clear();
        self.policy_info.get_or_create(&PolicyInfoLabels { digest: digest.to_string(), policies, rules }).set(1);
    }

    /// The label for a model name: itself while fewer than [`MAX_MODELS`] are known, else `other`.
    pub fn model(&self, model: &str) -> String {
        if model.is_empty() {
            return "none".into();
        }
        if model.len() > MAX_MODEL_LEN || !model.bytes().all(|b| b.is_ascii_graphic()) {
            return "other".into();
        }
        if self.models.read().contains(model) {
            return model.to_string();
        }
        let mut known = self.models.write();
        if known.len() < MAX_MODELS {
            known.insert(model.to_string());
            return model.to_string();
        }
        if known.contains(model) {
            model.to_string()
        } else {
            "other".into()
        }
    }
}

/// The detectors' own counters ([`warden_core::stats`]), read at each scrape.
#[derive(Debug)]
struct DetectorStats;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

impl Collector for DetectorStats {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use std::sync::atomic::Ordering::Relaxed;
        let hit = ConstCounter::new(stats::CLASSIFIER_CACHE_HITS.load(Relaxed));
        let miss = ConstCounter::new(stats::CLASSIFIER_CACHE_MISSES.load(Relaxed));
        let mut m = encoder.encode_descriptor(
            "classifier_cache",
            "Classifier results served from its cache (hit) or computed (miss)",
            None,
            hit.metric_type(),
        )?;
        hit.encode(m.encode_family(&ResultLabels { result: "hit" })?)?;
        miss.encode(m.encode_family(&ResultLabels { result: "miss" })?)?;
        let mut m = encoder.encode_descriptor(
            "plugin_errors",
            "Plugin calls that failed, by kind",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for kind in PluginFailure::ALL {
            let c = ConstCounter::new(stats::plugin_failures(kind));
            c.encode(m.encode_family(&KindLabels { kind: kind.as_str() })?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_labels_are_bounded() {
        let m = Metrics::new();
        for i in 0..MAX_MODELS {
            assert_eq!(m.model(&format!("model-{i}")), format!("model-{i}"));
        }
        assert_eq!(m.model("one-too-many"), "other");
        assert_eq!(m.model("model-3"), "model-3");
        assert_eq!(m.model(&"x".repeat(65)), "other");
        assert_eq!(m.model("bad\nname"), "other");
        assert_eq!(m.model(""), "none");
    }

    #[test]
    fn the_text_names_every_family_and_counts() {
        let m = Metrics::new();
        m.request(RequestLabels {
            route: "openai.chat",
            provider: "openai",
            status: 200,
            decision: "allow",
            outcome: "answered",
        });
        m.request(RequestLabels {
            route: "openai.chat",
            provider: "openai",
            status: 200,
            decision: "allow",
            outcome: "answered",
        });
        m.guard("prompt", 120, &[("phrases", 40), ("classifier", 70)]);
        m.policy_set("abc", 2, 5);
        m.spans_dropped.inc();
        let text = m.encode();
        assert!(
            text.contains(r#"warden_requests_total{route="openai.chat",provider="openai",status="200",decision="allow",outcome="answered"} 2"#),
            "{text}"
        );
        assert!(text.contains(r#"warden_detector_duration_seconds_count{detector="classifier"} 1"#), "{text}");
        assert!(text.contains(r#"warden_policy_info{digest="abc",policies="2",rules="5"} 1"#), "{text}");
        assert!(text.contains("warden_spans_dropped_total 1"), "{text}");
        // The collector's families get the registry's prefix once.
        assert!(text.lines().any(|l| l.starts_with(r#"warden_classifier_cache_total{result="hit"}"#)), "{text}");
        assert!(text.lines().any(|l| l.starts_with(r#"warden_plugin_errors_total{kind="timeout"}"#)), "{text}");
        assert!(!text.contains("warden_warden_"), "{text}");
        m.policy_set("def", 2, 5);
        assert!(!m.encode().contains("digest=\"abc\""));
    }
}
