//! The audit trail's writer: sustained records per second for each `fsync` mode.
//!
//! `cargo bench -p warden-benches --bench audit`
//!
//! A [`Trail`] in a fresh directory under `std::env::temp_dir()` (so on the filesystem of
//! `/tmp`), with the default configuration (`batch_records` 256, `batch_ms` 50, queue 4096,
//! `backpressure: block`, a checkpoint every 1000 records, 64 MiB segments) and a signing key (as a
//! real deployment has: every checkpoint is signed). Each record is a real request record taken
//! from a trail written by `warden serve` in front of mock-llm (`warden_benches::AUDIT_RECORD`:
//! 1,042 bytes of body, 1,175 bytes as a chain line), with its own `request_id`.
//!
//! - `append/never`, `append/batch`: one producer appends as fast as the queue takes them (a full
//!   queue blocks it); a sample ends when the writer has written every record it was given, so
//!   the figure is the writer's sustained rate, not the queue's.
//! - `append/always/N producers`: N threads, each appending one record and waiting for its
//!   acknowledgement (`blocking_recv`, as a request waits before its answer is released) before
//!   the next. With one producer every record pays a whole fsync; with more, the writer's group
//!   commit syncs once for all the records queued meanwhile.
//!
//! Every group reports `Throughput::Elements` (records). After each group it prints what the
//! writer's `stats()` counted over the measured time: records, fsyncs, fsyncs per second and
//! records per fsync, and checkpoints.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use warden_audit::config::Fsync;
use warden_audit::{Appended, AuditConfig, Stats, Trail};

/// A trail in its own directory, removed on drop.
struct Bench {
    dir: PathBuf,
    trail: Trail,
    next: AtomicU64,
    /// Over the measured samples only: time, and the writer's counters.
    measured: Duration,
    stats: Stats,
}

impl Bench {
    fn open(name: &str, fsync: Fsync) -> Bench {
        let dir = std::env::temp_dir().join(format!("warden-bench-audit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the bench trail's directory");
        let (private, _public) = warden_core::keys::generate().expect("generate a signing key");
        let key = dir.join("audit.key");
        std::fs::write(&key, private).expect("write the signing key");
        let config = AuditConfig { dir: Some(dir.join("trail")), fsync, key_file: Some(key), ..Default::default() };
        let trail = Trail::open(&config).expect("open the bench trail");
        Bench { dir, trail, next: AtomicU64::new(0), measured: Duration::ZERO, stats: Stats::default() }
    }

    fn append(&self) -> Appended {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.trail.append(warden_benches::audit_record(n))
    }

    /// Waits until the writer has written `target` records in all.
    fn drained(&self, target: u64) {
        while self.trail.stats().records < target {
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Adds one sample's time and counters to the measured totals.
    fn add(&mut self, elapsed: Duration, before: Stats, after: Stats) {
        self.measured += elapsed;
        let s = &mut self.stats;
        s.records += after.records - before.records;
        s.shed += after.shed - before.shed;
        s.fsyncs += after.fsyncs - before.fsyncs;
        s.checkpoints += after.checkpoints - before.checkpoints;
        s.failures += after.failures - before.failures;
    }

    /// Prints the measured totals, closes the trail and deletes it.
    fn finish(self, label: &str) {
        let secs = self.measured.as_secs_f64();
        let s = self.stats;
        let mib: u64 = std::fs::read_dir(self.dir.join("trail"))
            .map(|d| d.filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum())
            .unwrap_or(0);
        println!(
            "{label}: {} records in {secs:.2} s measured = {:.0} records/s; {} fsyncs = {:.1} fsyncs/s, {:.1} records/fsync; {} checkpoints; {} shed, {} failures; trail {:.0} MiB",
            s.records,
            s.records as f64 / secs,
            s.fsyncs,
            s.fsyncs as f64 / secs,
            if s.fsyncs > 0 { s.records as f64 / s.fsyncs as f64 } else { f64::NAN },
            s.checkpoints,
            s.shed,
            s.failures,
            mib as f64 / 1048576.0,
        );
        self.trail.close(Duration::from_secs(30));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One producer, no acknowledgements (`never`, `batch`).
fn unacked(c: &mut Criterion, name: &str, fsync: Fsync) {
    let mut g = c.benchmark_group("append");
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    g.throughput(Throughput::Elements(1));
    let mut b = Bench::open(name, fsync);
    g.bench_function(name, |bencher| {
        bencher.iter_custom(|iters| {
            let before = b.trail.stats();
            let start = Instant::now();
            for _ in 0..iters {
                if let Appended::Shed = b.append() {
                    panic!("a record was shed with backpressure: block");
                }
            }
            b.drained(before.records + iters);
            let elapsed = start.elapsed();
            b.add(elapsed, before, b.trail.stats());
            elapsed
        })
    });
    g.finish();
    b.finish(&format!("append/{name}"));
}

/// `always`: `producers` threads, each waiting for its record's acknowledgement before the next.
fn acked(c: &mut Criterion, producers: u64) {
    let mut g = c.benchmark_group("append");
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    g.throughput(Throughput::Elements(1));
    let id = BenchmarkId::new("always", format!("{producers} producers"));
    let mut b = Bench::open(&format!("always-{producers}"), Fsync::Always);
    g.bench_function(id, |bencher| {
        bencher.iter_custom(|iters| {
            let before = b.trail.stats();
            let shared = &b;
            let start = Instant::now();
            std::thread::scope(|s| {
                for p in 0..producers {
                    let each = iters / producers + u64::from(p < iters % producers);
                    let b = shared;
                    s.spawn(move || {
                        for _ in 0..each {
                            match b.append() {
                                Appended::Queued(Some(ack)) => {
                                    ack.blocking_recv().expect("the writer dropped an ack").expect("the write failed")
                                }
                                Appended::Queued(None) => panic!("fsync: always gave no ack"),
                                Appended::Shed => panic!("a record was shed with backpressure: block"),
                            }
                        }
                    });
                }
            });
            let elapsed = start.elapsed();
            b.add(elapsed, before, b.trail.stats());
            elapsed
        })
    });
    g.finish();
    b.finish(&format!("append/always/{producers} producers"));
}

fn benches(c: &mut Criterion) {
    unacked(c, "never", Fsync::Never);
    unacked(c, "batch", Fsync::Batch);
    for producers in [1, 8, 32] {
        acked(c, producers);
    }
}

criterion_group!(audit, benches);
criterion_main!(audit);
