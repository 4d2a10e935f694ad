//! The response body type: a list of byte pieces written as separate frames,
//! with optional pauses before pieces and an optional abort at the end.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

/// Pause before the body stream is aborted, so the bytes already produced are
/// flushed to the socket first.
const ABORT_FLUSH_PAUSE: Duration = Duration::from_millis(20);

/// Pause between pieces when `x-mock-byte-split` is used.
const BYTE_SPLIT_PAUSE: Duration = Duration::from_millis(1);

/// One SSE event (already framed, e.g. `data: {...}\n\n`).
pub(crate) struct Event {
    /// Encoded event bytes.
    pub data: Bytes,
    /// Whether this event carries a text delta (used to cut the stream in
    /// half for `reset-mid-stream`).
    pub is_delta: bool,
    /// Whether to sleep `x-mock-delay-ms` before this event.
    pub pause_before: bool,
}

impl Event {
    pub(crate) fn new(data: String) -> Self {
        Self { data: Bytes::from(data), is_delta: false, pause_before: false }
    }

    pub(crate) fn delta(data: String, pause_before: bool) -> Self {
        Self { data: Bytes::from(data), is_delta: true, pause_before }
    }
}

/// Builds the event list of one streamed answer.
///
/// [`Events::delta`] marks an event that carries generated content (text,
/// reasoning, tool arguments, ...): `x-mock-delay-ms` is slept before each
/// such event except the first, and `reset-mid-stream` cuts the stream after
/// half of them. [`Events::delta_same_round`] is a delta sent right after
/// another one without a pause (the other choices of the same round).
#[derive(Default)]
pub(crate) struct Events {
    list: Vec<Event>,
    deltas: usize,
}

impl Events {
    /// A framing event (start, stop, usage, ...): no pause, not a delta.
    pub(crate) fn push(&mut self, data: String) {
        self.list.push(Event::new(data));
    }

    /// A content event, paused before unless it is the first one.
    pub(crate) fn delta(&mut self, data: String) {
        let pause = self.deltas > 0;
        self.deltas += 1;
        self.list.push(Event::delta(data, pause));
    }

    /// A content event of raw bytes, paused before unless it is the first.
    pub(crate) fn delta_bytes(&mut self, data: Bytes) {
        let pause = self.deltas > 0;
        self.deltas += 1;
        self.list.push(Event { data, is_delta: true, pause_before: pause });
    }

    /// A content event sent without a pause before it.
    pub(crate) fn delta_same_round(&mut self, data: String) {
        self.deltas += 1;
        self.list.push(Event::delta(data, false));
    }

    /// The events, in order.
    pub(crate) fn into_vec(self) -> Vec<Event> {
        self.list
    }
}

struct Piece {
    delay: Duration,
    data: Bytes,
}

/// Response body of the mock server.
///
/// Each piece is written as its own data frame; when `abort` is set the body
/// ends with an error after the pieces, which makes hyper drop the
/// connection (HTTP/1) or reset the stream (HTTP/2) without a clean end.
pub struct MockBody {
    pieces: VecDeque<Piece>,
    sleep: Option<Pin<Box<Sleep>>>,
    tail: Tail,
    exact_len: Option<u64>,
}

/// What happens after the last piece.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tail {
    /// Clean end of stream.
    End,
    /// Pause (so hyper flushes), then fail.
    Abort,
    /// The pause is over (or running): fail next.
    AbortNow,
}

/// Error returned by an aborted [`MockBody`].
#[derive(Debug, thiserror::Error)]
#[error("mock-llm: connection reset mid-stream (x-mock-fault: reset-mid-stream)")]
pub struct MockAbort;

impl MockBody {
    /// A complete body of known length.
    pub(crate) fn full(data: impl Into<Bytes>) -> Self {
        let data = data.into();
        let len = data.len() as u64;
        let mut pieces = VecDeque::with_capacity(1);
        if !data.is_empty() {
            pieces.push_back(Piece { delay: Duration::ZERO, data });
        }
        Self { pieces, sleep: None, tail: Tail::End, exact_len: Some(len) }
    }

    /// A body of unknown length (chunked on HTTP/1.1) built from pieces.
    fn from_pieces(pieces: VecDeque<Piece>, abort: bool) -> Self {
        Self { pieces, sleep: None, tail: if abort { Tail::Abort } else { Tail::End }, exact_len: None }
    }

