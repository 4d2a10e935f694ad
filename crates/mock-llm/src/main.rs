//! `mock-llm [--listen ADDR] [--script FILE] [--fixtures DIR]`: a fake
//! OpenAI/Azure/Anthropic/Gemini LLM server. Prints `listening on
//! http://IP:PORT` once bound. See the library documentation for routes and
//! `x-mock-*` headers.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use mock_llm::{Options, Script};

/// A fake OpenAI-, Azure-, Anthropic- and Gemini-shaped LLM server for tests, demos and benchmarks.
#[derive(Debug, Parser)]
#[command(name = "mock-llm", version, about)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:9000")]
    listen: String,
    /// YAML reply script: a list of `{when: SUBSTRING, reply: TEXT}`.
    #[arg(long)]
    script: Option<PathBuf>,
    /// Directory of the files that `x-mock-replay: NAME` answers with.
    #[arg(long, env = "MOCK_FIXTURES")]
    fixtures: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let args = Args::parse();
    let script = match &args.script {
        Some(path) => match Script::load(path) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("mock-llm: {e}");
                return ExitCode::from(2);
            }
        },
        None => Script::default(),
    };
    if let Some(dir) = &args.fixtures {
        if !dir.is_dir() {
            eprintln!("mock-llm: --fixtures (or MOCK_FIXTURES) {}: not a directory", dir.display());
            return ExitCode::from(2);
        }
    }
    let options = Options { script, fixtures: args.fixtures.clone() };
    match mock_llm::run_with(&args.listen, options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mock-llm: {}: {e}", args.listen);
            ExitCode::FAILURE
        }
    }
}
