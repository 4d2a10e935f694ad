//! The `warden` command: `serve` runs the guarded proxy; `validate` and `check` work on a policy
//! directory without serving.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::io::{IsTerminal, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use warden_core::{Phase, Provider, Role};
use warden_policy::{PolicySet, Target};
use warden_proxy::Config;

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
        /// Log format: `text` or `json`.
        #[arg(long, default_value = "text", env = "WARDEN_LOG_FORMAT")]
        log_format: String,
    },
    /// Check a policy directory and list every problem; exits 1 if there is any.
    Validate {
        /// Policy directory.
        #[arg(default_value = "policies")]
        dir: PathBuf,
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
        /// The text.
        text: Option<String>,
    },
}

fn init_logs(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WARDEN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if format == "json" {
        b.json().init();
    } else {
        b.with_ansi(std::io::stderr().is_terminal()).init();
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config, listen, policies, upstream_openai, upstream_anthropic, log_format } => {
            init_logs(&log_format);
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
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(warden_proxy::run(c, |addr| {
                // Scripts and tests wait for this line.
                println!("listening on http://{addr}");
                let _ = std::io::stdout().flush();
            }))
            .map_err(anyhow::Error::msg)
        }
        Command::Validate { dir } => match PolicySet::load(&dir) {
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
            let phase = match phase.as_str() {
                "prompt" => Phase::Prompt,
                "completion" => Phase::Completion,
                other => anyhow::bail!("--phase must be prompt or completion, not `{other}`"),
            };
            let provider = match provider.as_str() {
                "openai" => Provider::OpenAi,
                "anthropic" => Provider::Anthropic,
                other => anyhow::bail!("--provider must be openai or anthropic, not `{other}`"),
            };
            let role = match role.as_deref() {
                None if phase == Phase::Prompt => Role::User,
                None => Role::Assistant,
                Some(r) => Role::from_provider(r)
                    .with_context(|| format!("--role `{r}` is not one of system, user, assistant, tool"))?,
            };
            let text = match (text, file) {
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
            let route = match provider {
                Provider::OpenAi => "/v1/chat/completions",
                Provider::Anthropic => "/v1/messages",
            };
            let target = Target { provider, route, model: &model, tenant: "cli" };
            let d = set.evaluate(phase, &target, &[(role, text.as_str())]);
            println!("{}", serde_json::to_string_pretty(&d)?);
            Ok(())
        }
    }
}
