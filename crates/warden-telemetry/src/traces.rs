//! Traces: the tracer provider (OTLP over HTTP/protobuf or gRPC, batched), the W3C trace context
//! in and out, and [`SpanCx`], the handle the proxy's stages hold a span by.
//!
//! Export never blocks a request. Ended spans go to a bounded queue that a background thread
//! drains in batches; when the queue is full (a slow or absent collector) a span is dropped, and
//! when an export fails or times out its batch is dropped. Both are counted
//! (`warden_spans_dropped_total`) and logged once.

use crate::config::{process_env, Protocol, TelemetryConfig};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanKind, TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider, SpanData, SpanExporter,
    SpanProcessor,
};
use opentelemetry_sdk::Resource;
use prometheus_client::metrics::counter::Counter;
use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The running trace pipeline.
pub struct Traces {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    propagator: TraceContextPropagator,
}

impl Traces {
    /// Starts the pipeline described by `config` and the `OTEL_*` variables; `None` when traces
    /// are off. `dropped` counts the spans that never reach the collector.
    ///
    /// Call it inside the Tokio runtime: the gRPC exporter's connection runs on it.
    pub fn start(config: &TelemetryConfig, dropped: Counter) -> Result<Option<Traces>, String> {
        config.validate()?;
        if !config.traces_on(&process_env) {
            return Ok(None);
        }
        let protocol = config.protocol(&process_env)?;
        let endpoint = config.endpoint(protocol)?;
        let exporter =
            otlp_exporter!(opentelemetry_otlp::SpanExporter, protocol, endpoint.as_deref(), config, "trace")?;
        let queue = Arc::new(Queue {
            pending: AtomicUsize::new(0),
            max: config.max_queue,
            dropped,
            warned: AtomicBool::new(false),
            what: "spans (warden_spans_dropped_total)",
        });
        // The OTEL_BSP_* variables are read by the builder; Warden exports every 500 ms unless
        // OTEL_BSP_SCHEDULE_DELAY says otherwise.
        let mut batch = BatchConfigBuilder::default()
            .with_max_queue_size(config.max_queue)
            .with_max_export_batch_size(config.max_queue.min(512));
        if process_env("OTEL_BSP_SCHEDULE_DELAY").is_none() {
            batch = batch.with_scheduled_delay(Duration::from_millis(500));
        }
        let batch = batch.build();
        let processor = BatchSpanProcessor::new(Counted { inner: exporter, queue: Arc::clone(&queue) }, batch);
        let resource = resource(config);
        let mut builder = SdkTracerProvider::builder()
            .with_span_processor(Bounded { inner: processor, queue })
            .with_resource(resource);
        if let Some(name) = &config.sampler {
            builder = builder.with_sampler(sampler(name, config.sampler_arg).expect("validated"));
        }
        let provider = builder.build();
        let tracer = provider.tracer_with_scope(
            opentelemetry::InstrumentationScope::builder("warden").with_version(env!("CARGO_PKG_VERSION")).build(),
        );
        tracing::info!(
            protocol = match protocol {
                Protocol::HttpProtobuf => "http/protobuf",
                Protocol::Grpc => "grpc",
            },
            endpoint = endpoint.as_deref().unwrap_or("from OTEL_EXPORTER_OTLP_* or the default"),
            "exporting traces"
        );
        Ok(Some(Traces { provider, tracer, propagator: TraceContextPropagator::new() }))
    }

    /// The tracer.
    pub fn tracer(&self) -> &SdkTracer {
        &self.tracer
    }

    /// The caller's trace context from a request's `traceparent` / `tracestate` headers (an
    /// empty context when there is none or it is malformed).
    pub fn extract(&self, headers: &http::HeaderMap) -> Context {
        self.propagator.extract(&opentelemetry_http::HeaderExtractor(headers))
    }

    /// Exports what is queued and stops, waiting at most `timeout`.
    pub fn shutdown(&self, timeout: Duration) {
        if let Err(e) = self.provider.shutdown_with_timeout(timeout) {
            tracing::warn!("traces were not all exported at shutdown: {e}");
        }
    }
}

/// The resource of everything Warden exports: `service.name` (the file's, the environment's or
/// `warden`), `service.version`, and what `OTEL_RESOURCE_ATTRIBUTES` adds.
pub(crate) fn resource(config: &TelemetryConfig) -> Resource {
    let mut resource = Resource::builder();
    if let Some(name) = config.service_name(&process_env) {
        resource = resource.with_service_name(name);
    }
    resource.with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION"))).build()
}

