//! The record layer: starts the request's [`Record`] (holding the SERVER span of the trace
//! layer) and works out the provider's error shape
//! from the path and headers (before anything is routed, so that even a shed or timed-out
//! request is answered in its client's shape), and, once the response head is ready, sets the
//! status sent and the outcome `answered` unless a stage set another.

use crate::proxy::REQUEST_ID_HEADER;
use crate::record::Record;
use crate::respond::ProxyBody;
use crate::route;
use http::{Request, Response};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service};
use warden_telemetry::{SpanCx, Telemetry};

/// Adds the record layer.
#[derive(Clone)]
pub struct RecordLayer {
    telemetry: Arc<Telemetry>,
    trail: Option<(Arc<warden_audit::Trail>, bool)>,
}

impl RecordLayer {
    /// A record layer whose records report to `telemetry`, and to `trail` (with whether it
    /// records only requests with a finding).
    pub fn new(telemetry: Arc<Telemetry>, trail: Option<(Arc<warden_audit::Trail>, bool)>) -> Self {
        Self { telemetry, trail }
    }
}

impl<S> Layer<S> for RecordLayer {
    type Service = RecordService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RecordService { inner, telemetry: Arc::clone(&self.telemetry), trail: self.trail.clone() }
    }
}

/// See [`RecordLayer`].
#[derive(Clone)]
pub struct RecordService<S> {
    inner: S,
    telemetry: Arc<Telemetry>,
    trail: Option<(Arc<warden_audit::Trail>, bool)>,
}

impl<S, B> Service<Request<B>> for RecordService<S>
where
    S: Service<Request<B>, Response = Response<ProxyBody>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let id = req.headers().get(REQUEST_ID_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let path = req.uri().path().to_string();
        // The SERVER span the trace layer started: the record ends it.
        let span = req.extensions_mut().remove::<SpanCx>().unwrap_or_default();
        let trail = self.trail.clone();
        let record =
            Record::with_trail(id, req.method().as_str(), &path, span, Some(Arc::clone(&self.telemetry)), trail);
        let errors = route::error_shape(route::provider_hint(&route::decode_unreserved(&path), req.headers()));
        req.extensions_mut().insert(record.clone());
        req.extensions_mut().insert(errors);
        let http1 = req.version() < http::Version::HTTP_2;
        let fut = self.inner.call(req);
        Box::pin(async move {
            let resp = fut.await?;
            record.answered(resp.status().as_u16());
            // `fsync: always`: a whole answer leaves only once its record is on disk (a stream's
            // task does the same before its last event).
            if record.durable() && !record.is_streaming() {
                if let Err(e) = record.commit().await {
                    let e = crate::respond::ProxyError::Overloaded(format!(
                        "the answer was withheld: its audit record could not be written ({e})"
                    ));
                    return Ok(crate::respond::error_response(&e, errors, http1));
                }
            }
            Ok(resp)
        })
    }
}
