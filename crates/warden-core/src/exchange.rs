//! The provider-neutral view of one request: [`Exchange`] and its [`Segment`]s.

use serde::Serialize;
use std::fmt;

/// Which API shape a request speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// `POST /v1/chat/completions`, `POST /v1/completions`.
    OpenAi,
    /// `POST /v1/messages`.
    Anthropic,
    /// Azure OpenAI: OpenAI shapes under `/openai/...`, with its own upstream and `api-key`.
    Azure,
    /// Google Gemini: `/v1beta/models/{model}:generateContent` and `:streamGenerateContent`.
    Gemini,
}

impl Provider {
    /// The name used in policies and telemetry (`openai`, `anthropic`, `azure`, `gemini`).
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
            Provider::Azure => "azure",
            Provider::Gemini => "gemini",
        }
    }
}

impl Provider {
    /// Every provider, in the order they are documented.
    pub const ALL: [Provider; 4] = [Provider::OpenAi, Provider::Anthropic, Provider::Azure, Provider::Gemini];

    /// Parses a name written in a policy or on the command line.
    pub fn from_name(name: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.as_str() == name)
    }

    /// The provider's main chat route, for judging a text outside a request (`warden check`,
    /// policy tests).
    pub fn chat_route(self) -> &'static str {
        match self {
            Provider::OpenAi => "/v1/chat/completions",
            Provider::Anthropic => "/v1/messages",
            Provider::Azure => "/openai/v1/chat/completions",
            Provider::Gemini => "/v1beta/models/gemini:generateContent",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which half of an exchange is being inspected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// What the client sends to the model.
    Prompt,
    /// What the model answers.
    Completion,
}

impl Phase {
    /// `prompt` or `completion`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Prompt => "prompt",
            Phase::Completion => "completion",
        }
    }
}

/// Who wrote a piece of text. Tool results and retrieved documents (`Tool`) are where indirect
/// prompt injection and RAG poisoning arrive, so policies can treat them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// System or developer instructions.
    System,
    /// The end user.
    User,
    /// The model (including earlier turns replayed in the prompt, and tool-call arguments).
    Assistant,
    /// Tool results and retrieved documents.
    Tool,
}

impl Role {
    /// `system`, `user`, `assistant` or `tool`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }

    /// Parses a provider's role name. `developer` (OpenAI) is a system role; `function` is a tool.
    pub fn from_provider(name: &str) -> Option<Role> {
        Some(match name {
            "system" | "developer" => Role::System,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            "tool" | "function" => Role::Tool,
            _ => return None,
        })
    }
}

/// One piece of text, with its role and where it sits in the JSON body, so that a redaction can be
/// written back in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Who wrote it.
    pub role: Role,
    /// The text itself.
    pub text: String,
    /// A JSON pointer (RFC 6901) to the string in the body, e.g. `/messages/2/content/0/text`.
    pub origin: String,
}

/// The provider-neutral view of one request (and, later, of its completion).
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The API shape.
    pub provider: Provider,
    /// The request path, e.g. `/v1/chat/completions`.
    pub route: String,
    /// The requested model name (empty if the body names none).
    pub model: String,
    /// Whether the client asked for a streamed answer.
    pub stream: bool,
    /// The tenant: from the configured header, else a hash of the API key, never the key.
    pub tenant: String,
    /// The prompt text, in body order.
    pub segments: Vec<Segment>,
}
