//! `warden-load`: the load generator of `benches/load.sh`.
//!
//! A closed-loop HTTP/1.1 client (keep-alive, one request in flight per connection, like `wrk`)
//! that measures, for mock-llm alone ("direct") and for Warden in front of it ("warden"), a
//! ~1 KB OpenAI chat prompt answered with a ~1 KB completion:
//!
//! - non-streamed: requests/s and latency percentiles;
//! - streamed (`"stream": true`, `x-mock-chunk`): requests/s, time to first token (until the
//!   first SSE event with a non-empty `delta.content` has arrived) and total time;
//! - paced-stream: the same with `x-mock-delay-ms` between deltas, which shows how long the stream
//!   guard holds text back before releasing it;
//!
//! and prints the latency Warden adds. Every run is bounded by time (`--warmup` + `--duration`)
//! and by count (`--max-requests`), targets must be loopback addresses, and the program stops by
//! itself. With `--direct-pid`/`--warden-pid` it also reads the servers' CPU time from `/proc`.
//! With `--skip-direct` it measures the Warden target only (mock-llm is still checked once), for
//! scripts that compare several Wardens in front of one mock (`benches/tracing.sh`).

use clap::Parser;
use serde_json::{json, Value};
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Parser, Debug)]
#[command(name = "warden-load", about = "Loopback load benchmark: mock-llm direct vs through Warden")]
struct Args {
    /// mock-llm's base URL (`http://127.0.0.1:PORT`).
    #[arg(long)]
    direct: String,
    /// Warden's base URL, in front of the same mock-llm.
    #[arg(long)]
    warden: String,
    /// mock-llm's process id, to report its CPU time per request.
    #[arg(long)]
    direct_pid: Option<u32>,
    /// Warden's process id, to report its CPU time per request.
    #[arg(long)]
    warden_pid: Option<u32>,
    /// Connection counts to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,32")]
    connections: Vec<usize>,
    /// Seconds measured per run.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of warm-up before each run (not measured).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Most requests measured per run.
    #[arg(long, default_value_t = 2_000_000)]
    max_requests: usize,
    /// Per-request timeout, seconds.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// Prompt size, bytes.
    #[arg(long, default_value_t = 1024)]
    prompt_bytes: usize,
    /// Completion size, bytes.
    #[arg(long, default_value_t = 1024)]
    reply_bytes: usize,
    /// Characters per streamed delta (`x-mock-chunk`).
    #[arg(long, default_value_t = 16)]
    chunk: usize,
    /// Milliseconds between deltas in the paced-stream runs (`x-mock-delay-ms`); 0 skips them.
    #[arg(long, default_value_t = 5)]
    delay_ms: u64,
    /// Measure the Warden target only: mock-llm is checked once but not measured, and there is no
    /// "added by Warden" table. For comparing several Wardens, one invocation each
    /// (`benches/tracing.sh`).
    #[arg(long)]
    skip_direct: bool,
    /// Send the same prompt every time. By default each request's prompt starts with its own
    /// number, so that caches keyed by the text (the classifier's) do not answer for it, as with
    /// real users' prompts.
    #[arg(long)]
    same_prompt: bool,
    /// Write the raw numbers here as JSON.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Free text stored in the JSON (the script passes the date and commit).
    #[arg(long, default_value = "")]
    note: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Plain,
    Stream,
    /// Streamed with `x-mock-delay-ms` between deltas, like a model producing text over time.
    Paced,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Plain => "non-streamed",
            Mode::Stream => "streamed",
            Mode::Paced => "paced-stream",
        }
    }
}

fn loopback(url: &str) -> Result<SocketAddr, String> {
    let hostport = url.strip_prefix("http://").ok_or_else(|| format!("{url}: only http:// URLs"))?;
    let addr: SocketAddr =
        hostport.trim_end_matches('/').parse().map_err(|e| format!("{url}: expected http://IP:PORT ({e})"))?;
    if !addr.ip().is_loopback() {
        return Err(format!("{url}: refusing a non-loopback target"));
    }
    Ok(addr)
}

