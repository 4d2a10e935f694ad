//! The writer: one thread that owns the trail's files, fed by a bounded queue.
//!
//! Records are written in batches (group commit): the thread takes what is queued, up to
//! `batch_records`, writes it with one `write`, and with `fsync: always` syncs once before it
//! acknowledges every record of the batch. With `batch`, it syncs every `batch_records` records
//! or `batch_ms`; with `never`, the operating system decides. A signed checkpoint is written every
//! `checkpoint_records` records or `checkpoint_secs`, and when a segment is closed; segments
//! rotate by size and age; old ones are deleted by the retention bounds, in a `retention` line.
//!
//! A write that fails (a full or read-only disk) is cut back to the last good line and retried
//! every half second; meanwhile [`Trail::failure`] says why (for logs, metrics, `/readyz` and the
//! proxy's fail-closed admission). Records shed because the queue was full are counted and named
//! in the next checkpoint: never silently lost.

use crate::chain::{self, CHECKPOINTS};
use crate::config::{AuditConfig, Backpressure, Fsync};
use crate::recover;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use serde_json::json;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use warden_core::keys::SigningKey;

/// What the writer has done, for metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Request records written.
    pub records: u64,
    /// Request records shed (queue full, `backpressure: shed`).
    pub shed: u64,
    /// fsync calls.
    pub fsyncs: u64,
    /// Checkpoints written.
    pub checkpoints: u64,
    /// Writes that failed.
    pub failures: u64,
}

#[derive(Default)]
struct State {
    failure: Mutex<Option<String>>,
    records: AtomicU64,
    shed: AtomicU64,
    shed_unreported: AtomicU64,
    fsyncs: AtomicU64,
    checkpoints: AtomicU64,
    failures: AtomicU64,
    /// Set by `close`: later appends are shed, so none is queued behind the close and lost.
    closing: AtomicBool,
    /// Appends between their check of `closing` and the end of their send.
    sending: AtomicU64,
}