/// A sampler by its `OTEL_TRACES_SAMPLER` name.
pub fn sampler(name: &str, arg: Option<f64>) -> Option<Sampler> {
    let ratio = arg.unwrap_or(1.0);
    Some(match name.trim() {
        "always_on" => Sampler::AlwaysOn,
        "always_off" => Sampler::AlwaysOff,
        "traceidratio" => Sampler::TraceIdRatioBased(ratio),
        "parentbased_always_on" => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        "parentbased_always_off" => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        "parentbased_traceidratio" => Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio))),
        _ => return None,
    })
}

/// Builds an OTLP exporter of one signal (`SpanExporter`, `LogExporter`: their builders share
/// the method names) for `protocol`, with the endpoint, timeout and headers of `config`. HTTP
/// uses the blocking client: the batch processor exports from its own thread, where an async
/// client finds no runtime.
macro_rules! otlp_exporter {
    ($exporter:ty, $protocol:expr, $endpoint:expr, $config:expr, $what:literal) => {{
        use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
        let (protocol, endpoint, config): (Protocol, Option<&str>, &TelemetryConfig) = ($protocol, $endpoint, $config);
        let timeout = config.timeout_ms.map(std::time::Duration::from_millis);
        let built = match protocol {
            Protocol::HttpProtobuf => {
                let mut b = <$exporter>::builder().with_http().with_protocol(opentelemetry_otlp::Protocol::HttpBinary);
                if let Some(e) = endpoint {
                    b = b.with_endpoint(e);
                }
                if let Some(t) = timeout {
                    b = b.with_timeout(t);
                }
                if !config.headers.is_empty() {
                    b = b.with_headers(config.headers.clone().into_iter().collect());
                }
                b.build()
            }
            Protocol::Grpc => {
                let mut b = <$exporter>::builder().with_tonic();
                if let Some(e) = endpoint {
                    b = b.with_endpoint(e);
                }
                if let Some(t) = timeout {
                    b = b.with_timeout(t);
                }
                if !config.headers.is_empty() {
                    b = b.with_metadata($crate::traces::metadata(&config.headers)?);
                }
                b.build()
            }
        };
        built.map_err(|e| {
            format!(concat!("cannot set up the ", $what, " exporter: {} (telemetry: or OTEL_EXPORTER_OTLP_*)"), e)
        })
    }};
}
pub(crate) use otlp_exporter;

/// `telemetry.headers` as gRPC metadata.
pub(crate) fn metadata(
    headers: &std::collections::BTreeMap<String, String>,
) -> Result<opentelemetry_otlp::tonic_types::metadata::MetadataMap, String> {
    let mut map = http::HeaderMap::new();
    for (k, v) in headers {
        let name = http::HeaderName::from_bytes(k.as_bytes()).map_err(|e| format!("telemetry.headers `{k}`: {e}"))?;
        let value =
            http::HeaderValue::from_str(v).map_err(|_| format!("telemetry.headers `{k}`: not a valid header value"))?;
        map.insert(name, value);
    }
    Ok(opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(map))
}

/// The items (spans, log records) between "ended" and "exported or dropped", shared by the
/// processor and exporter wrappers.
#[derive(Debug)]
pub(crate) struct Queue {
    pub(crate) pending: AtomicUsize,
    pub(crate) max: usize,
    pub(crate) dropped: Counter,
    pub(crate) warned: AtomicBool,
    /// What is dropped, and the metric that counts it (for the warning).
    pub(crate) what: &'static str,
}

impl Queue {
    /// Takes a place in the queue, or counts a drop when it is full.
    pub(crate) fn admit(&self) -> bool {
        if self.pending.fetch_add(1, Ordering::AcqRel) >= self.max {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            self.drop_items(1, "the export queue is full: the collector is slow or unreachable");
            return false;
        }
        true
    }

    /// An export of `n` items ended; counts them dropped if it failed.
    pub(crate) fn exported(&self, n: usize, result: &OTelSdkResult) {
        self.pending.fetch_sub(n.min(self.pending.load(Ordering::Acquire)), Ordering::AcqRel);
        if let Err(e) = result {
            self.drop_items(n, &format!("an export failed: {e}"));
        }
    }

    fn drop_items(&self, n: usize, why: &str) {
        self.dropped.inc_by(n as u64);
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "{} are being dropped ({why}); requests are not slowed; the metric counts them (this is logged once)",
                self.what
            );
        }
    }
}

