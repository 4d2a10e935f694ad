//! `warden eval`: labelled rows through the real policy set, with a progress bar on a terminal,
//! tables or JSON, and a regression gate (see [`warden_policy::eval`]).

use anyhow::{Context, Result};
use std::io::IsTerminal;
use std::path::PathBuf;
use warden_core::{Phase, Role};
use warden_policy::eval::{self, Gate, Options};
use warden_policy::PolicySet;

/// The arguments of `warden eval`.
#[derive(clap::Args)]
pub struct EvalArgs {
    /// Labelled rows, JSON Lines: {"text", "label"} (optional "family", "role").
    #[arg(long)]
    data: PathBuf,
    /// Policy directory.
    #[arg(long, default_value = "policies")]
    policies: PathBuf,
    /// `prompt` or `completion`.
    #[arg(long, default_value = "prompt")]
    phase: String,
    /// Role of each text (system, developer, user, assistant, tool) unless its row names one
    /// [default: user for prompts, assistant for completions].
    #[arg(long)]
    role: Option<String>,
    /// Judge completions in the streaming form, cut into random pieces of 1-24 bytes.
    #[arg(long)]
    stream: bool,
    /// Seed of the random chunking.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Model name, for policies that select on it.
    #[arg(long, default_value = "gpt-4o")]
    model: String,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Committed figures: exit 1 if recall falls or false positives rise past them.
    #[arg(long)]
    gate: Option<PathBuf>,
    /// Write this run's figures as a gate file.
    #[arg(long)]
    write_gate: Option<PathBuf>,
    /// With --write-gate: how far a figure may move the wrong way before the gate fails.
    #[arg(long, default_value_t = 0.0)]
    slack: f64,
}

/// `--phase`.
pub fn parse_phase(phase: &str) -> Result<Phase> {
    match phase {
        "prompt" => Ok(Phase::Prompt),
        "completion" => Ok(Phase::Completion),
        other => anyhow::bail!("--phase must be prompt or completion, not `{other}`"),
    }
}

/// `--role`, defaulting by phase.
pub fn parse_role(role: Option<&str>, phase: Phase) -> Result<Role> {
    match role {
        None if phase == Phase::Prompt => Ok(Role::User),
        None => Ok(Role::Assistant),
        Some(r) => Role::from_provider(r)
            .with_context(|| format!("--role `{r}` is not one of system, developer, user, assistant, tool")),
    }
}

/// Runs `warden eval`; exits 1 when a gate fails.
pub fn eval(a: EvalArgs) -> Result<()> {
    let phase = parse_phase(&a.phase)?;
    let options =
        Options { phase, role: parse_role(a.role.as_deref(), phase)?, stream: a.stream, seed: a.seed, model: a.model };
    eval::check_options(&options).map_err(anyhow::Error::msg)?;
    let gate: Option<Gate> = a
        .gate
        .as_ref()
        .map(|g| -> Result<Gate> {
            let text = std::fs::read_to_string(g).with_context(|| format!("cannot read the gate {}", g.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not a gate file (write one with --write-gate)", g.display()))
        })
        .transpose()?;
    let text = std::fs::read_to_string(&a.data).with_context(|| format!("cannot read {}", a.data.display()))?;
    let rows = eval::read_rows(&text).map_err(|e| anyhow::anyhow!("{}: {e}", a.data.display()))?;
    let set = PolicySet::load(&a.policies).map_err(|e| anyhow::anyhow!("{e}"))?;
    let bar = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(rows.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} rows, {per_sec}, {eta} left")
                .expect("a valid template"),
        );
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let report = eval::run(&set, &options, &rows, || bar.inc(1));
    bar.finish_and_clear();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", eval::render(&report));
    }
    if let Some(path) = &a.write_gate {
        let g = Gate::from_report(&report, a.slack);
        std::fs::write(path, serde_json::to_string_pretty(&g)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote the gate {}", path.display());
    }
    if let Some(g) = gate {
        let fails = g.check(&report);
        if !fails.is_empty() {
            for f in &fails {
                eprintln!("gate: {f}");
            }
            eprintln!(
                "gate {} failed: {} figures are worse than committed (if the change is meant, write the gate again with --write-gate)",
                a.gate.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
                fails.len()
            );
            std::process::exit(1);
        }
        eprintln!(
            "gate passed: no figure is worse than {}",
            a.gate.as_ref().map(|p| p.display().to_string()).unwrap_or_default()
        );
    }
    Ok(())
}
