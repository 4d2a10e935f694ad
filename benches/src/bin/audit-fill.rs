//! `audit-fill`: writes a large audit trail quickly, for `benches/audit-export.sh`.
//!
//! Opens a [`Trail`] in DIR with `fsync: never` (the rest of the configuration is the default:
//! 64 MiB segments, a checkpoint every 1000 records, signed with `--key-file` if given) and appends
//! `warden_benches::AUDIT_RECORD` (a real request record, 1,175 bytes as a chain line), each with
//! its own id, until about `--bytes` have been written, then closes it (a last checkpoint). The
//! trail is what `warden serve` writes: the same writer, chain, checkpoints and rotation.

use clap::Parser;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use warden_audit::config::Fsync;
use warden_audit::{Appended, AuditConfig, Trail};

#[derive(Parser, Debug)]
#[command(name = "audit-fill", about = "Write a large audit trail quickly (fsync: never)")]
struct Args {
    /// The trail's directory (created if needed).
    dir: PathBuf,
    /// About how many bytes of records to write.
    #[arg(long, default_value_t = 1 << 30)]
    bytes: u64,
    /// ed25519 private key (`warden keygen`) to sign the checkpoints with.
    #[arg(long)]
    key_file: Option<PathBuf>,
}

fn main() -> Result<(), String> {
    let args = Args::parse();
    let config = AuditConfig {
        dir: Some(args.dir.clone()),
        fsync: Fsync::Never,
        key_file: args.key_file.clone(),
        ..Default::default()
    };
    let trail = Trail::open(&config)?;
    // The chain head adds 133 bytes to the body, the newline 1.
    let line = warden_benches::audit_record(0).len() as u64 + 134;
    let n = args.bytes.div_ceil(line);
    let start = Instant::now();
    for i in 0..n {
        if let Appended::Shed = trail.append(warden_benches::audit_record(i)) {
            return Err("a record was shed (backpressure: block should not shed)".into());
        }
    }
    trail.close(Duration::from_secs(60));
    let secs = start.elapsed().as_secs_f64();
    let s = trail.stats();
    if s.records != n || s.failures > 0 {
        return Err(format!("wrote {} of {n} records, {} failures", s.records, s.failures));
    }
    println!(
        "{n} records in {secs:.1} s ({:.0} records/s), {} checkpoints, {} fsyncs",
        n as f64 / secs,
        s.checkpoints,
        s.fsyncs
    );
    Ok(())
}
