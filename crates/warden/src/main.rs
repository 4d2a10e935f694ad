//! The `warden` command: `serve` runs the guarded proxy; `validate` and `check` work on a policy
//! directory without serving.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::io::{IsTerminal, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use warden_core::Provider;
use warden_policy::{PolicySet, Target};
use warden_proxy::Config;

mod eval;

#[derive(Parser)]
#[command(name = "warden", version, about = "A policy-as-code guard for LLM traffic")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the guarded proxy in front of OpenAI- and Anthropic-shaped upstreams.
    Serve {
        /// YAML config file; flags override it.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address to listen on [default: 127.0.0.1:8080].
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Policy directory [default: policies/].
        #[arg(long)]
        policies: Option<PathBuf>,
        /// Base URL of the OpenAI-shaped upstream.
        #[arg(long)]
        upstream_openai: Option<String>,
        /// Base URL of the Anthropic-shaped upstream.
        #[arg(long)]
        upstream_anthropic: Option<String>,
        /// Public key file: refuse a policy directory not signed by it (at start and at reload).
        #[arg(long)]
        verify_key: Option<PathBuf>,
        /// Address of the admin listener (health, readiness, metrics, policy view, reload)
        /// [default: 127.0.0.1:9090]; `off` turns it off.
        #[arg(long)]
        admin_listen: Option<String>,
        /// Log format: `text` or `json`.
        #[arg(long, default_value = "text", env = "WARDEN_LOG_FORMAT")]
        log_format: String,
        /// The audit trail's directory (`audit.dir` in the config).
        #[arg(long)]
        audit_dir: Option<PathBuf>,
    },
    /// Run the policies' unit tests; exits 1 if any fails.
    Test {
        /// Policy directory.
        #[arg(default_value = "policies")]
        dir: PathBuf,
        /// Show passing tests too.
        #[arg(short, long)]
        verbose: bool,
        /// Run only tests whose `policy/test name` contains this.
        #[arg(long)]
        run: Option<String>,
    },
    /// Sign a policy directory: writes DIR/.warden-signature (a manifest of every file's sha256).
    Sign {
        /// Private key file (from `warden keygen`).
        #[arg(long)]
        key: PathBuf,
        /// Policy directory.
        dir: PathBuf,
    },
    /// Make a signing key pair: PREFIX.key (private) and PREFIX.pub (public).
    Keygen {
        /// Path prefix of the two files.
        #[arg(long, default_value = "warden-policy")]
        out: PathBuf,
    },
    /// Check a policy directory and list every problem; exits 1 if there is any.
    Validate {
        /// Policy directory.
        #[arg(default_value = "policies")]
        dir: PathBuf,
        /// Public key file: also check the directory's signature.
        #[arg(long)]
        verify_key: Option<PathBuf>,
    },
    /// Show the decision for one text, as JSON.
    Check {
        /// `prompt` or `completion`.
        #[arg(long, default_value = "prompt")]
        phase: String,
        /// Policy directory.
        #[arg(long, default_value = "policies")]
        policies: PathBuf,
        /// Model name, for policies that select on it.
        #[arg(long, default_value = "")]
        model: String,
        /// `openai` or `anthropic`.
        #[arg(long, default_value = "openai")]
        provider: String,
        /// Role of the text (system, user, assistant, tool) [default: user for prompts, assistant for completions].
        #[arg(long)]
        role: Option<String>,
        /// Read the text from a file (`-` for standard input).
        #[arg(long)]
        file: Option<PathBuf>,
        /// The text (`-` reads standard input).
        text: Option<String>,
    },
    /// Measure the policy set on labelled rows: caught, false positives, rules, latency; with
    /// --gate, exit 1 when a figure is worse than the committed one.
    Eval(eval::EvalArgs),
    /// The audit trail: verify its chain and checkpoints, export it, or follow it.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check every link and checkpoint; report each break with its file and line; exit 1 if any.
    Verify {
        /// The trail's directory.
        dir: PathBuf,
        /// Public key file: every checkpoint must be signed by it.
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Export request records, filtered (streams the trail: constant memory).
    Export {
        /// The trail's directory.
        dir: PathBuf,
        /// Records at or after this time (2026-12-01T10:00:00Z, 2026-12-01, or a duration ago: 2h).
        #[arg(long)]
        since: Option<String>,
        /// Records before this time.
        #[arg(long)]
        until: Option<String>,
        /// The request's strongest action: allow, flag, redact, block.
        #[arg(long)]
        action: Option<String>,
        /// A rule of this policy fired.
        #[arg(long)]
        policy: Option<String>,
        /// This rule fired (`policy/rule` or the rule's id).
        #[arg(long)]
        rule: Option<String>,
        /// The tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// jsonl, csv or otlp (OTLP/JSON logs).
        #[arg(long, default_value = "jsonl")]
        format: String,
        /// Write here rather than to standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The latest decisions, readable; `--follow` prints new ones as they come.
    Tail {
        /// The trail's directory.
        dir: PathBuf,
        /// How many.
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: usize,
        /// Keep printing new records.
        #[arg(short, long)]
        follow: bool,
    },
}

/// Loads a policy directory, verifying its signature when a key is given.
fn load_policies(dir: &std::path::Path, verify_key: Option<&std::path::Path>) -> Result<PolicySet> {
    let verify_key = verify_key.map(warden_policy::sign::read_verifying_key).transpose().map_err(anyhow::Error::msg)?;
    PolicySet::load_with(dir, &warden_policy::LoadOptions { verify_key }).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Writes a private key readable by its owner only.
fn write_private(path: &std::path::Path, text: &str) -> Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f =
        opts.open(path).with_context(|| format!("cannot create {} (does it exist already?)", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// A decision as a table, for a person at a terminal.
fn print_decision_table(d: &warden_core::Decision, text: &str) {
    println!(
        "decision: {}   ({} µs, policy set {})",
        d.action.as_str(),
        d.elapsed_us,
        &d.policy_digest[..12.min(d.policy_digest.len())]
    );
    if d.hits.is_empty() {
        println!("no rule fired");
        return;
    }
    println!("{:<40} {:<10} {:<8} {:<8} matched", "policy/rule", "detector", "action", "applied");
    for h in &d.hits {
        let matched: Vec<String> =
            h.findings.iter().map(|f| format!("{:?}", text.get(f.span.clone()).unwrap_or(&f.label))).collect();
        let rule = format!("{}/{}", h.policy, h.rule);
        println!(
            "{:<40} {:<10} {:<8} {:<8} {}",
            rule,
            h.detector,
            h.action.as_str(),
            h.applied.as_str(),
            matched.join(", ")
        );
        if let Some(e) = &h.error {
            println!("    error: {e}");
        }
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            config,
            listen,
            policies,
            upstream_openai,
            upstream_anthropic,
            verify_key,
            admin_listen,
            log_format,
            audit_dir,
        } => {
            warden_telemetry::logs::init(&log_format).map_err(anyhow::Error::msg)?;
            let mut c = match &config {
                Some(p) => Config::from_file(p)?,
                None => Config::default(),
            };
            if let Some(l) = listen {
                c.listen = l;
            }
            if let Some(p) = policies {
                c.policies = p;
            }
            if let Some(u) = upstream_openai {
                c.upstreams.openai.url = u;
            }
            if let Some(u) = upstream_anthropic {
                c.upstreams.anthropic.url = u;
            }
            if let Some(k) = verify_key {
                c.verify_key = Some(k);
            }
            match admin_listen.as_deref().map(str::trim) {
                None => {}
                Some("off") => c.admin_listen = None,
                Some(a) => {
                    c.admin_listen = Some(
                        a.parse()
                            .with_context(|| format!("--admin-listen `{a}` is not an address (HOST:PORT) or `off`"))?,
                    )
                }
            }
            if let Some(d) = audit_dir {
                c.audit.dir = Some(d);
            }
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(warden_proxy::run(
                c,
                |addr| {
                    // Scripts and tests wait for this line.
                    println!("listening on http://{addr}");
                    let _ = std::io::stdout().flush();
                },
                |admin| {
                    println!("admin listening on http://{admin}");
                    let _ = std::io::stdout().flush();
                },
            ))
            .map_err(anyhow::Error::msg)
        }
        Command::Validate { dir, verify_key } => match load_policies(&dir, verify_key.as_deref()) {
            Ok(set) => {
                let rules: usize = set.policies().iter().map(|p| p.rules.len()).sum();
                println!("ok: {} policies, {rules} rules, digest {}", set.policies().len(), set.digest());
                Ok(())
            }
            Err(e) => {
                eprint!("{e}");
                std::process::exit(1);
            }
        },
        Command::Check { phase, policies, model, provider, role, file, text } => {
            let phase = eval::parse_phase(&phase)?;
            let provider = Provider::from_name(&provider).with_context(|| {
                format!("--provider must be one of openai, anthropic, azure, gemini, not `{provider}`")
            })?;
            let role = eval::parse_role(role.as_deref(), phase)?;
            let text = match (text, file) {
                (Some(t), None) if t == "-" => {
                    let mut s = String::new();
                    std::io::stdin().read_to_string(&mut s)?;
                    s
                }
                (Some(t), None) => t,
                (None, Some(f)) if f.as_os_str() == "-" => {
                    let mut s = String::new();
                    std::io::stdin().read_to_string(&mut s)?;
                    s
                }
                (None, Some(f)) => {
                    std::fs::read_to_string(&f).with_context(|| format!("cannot read {}", f.display()))?
                }
                _ => anyhow::bail!("give the text as an argument or with --file (not both)"),
            };
            let set = PolicySet::load(&policies).map_err(|e| anyhow::anyhow!("{e}"))?;
            let route = provider.chat_route();
            let target = Target::new(provider, route, &model, "cli");
            let d = set.evaluate(phase, &target, &[(role, text.as_str())]);
            if std::io::stdout().is_terminal() {
                print_decision_table(&d, &text);
            } else {
                println!("{}", serde_json::to_string_pretty(&d)?);
            }
            Ok(())
        }
        Command::Test { dir, verbose, run } => {
            let set = match PolicySet::load(&dir) {
                Ok(s) => s,
                Err(e) => {
                    eprint!("{e}");
                    std::process::exit(2);
                }
            };
            let outcomes = warden_policy::testing::run_all(&set, run.as_deref());
            let mut failed = 0;
            for o in &outcomes {
                let label = format!("{}/{} ({})", o.policy, o.name, o.file.display());
                if o.passed {
                    if verbose {
                        println!("PASS: {label} ({:?})", o.elapsed);
                    }
                } else {
                    failed += 1;
                    println!("FAIL: {label} ({:?})", o.elapsed);
                    for line in o.diff.as_deref().unwrap_or("").lines() {
                        println!("      {line}");
                    }
                }
            }
            println!("--------------------------------------------------------------------------------");
            println!("{} passed, {failed} failed", outcomes.len() - failed);
            if outcomes.is_empty() {
                eprintln!("no policy tests found in {}", dir.display());
                std::process::exit(1);
            }
            if failed > 0 {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Sign { key, dir } => {
            let key = warden_policy::sign::read_signing_key(&key).map_err(anyhow::Error::msg)?;
            // Refuse to sign a set that does not load: a signature vouches for a working set.
            PolicySet::load(&dir).map_err(|e| anyhow::anyhow!("not signing a policy set with errors:\n{e}"))?;
            let n = warden_policy::sign::sign_dir(&dir, &key).map_err(anyhow::Error::msg)?;
            println!("signed {n} files in {}", dir.display());
            Ok(())
        }
        Command::Audit { command } => audit(command),
        Command::Eval(args) => eval::eval(args),
        Command::Keygen { out } => {
            let (private, public) = warden_policy::sign::generate().map_err(anyhow::Error::msg)?;
            let key_path = out.with_extension("key");
            let pub_path = out.with_extension("pub");
            write_private(&key_path, &private)?;
            std::fs::write(&pub_path, public)?;
            println!("wrote {} (keep it secret) and {}", key_path.display(), pub_path.display());
            Ok(())
        }
    }
}

/// `warden audit ...`.
fn audit(command: AuditCommand) -> Result<()> {
    use warden_audit::export::{self, Filter, Format};
    match command {
        AuditCommand::Verify { dir, key } => {
            let key = key.map(|k| warden_core::keys::read_verifying_key(&k)).transpose().map_err(anyhow::Error::msg)?;
            let r = warden_audit::verify::verify(&dir, key.as_ref())
                .with_context(|| format!("cannot read {}", dir.display()))?;
            for p in &r.problems {
                eprintln!("{p}");
            }
            let signed = match &key {
                Some(_) => format!(", {} signed by the key", r.signed),
                None => ", signatures not checked (no --key)".to_string(),
            };
            let summary = format!(
                "{} lines in {} segments (seq {}..{}), {} checkpoints{signed}, {} shed, {} gaps, {} lines after the last checkpoint",
                r.lines, r.segments, r.first_seq, r.last_seq, r.checkpoints, r.shed, r.gaps, r.uncovered
            );
            if r.problems.is_empty() {
                println!("ok: {summary}");
                Ok(())
            } else {
                eprintln!(
                    "broken: {} problems; the first is the first place the trail was changed ({summary})",
                    r.problems.len()
                );
                std::process::exit(1);
            }
        }
        AuditCommand::Export { dir, since, until, action, policy, rule, tenant, format, out } => {
            let time = |t: Option<String>| t.map(|t| export::parse_time(&t)).transpose().map_err(anyhow::Error::msg);
            let filter = Filter { since: time(since)?, until: time(until)?, action, policy, rule, tenant };
            let format = Format::parse(&format).map_err(anyhow::Error::msg)?;
            let progress = std::io::stderr().is_terminal();
            let n = match out {
                Some(path) => {
                    let f =
                        std::fs::File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
                    export::export(&dir, &filter, format, &mut std::io::BufWriter::new(f), progress)
                }
                None => export::export(
                    &dir,
                    &filter,
                    format,
                    &mut std::io::BufWriter::new(std::io::stdout().lock()),
                    progress,
                ),
            }
            .map_err(anyhow::Error::msg)?;
            eprintln!("{n} records");
            Ok(())
        }
        AuditCommand::Tail { dir, lines, follow } => {
            export::tail(&dir, lines, follow, &mut std::io::stdout().lock()).map_err(anyhow::Error::msg)
        }
    }
}