/// The request bytes for one target and mode.
fn request(addr: SocketAddr, mode: Mode, prompt: &str, reply: &str, chunk: usize, delay_ms: u64) -> Vec<u8> {
    let body = json!({
        "model": "mock-1",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": prompt},
        ],
        "stream": mode != Mode::Plain,
    })
    .to_string();
    let mut r = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         authorization: Bearer sk-bench-not-a-key\r\nx-mock-reply: {reply}\r\ncontent-length: {}\r\n",
        body.len()
    );
    if mode != Mode::Plain {
        r.push_str(&format!("x-mock-chunk: {chunk}\r\naccept: text/event-stream\r\n"));
    }
    if mode == Mode::Paced {
        r.push_str(&format!("x-mock-delay-ms: {delay_ms}\r\n"));
    }
    r.push_str("\r\n");
    let mut v = r.into_bytes();
    v.extend_from_slice(body.as_bytes());
    v
}

/// One keep-alive connection with its read buffer.
struct Conn {
    s: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

fn err(m: impl Into<String>) -> io::Error {
    io::Error::other(m.into())
}

impl Conn {
    async fn open(addr: SocketAddr) -> io::Result<Self> {
        let s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        Ok(Self { s, buf: vec![0; 16 << 10], start: 0, end: 0 })
    }

    fn avail(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Reads more bytes; end of stream is an error (a response is always incomplete then).
    async fn more(&mut self) -> io::Result<()> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.start > 0 && self.buf.len() - self.end < 4096 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() - self.end < 4096 {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        let n = self.s.read(&mut self.buf[self.end..]).await?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the server closed the connection"));
        }
        self.end += n;
        Ok(())
    }

    /// Waits for a CRLF-terminated line; returns its length without the CRLF.
    async fn line(&mut self) -> io::Result<usize> {
        loop {
            if let Some(i) = find(self.avail(), b"\r\n") {
                return Ok(i);
            }
            if self.avail().len() > 64 << 10 {
                return Err(err("a line longer than 64 KB"));
            }
            self.more().await?;
        }
    }

