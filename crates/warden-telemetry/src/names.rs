//! The names Warden writes into spans, after the OpenTelemetry semantic conventions (HTTP, GenAI)
//! where they have one, and in the `warden.` namespace where they do not.
//!
//! The span tree of one guarded request:
//!
//! | span | kind | what it holds |
//! | --- | --- | --- |
//! | `POST /v1/chat/completions` | SERVER | HTTP attributes, `warden.decision`, `warden.outcome`, `warden.request_id` |
//! | `warden.guard prompt` | INTERNAL | the prompt decision; one `warden.rule` and one `gen_ai.evaluation.result` event per rule that fired; a `warden.detector` event per costly detector |
//! | `chat gpt-4o` | CLIENT | the upstream call, GenAI attributes; for streams `warden.stream.*` |
//! | `warden.guard completion` | INTERNAL | the completion decision, as the prompt's |
//!
//! A guard verdict is written twice: as Warden's own `warden.rule` event, and as the GenAI
//! `gen_ai.evaluation.result` event, which is today the one standard place for a verdict
//! (`gen_ai.evaluation.name` = `policy/rule`, `gen_ai.evaluation.score.value` = the highest
//! finding score, `gen_ai.evaluation.score.label` = the applied action,
//! `gen_ai.evaluation.explanation` = the detector and what matched, by label). The phase span
//! and rule events also carry the names of the open GenAI guardrail proposal
//! (`gen_ai.guardrail.*`, semantic-conventions-genai PR #427; not merged, so they may change).
//! The Responses API is a `chat` operation with `openai.api.type = responses`, as the GenAI
//! conventions say (they have no `responses` operation).

/// HTTP method (`POST`).
pub const HTTP_METHOD: &str = "http.request.method";
/// The route template (`/v1/chat/completions`).
pub const HTTP_ROUTE: &str = "http.route";
/// The status sent.
pub const HTTP_STATUS: &str = "http.response.status_code";
/// The request path as sent.
pub const URL_PATH: &str = "url.path";
/// `http`.
pub const URL_SCHEME: &str = "url.scheme";
/// `1.1` or `2`.
pub const NETWORK_PROTOCOL_VERSION: &str = "network.protocol.version";
/// The client's User-Agent.
pub const USER_AGENT: &str = "user_agent.original";
/// The upstream's host, or Warden's own on the SERVER span.
pub const SERVER_ADDRESS: &str = "server.address";
/// The upstream's port.
pub const SERVER_PORT: &str = "server.port";
/// The class of error (`timeout`, `502`, `shed`...).
pub const ERROR_TYPE: &str = "error.type";

/// GenAI: `chat`, `text_completion`, `embeddings`, `generate_content`...
pub const GENAI_OPERATION: &str = "gen_ai.operation.name";
/// GenAI: `openai`, `anthropic`, `azure.ai.openai`, `gcp.gemini`.
pub const GENAI_PROVIDER: &str = "gen_ai.provider.name";
/// GenAI: the model asked for.
pub const GENAI_REQUEST_MODEL: &str = "gen_ai.request.model";
/// GenAI: whether the answer is streamed.
pub const GENAI_REQUEST_STREAM: &str = "gen_ai.request.stream";
/// GenAI: the model that answered.
pub const GENAI_RESPONSE_MODEL: &str = "gen_ai.response.model";
/// GenAI: the provider's id of the answer.
pub const GENAI_RESPONSE_ID: &str = "gen_ai.response.id";
/// GenAI: why each choice ended.
pub const GENAI_FINISH_REASONS: &str = "gen_ai.response.finish_reasons";
/// GenAI: prompt tokens.
pub const GENAI_INPUT_TOKENS: &str = "gen_ai.usage.input_tokens";
/// GenAI: completion tokens.
pub const GENAI_OUTPUT_TOKENS: &str = "gen_ai.usage.output_tokens";
/// GenAI: the prompt's messages (only with `telemetry.capture_content`).
pub const GENAI_INPUT_MESSAGES: &str = "gen_ai.input.messages";
/// GenAI: the completion's messages (only with `telemetry.capture_content`).
pub const GENAI_OUTPUT_MESSAGES: &str = "gen_ai.output.messages";
/// GenAI: the event that holds one evaluation's result.
pub const GENAI_EVALUATION_EVENT: &str = "gen_ai.evaluation.result";
/// GenAI evaluation: what was evaluated (Warden: `policy/rule`).
pub const GENAI_EVALUATION_NAME: &str = "gen_ai.evaluation.name";
/// GenAI evaluation: the score.
pub const GENAI_EVALUATION_SCORE: &str = "gen_ai.evaluation.score.value";
/// GenAI evaluation: the label (Warden: the applied action).
pub const GENAI_EVALUATION_LABEL: &str = "gen_ai.evaluation.score.label";
/// GenAI evaluation: a short explanation (Warden: the detector and the labels matched).
pub const GENAI_EVALUATION_EXPLANATION: &str = "gen_ai.evaluation.explanation";

