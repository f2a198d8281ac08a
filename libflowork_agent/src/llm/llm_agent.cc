// The declarative LLM agent: decisions from the journal, no state of its own.

#include "flowork/agent/llm_agent.h"

#include <algorithm>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "boost/json.hpp"
#include "flowork/agent/context_assembler.h"
#include "flowork/agent/json_schema.h"
#include "flowork/agent/token_counter.h"
#include "flowork/core/logging.h"
#include "google/protobuf/util/json_util.h"

namespace flowork::agent {
namespace {

namespace json = boost::json;

// How a repair request (an answer not matching the output schema) begins.
constexpr char kRepairPrefix[] = "Your answer does not match the required JSON schema";

std::string ToJson(const google::protobuf::Value& value) {
  std::string out;
  if (!google::protobuf::util::MessageToJsonString(value, &out).ok()) return "null";
  return out;
}

google::protobuf::Value FromJson(const std::string& text) {
  google::protobuf::Value value;
  if (!google::protobuf::util::JsonStringToMessage(text, &value).ok()) {
    value.set_string_value(text);
  }
  return value;
}

// What the journal says so far, as a conversation.
struct Transcript {
  json::array messages;
  // The last model answer's message, when the last step was a model call.
  std::optional<json::object> last_answer;
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  bool repair_asked = false;
  // From compaction steps: the latest summary and what it covers (an index
  // into `messages` after the system prompt), and whether one failed.
  std::string summary;
  uint64_t summarized_through = 0;
  bool compaction_failed = false;
  // Index into `messages` of the task's first own message (after the system
  // prompt and the session's history).
  size_t first_own = 0;
  // Whether `summary` was written by a compaction step of this task.
  bool summary_is_new = false;
};

class LlmAgent final : public Agent {
 public:
  LlmAgent(v1::AgentSpec spec, LlmAgentOptions options, json::value tools,
           std::optional<json::value> schema, std::optional<JsonSchema> validator)
      : spec_(std::move(spec)),
        options_(std::move(options)),
        tools_(std::move(tools)),
        schema_(std::move(schema)),
        validator_(std::move(validator)) {}

  absl::StatusOr<SessionTurn> TurnForSession(const StepContext& context,
                                             const google::protobuf::Value&) override {
    Transcript t = Read(context);
    SessionTurn turn;
    for (size_t i = t.first_own; i < t.messages.size(); ++i) {
      turn.messages.push_back(ToChatMessage(t.messages[i]));
    }
    if (t.summary_is_new) {
      turn.summary = t.summary;
      turn.summarized_through = t.summarized_through;
    }
    return turn;
  }

