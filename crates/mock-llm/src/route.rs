//! Which API shape a POST path asks for.
//!
//! | path | API |
//! | --- | --- |
//! | `/v1/chat/completions` | OpenAI chat |
//! | `/v1/completions` | OpenAI legacy completions |
//! | `/v1/messages` | Anthropic Messages |
//! | `/v1/responses` | OpenAI Responses |
//! | `/v1/embeddings` | OpenAI embeddings |
//! | `/openai/deployments/{d}/chat/completions?api-version=V` | Azure: chat |
//! | `/openai/deployments/{d}/completions?api-version=V` | Azure: legacy completions |
//! | `/openai/deployments/{d}/embeddings?api-version=V` | Azure: embeddings |
//! | `/openai/v1/{chat/completions, completions, responses, embeddings}` | Azure v1 API |
//! | `/v1beta/models/{m}:generateContent`, `:streamGenerateContent[?alt=sse]` | Gemini (also `/v1/models/...`) |

use crate::gemini::StreamFraming;
use crate::reply::Api;

/// A recognised POST route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    pub api: Api,
    /// Azure OpenAI: answers carry content filter results.
    pub azure: bool,
    /// The model named by the path (Azure deployment, Gemini model).
    pub path_model: Option<String>,
    /// Gemini `:streamGenerateContent`: how to frame the chunks.
    pub gemini_stream: Option<StreamFraming>,
}

/// Why a path that looks like an API path cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RouteError {
    /// An Azure deployments path without `api-version` (Azure answers 404).
    AzureNoApiVersion,
    /// A Gemini model method the mock does not implement.
    GeminiUnknownMethod(String),
}

fn plain(api: Api) -> Route {
    Route { api, azure: false, path_model: None, gemini_stream: None }
}

fn query_param<'a>(query: Option<&'a str>, key: &str) -> Option<&'a str> {
    query?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == key).then_some(v)
    })
}

/// The route of `path` (with its `query`), `None` if no API lives there.
pub(crate) fn resolve(path: &str, query: Option<&str>) -> Option<Result<Route, RouteError>> {
    let api = match path {
        "/v1/chat/completions" => Some(Api::OpenAiChat),
        "/v1/completions" => Some(Api::OpenAiCompletions),
        "/v1/messages" => Some(Api::AnthropicMessages),
        "/v1/responses" => Some(Api::OpenAiResponses),
        "/v1/embeddings" => Some(Api::OpenAiEmbeddings),
        _ => None,
    };
    if let Some(api) = api {
        return Some(Ok(plain(api)));
    }
    if let Some(rest) = path.strip_prefix("/openai/v1/") {
        let api = match rest {
            "chat/completions" => Api::OpenAiChat,
            "completions" => Api::OpenAiCompletions,
            "responses" => Api::OpenAiResponses,
            "embeddings" => Api::OpenAiEmbeddings,
            _ => return None,
        };
        return Some(Ok(Route { azure: true, ..plain(api) }));
    }
    if let Some(rest) = path.strip_prefix("/openai/deployments/") {
        let (deployment, op) = rest.split_once('/')?;
        let api = match op {
            "chat/completions" => Api::OpenAiChat,
            "completions" => Api::OpenAiCompletions,
            "embeddings" => Api::OpenAiEmbeddings,
            _ => return None,
        };
        if deployment.is_empty() {
            return None;
        }
        if query_param(query, "api-version").is_none_or(str::is_empty) {
            return Some(Err(RouteError::AzureNoApiVersion));
        }
        return Some(Ok(Route { azure: true, path_model: Some(deployment.to_owned()), ..plain(api) }));
    }
    let model_method = path.strip_prefix("/v1beta/models/").or_else(|| path.strip_prefix("/v1/models/"))?;
    let (model, method) = model_method.rsplit_once(':')?;
    if model.is_empty() || model.contains('/') {
        return None;
    }
    let gemini_stream = match method {
        "generateContent" => None,
        "streamGenerateContent" => {
            Some(if query_param(query, "alt") == Some("sse") { StreamFraming::Sse } else { StreamFraming::JsonArray })
        }
        other => return Some(Err(RouteError::GeminiUnknownMethod(other.to_owned()))),
    };
    Some(Ok(Route { api: Api::Gemini, azure: false, path_model: Some(model.to_owned()), gemini_stream }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(resolve("/v1/chat/completions", None), Some(Ok(plain(Api::OpenAiChat))));
        assert_eq!(resolve("/v1/models", None), None);
        assert_eq!(resolve("/nope", None), None);
        let az = resolve("/openai/deployments/gpt4o/chat/completions", Some("api-version=2024-10-21"));
        assert_eq!(az, Some(Ok(Route { azure: true, path_model: Some("gpt4o".into()), ..plain(Api::OpenAiChat) })));
        assert_eq!(
            resolve("/openai/deployments/gpt4o/embeddings", Some("x=1")),
            Some(Err(RouteError::AzureNoApiVersion))
        );
        assert_eq!(
            resolve("/openai/v1/chat/completions", None),
            Some(Ok(Route { azure: true, ..plain(Api::OpenAiChat) }))
        );
        let g = resolve("/v1beta/models/gemini-2.5-flash:streamGenerateContent", Some("alt=sse&key=k"));
        assert_eq!(
            g,
            Some(Ok(Route {
                api: Api::Gemini,
                azure: false,
                path_model: Some("gemini-2.5-flash".into()),
                gemini_stream: Some(StreamFraming::Sse),
            }))
        );
        let g = resolve("/v1beta/models/g:streamGenerateContent", None);
        assert_eq!(g.and_then(Result::ok).and_then(|r| r.gemini_stream), Some(StreamFraming::JsonArray));
        assert_eq!(
            resolve("/v1beta/models/g:countTokens", None),
            Some(Err(RouteError::GeminiUnknownMethod("countTokens".into())))
        );
    }
}
