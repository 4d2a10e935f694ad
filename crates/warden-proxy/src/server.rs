//! The `listen` stage: accept connections, speak HTTP/1.1 or h2c (prior knowledge), and bound
//! what each connection may hold, then hand each request to a handler ([`crate::proxy::handle`]
//! for the proxy, the admin endpoints for the admin listener).
//!
//! A connection is bounded in every dimension a client controls:
//! - **count**: at most `limits.max_connections` at once; past it, new ones are closed at once;
//! - **head time**: a connection whose first request head has not arrived within
//!   `header_read_timeout_ms` of accept is closed (a silent socket, a slowloris head, an h2c
//!   preface with no request, an unfinished HEADERS block);
//! - **idle time**: a keep-alive connection with no request in flight for `idle_timeout_ms` is
//!   closed (HTTP/2 with a GOAWAY);
//! - **write time**: a client that leaves a write pending for `write_timeout_ms` (it stopped
//!   reading) is cut ([`TimedIo`]);
//! - **HTTP/2**: keep-alive pings, a cap on concurrent streams and on the header list.
//!
//! Accept errors (out of descriptors, usually) back off instead of spinning.

use crate::config::Limits;
use crate::respond::ProxyBody;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::body::{Body, Frame, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use parking_lot::Mutex;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::time::Sleep;

/// How long in-flight requests may take to finish once shutdown starts.
const DRAIN: Duration = Duration::from_secs(30);

/// Serves `handler` on `listener` until `shutdown` completes, then lets the requests in flight
/// finish (up to 30 s). `limits` bound every connection (see the module documentation).
pub async fn serve<H, F>(listener: TcpListener, limits: &Limits, handler: H, shutdown: impl Future<Output = ()>)
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<Response<ProxyBody>, Infallible>> + Send + 'static,
{
    let builder = Arc::new(builder(limits));
    let max = limits.max_connections.clamp(1, 1 << 24);
    let slots = Arc::new(Semaphore::new(max));
    let (stop_tx, stop_rx) = watch::channel(false);
    let timing = ConnTiming::from(limits);
    let mut refused_at: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of file descriptors, usually: back off instead of spinning.
                        tracing::warn!("accept failed: {e}; retrying in 50 ms");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                    // Closed at once: a connection Warden cannot serve must not hold a descriptor.
                    if refused_at.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                        tracing::warn!(max_connections = max, "connection limit reached; closing new connections (limits.max_connections)");
                        refused_at = Some(Instant::now());
                    }
                    drop(stream);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let conn = Connection { builder: Arc::clone(&builder), timing, stop: stop_rx.clone() };
                let handler = handler.clone();
                tokio::spawn(async move {
                    conn.run(stream, handler).await;
                    drop(slot);
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection holds a slot until it ends: all slots back means all connections closed.
    let drained = tokio::time::timeout(DRAIN, slots.acquire_many(max as u32)).await.is_ok();
    if !drained {
        tracing::warn!("requests still in flight after {DRAIN:?}; stopping anyway");
    }
}

fn builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Limits::ms(limits.header_read_timeout_ms))
        .max_buf_size(limits.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(limits.max_header_bytes.min(u32::MAX as usize) as u32)
        .max_concurrent_streams(limits.http2_max_concurrent_streams.max(1))
        .keep_alive_interval(Some(Limits::ms(limits.http2_keepalive_interval_ms.max(1))))
        .keep_alive_timeout(Limits::ms(limits.http2_keepalive_timeout_ms.max(1)));
    builder
}

/// The times that bound one connection.
#[derive(Clone, Copy)]
struct ConnTiming {
    head: Duration,
    idle: Duration,
    write: Duration,
}

impl From<&Limits> for ConnTiming {
    fn from(l: &Limits) -> Self {
        Self {
            head: Limits::ms(l.header_read_timeout_ms.max(1)),
            idle: Limits::ms(l.idle_timeout_ms.max(1)),
            write: Limits::ms(l.write_timeout_ms.max(1)),
        }
    }
}

struct Connection {
    builder: Arc<auto::Builder<TokioExecutor>>,
    timing: ConnTiming,
    stop: watch::Receiver<bool>,
}

impl Connection {
    /// Serves one connection until it ends, is idle too long, or the server stops.
    async fn run<H, F>(mut self, stream: TcpStream, handler: H)
    where
        H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = Result<Response<ProxyBody>, Infallible>> + Send + 'static,
    {
        let accepted = Instant::now();
        let activity = Arc::new(Activity::new(accepted));
        let svc = {
            let activity = Arc::clone(&activity);
            service_fn(move |req: Request<Incoming>| {
                if req.version() == http::Version::HTTP_2 {
                    activity.h2.store(true, Ordering::Relaxed);
                }
                let started = activity.begin();
                let fut = handler(req);
                async move {
                    let resp = fut.await?;
                    // The request counts as in flight until its body is sent (or the client left),
                    // and a body the client does not take is seen.
                    Ok::<_, Infallible>(resp.map(|b| Tracked::new(b, started).boxed()))
                }
            })
        };
        let io =
            TokioIo::new(TimedIo::new(stream, self.timing.write).reporting(Arc::clone(&activity.written), accepted));
        let conn = self.builder.serve_connection(io, svc);
        tokio::pin!(conn);
        let tick =
            (self.timing.head.min(self.timing.idle) / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        let mut ticks = tokio::time::interval(tick);
        let mut closing: Option<Instant> = None;
        loop {
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!("connection ended with an error: {e}");
                    }
                    return;
                }
                _ = ticks.tick() => {
                    if !activity.served() && accepted.elapsed() >= self.timing.head {
                        tracing::debug!("closing a connection that sent no request head within limits.header_read_timeout_ms");
                        return;
                    }
                    if activity.stalled_for(self.timing.write) {
                        // HTTP/2 flow control, or a socket that takes nothing: the client left a
                        // response unread for limits.write_timeout_ms.
                        tracing::debug!("closing a connection whose client stopped reading a response (limits.write_timeout_ms)");
                        return;
                    }
                    if closing.is_none() && activity.idle_for() >= self.timing.idle {
                        conn.as_mut().graceful_shutdown();
                        closing = Some(Instant::now());
                    }
                    // A graceful close waits for open streams; one the client never lets finish
                    // (an HTTP/2 window left at 0) must not keep the connection for ever.
                    if closing.is_some_and(|t| t.elapsed() >= self.timing.write) && activity.idle_for() > Duration::ZERO {
                        tracing::debug!("closing a connection whose graceful close did not finish within limits.write_timeout_ms");
                        return;
                    }
                }
                _ = self.stop.changed(), if closing.is_none() => {
                    conn.as_mut().graceful_shutdown();
                    closing = Some(Instant::now());
                }
            }
        }
    }
}