  absl::StatusOr<v1::Effect> Step(const StepContext& context) override {
    Transcript t = Read(context);
    v1::Effect effect;
    // Limits first: the usage already spent decides.
    const int64_t tokens = t.prompt_tokens + t.completion_tokens;
    if (spec_.limits().max_tokens() > 0 &&
        tokens >= static_cast<int64_t>(spec_.limits().max_tokens())) {
      effect.mutable_fail()->set_error(
          absl::StrCat("max_tokens reached (", tokens, " of ", spec_.limits().max_tokens(), ")"));
      return effect;
    }
    const double cost = (t.prompt_tokens * options_.input_usd_per_mtok +
                         t.completion_tokens * options_.output_usd_per_mtok) /
                        1e6;
    if (spec_.limits().max_cost_usd() > 0 && cost >= spec_.limits().max_cost_usd()) {
      effect.mutable_fail()->set_error(absl::StrCat("max_cost_usd reached ($", cost, " of $",
                                                    spec_.limits().max_cost_usd(), ")"));
      return effect;
    }
    if (t.last_answer) {
      const json::object& answer = *t.last_answer;
      if (const json::value* calls = answer.if_contains("tool_calls");
          calls && calls->is_array() && !calls->as_array().empty()) {
        for (const json::value& c : calls->as_array()) {
          if (!c.is_object()) continue;
          v1::ToolCall* call = effect.mutable_tools()->add_calls();
          if (const json::value* id = c.as_object().if_contains("id"); id && id->is_string()) {
            call->set_id(std::string(id->as_string()));
          }
          const json::value* function = c.as_object().if_contains("function");
          if (function && function->is_object()) {
            const json::object& f = function->as_object();
            if (const json::value* name = f.if_contains("name"); name && name->is_string()) {
              call->set_name(std::string(name->as_string()));
            }
            if (const json::value* args = f.if_contains("arguments"); args && args->is_string()) {
              *call->mutable_arguments() = FromJson(std::string(args->as_string()));
            }
          }
        }
        return effect;
      }
      std::string content;
      if (const json::value* c = answer.if_contains("content"); c && c->is_string()) {
        content = std::string(c->as_string());
      }
      if (!schema_) {
        effect.mutable_finish()->mutable_output()->set_string_value(content);
        return effect;
      }
      // Structured output: JSON, and the schema's required fields and types.
      std::string problem = CheckAgainstSchema(content);
      if (problem.empty()) {
        *effect.mutable_finish()->mutable_output() = FromJson(content);
        return effect;
      }
      if (t.repair_asked) {
        effect.mutable_fail()->set_error(
            absl::StrCat("the answer does not match the output schema after a repair: ", problem));
        return effect;
      }
      json::object repair;
      repair["role"] = "user";
      repair["content"] =
          absl::StrCat(kRepairPrefix, ": ", problem,
                       ". Answer again with only a JSON value that matches this schema: ",
                       json::serialize(*schema_));
      t.messages.push_back(std::move(repair));
    }
    return Ask(t, context.task);
  }

 private:
  Transcript Read(const StepContext& context) const {
    Transcript t;
    if (!spec_.system_prompt().empty()) {
      t.messages.push_back(json::object{{"role", "system"}, {"content", spec_.system_prompt()}});
    }
    if (context.session != nullptr) {
      // The session's history comes first, as the conversation so far.
      boost::system::error_code ec;
      std::vector<v1::ChatMessage> history(context.session->messages().begin(),
                                           context.session->messages().end());
      json::value past = json::parse(ToOpenAiMessagesJson(history), ec);
      if (!ec && past.is_array()) {
        for (json::value& m : past.as_array()) t.messages.push_back(std::move(m));
      }
      t.summary = context.session->summary();
      t.summarized_through = context.session->summarized_through();
    }
    t.first_own = t.messages.size();
    std::string input = context.task.input().has_string_value()
                            ? context.task.input().string_value()
                            : ToJson(context.task.input());
    t.messages.push_back(json::object{{"role", "user"}, {"content", input}});
    for (const v1::StepRecord& step : context.journal) {
      t.last_answer.reset();
      if (step.status() != v1::StepRecord::STATUS_COMPLETED) continue;
      v1::Effect asked;
      v1::EffectResult result;
      if (!asked.ParseFromString(step.input()) || !result.ParseFromString(step.output())) continue;
      if (asked.has_model() && asked.model().purpose() == "compaction") {
        // A summary of older turns: not part of the conversation itself.
        const auto& fields = result.model().struct_value().fields();
        auto choices = fields.find("choices");
        if (fields.count("error") || choices == fields.end() ||
            choices->second.list_value().values_size() == 0) {
          t.compaction_failed = true;
          continue;
        }
        const auto& first = choices->second.list_value().values(0).struct_value().fields();
        auto msg = first.find("message");
        if (msg == first.end()) {
          t.compaction_failed = true;
          continue;
        }
        const auto& content = msg->second.struct_value().fields();
        auto text = content.find("content");
        if (text == content.end() || text->second.string_value().empty()) {
          t.compaction_failed = true;
          continue;
        }
        t.summary = text->second.string_value();
        t.summarized_through = asked.model().compaction_through();
        t.summary_is_new = true;
        continue;
      }
      if (asked.has_model()) {
        // A repair request is part of what was asked: keep it in the transcript.
        const auto& sent = asked.model().request().struct_value().fields();
        if (auto it = sent.find("messages"); it != sent.end()) {
          const auto& values = it->second.list_value().values();
          if (values.size() > 0 &&
              values[values.size() - 1].struct_value().fields().count("content") &&
              absl::StartsWith(
                  values[values.size() - 1].struct_value().fields().at("content").string_value(),
                  kRepairPrefix)) {
            t.repair_asked = true;
            boost::system::error_code ec;
            json::value repair = json::parse(ToJson(values[values.size() - 1]), ec);
            if (!ec) t.messages.push_back(std::move(repair));
          }
        }
        boost::system::error_code ec;
        json::value body = json::parse(ToJson(result.model()), ec);
        if (ec || !body.is_object()) continue;
        const json::object& completion = body.as_object();
        if (const json::value* usage = completion.if_contains("usage");
            usage && usage->is_object()) {
          auto number = [&](const char* key) -> int64_t {
            const json::value* v = usage->as_object().if_contains(key);
            if (v == nullptr) return 0;
            if (v->is_int64()) return v->as_int64();
            if (v->is_double()) return static_cast<int64_t>(v->as_double());
            return 0;
          };
          t.prompt_tokens += number("prompt_tokens");
          t.completion_tokens += number("completion_tokens");
        }
        const json::value* choices = completion.if_contains("choices");
        if (!choices || !choices->is_array() || choices->as_array().empty()) continue;
        const json::value& first = choices->as_array()[0];
        const json::value* message =
            first.is_object() ? first.as_object().if_contains("message") : nullptr;
        if (!message || !message->is_object()) continue;
        json::object assistant = message->as_object();
        assistant["role"] = "assistant";
        t.messages.push_back(assistant);
        t.last_answer = std::move(assistant);
      } else if (asked.has_tools()) {
        for (const v1::ToolResult& r : result.tools().results()) {
          const std::string content =
              r.error().empty()
                  ? (r.output().has_string_value() ? r.output().string_value() : ToJson(r.output()))
                  : absl::StrCat("error: ", r.error());
          t.messages.push_back(
              json::object{{"role", "tool"}, {"tool_call_id", r.id()}, {"content", content}});
        }
      }
    }
    return t;
  }

