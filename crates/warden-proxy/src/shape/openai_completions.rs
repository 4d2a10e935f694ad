//! OpenAI legacy completions: `POST /v1/completions`.
//!
//! Request: `prompt` (a string or a list of strings; token-id prompts cannot be inspected and are
//! refused) and `suffix`. Completion, per choice: `text` and the logprob `tokens` joined (their
//! `top_logprobs` keys are swept). Streamed: the same fields of each chunk.

use super::openai_chat::{
    blank_choice, cut_chunk, logprob_pieces, logprob_texts, remember_choices, withhold_choices, OpenAiChat,
};
use super::{
    index_of, model_and_stream, seg, CompletionText, DecodeError, DecodedRequest, ErrorShape, EventPieces, Piece,
    ResponseInfo, RouteInfo, Shape, StreamMemo, TextKey,
};
use crate::sse::encode;
use bytes::Bytes;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use warden_core::{Role, RuleHit};

/// OpenAI legacy completions.
pub struct OpenAiCompletions;

const SKIP: &[&str] = &["/model", "/user", "/stream_options/*", "/logit_bias/*", "/metadata/*"];

impl Shape for OpenAiCompletions {
    fn name(&self) -> &'static str {
        "openai.completions"
    }

    fn operation(&self) -> &'static str {
        "text_completion"
    }

    fn response_info(&self, _event: Option<&str>, data: &Value, info: &mut ResponseInfo) {
        super::openai_chat::choices_response_info(data, info);
    }

    fn errors(&self) -> ErrorShape {
        ErrorShape::OpenAi
    }

    fn decode(&self, body: &Value, route: &RouteInfo) -> Result<DecodedRequest, DecodeError> {
        let (model, stream) = model_and_stream(body)?;
        let mut out = Vec::new();
        match body.get("prompt") {
            Some(Value::String(s)) => out.push(seg(Role::User, s, "/prompt".into())),
            Some(Value::Array(a)) => {
                for (i, p) in a.iter().enumerate() {
                    match p {
                        Value::String(s) => out.push(seg(Role::User, s, format!("/prompt/{i}"))),
                        _ => {
                            return Err(DecodeError(
                                "`prompt` must be a string or a list of strings: token-id prompts cannot be inspected by Warden".into(),
                            ))
                        }
                    }
                }
            }
            None | Some(Value::Null) => {}
            Some(_) => return Err(DecodeError("`prompt` must be a string or a list of strings".into())),
        }
        if let Some(s) = body.get("suffix").and_then(Value::as_str) {
            out.push(seg(Role::User, s, "/suffix".into()));
        }
        let model = if model.is_empty() { route.path_model.clone().unwrap_or_default() } else { model };
        Ok(DecodedRequest { model, stream, segments: out, unseen: Vec::new() })
    }

    fn request_skip(&self) -> &'static [&'static str] {
        SKIP
    }

    fn completion_texts(&self, body: &Value) -> Vec<CompletionText> {
        let mut out = Vec::new();
        let Some(choices) = body.get("choices").and_then(Value::as_array) else { return out };
        for (k, c) in choices.iter().enumerate() {
            let choice = Some(index_of(c, k));
            if let Some(t) = c.get("text").and_then(Value::as_str) {
                out.push(CompletionText::string(t, format!("/choices/{k}/text"), choice));
            }
            logprob_texts(c, &format!("/choices/{k}"), choice, &mut out);
        }
        out
    }

    fn choice_of(&self, body: &Value, pointer: &str) -> Option<usize> {
        OpenAiChat.choice_of(body, pointer)
    }

    fn withhold(&self, body: &mut Value, choices: &BTreeSet<Option<usize>>, hit: &RuleHit) {
        withhold_choices(body, choices, hit, json!({ "text": "" }));
    }

    fn stream_pieces(&self, _event: Option<&str>, data: &Value) -> EventPieces {
        let mut pieces = Vec::new();
        let known = data.get("choices").is_some() || data.get("error").is_some();
        if let Some(choices) = data.get("choices").and_then(Value::as_array) {
            for (k, c) in choices.iter().enumerate() {
                let choice = index_of(c, k);
                if let Some(t) = c.get("text").and_then(Value::as_str) {
                    pieces.push(Piece::delta(TextKey::new(choice, "text"), format!("/choices/{k}/text"), t));
                }
                logprob_pieces(c, &format!("/choices/{k}"), choice, &mut pieces);
            }
        }
        EventPieces { pieces, known, last: false }
    }

    fn remember(&self, memo: &mut StreamMemo, data: &Value) {
        remember_choices(memo, data);
    }

    fn blank_stream_choice(&self, data: &mut Value, choice: usize) -> bool {
        blank_choice(data, choice, true)
    }

    fn end_stream_choice(&self, memo: &StreamMemo, choice: usize, hit: &RuleHit) -> Option<Bytes> {
        let one = StreamMemo { choices: [choice].into(), ..memo.clone() };
        Some(encode(None, &cut_chunk(&one, true, hit).to_string()))
    }

    fn cut_stream(&self, memo: &StreamMemo, hit: &RuleHit) -> Vec<Bytes> {
        vec![encode(None, &cut_chunk(memo, true, hit).to_string()), encode(None, "[DONE]")]
    }
}