/// What a connection is doing: whether it has had a request, how many are in flight, since
/// when it has been idle, and which response bodies wait for the client to take their data.
struct Activity {
    origin: Instant,
    served: AtomicBool,
    in_flight: AtomicUsize,
    /// Milliseconds from `origin` to when the last request ended.
    idle_since_ms: AtomicU64,
    /// Per response body: since when (ms from `origin`, 0: not) it has handed data to hyper that
    /// hyper has not come back for.
    handed: Mutex<Vec<Weak<AtomicU64>>>,
    /// When the socket last took bytes (ms from `origin`): on HTTP/1.1, a client reading a
    /// large answer slowly is not stalled. (On HTTP/2 the socket also carries pings and other
    /// streams, so only the body's own progress counts.)
    written: Arc<AtomicU64>,
    h2: AtomicBool,
}

impl Activity {
    fn new(origin: Instant) -> Self {
        Self {
            origin,
            served: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            handed: Mutex::new(Vec::new()),
            written: Arc::new(AtomicU64::new(0)),
            h2: AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    /// Whether a response body has waited longer than `limit` for the client to take its data,
    /// while the socket took nothing either.
    fn stalled_for(&self, limit: Duration) -> bool {
        let now = self.now_ms();
        let limit_ms = limit.as_millis() as u64;
        if !self.h2.load(Ordering::Relaxed) && now.saturating_sub(self.written.load(Ordering::Relaxed)) < limit_ms {
            return false;
        }
        let mut handed = self.handed.lock();
        handed.retain(|w| w.strong_count() > 0);
        handed.iter().filter_map(Weak::upgrade).any(|h| {
            let since = h.load(Ordering::Relaxed);
            since != 0 && Duration::from_millis(now.saturating_sub(since)) >= limit
        })
    }

    fn begin(self: &Arc<Self>) -> Started {
        self.served.store(true, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Started(Arc::clone(self))
    }

    fn served(&self) -> bool {
        self.served.load(Ordering::Relaxed)
    }

    fn idle_for(&self) -> Duration {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Duration::ZERO;
        }
        let since = Duration::from_millis(self.idle_since_ms.load(Ordering::Relaxed));
        self.origin.elapsed().saturating_sub(since)
    }
}

/// One request in flight on a connection, until its response body is dropped.
struct Started(Arc<Activity>);

impl Drop for Started {
    fn drop(&mut self) {
        let a = &self.0;
        a.idle_since_ms.store(a.origin.elapsed().as_millis() as u64, Ordering::Relaxed);
        a.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that counts as in flight until hyper drops it (sent, or the client left),
/// and tells its connection when it has handed data that hyper has not come back for: hyper asks
/// for more only once the client has room (its socket, its HTTP/2 window).
struct Tracked {
    inner: ProxyBody,
    handed: Arc<AtomicU64>,
    started: Started,
}

impl Tracked {
    fn new(inner: ProxyBody, started: Started) -> Self {
        // Ready to go out: until hyper first asks for the body, it waits on the client too.
        let handed = Arc::new(AtomicU64::new(started.0.now_ms().max(1)));
        started.0.handed.lock().push(Arc::downgrade(&handed));
        Self { inner, handed, started }
    }
}

impl Body for Tracked {
    type Data = bytes::Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let p = Pin::new(&mut self.inner).poll_frame(cx);
        let since = match &p {
            Poll::Ready(Some(Ok(f))) if f.is_data() => self.started.0.now_ms().max(1),
            _ => 0,
        };
        self.handed.store(since, Ordering::Relaxed);
        p
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A socket whose writes may stay pending at most `timeout`: a client that stops reading gets an
/// error instead of holding the connection, its task and what it holds upstream.
pub struct TimedIo<T> {
    inner: T,
    timeout: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
    /// Where to note when bytes were last written (ms from the instant given).
    written: Option<(Arc<AtomicU64>, Instant)>,
}

impl<T> TimedIo<T> {
    /// Wraps `inner`.
    pub fn new(inner: T, timeout: Duration) -> Self {
        Self { inner, timeout, stalled: None, written: None }
    }

    /// The same, noting in `written` when bytes were last written, in ms from `origin`.
    pub fn reporting(mut self, written: Arc<AtomicU64>, origin: Instant) -> Self {
        self.written = Some((written, origin));
        self
    }

    /// Called when a write is pending: starts the clock, or fails once it has run out.
    fn pending<R>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        let timeout = self.timeout;
        let sleep = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client did not read for limits.write_timeout_ms",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn track<R>(&mut self, cx: &mut Context<'_>, p: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        match p {
            Poll::Pending => self.pending(cx),
            ready => {
                self.stalled = None;
                if let Some((w, origin)) = &self.written {
                    w.store(origin.elapsed().as_millis() as u64, Ordering::Relaxed);
                }
                ready
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for TimedIo<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TimedIo<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let p = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.track(cx, p)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let p = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.track(cx, p)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let p = Pin::new(&mut self.inner).poll_flush(cx);
        self.track(cx, p)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Raises the soft limit on open file descriptors to the hard limit (each connection and each
/// upstream request holds one), and warns when even that is lower than the configured
/// connection caps need.
pub fn raise_fd_limit(limits: &Limits) {
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit and setrlimit only read and write the struct passed.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
            return;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
        let need = (limits.max_connections + limits.max_upstream_connections + 64) as u64;
        if lim.rlim_cur < need {
            tracing::warn!(
                open_files = lim.rlim_cur,
                needed = need,
                "the open-file limit is lower than limits.max_connections + limits.max_upstream_connections need; \
                 raise it (ulimit -n, LimitNOFILE=) or lower those limits"
            );
        }
    }
}