  // The next model call: the conversation fitted into the window, or first a
  // summary of its older turns when too much of it would be dropped.
  v1::Effect Ask(const Transcript& t, const v1::Task& task) const {
    std::vector<MemoryBlock> pinned = PinnedBlocks(task);
    std::vector<RetrievedMemory> retrieved = Retrieve(t, task);
    const bool sections = !pinned.empty() || !retrieved.empty() || !t.summary.empty();
    if (options_.context_window <= 0 && !sections) return ModelCall(t.messages);
    v1::Session session;
    session.set_summary(t.summary);
    session.set_summarized_through(t.summarized_through);
    for (size_t i = spec_.system_prompt().empty() ? 0 : 1; i < t.messages.size(); ++i) {
      *session.add_messages() = ToChatMessage(t.messages[i]);
    }
    const TokenCounter& counter = TokenCounterFor(spec_.model());
    ContextInputs inputs;
    // No window: everything fits (the sections are still laid out).
    inputs.context_window =
        options_.context_window > 0 ? options_.context_window : int64_t{1} << 40;
    inputs.reserved_output_tokens = options_.reserved_output_tokens;
    inputs.system_prompt = spec_.system_prompt();
    inputs.pinned_blocks = std::move(pinned);
    inputs.retrieved = std::move(retrieved);
    inputs.max_retrieved = static_cast<int>(inputs.retrieved.size());
    inputs.session = &session;
    AssembledContext assembled = AssembleContext(inputs, counter);
    CompactionOptions compaction;
    compaction.keep_recent_tokens = std::max<int64_t>(1, options_.context_window / 4);
    compaction.min_dropped_tokens = std::max<int64_t>(1, options_.context_window / 8);
    compaction.max_prompt_tokens = options_.context_window - options_.reserved_output_tokens;
    if (options_.context_window > 0 && options_.compaction && !t.compaction_failed &&
        NeedsCompaction(assembled, compaction)) {
      CompactionPlan plan = PlanCompaction(session, counter, compaction);
      if (!plan.empty()) {
        boost::system::error_code ec;
        json::value prompt = json::parse(ToOpenAiMessagesJson(plan.prompt), ec);
        if (!ec && prompt.is_array()) {
          v1::Effect effect = ModelCall(prompt.as_array(), /*with_tools=*/false);
          effect.mutable_model()->set_model(
              options_.summary_model.empty() ? spec_.model() : options_.summary_model);
          effect.mutable_model()->set_purpose("compaction");
          effect.mutable_model()->set_compaction_through(plan.through);
          effect.mutable_model()->set_failure_as_result(true);
          return effect;
        }
      }
      // Would overflow even the summariser: truncation (the assembly's
      // marker) it is.
    }
    boost::system::error_code ec;
    json::value fitted = json::parse(ToOpenAiMessagesJson(assembled.messages), ec);
    if (ec || !fitted.is_array()) return ModelCall(t.messages);
    return ModelCall(fitted.as_array());
  }

