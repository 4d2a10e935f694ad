//! The trace layer: starts the request's SERVER span, continuing the caller's W3C trace context
//! (`traceparent`, `tracestate`), with the HTTP attributes known before routing; and wraps the
//! request in a `tracing` span (`request{request_id trace_id}`), so every log line written while
//! it is served names both. The span travels in the request's extensions to the record layer,
//! which ends it when the request is over.

use crate::proxy::REQUEST_ID_HEADER;
use http::{Request, Response};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service};
use tracing::Instrument;
use warden_telemetry::names as n;
use warden_telemetry::{KeyValue, Telemetry};

/// Adds the trace layer.
#[derive(Clone)]
pub struct TraceLayer {
    telemetry: Arc<Telemetry>,
}

impl TraceLayer {
    /// A trace layer reporting to `telemetry`.
    pub fn new(telemetry: Arc<Telemetry>) -> Self {
        Self { telemetry }
    }
}

impl<S> Layer<S> for TraceLayer {
    type Service = TraceService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        TraceService { inner, telemetry: Arc::clone(&self.telemetry) }
    }
}

/// See [`TraceLayer`].
#[derive(Clone)]
pub struct TraceService<S> {
    inner: S,
    telemetry: Arc<Telemetry>,
}

impl<S, B, R> Service<Request<B>> for TraceService<S>
where
    S: Service<Request<B>, Response = Response<R>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response<R>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let method = req.method().as_str();
        // Named by the method until the route is known (never by the raw path).
        let span = self.telemetry.server_span(method.to_string(), req.headers());
        if span.recording() {
            let version = match req.version() {
                http::Version::HTTP_2 => "2",
                http::Version::HTTP_10 => "1.0",
                _ => "1.1",
            };
            let mut attrs = vec![
                KeyValue::new(n::HTTP_METHOD, method.to_string()),
                KeyValue::new(n::URL_PATH, req.uri().path().chars().take(256).collect::<String>()),
                KeyValue::new(n::URL_SCHEME, "http"),
                KeyValue::new(n::NETWORK_PROTOCOL_VERSION, version),
            ];
            if let Some(ua) = req.headers().get(http::header::USER_AGENT).and_then(|v| v.to_str().ok()) {
                attrs.push(KeyValue::new(n::USER_AGENT, ua.chars().take(256).collect::<String>()));
            }
            span.set(attrs);
        }
        let id = req.headers().get(REQUEST_ID_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let log_span = tracing::info_span!(
            "request",
            request_id = %id,
            trace_id = %span.trace_id().unwrap_or_default()
        );
        req.extensions_mut().insert(span);
        let fut = self.inner.call(req);
        Box::pin(fut.instrument(log_span))
    }
}
