//! The admission layer: at most `limits.max_in_flight` requests are inside Warden at once, and
//! none is let in while the detector pool's queue is full. Past either, a request is shed at
//! once, before anything is read: a 503 in the provider's shape with `Retry-After`, recorded as
//! `shed`. An admitted request holds its slot until its response body has been sent (a stream
//! holds it to the end).

use crate::proxy::Shared;
use crate::record::Record;
use crate::respond::{error_response, holding, ProxyBody, ProxyError};
use crate::shape::ErrorShape;
use http::{Request, Response};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// Adds the admission layer for `shared` (its in-flight slots and detector queue).
#[derive(Clone)]
pub struct AdmissionLayer {
    shared: Arc<Shared>,
}

impl AdmissionLayer {
    /// Admits at most `limits.max_in_flight` requests at once, one permit of `shared.in_flight`
    /// each, and none while the detector queue is full.
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

impl<S> Layer<S> for AdmissionLayer {
    type Service = Admission<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Admission { inner, shared: Arc::clone(&self.shared) }
    }
}

/// See [`AdmissionLayer`].
#[derive(Clone)]
pub struct Admission<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S, B> Service<Request<B>> for Admission<S>
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

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let unready = self.shared.unready().or_else(|| self.shared.audit_refusal());
        let admitted = match (unready, self.shared.detector_queue_full()) {
            (Some(why), _) => Err(("unready", why)),
            (None, Some(reason)) => Err(("shed", format!("Warden is at capacity ({reason}); retry shortly"))),
            (None, None) => Arc::clone(&self.shared.in_flight).try_acquire_owned().map_err(|_| {
                let max = self.shared.config.limits.max_in_flight;
                (
                    "shed",
                    format!("Warden is at capacity ({max} requests in flight, limits.max_in_flight); retry shortly"),
                )
            }),
        };
        let slot = match admitted {
            Ok(slot) => slot,
            Err((outcome, message)) => {
                let e = ProxyError::Overloaded(message);
                if let Some(r) = req.extensions().get::<Record>() {
                    r.fail(outcome, e.to_string());
                }
                let errors = req.extensions().get::<ErrorShape>().copied().unwrap_or(ErrorShape::OpenAi);
                let http1 = req.version() < http::Version::HTTP_2;
                return Box::pin(std::future::ready(Ok(error_response(&e, errors, http1))));
            }
        };
        let fut = self.inner.call(req);
        Box::pin(async move {
            let resp = fut.await?;
            Ok(resp.map(|body| holding(body, slot)))
        })
    }
}