  // The pinned blocks of spec.memory as they are now.
  std::vector<MemoryBlock> PinnedBlocks(const v1::Task& task) const {
    const v1::MemorySpec& memory = spec_.memory();
    if (memory.pinned_blocks_size() == 0) return {};
    if (options_.pinned == nullptr) {
      std::vector<MemoryBlock> initial;
      for (const v1::PinnedBlockSpec& block : memory.pinned_blocks()) {
        if (block.per_session() && task.session_id().empty()) continue;
        initial.push_back({.label = block.name(), .content = block.initial_text()});
      }
      return initial;
    }
    absl::StatusOr<std::vector<MemoryBlock>> blocks =
        LoadPinnedBlocks(*options_.pinned, memory, task);
    if (!blocks.ok()) {
      core::Log(core::LogLevel::kWarning, "reading pinned memory blocks failed",
                {{"task", task.id()}, {"error", blocks.status().ToString()}});
      return {};
    }
    return *std::move(blocks);
  }

  // The memories matching the latest user message, when retrieval is on.
  std::vector<RetrievedMemory> Retrieve(const Transcript& t, const v1::Task& task) const {
    const v1::MemorySpec& memory = spec_.memory();
    if (!memory.retrieve() || options_.memory == nullptr) return {};
    std::string query;
    for (auto it = t.messages.rbegin(); it != t.messages.rend(); ++it) {
      if (!it->is_object()) continue;
      const json::value* role = it->as_object().if_contains("role");
      const json::value* content = it->as_object().if_contains("content");
      // A repair prompt is the agent's, not the user's: search for what was asked.
      if (role && role->is_string() && role->as_string() == "user" && content &&
          content->is_string() &&
          !absl::StartsWith(std::string(content->as_string()), kRepairPrefix)) {
        query = std::string(content->as_string());
        break;
      }
    }
    if (query.empty()) return {};
    const int k = std::clamp<int>(
        memory.retrieve_top_k() == 0 ? 5 : static_cast<int>(memory.retrieve_top_k()), 1,
        kMaxRecallLimit);
    absl::StatusOr<std::vector<ScoredMemory>> hits = options_.memory->Recall(
        MemoryScope{.tenant = task.tenant(), .agent = task.agent()}, query, k);
    if (!hits.ok()) {
      core::Log(core::LogLevel::kWarning, "retrieving memories failed",
                {{"task", task.id()}, {"error", hits.status().ToString()}});
      return {};
    }
    std::vector<RetrievedMemory> out;
    for (const ScoredMemory& hit : *hits) {
      out.push_back({.id = hit.memory.id(), .content = hit.memory.text(), .score = hit.score});
    }
    return out;
  }

