//! The deadline layer: `limits.total_timeout_ms` for the exchange up to its response head (a
//! 504 in the provider's shape, recorded as `failed`). A streamed answer's task keeps the same
//! deadline for the rest of the stream.

use crate::record::Record;
use crate::respond::{error_response, ProxyBody, ProxyError};
use crate::shape::ErrorShape;
use http::{Request, Response};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tower::{Layer, Service};

/// Adds the deadline layer.
#[derive(Clone, Copy)]
pub struct DeadlineLayer {
    total: Duration,
}

impl DeadlineLayer {
    /// A deadline of `total` per exchange.
    pub fn new(total: Duration) -> Self {
        Self { total }
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Deadline { inner, total: self.total }
    }
}

/// See [`DeadlineLayer`].
#[derive(Clone)]
pub struct Deadline<S> {
    inner: S,
    total: Duration,
}

impl<S, B> Service<Request<B>> for Deadline<S>
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
        let record = req.extensions().get::<Record>().cloned();
        let errors = req.extensions().get::<ErrorShape>().copied().unwrap_or(ErrorShape::OpenAi);
        let http1 = req.version() < http::Version::HTTP_2;
        let total = self.total;
        let fut = self.inner.call(req);
        Box::pin(async move {
            match tokio::time::timeout(total, fut).await {
                Ok(r) => r,
                Err(_) => {
                    let e = ProxyError::GatewayTimeout(format!(
                        "the exchange took longer than {total:?} (limits.total_timeout_ms)"
                    ));
                    if let Some(r) = record {
                        r.fail("failed", e.to_string());
                    }
                    Ok(error_response(&e, errors, http1))
                }
            }
        })
    }
}