enum Msg {
    Record { kind: &'static str, body: String, ack: Option<tokio::sync::oneshot::Sender<Result<(), String>>> },
    Close(tokio::sync::oneshot::Sender<()>),
}

/// What became of a record handed to [`Trail::append`].
pub enum Appended {
    /// Queued; with `fsync: always`, the receiver says when it is on disk.
    Queued(Option<tokio::sync::oneshot::Receiver<Result<(), String>>>),
    /// The queue was full and `backpressure: shed`: counted, and named in the next checkpoint.
    Shed,
}

/// An open audit trail.
pub struct Trail {
    tx: Sender<Msg>,
    state: Arc<State>,
    fsync: Fsync,
    backpressure: Backpressure,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Trail {
    /// Opens (creating it if needed) the trail in `config.dir`, recovers a torn tail, and starts
    /// the writer.
    pub fn open(config: &AuditConfig) -> Result<Trail, String> {
        config.validate()?;
        let dir = config.dir.clone().ok_or("audit.dir is not set")?;
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create the audit directory {}: {e}", dir.display()))?;
        let key = match &config.key_file {
            Some(p) => Some(warden_core::keys::read_signing_key(p)?),
            None => None,
        };
        let resume =
            recover::recover(&dir).map_err(|e| format!("cannot recover the audit trail in {}: {e}", dir.display()))?;
        let state = Arc::new(State::default());
        let mut w = Writer::start(dir.clone(), config.clone(), key, resume, Arc::clone(&state))
            .map_err(|e| format!("cannot open the audit trail in {}: {e}", dir.display()))?;
        let (tx, rx) = crossbeam_channel::bounded(config.queue);
        let thread = std::thread::Builder::new()
            .name("warden-audit".into())
            .spawn(move || w.run(rx))
            .map_err(|e| format!("cannot start the audit writer: {e}"))?;
        Ok(Trail {
            tx,
            state,
            fsync: config.fsync,
            backpressure: config.backpressure,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Hands a record (a JSON object) to the writer. With `backpressure: block` and a full
    /// queue, waits for room (off the async workers).
    pub fn append(&self, body: String) -> Appended {
        self.append_kind("request", body)
    }

    /// Hands a line of another kind (`policy_set`: what a policy digest names) to the writer.
    pub fn append_kind(&self, kind: &'static str, body: String) -> Appended {
        let (ack, rx) = match self.fsync {
            Fsync::Always => {
                let (t, r) = tokio::sync::oneshot::channel();
                (Some(t), Some(r))
            }
            _ => (None, None),
        };
        let msg = Msg::Record { kind, body, ack };
        // Counted in `sending` before `closing` is read (both SeqCst): `close` waits for the
        // appends that saw the trail open, and every later one sees it closing.
        self.state.sending.fetch_add(1, Ordering::SeqCst);
        let appended = self.send(msg, rx);
        self.state.sending.fetch_sub(1, Ordering::SeqCst);
        appended
    }

    fn send(&self, msg: Msg, rx: Option<tokio::sync::oneshot::Receiver<Result<(), String>>>) -> Appended {
        if self.state.closing.load(Ordering::SeqCst) {
            return self.shed();
        }
        match self.tx.try_send(msg) {
            Ok(()) => Appended::Queued(rx),
            Err(TrySendError::Full(msg)) if self.backpressure == Backpressure::Block => {
                let send = || self.tx.send(msg).is_ok();
                let sent = match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
                    Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(send),
                    _ => send(),
                };
                if sent {
                    Appended::Queued(rx)
                } else {
                    self.shed()
                }
            }
            Err(_) => self.shed(),
        }
    }

    fn shed(&self) -> Appended {
        self.state.shed.fetch_add(1, Ordering::Relaxed);
        self.state.shed_unreported.fetch_add(1, Ordering::Relaxed);
        Appended::Shed
    }

    /// Why the trail cannot be written now, if it cannot.
    pub fn failure(&self) -> Option<String> {
        self.state.failure.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// What the writer has done.
    pub fn stats(&self) -> Stats {
        let s = &self.state;
        Stats {
            records: s.records.load(Ordering::Relaxed),
            shed: s.shed.load(Ordering::Relaxed),
            fsyncs: s.fsyncs.load(Ordering::Relaxed),
            checkpoints: s.checkpoints.load(Ordering::Relaxed),
            failures: s.failures.load(Ordering::Relaxed),
        }
    }

    /// Whether records wait for the disk before the answer is released (`fsync: always`).
    pub fn durable(&self) -> bool {
        self.fsync == Fsync::Always
    }

    /// Writes what is queued and a last checkpoint, and stops the writer (waiting at most
    /// `timeout`). Later appends are shed.
    pub fn close(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        // Appends already past their check finish sending first, so the close is queued behind
        // every record that was not shed.
        self.state.closing.store(true, Ordering::SeqCst);
        while self.state.sending.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        let (t, r) = tokio::sync::oneshot::channel();
        if self.tx.send_timeout(Msg::Close(t), deadline.saturating_duration_since(Instant::now())).is_ok() {
            let mut r = r;
            while Instant::now() < deadline {
                match r.try_recv() {
                    Ok(()) | Err(tokio::sync::oneshot::error::TryRecvError::Closed) => break,
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        }
        if let Some(h) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            if h.is_finished() {
                let _ = h.join();
            }
        }
    }
}

struct Writer {
    dir: PathBuf,
    cfg: AuditConfig,
    key: Option<SigningKey>,
    state: Arc<State>,
    file: File,
    seg_first: u64,
    seg_bytes: u64,
    seg_opened: Instant,
    next_seq: u64,
    last_hash: String,
    /// When the last checkpoint was.
    last_checkpoint: Instant,
    /// Lines written but not synced, and when the last sync was.
    unsynced: usize,
    last_sync: Instant,
    /// Records written since the last checkpoint (not counting chain housekeeping).
    records_since_checkpoint: u64,
    failing: bool,
}

impl Writer {
    fn start(
        dir: PathBuf,
        cfg: AuditConfig,
        key: Option<SigningKey>,
        resume: recover::Resume,
        state: Arc<State>,
    ) -> std::io::Result<Self> {
        let (seg_first, path, fresh) = match &resume.segment {
            Some((first, path)) => (*first, path.clone(), false),
            None => (resume.next_seq, dir.join(chain::segment_name(resume.next_seq)), true),
        };
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let seg_bytes = file.metadata()?.len();
        let now = Instant::now();
        let mut w = Writer {
            dir,
            cfg,
            key,
            state,
            file,
            seg_first,
            seg_bytes,
            seg_opened: now,
            next_seq: resume.next_seq,
            last_hash: resume.last_hash,
            last_checkpoint: now,
            unsynced: 0,
            last_sync: now,
            records_since_checkpoint: 0,
            failing: false,
        };
        if fresh {
            w.write_lines(&[(
                "segment",
                json!({"segment": chain::segment_name(seg_first), "previous": null}).to_string(),
            )])?;
        }
        if let Some((moved, bytes)) = &resume.quarantined {
            let rel = moved.strip_prefix(&w.dir).unwrap_or(moved).to_string_lossy().into_owned();
            let body = json!({"reason": "the trail ended in a torn line at start (a crash mid-write); it was moved aside", "quarantined": rel, "bytes": bytes});
            w.write_lines(&[("gap", body.to_string())])?;
        }
        w.sync()?;
        Ok(w)
    }

    fn run(&mut self, rx: Receiver<Msg>) {
        let mut pending: Vec<Msg> = Vec::new();
        loop {
            if pending.is_empty() {
                match rx.recv_timeout(self.next_deadline()) {
                    Ok(m) => pending.push(m),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => {
                        let _ = self.finish();
                        return;
                    }
                }
            }
            while pending.len() < self.cfg.batch_records {
                match rx.try_recv() {
                    Ok(m) => pending.push(m),
                    Err(_) => break,
                }
            }
            let close = pending.iter().position(|m| matches!(m, Msg::Close(_)));
            let upto = close.unwrap_or(pending.len());
            if upto > 0 {
                if let Err(e) = self.write_records(&mut pending, upto) {
                    self.fail(e);
                    if close.is_some() {
                        // Shutting down on a disk that cannot take them: the records are counted
                        // as shed (and logged), rather than holding the shutdown.
                        let lost = pending.iter().filter(|m| matches!(m, Msg::Record { .. })).count() as u64;
                        self.state.shed.fetch_add(lost, Ordering::Relaxed);
                        tracing::error!("{lost} audit records could not be written before shutdown");
                        for m in pending.drain(..) {
                            if let Msg::Close(done) = m {
                                let _ = done.send(());
                            }
                        }
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(500));
                    continue;
                }
            }
            if close.is_some() {
                let _ = self.finish();
                for m in pending.drain(..) {
                    if let Msg::Close(done) = m {
                        let _ = done.send(());
                    }
                }
                return;
            }
            pending.clear();
            match self.housekeeping() {
                Ok(true) => self.recovered(),
                Ok(false) => {}
                Err(e) => {
                    self.fail(e);
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }
    }

    /// Writes the first `upto` messages (records), syncing first if `fsync: always`, and
    /// acknowledges them. On failure nothing is consumed.
    fn write_records(&mut self, pending: &mut Vec<Msg>, upto: usize) -> std::io::Result<()> {
        let lines: Vec<(&str, String)> = pending[..upto]
            .iter()
            .filter_map(|m| match m {
                Msg::Record { kind, body, .. } => Some((*kind, body.clone())),
                Msg::Close(_) => None,
            })
            .collect();
        let before = (self.seg_bytes, self.next_seq, self.last_hash.clone(), self.unsynced);
        self.write_lines(&lines)?;
        if self.cfg.fsync == Fsync::Always
            || (self.cfg.fsync == Fsync::Batch && self.unsynced >= self.cfg.batch_records)
        {
            if let Err(e) = self.sync() {
                // Not on disk for sure: cut the lines back, so the retry does not write them twice.
                let _ = self.file.set_len(before.0);
                (self.seg_bytes, self.next_seq, self.last_hash, self.unsynced) = before;
                return Err(e);
            }
        }
        let requests = lines.iter().filter(|(k, _)| *k == "request").count() as u64;
        self.state.records.fetch_add(requests, Ordering::Relaxed);
        self.records_since_checkpoint += lines.len() as u64;
        for m in pending.drain(..upto) {
            if let Msg::Record { ack: Some(ack), .. } = m {
                let _ = ack.send(Ok(()));
            }
        }
        self.recovered();
        Ok(())
    }

    /// A write succeeded: a failure reported before is over.
    fn recovered(&mut self) {
        if self.failing {
            self.failing = false;
            *self.state.failure.lock().unwrap_or_else(|e| e.into_inner()) = None;
            tracing::info!("the audit trail is written again");
        }
    }

    fn fail(&mut self, e: std::io::Error) {
        self.state.failures.fetch_add(1, Ordering::Relaxed);
        let why = format!("the audit trail in {} cannot be written: {e}", self.dir.display());
        if !self.failing {
            tracing::error!("{why}; retrying every 500 ms");
        }
        self.failing = true;
        *self.state.failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
    }

    /// Appends chained lines with one write; on failure the segment is cut back to where it was
    /// and the chain state is unchanged.
    fn write_lines(&mut self, lines: &[(&str, String)]) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(lines.iter().map(|(_, b)| b.len() + 160).sum());
        let (mut seq, mut prev) = (self.next_seq, self.last_hash.clone());
        let time = chain::now();
        for (kind, body) in lines {
            let line = chain::line(seq, &prev, &time, kind, body);
            prev = chain::hash(line.as_bytes());
            seq += 1;
            buf.extend_from_slice(line.as_bytes());
            buf.push(b'\n');
        }
        if let Err(e) = self.file.write_all(&buf) {
            let _ = self.file.set_len(self.seg_bytes);
            return Err(e);
        }
        self.seg_bytes += buf.len() as u64;
        self.next_seq = seq;
        self.last_hash = prev;
        self.unsynced += lines.len();
        Ok(())
    }

    fn sync(&mut self) -> std::io::Result<()> {
        if self.unsynced > 0 {
            self.file.sync_data()?;
            self.state.fsyncs.fetch_add(1, Ordering::Relaxed);
            self.unsynced = 0;
        }
        self.last_sync = Instant::now();
        Ok(())
    }

    fn next_deadline(&self) -> Duration {
        let mut d = Duration::from_secs(1);
        if self.unsynced > 0 && self.cfg.fsync == Fsync::Batch {
            d = d.min(Duration::from_millis(self.cfg.batch_ms).saturating_sub(self.last_sync.elapsed()));
        }
        if self.records_since_checkpoint > 0 || self.state.shed_unreported.load(Ordering::Relaxed) > 0 {
            d = d.min(Duration::from_secs(self.cfg.checkpoint_secs).saturating_sub(self.last_checkpoint.elapsed()));
        }
        d.max(Duration::from_millis(1))
    }

    /// Timed syncs, checkpoints and rotation.
    /// Returns whether it wrote anything. While the trail is failing, the checkpoint is retried
    /// at once, so the failure clears as soon as the disk has room, traffic or not.
    fn housekeeping(&mut self) -> std::io::Result<bool> {
        let mut wrote = false;
        if self.cfg.fsync == Fsync::Batch
            && self.unsynced > 0
            && self.last_sync.elapsed() >= Duration::from_millis(self.cfg.batch_ms)
        {
            self.sync()?;
            wrote = true;
        }
        let shed = self.state.shed_unreported.load(Ordering::Relaxed);
        let due = self.failing
            || self.records_since_checkpoint >= self.cfg.checkpoint_records
            || ((self.records_since_checkpoint > 0 || shed > 0)
                && self.last_checkpoint.elapsed() >= Duration::from_secs(self.cfg.checkpoint_secs));
        if due {
            self.checkpoint()?;
            wrote = true;
        }
        if self.seg_bytes >= self.cfg.segment_bytes
            || self.seg_opened.elapsed() >= Duration::from_secs(self.cfg.segment_secs)
        {
            self.rotate()?;
            wrote = true;
        }
        Ok(wrote)
    }

    /// A signed statement of the last line, in the chain and in the sidecar file; the segment is
    /// synced first, so a checkpoint never names a line that is not on disk.
    fn checkpoint(&mut self) -> std::io::Result<()> {
        let shed = self.state.shed_unreported.swap(0, Ordering::Relaxed);
        let covers_seq = self.next_seq - 1;
        let covers_hash = self.last_hash.clone();
        let note = chain::checkpoint_note(covers_seq, &covers_hash);
        let signature = self.key.as_ref().map(|k| warden_core::keys::sign_b64(k, note.as_bytes()));
        let body = json!({"covers_seq": covers_seq, "covers_hash": covers_hash, "shed": shed, "signature": signature});
        let written = self.write_lines(&[("checkpoint", body.to_string())]).and_then(|()| self.sync());
        if let Err(e) = written {
            self.state.shed_unreported.fetch_add(shed, Ordering::Relaxed);
            return Err(e);
        }
        let mut side = json!({"time": chain::now(), "segment": chain::segment_name(self.seg_first)});
        if let (Some(m), Some(b)) = (side.as_object_mut(), body.as_object()) {
            m.extend(b.clone());
        }
        let mut f = OpenOptions::new().create(true).append(true).open(self.dir.join(CHECKPOINTS))?;
        let len = f.metadata()?.len();
        if let Err(e) = f.write_all(format!("{side}\n").as_bytes()).and_then(|()| f.sync_data()) {
            // A short write would glue the next checkpoint onto a torn one: cut it back.
            let _ = f.set_len(len);
            return Err(e);
        }
        self.state.checkpoints.fetch_add(1, Ordering::Relaxed);
        self.records_since_checkpoint = 0;
        self.last_checkpoint = Instant::now();
        Ok(())
    }

    /// Closes the segment with a checkpoint and starts the next one; then applies retention.
    fn rotate(&mut self) -> std::io::Result<()> {
        self.checkpoint()?;
        let previous = chain::segment_name(self.seg_first);
        let path = self.dir.join(chain::segment_name(self.next_seq));
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        self.file = file;
        self.seg_first = self.next_seq;
        self.seg_bytes = 0;
        self.seg_opened = Instant::now();
        self.write_lines(&[(
            "segment",
            json!({"segment": chain::segment_name(self.seg_first), "previous": previous}).to_string(),
        )])?;
        self.sync()?;
        if let Ok(dir) = File::open(&self.dir) {
            let _ = dir.sync_all();
        }
        self.retain()
    }

    /// Deletes old segments past `retain_days` / `retain_bytes` (never the current one) and
    /// records it in the chain, with the hash the first kept segment follows.
    fn retain(&mut self) -> std::io::Result<()> {
        if self.cfg.retain_days == 0 && self.cfg.retain_bytes == 0 {
            return Ok(());
        }
        let segments = chain::segments(&self.dir)?;
        let sizes: Vec<u64> = segments.iter().map(|(_, p)| std::fs::metadata(p).map_or(0, |m| m.len())).collect();
        let mut total: u64 = sizes.iter().sum();
        let max_age = Duration::from_secs(self.cfg.retain_days * 86_400);
        let mut deleted = Vec::new();
        let mut last_hash = None;
        for (i, (first, path)) in segments.iter().enumerate() {
            if *first == self.seg_first {
                break;
            }
            let old = self.cfg.retain_days > 0
                && std::fs::metadata(path)
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| SystemTime::now().duration_since(t).unwrap_or_default() > max_age);
            let big = self.cfg.retain_bytes > 0 && total > self.cfg.retain_bytes;
            if !(old || big) {
                break;
            }
            last_hash = last_line_hash(path)?;
            total -= sizes[i];
            deleted.push((chain::segment_name(*first), path.clone()));
        }
        if deleted.is_empty() {
            return Ok(());
        }
        // The line first, then the files: a crash between the two leaves segments the chain
        // says were deleted, never deletions it does not know of.
        let names: Vec<&String> = deleted.iter().map(|(n, _)| n).collect();
        let body = json!({"deleted": names, "last_hash": last_hash, "retain_days": self.cfg.retain_days, "retain_bytes": self.cfg.retain_bytes});
        self.write_lines(&[("retention", body.to_string())])?;
        self.sync()?;
        for (_, path) in &deleted {
            std::fs::remove_file(path)?;
        }
        Ok(())
    }

    /// On close: what is left, synced, and a last checkpoint.
    fn finish(&mut self) -> std::io::Result<()> {
        self.checkpoint()
    }
}

fn last_line_hash(path: &Path) -> std::io::Result<Option<String>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text.lines().last().map(|l| chain::hash(l.as_bytes())))
}