    async fn fill(&mut self, n: usize) -> io::Result<()> {
        while self.avail().len() < n {
            self.more().await?;
        }
        Ok(())
    }
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

/// What one exchange measured.
struct Sample {
    total: Duration,
    ttft: Option<Duration>,
    /// The connection cannot be reused.
    close: bool,
    /// With `check`: the completion text and the `x-warden-decision` header.
    content: String,
    decision: Option<String>,
}

/// Follows the SSE events of a streamed answer.
struct Sse {
    line: Vec<u8>,
    done: bool,
    ttft: Option<Duration>,
    check: bool,
    content: String,
}

impl Sse {
    fn feed(&mut self, data: &[u8], t0: Instant) -> io::Result<()> {
        if self.ttft.is_some() && !self.check {
            // Past the first token only the end matters; `data: [DONE]` is the last event.
            self.line.extend_from_slice(data);
            if self.line.len() > 64 {
                self.line.drain(..self.line.len() - 64);
            }
            if find(&self.line, b"data: [DONE]").is_some() {
                self.done = true;
            }
            return Ok(());
        }
        self.line.extend_from_slice(data);
        while let Some(i) = self.line.iter().position(|&b| b == b'\n') {
            let l: Vec<u8> = self.line.drain(..=i).collect();
            let l = l.strip_suffix(b"\n").unwrap_or(&l);
            let l = l.strip_suffix(b"\r").unwrap_or(l);
            let Some(d) = l.strip_prefix(b"data:") else { continue };
            let d = d.trim_ascii();
            if d == b"[DONE]" {
                self.done = true;
                continue;
            }
            let v: Value = serde_json::from_slice(d).map_err(|e| err(format!("an SSE event is not JSON: {e}")))?;
            if let Some(c) = v["choices"][0]["delta"]["content"].as_str() {
                if !c.is_empty() && self.ttft.is_none() {
                    self.ttft = Some(t0.elapsed());
                }
                if self.check {
                    self.content.push_str(c);
                }
            }
            if let Some(r) = v["choices"][0]["finish_reason"].as_str() {
                if r != "stop" {
                    return Err(err(format!("the stream ended with finish_reason {r}")));
                }
            }
        }
        Ok(())
    }
}

/// Sends one request and reads the whole answer.
async fn exchange(c: &mut Conn, req: &[u8], mode: Mode, check: bool) -> io::Result<Sample> {
    let t0 = Instant::now();
    c.s.write_all(req).await?;
    // Head.
    let head_len = loop {
        if let Some(i) = find(c.avail(), b"\r\n\r\n") {
            break i + 4;
        }
        if c.avail().len() > 64 << 10 {
            return Err(err("a response head longer than 64 KB"));
        }
        c.more().await?;
    };
    let head = std::str::from_utf8(&c.avail()[..head_len]).map_err(|_| err("a non-UTF-8 response head"))?.to_string();
    c.start += head_len;
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or("");
    let ok = status.starts_with("HTTP/1.1 200");
    let (mut length, mut chunked, mut close, mut decision) = (None, false, false, None);
    for h in lines {
        let Some((k, v)) = h.split_once(':') else { continue };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
        match k.as_str() {
            "content-length" => length = v.parse::<usize>().ok(),
            "transfer-encoding" => chunked = v.to_ascii_lowercase().contains("chunked"),
            "connection" => close = v.eq_ignore_ascii_case("close"),
            "x-warden-decision" => decision = Some(v.to_string()),
            _ => {}
        }
    }
    let mut body = Vec::new();
    let mut sse = Sse { line: Vec::new(), done: false, ttft: None, check, content: String::new() };
    let streaming = ok && mode != Mode::Plain;
    let mut sink = |data: &[u8], body: &mut Vec<u8>| -> io::Result<()> {
        if streaming {
            sse.feed(data, t0)
        } else {
            body.extend_from_slice(data);
            Ok(())
        }
    };
    if chunked {
        loop {
            let n = c.line().await?;
            let size_text = std::str::from_utf8(&c.avail()[..n]).map_err(|_| err("a bad chunk size"))?;
            let size_text = size_text.split(';').next().unwrap_or("").trim();
            let size =
                usize::from_str_radix(size_text, 16).map_err(|_| err(format!("a bad chunk size {size_text:?}")))?;
            c.start += n + 2;
            if size == 0 {
                // Trailers, then an empty line.
                loop {
                    let n = c.line().await?;
                    c.start += n + 2;
                    if n == 0 {
                        break;
                    }
                }
                break;
            }
            c.fill(size + 2).await?;
            let (a, b) = (c.start, c.start + size);
            sink(&c.buf[a..b], &mut body)?;
            c.start = b + 2;
        }
    } else if let Some(len) = length {
        c.fill(len).await?;
        let (a, b) = (c.start, c.start + len);
        sink(&c.buf[a..b], &mut body)?;
        c.start = b;
    } else {
        return Err(err("a response with neither content-length nor chunked encoding"));
    }
    let total = t0.elapsed();
    if !ok {
        let text = String::from_utf8_lossy(&body);
        return Err(err(format!("{status}: {}", text.chars().take(300).collect::<String>())));
    }
    let mut content = String::new();
    if streaming {
        if !sse.done {
            return Err(err("the stream ended without data: [DONE]"));
        }
        if sse.ttft.is_none() {
            return Err(err("the stream carried no content"));
        }
        content = sse.content;
    } else if check {
        let v: Value = serde_json::from_slice(&body).map_err(|e| err(format!("the answer is not JSON: {e}")))?;
        content = v["choices"][0]["message"]["content"].as_str().unwrap_or("").to_string();
    }
    Ok(Sample { total, ttft: sse.ttft, close, content, decision })
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // USER_HZ is 100 on Linux.
    Some(ticks / 100.0)
}

struct Pids {
    direct: Option<u32>,
    warden: Option<u32>,
}

fn cpu_snapshot(p: &Pids) -> [Option<f64>; 3] {
    [p.direct.and_then(cpu_seconds), p.warden.and_then(cpu_seconds), cpu_seconds(std::process::id())]
}

#[derive(Default)]
struct Collected {
    total: Vec<u64>,
    ttft: Vec<u64>,
    errors: usize,
    first_error: Option<String>,
}

struct Run {
    mode: Mode,
    connections: usize,
    target: &'static str,
    measured: Duration,
    c: Collected,
    cpu: [Option<f64>; 3],
}

struct Plan {
    warmup: Duration,
    duration: Duration,
    timeout: Duration,
    max_requests: usize,
}

/// Where each request writes its own number into the prompt (unless `--same-prompt`).
const NUMBER: &str = "#000000000000000";

/// Requests sent so far, across connections: each prompt's number.
static SENT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Writes the next request number over the prompt's `NUMBER`, if it has one.
fn number(req: &mut [u8], at: Option<usize>) {
    let Some(at) = at else { return };
    let n = SENT.fetch_add(1, Ordering::Relaxed);
    let digits = format!("#{n:015}");
    req[at..at + NUMBER.len()].copy_from_slice(&digits.as_bytes()[..NUMBER.len()]);
}

async fn run_one(
    addr: SocketAddr,
    req: Arc<Vec<u8>>,
    mode: Mode,
    conns: usize,
    plan: &Plan,
    pids: &Pids,
) -> (Collected, [Option<f64>; 3]) {
    let start = Instant::now();
    let from = start + plan.warmup;
    let until = from + plan.duration;
    let counted = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let mut req = req.as_ref().clone();
        let at = find(&req, NUMBER.as_bytes());
        let counted = Arc::clone(&counted);
        let (timeout, max) = (plan.timeout, plan.max_requests);
        tasks.push(tokio::spawn(async move {
            let mut out = Collected::default();
            let mut conn: Option<Conn> = None;
            loop {
                let t = Instant::now();
                if t >= until || counted.load(Ordering::Relaxed) >= max {
                    break;
                }
                let measuring = t >= from;
                let result = tokio::time::timeout(timeout, async {
                    if conn.is_none() {
                        conn = Some(Conn::open(addr).await?);
                    }
                    number(&mut req, at);
                    exchange(conn.as_mut().expect("just opened"), &req, mode, false).await
                })
                .await
                .unwrap_or_else(|_| Err(err(format!("no complete answer within {timeout:?}"))));
                match result {
                    Ok(s) => {
                        if s.close {
                            conn = None;
                        }
                        if measuring && Instant::now() <= until {
                            counted.fetch_add(1, Ordering::Relaxed);
                            out.total.push(s.total.as_nanos() as u64);
                            if let Some(f) = s.ttft {
                                out.ttft.push(f.as_nanos() as u64);
                            }
                        }
                    }
                    Err(e) => {
                        conn = None;
                        if measuring {
                            out.errors += 1;
                            out.first_error.get_or_insert_with(|| e.to_string());
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            out
        }));
    }
    tokio::time::sleep_until(from.into()).await;
    let before = cpu_snapshot(pids);
    tokio::time::sleep_until(until.into()).await;
    let after = cpu_snapshot(pids);
    let mut all = Collected::default();
    for t in tasks {
        let c = t.await.expect("a load task panicked");
        all.total.extend(c.total);
        all.ttft.extend(c.ttft);
        all.errors += c.errors;
        if all.first_error.is_none() {
            all.first_error = c.first_error;
        }
    }
    all.total.sort_unstable();
    all.ttft.sort_unstable();
    let mut cpu = [None; 3];
    for i in 0..3 {
        if let (Some(a), Some(b)) = (before[i], after[i]) {
            cpu[i] = Some(b - a);
        }
    }
    (all, cpu)
}

/// The value at quantile `q` (nearest rank), in milliseconds.
fn pct(v: &[u64], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let i = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
    Some(v[i] as f64 / 1e6)
}

fn mean(v: &[u64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<u64>() as f64 / v.len() as f64 / 1e6)
}

fn dist(v: &[u64]) -> Value {
    if v.is_empty() {
        return Value::Null;
    }
    json!({
        "p50": pct(v, 0.50), "p90": pct(v, 0.90), "p99": pct(v, 0.99),
        "max": pct(v, 1.0), "min": pct(v, 0.0), "mean": mean(v), "count": v.len(),
    })
}

impl Run {
    fn rps(&self) -> f64 {
        self.c.total.len() as f64 / self.measured.as_secs_f64()
    }

    fn cpu_ms_per_req(&self, i: usize) -> Option<f64> {
        let n = self.c.total.len();
        self.cpu[i].filter(|_| n > 0).map(|s| s * 1000.0 / n as f64)
    }

    fn to_json(&self) -> Value {
        json!({
            "mode": self.mode.name(),
            "connections": self.connections,
            "target": self.target,
            "seconds": self.measured.as_secs_f64(),
            "requests": self.c.total.len(),
            "errors": self.c.errors,
            "first_error": self.c.first_error,
            "rps": self.rps(),
            "latency_ms": dist(&self.c.total),
            "ttft_ms": dist(&self.c.ttft),
            "cpu_seconds": {"mock_llm": self.cpu[0], "warden": self.cpu[1], "load_generator": self.cpu[2]},
            "cpu_ms_per_request": {
                "mock_llm": self.cpu_ms_per_req(0), "warden": self.cpu_ms_per_req(1), "load_generator": self.cpu_ms_per_req(2),
            },
        })
    }
}

fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.3}"))
}

fn diff(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(a? - b?)
}

fn signed(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:+.3}"))
}

async fn main_async(args: Args) -> Result<(), String> {
    let direct = loopback(&args.direct)?;
    let warden = loopback(&args.warden)?;
    if args.duration <= 0.0 || args.duration > 600.0 || args.warmup < 0.0 || args.warmup > 600.0 {
        return Err("--duration must be in (0, 600] and --warmup in [0, 600] seconds".into());
    }
    if args.connections.is_empty() || args.connections.iter().any(|&c| c == 0 || c > 1024) {
        return Err("--connections must be between 1 and 1024".into());
    }
    let plan = Plan {
        warmup: Duration::from_secs_f64(args.warmup),
        duration: Duration::from_secs_f64(args.duration),
        timeout: Duration::from_secs_f64(args.timeout),
        max_requests: args.max_requests,
    };
    let pids = Pids { direct: args.direct_pid, warden: args.warden_pid };
    let mut prompt = warden_benches::prompt(args.prompt_bytes, 11);
    if !args.same_prompt {
        prompt.replace_range(..NUMBER.len().min(prompt.len()), NUMBER);
    }
    let reply = warden_benches::prompt(args.reply_bytes, 12);
    let targets = [("direct", direct), ("warden", warden)];
    let modes: Vec<Mode> = [Mode::Plain, Mode::Stream, Mode::Paced]
        .into_iter()
        .filter(|&m| m != Mode::Paced || args.delay_ms > 0)
        .collect();

    // Check every combination once: the right answer comes back, through Warden with a decision.
    for (name, addr) in targets {
        for &mode in &modes {
            let req = request(addr, mode, &prompt, &reply, args.chunk, args.delay_ms);
            let mut c = Conn::open(addr).await.map_err(|e| format!("{name} {addr}: cannot connect: {e}"))?;
            let s = tokio::time::timeout(plan.timeout, exchange(&mut c, &req, mode, true))
                .await
                .map_err(|_| format!("{name} {}: no answer within {:?}", mode.name(), plan.timeout))?
                .map_err(|e| format!("{name} {}: {e}", mode.name()))?;
            if s.content != reply {
                return Err(format!(
                    "{name} {}: the completion differs from the requested reply ({} bytes instead of {})",
                    mode.name(),
                    s.content.len(),
                    reply.len()
                ));
            }
            if name == "warden" && s.decision.as_deref() != Some("allow") {
                return Err(format!("warden {}: x-warden-decision is {:?}, expected allow", mode.name(), s.decision));
            }
        }
    }

    let mut runs: Vec<Run> = Vec::new();
    for &mode in &modes {
        for &conns in &args.connections {
            for (name, addr) in targets {
                if args.skip_direct && name == "direct" {
                    continue;
                }
                let req = Arc::new(request(addr, mode, &prompt, &reply, args.chunk, args.delay_ms));
                let (c, cpu) = run_one(addr, req, mode, conns, &plan, &pids).await;
                let r = Run { mode, connections: conns, target: name, measured: plan.duration, c, cpu };
                eprintln!(
                    "  {:<12} {:>4} conns  {:<6}  {:>9.0} req/s  p50 {} ms  p99 {} ms  ttft p50 {} ms  errors {}",
                    mode.name(),
                    conns,
                    name,
                    r.rps(),
                    ms(pct(&r.c.total, 0.5)),
                    ms(pct(&r.c.total, 0.99)),
                    ms(pct(&r.c.ttft, 0.5)),
                    r.c.errors
                );
                runs.push(r);
            }
        }
    }

    println!();
    println!(
        "Warden load benchmark: {} B prompt, {} B completion ({}-char deltas when streamed), {:.0} s per run after {:.0} s warm-up, loopback, {} CPUs",
        args.prompt_bytes,
        args.reply_bytes,
        args.chunk,
        args.duration,
        args.warmup,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    if args.delay_ms > 0 {
        println!(
            "paced-stream: streamed with {} ms between deltas (x-mock-delay-ms), as a model that produces text over time",
            args.delay_ms
        );
    }
    println!();
    println!(
        "{:<13} {:>5} {:<7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7}   CPU ms/req (warden, mock-llm, client)",
        "mode", "conns", "target", "req/s", "p50 ms", "p99 ms", "ttft p50", "ttft p99", "max ms", "errors"
    );
    for r in &runs {
        println!(
            "{:<13} {:>5} {:<7} {:>9.0} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7}   {}, {}, {}",
            r.mode.name(),
            r.connections,
            r.target,
            r.rps(),
            ms(pct(&r.c.total, 0.5)),
            ms(pct(&r.c.total, 0.99)),
            ms(pct(&r.c.ttft, 0.5)),
            ms(pct(&r.c.ttft, 0.99)),
            ms(pct(&r.c.total, 1.0)),
            r.c.errors,
            ms(r.cpu_ms_per_req(1).filter(|_| r.target == "warden")),
            ms(r.cpu_ms_per_req(0)),
            ms(r.cpu_ms_per_req(2)),
        );
    }
    let mut added = Vec::new();
    if !args.skip_direct {
        println!();
        println!("Added by Warden (warden minus direct), ms:");
        println!(
            "{:<13} {:>5} {:>9} {:>9} {:>9} {:>9} {:>12}",
            "mode", "conns", "p50", "p99", "ttft p50", "ttft p99", "req/s ratio"
        );
    }
    for pair in runs.chunks(2).filter(|_| !args.skip_direct) {
        let [d, w] = pair else { continue };
        let a = json!({
            "mode": d.mode.name(),
            "connections": d.connections,
            "latency_p50_ms": diff(pct(&w.c.total, 0.5), pct(&d.c.total, 0.5)),
            "latency_p99_ms": diff(pct(&w.c.total, 0.99), pct(&d.c.total, 0.99)),
            "latency_mean_ms": diff(mean(&w.c.total), mean(&d.c.total)),
            "ttft_p50_ms": diff(pct(&w.c.ttft, 0.5), pct(&d.c.ttft, 0.5)),
            "ttft_p99_ms": diff(pct(&w.c.ttft, 0.99), pct(&d.c.ttft, 0.99)),
            "rps_ratio": if d.rps() > 0.0 { Some(w.rps() / d.rps()) } else { None },
        });
        println!(
            "{:<13} {:>5} {:>9} {:>9} {:>9} {:>9} {:>12}",
            d.mode.name(),
            d.connections,
            signed(a["latency_p50_ms"].as_f64()),
            signed(a["latency_p99_ms"].as_f64()),
            signed(a["ttft_p50_ms"].as_f64()),
            signed(a["ttft_p99_ms"].as_f64()),
            a["rps_ratio"].as_f64().map_or("-".into(), |v| format!("{v:.2}")),
        );
        added.push(a);
    }
    let errors: usize = runs.iter().map(|r| r.c.errors).sum();
    if errors > 0 {
        println!();
        for r in runs.iter().filter(|r| r.c.errors > 0) {
            println!(
                "{} errors in {} {} conns {}: first: {}",
                r.c.errors,
                r.mode.name(),
                r.connections,
                r.target,
                r.c.first_error.as_deref().unwrap_or("?")
            );
        }
    }

    if let Some(path) = &args.out {
        let doc = json!({
            "note": args.note,
            "unix_time": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
            "config": {
                "prompt_bytes": args.prompt_bytes, "reply_bytes": args.reply_bytes, "chunk_chars": args.chunk,
                "paced_delay_ms": args.delay_ms,
                "duration_s": args.duration, "warmup_s": args.warmup, "connections": args.connections,
                "timeout_s": args.timeout, "max_requests": args.max_requests, "skip_direct": args.skip_direct,
                "client": "warden-load: closed loop, HTTP/1.1 keep-alive, one tokio current-thread runtime",
                "ttft": "time until the first SSE event with a non-empty choices[0].delta.content has fully arrived",
            },
            "runs": runs.iter().map(Run::to_json).collect::<Vec<_>>(),
            "added_by_warden": added,
        });
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
        println!();
        println!("raw numbers: {}", path.display());
    }
    if errors > 0 {
        return Err(format!("{errors} requests failed"));
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    // One thread: the client takes at most one core from the servers it measures.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
    match rt.block_on(main_async(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("warden-load: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