/// The batch processor, with a bound Warden can count: a span that finds the queue full is
/// dropped here, before the batch processor would drop it uncounted.
#[derive(Debug)]
struct Bounded {
    inner: BatchSpanProcessor,
    queue: Arc<Queue>,
}

impl SpanProcessor for Bounded {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        if self.queue.admit() {
            self.inner.on_end(span);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The OTLP exporter, counting the batches that fail (refused, unreachable, timed out).
#[derive(Debug)]
struct Counted<E> {
    inner: E,
    queue: Arc<Queue>,
}

impl<E: SpanExporter> SpanExporter for Counted<E> {
    fn export(&self, batch: Vec<SpanData>) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let n = batch.len();
        let export = self.inner.export(batch);
        let queue = Arc::clone(&self.queue);
        async move {
            let result = export.await;
            queue.exported(n, &result);
            result
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// One span, held by the stage it times, or nothing when traces are off or the trace is not
/// sampled: every method is then free.
#[derive(Clone, Default)]
pub struct SpanCx(Option<Context>);

impl SpanCx {
    /// No span.
    pub fn none() -> Self {
        SpanCx(None)
    }

    /// Starts a root-or-continued span: the child of `parent` (the caller's context).
    pub fn start(tracer: &SdkTracer, name: impl Into<Cow<'static, str>>, kind: SpanKind, parent: &Context) -> Self {
        // A span the sampler drops is not recording, but its context still propagates.
        let span = tracer.span_builder(name).with_kind(kind).start_with_context(tracer, parent);
        SpanCx(Some(parent.with_span(span)))
    }

    /// Starts a child of this span.
    pub fn child(&self, tracer: Option<&SdkTracer>, name: impl Into<Cow<'static, str>>, kind: SpanKind) -> Self {
        match (&self.0, tracer) {
            (Some(cx), Some(t)) => SpanCx::start(t, name, kind, cx),
            _ => SpanCx(None),
        }
    }

    /// Whether attributes set now are recorded.
    pub fn recording(&self) -> bool {
        self.0.as_ref().is_some_and(|cx| cx.span().is_recording())
    }

    /// Sets attributes.
    pub fn set(&self, attributes: impl IntoIterator<Item = KeyValue>) {
        if let Some(cx) = &self.0 {
            cx.span().set_attributes(attributes);
        }
    }

    /// Renames the span (once the route is known).
    pub fn rename(&self, name: impl Into<Cow<'static, str>>) {
        if let Some(cx) = &self.0 {
            cx.span().update_name(name);
        }
    }

    /// Adds an event.
    pub fn event(&self, name: impl Into<Cow<'static, str>>, attributes: Vec<KeyValue>) {
        if let Some(cx) = &self.0 {
            cx.span().add_event(name, attributes);
        }
    }

    /// Marks the span failed.
    pub fn error(&self, description: impl Into<Cow<'static, str>>) {
        if let Some(cx) = &self.0 {
            cx.span().set_status(opentelemetry::trace::Status::error(description));
        }
    }

    /// Ends the span now (later calls do nothing).
    pub fn end(&self) {
        if let Some(cx) = &self.0 {
            cx.span().end();
        }
    }

    /// Ends the span at `at`.
    pub fn end_at(&self, at: SystemTime) {
        if let Some(cx) = &self.0 {
            cx.span().end_with_timestamp(at);
        }
    }

    /// The trace and span ids in hex, when there is a valid span.
    pub fn ids(&self) -> Option<(String, String)> {
        let cx = self.0.as_ref()?;
        let sc = cx.span().span_context().clone();
        sc.is_valid().then(|| (sc.trace_id().to_string(), sc.span_id().to_string()))
    }

    /// The trace id in hex, when there is a valid span.
    pub fn trace_id(&self) -> Option<String> {
        let cx = self.0.as_ref()?;
        let sc = cx.span().span_context().clone();
        sc.is_valid().then(|| sc.trace_id().to_string())
    }

    /// Writes this span's context into `headers` as `traceparent` (and `tracestate`), replacing
    /// what was there; does nothing without a span.
    pub fn inject(&self, headers: &mut http::HeaderMap) {
        if let Some(cx) = &self.0 {
            if cx.span().span_context().is_valid() {
                headers.remove("traceparent");
                headers.remove("tracestate");
                TraceContextPropagator::new().inject_context(cx, &mut opentelemetry_http::HeaderInjector(headers));
                // No trace state is no header (W3C: an empty `tracestate` should not be sent).
                if headers.get("tracestate").is_some_and(|v| v.is_empty()) {
                    headers.remove("tracestate");
                }
            }
        }
    }
}