  static v1::ChatMessage ToChatMessage(const json::value& value) {
    v1::ChatMessage message;
    if (!value.is_object()) return message;
    const json::object& o = value.as_object();
    auto text = [&](const char* key) -> std::string {
      const json::value* v = o.if_contains(key);
      return v != nullptr && v->is_string() ? std::string(v->as_string()) : "";
    };
    message.set_role(text("role"));
    message.set_content(text("content"));
    message.set_tool_call_id(text("tool_call_id"));
    message.set_name(text("name"));
    if (const json::value* calls = o.if_contains("tool_calls"); calls && calls->is_array()) {
      for (const json::value& c : calls->as_array()) {
        if (!c.is_object()) continue;
        v1::ToolCall* call = message.add_tool_calls();
        if (const json::value* id = c.as_object().if_contains("id"); id && id->is_string()) {
          call->set_id(std::string(id->as_string()));
        }
        const json::value* f = c.as_object().if_contains("function");
        if (f && f->is_object()) {
          if (const json::value* n = f->as_object().if_contains("name"); n && n->is_string()) {
            call->set_name(std::string(n->as_string()));
          }
          if (const json::value* a = f->as_object().if_contains("arguments"); a && a->is_string()) {
            *call->mutable_arguments() = FromJson(std::string(a->as_string()));
          }
        }
      }
    }
    return message;
  }

  v1::Effect ModelCall(const json::array& messages, bool with_tools = true) const {
    json::object request;
    request["messages"] = messages;
    if (with_tools && tools_.is_array() && !tools_.as_array().empty()) request["tools"] = tools_;
    if (schema_) request["response_format"] = json::object{{"type", "json_object"}};
    v1::Effect effect;
    effect.mutable_model()->set_model(spec_.model());
    *effect.mutable_model()->mutable_request() = FromJson(json::serialize(request));
    return effect;
  }

  // "" when `answer` is JSON matching the output schema; otherwise what is
  // wrong, every violation with its path.
  std::string CheckAgainstSchema(const std::string& answer) const {
    absl::StatusOr<google::protobuf::Value> value = ParseJsonValue(answer);
    if (!value.ok()) return "the answer is not JSON";
    absl::Status valid = validator_->Validate(*value, "answer");
    return valid.ok() ? "" : std::string(valid.message());
  }

  const v1::AgentSpec spec_;
  const LlmAgentOptions options_;
  const json::value tools_;
  const std::optional<json::value> schema_;
  const std::optional<JsonSchema> validator_;
};

}  // namespace

absl::StatusOr<std::shared_ptr<Agent>> CreateLlmAgent(const v1::AgentSpec& spec,
                                                      LlmAgentOptions options) {
  if (spec.model().empty()) {
    return absl::InvalidArgumentError(absl::StrCat("agent ", spec.name(), ": model must be set"));
  }
  std::set<std::string> blocks;
  for (int i = 0; i < spec.memory().pinned_blocks_size(); ++i) {
    const std::string& name = spec.memory().pinned_blocks(i).name();
    bool ok = !name.empty() && name.size() <= 64;
    for (char c : name) {
      ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-');
    }
    if (!ok || !blocks.insert(name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("agent ", spec.name(), ": memory.pinned_blocks[", i, "].name: \"", name,
                       ok ? "\" is used twice" : "\" is not [a-z0-9_-]{1,64}"));
    }
  }
  json::value tools = json::array();
  if (!options.tools_json.empty()) {
    boost::system::error_code ec;
    tools = json::parse(options.tools_json, ec);
    if (ec || !tools.is_array()) {
      return absl::InvalidArgumentError(
          absl::StrCat("agent ", spec.name(), ": tools must be a JSON array"));
    }
  }
  std::optional<json::value> schema;
  std::optional<JsonSchema> validator;
  if (!options.output_schema_json.empty()) {
    boost::system::error_code ec;
    schema = json::parse(options.output_schema_json, ec);
    if (ec || !schema->is_object()) {
      return absl::InvalidArgumentError(
          absl::StrCat("agent ", spec.name(), ": the output schema must be a JSON object"));
    }
    absl::StatusOr<JsonSchema> compiled = JsonSchema::Parse(options.output_schema_json);
    if (!compiled.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("agent ", spec.name(), ": output schema: ", compiled.status().message()));
    }
    validator = *std::move(compiled);
  }
  return std::make_shared<LlmAgent>(spec, std::move(options), std::move(tools), std::move(schema),
                                    std::move(validator));
}

}  // namespace flowork::agent
