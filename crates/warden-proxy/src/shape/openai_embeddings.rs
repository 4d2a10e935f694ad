//! OpenAI embeddings: `POST /v1/embeddings` (and Azure OpenAI's `.../embeddings`).
//!
//! Prompt phase only: the `input` texts are judged (a poisoned document is refused before it
//! reaches a vector store). Token-id inputs cannot be read and are refused. The answer is vectors,
//! not text, so it is passed as it is.

use super::{
    model_and_stream, seg, CompletionText, DecodeError, DecodedRequest, ErrorShape, EventPieces, ResponseInfo,
    RouteInfo, Shape, StreamMemo,
};
use bytes::Bytes;
use serde_json::Value;
use std::collections::BTreeSet;
use warden_core::{Role, RuleHit};

/// OpenAI embeddings.
pub struct OpenAiEmbeddings;

const SKIP: &[&str] = &["/model", "/encoding_format", "/user"];

impl Shape for OpenAiEmbeddings {
    fn name(&self) -> &'static str {
        "openai.embeddings"
    }

    fn operation(&self) -> &'static str {
        "embeddings"
    }

    fn response_info(&self, _event: Option<&str>, data: &Value, info: &mut ResponseInfo) {
        info.model_from(data.get("model"));
        info.tokens_from(data.get("usage").and_then(|u| u.get("prompt_tokens")), None);
    }

    fn errors(&self) -> ErrorShape {
        ErrorShape::OpenAi
    }

    fn decode(&self, body: &Value, route: &RouteInfo) -> Result<DecodedRequest, DecodeError> {
        let (model, _) = model_and_stream(body)?;
        let token_ids = || {
            DecodeError(
                "`input` must be a string or a list of strings: token-id inputs cannot be inspected by Warden".into(),
            )
        };
        let mut out = Vec::new();
        match body.get("input") {
            Some(Value::String(s)) => out.push(seg(Role::User, s, "/input".into())),
            Some(Value::Array(a)) => {
                for (i, p) in a.iter().enumerate() {
                    match p {
                        Value::String(s) => out.push(seg(Role::User, s, format!("/input/{i}"))),
                        _ => return Err(token_ids()),
                    }
                }
            }
            _ => return Err(DecodeError("`input` is required: a string or a list of strings".into())),
        }
        let model = if model.is_empty() { route.path_model.clone().unwrap_or_default() } else { model };
        Ok(DecodedRequest { model, stream: false, segments: out, unseen: Vec::new() })
    }

    fn request_skip(&self) -> &'static [&'static str] {
        SKIP
    }

    fn judges_completion(&self) -> bool {
        false
    }

    fn completion_texts(&self, _body: &Value) -> Vec<CompletionText> {
        Vec::new()
    }

    fn withhold(&self, _body: &mut Value, _choices: &BTreeSet<Option<usize>>, _hit: &RuleHit) {}

    fn stream_pieces(&self, _event: Option<&str>, _data: &Value) -> EventPieces {
        EventPieces { pieces: Vec::new(), known: true, last: false }
    }

    fn cut_stream(&self, _memo: &StreamMemo, _hit: &RuleHit) -> Vec<Bytes> {
        Vec::new()
    }
}
