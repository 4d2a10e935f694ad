//! The cross-cutting concerns around the guard, as tower layers, so that
//! [`crate::proxy::handle`] reads as the spine and nothing else.
//!
//! Outermost first:
//!
//! | layer | job |
//! | --- | --- |
//! | request id (tower-http) | drops a client's `x-warden-request-id`, sets Warden's own, copies it to the response |
//! | [`trace`] | starts the SERVER span (continuing the caller's `traceparent`) and the log span of the request |
//! | [`record`] | starts the request's record and the provider's error shape; sets the status sent |
//! | [`admission`] | past `limits.max_in_flight`, or with the detector queue full, sheds the request (503, `Retry-After`) before its body is read; holds a slot until the response body ends |
//! | [`deadline`] | `limits.total_timeout_ms` for the exchange up to the response head (a stream's task keeps the same deadline) |
//!
//! Each layer answers in the provider's shape through [`crate::respond::error_response`], and
//! writes what it did into the record.

pub mod admission;
pub mod deadline;
pub mod record;
pub mod trace;

use crate::proxy::{self, Shared, REQUEST_ID_HEADER};
use crate::respond::ProxyBody;
use http::{HeaderName, Request, Response};
use hyper::body::Incoming;
use std::convert::Infallible;
use std::sync::Arc;
use tower::util::BoxCloneSyncService;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};

/// The whole proxy service: the layers around the spine.
pub type ProxyService = BoxCloneSyncService<Request<Incoming>, Response<ProxyBody>, Infallible>;

/// Builds the proxy service for `shared`.
pub fn proxy_service(shared: Arc<Shared>) -> ProxyService {
    let limits = &shared.config.limits;
    let header = HeaderName::from_static(REQUEST_ID_HEADER);
    let spine = {
        let shared = Arc::clone(&shared);
        tower::service_fn(move |req| proxy::handle(Arc::clone(&shared), req))
    };
    let svc = ServiceBuilder::new()
        // Ids are Warden's own: one a client sends is dropped, so records cannot be forged.
        .map_request(|mut req: Request<Incoming>| {
            req.headers_mut().remove(REQUEST_ID_HEADER);
            req
        })
        .layer(SetRequestIdLayer::new(header.clone(), WardenId))
        .layer(PropagateRequestIdLayer::new(header))
        .layer(trace::TraceLayer::new(Arc::clone(&shared.telemetry)))
        .layer(record::RecordLayer::new(
            Arc::clone(&shared.telemetry),
            shared.audit.clone().map(|t| (t, shared.config.audit.records == warden_audit::config::Records::Findings)),
        ))
        .layer(admission::AdmissionLayer::new(Arc::clone(&shared)))
        .layer(deadline::DeadlineLayer::new(crate::config::Limits::ms(limits.total_timeout_ms)))
        .service(spine);
    BoxCloneSyncService::new(svc)
}

/// Request ids: `req_` and a random UUID, as the records and the `x-warden-request-id` header
/// carry them.
#[derive(Clone, Copy)]
struct WardenId;

impl MakeRequestId for WardenId {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        let id = format!("req_{}", uuid::Uuid::new_v4().simple());
        id.parse().ok().map(RequestId::new)
    }
}