/// GenAI guardrail proposal (semantic-conventions-genai PR #427, in-process form): `input`
/// for the prompt, `output` for the completion.
pub const GUARDRAIL_TARGET: &str = "gen_ai.guardrail.target.type";
/// Guardrail proposal: the verdict (`allow`, `warn` for flag, `modify` for redact, `deny` for block).
pub const GUARDRAIL_VERDICT: &str = "gen_ai.guardrail.verdict.type";
/// Guardrail proposal: what was enforced (`allow`, `audit` for flag and monitor mode,
/// `modify`, `block`).
pub const GUARDRAIL_ACTION: &str = "gen_ai.guardrail.action.type";
/// Guardrail proposal: the guard's name (`warden`).
pub const GUARDRAIL_COMPONENT: &str = "gen_ai.guardrail.component.name";
/// Guardrail proposal: the policy set's version (Warden: its digest).
pub const GUARDRAIL_POLICY_VERSION: &str = "gen_ai.guardrail.policy.version";
/// Guardrail proposal, per rule: the policy.
pub const GUARDRAIL_POLICY_ID: &str = "gen_ai.guardrail.policy.id";
/// Guardrail proposal, per rule: the rule (`policy/rule`).
pub const GUARDRAIL_RULE_ID: &str = "gen_ai.guardrail.policy.rule.id";
/// Guardrail proposal, per rule: the stage (`prompt`, `completion`).
pub const GUARDRAIL_SOURCE: &str = "gen_ai.guardrail.source";
/// Guardrail proposal, per rule: the risk category (Warden: the detector kind).
pub const GUARDRAIL_RISK_CATEGORY: &str = "gen_ai.guardrail.risk.category";
/// Guardrail proposal, per rule: the risk score (the highest finding score).
pub const GUARDRAIL_RISK_SCORE: &str = "gen_ai.guardrail.risk.score";

/// The phase's strongest applied action.
pub const DECISION: &str = "warden.decision";
/// The digest of the policy set that decided.
pub const POLICY_DIGEST: &str = "warden.policy.digest";
/// `enforce`, or `monitor` when every rule that fired is in monitor mode.
pub const MODE: &str = "warden.mode";
/// The request id (also `x-warden-request-id`).
pub const REQUEST_ID: &str = "warden.request_id";
/// How the request ended (`answered`, `refused`, `shed`...).
pub const OUTCOME: &str = "warden.outcome";
/// SERVER span: the upstream, in Warden's words (`openai`, `anthropic`, `azure`, `gemini`).
pub const PROVIDER: &str = "warden.provider";
/// SERVER span: the model the request asked for.
pub const MODEL: &str = "warden.model";
/// The API shape (`openai.chat`).
pub const API: &str = "warden.api";
/// The tenant (a header value or a hash of the key; never the key).
pub const TENANT: &str = "warden.tenant";
/// How many rules fired in the phase.
pub const RULES_FIRED: &str = "warden.rules.fired";
/// Microseconds the phase took to decide.
pub const GUARD_US: &str = "warden.guard.elapsed_us";
/// What the request held that Warden could not read.
pub const UNSEEN: &str = "warden.unseen";

/// The event per rule that fired.
pub const RULE_EVENT: &str = "warden.rule";
/// Rule event: the policy.
pub const RULE_POLICY: &str = "warden.policy";
/// Rule event: the rule's id.
pub const RULE_ID: &str = "warden.rule.id";
/// Rule event: the detector kind.
pub const RULE_DETECTOR: &str = "warden.detector";
/// Rule event: the action applied.
pub const RULE_ACTION: &str = "warden.action";
/// Rule event: in monitor mode, the action the rule would have taken.
pub const RULE_WOULD: &str = "warden.action.would_have";
/// Rule event: the highest score among its findings.
pub const RULE_SCORE: &str = "warden.score";
/// Rule event: the labels of what matched (phrases as listed, pattern names), never the text.
pub const RULE_LABELS: &str = "warden.labels";
/// Rule event: how many findings.
pub const RULE_FINDINGS: &str = "warden.findings";
/// Rule event: the detector's error, when it failed.
pub const RULE_ERROR: &str = "warden.error";

/// The event per costly detector kind, with its time.
pub const DETECTOR_EVENT: &str = "warden.detector";
/// Detector event: the kind.
pub const DETECTOR_KIND: &str = "warden.detector.kind";
/// Detector event: microseconds.
pub const DETECTOR_US: &str = "warden.detector.elapsed_us";

/// Streams: seconds from the request to the first event sent to the client (GenAI).
pub const STREAM_TTFT: &str = "gen_ai.response.time_to_first_chunk";
/// Streams: events the guard held back at least once before releasing them.
pub const STREAM_HELD: &str = "warden.stream.events_held";
/// Streams: bytes withheld from the client.
pub const STREAM_WITHHELD: &str = "warden.stream.withheld_bytes";
/// Streams: events sent to the client.
pub const STREAM_EVENTS: &str = "warden.stream.events";