    /// Non-streamed body that sends only the first `sent` bytes of `data`
    /// and then aborts (the caller sets a Content-Length for all of `data`).
    pub(crate) fn truncated(data: Bytes, sent: usize, byte_split: Option<usize>) -> Self {
        let data = data.slice(..sent.min(data.len()));
        let pieces = split_bytes(data, &[], byte_split);
        Self::from_pieces(pieces, true)
    }

    /// A whole body written in `byte_split`-sized pieces (unknown length).
    pub(crate) fn split(data: Bytes, byte_split: usize) -> Self {
        Self::from_pieces(split_bytes(data, &[], Some(byte_split)), false)
    }

    /// A streamed body made of SSE events.
    ///
    /// `delay` is slept before events marked `pause_before`; with
    /// `byte_split` the concatenated byte stream is cut into pieces of that
    /// many bytes (1 ms apart); with `abort` the stream stops after half of
    /// the delta events and ends with an error.
    pub(crate) fn events(mut events: Vec<Event>, delay: Duration, byte_split: Option<usize>, abort: bool) -> Self {
        if abort {
            let total = events.iter().filter(|e| e.is_delta).count();
            let cut = if total == 0 {
                events.len() / 2
            } else {
                // Keep everything before delta number `total / 2` (0-based).
                events.iter().enumerate().filter(|(_, e)| e.is_delta).nth(total / 2).map_or(events.len(), |(i, _)| i)
            };
            events.truncate(cut);
        }
        let pieces = match byte_split {
            None => events
                .into_iter()
                .map(|e| Piece { delay: if e.pause_before { delay } else { Duration::ZERO }, data: e.data })
                .collect(),
            Some(n) => {
                let mut buf = BytesMut::new();
                let mut marks = Vec::new();
                for e in events {
                    if e.pause_before && !delay.is_zero() {
                        marks.push((buf.len(), delay));
                    }
                    buf.extend_from_slice(&e.data);
                }
                split_bytes(buf.freeze(), &marks, Some(n))
            }
        };
        Self::from_pieces(pieces, abort)
    }
}

/// Splits `data` into pieces of `n` bytes (or one piece when `n` is `None`).
/// `marks` are `(offset, delay)` pairs: a piece containing `offset` is
/// delayed by that much in addition to the 1 ms split pause.
fn split_bytes(data: Bytes, marks: &[(usize, Duration)], n: Option<usize>) -> VecDeque<Piece> {
    let mut pieces = VecDeque::new();
    if data.is_empty() {
        return pieces;
    }
    let Some(n) = n else {
        pieces.push_back(Piece { delay: Duration::ZERO, data });
        return pieces;
    };
    let n = n.max(1);
    let mut start = 0;
    let mut mark = 0;
    while start < data.len() {
        let end = (start + n).min(data.len());
        let mut delay = if start == 0 { Duration::ZERO } else { BYTE_SPLIT_PAUSE };
        while mark < marks.len() && marks[mark].0 < end {
            delay += marks[mark].1;
            mark += 1;
        }
        pieces.push_back(Piece { delay, data: data.slice(start..end) });
        start = end;
    }
    pieces
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = MockAbort;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        loop {
            if let Some(sleep) = this.sleep.as_mut() {
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => this.sleep = None,
                    Poll::Pending => return Poll::Pending,
                }
            }
            if let Some(piece) = this.pieces.front_mut() {
                if !piece.delay.is_zero() {
                    let d = std::mem::take(&mut piece.delay);
                    this.sleep = Some(Box::pin(tokio::time::sleep(d)));
                    continue;
                }
                if let Some(piece) = this.pieces.pop_front() {
                    return Poll::Ready(Some(Ok(Frame::data(piece.data))));
                }
            }
            match this.tail {
                Tail::End => return Poll::Ready(None),
                Tail::Abort => {
                    // Give hyper a chance to flush what was written, then fail.
                    this.tail = Tail::AbortNow;
                    this.sleep = Some(Box::pin(tokio::time::sleep(ABORT_FLUSH_PAUSE)));
                }
                Tail::AbortNow => {
                    this.tail = Tail::End;
                    return Poll::Ready(Some(Err(MockAbort)));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.pieces.is_empty() && self.sleep.is_none() && self.tail == Tail::End
    }

    fn size_hint(&self) -> SizeHint {
        match self.exact_len {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}
