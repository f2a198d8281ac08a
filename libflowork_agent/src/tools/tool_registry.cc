#include "flowork/agent/tool_registry.h"

#include <exception>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "flowork/agent/json_schema.h"
#include "flowork/core/executor.h"
#include "flowork/core/internal/status_macros.h"
#include "tools/http_tool.h"

namespace flowork::agent {

using google::protobuf::Value;

namespace {

bool IsToolName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (unsigned char c : name) {
    if (!absl::ascii_isalnum(c) && c != '_' && c != '-') return false;
  }
  return true;
}

struct Tool {
  std::string name;
  std::string description;
  Value parameters;  // The schema as given, for the model.
  JsonSchema schema;
  // Exactly one is set.
  NativeTool sync;
  AsyncNativeTool async;
  std::shared_ptr<const tools::HttpToolRunner> http;
};

// One call's context: its own cancellation, fed by the effect's.
class CallContext final : public ToolContext {
 public:
  CallContext(std::shared_ptr<EffectCall> call, std::string id)
      : call_(std::move(call)), id_(std::move(id)) {}

  const v1::Task& task() const override { return call_->task(); }
  const std::string& call_id() const override { return id_; }
  absl::Time deadline() const override { return call_->deadline(); }
  bool cancelled() const override {
    {
      absl::MutexLock lock(&mu_);
      if (cancelled_) return true;
    }
    return call_->cancelled();
  }
  void OnCancel(absl::AnyInvocable<void() &&> on_cancel) override {
    {
      absl::MutexLock lock(&mu_);
      if (!cancelled_) {
        on_cancel_.push_back(std::move(on_cancel));
        return;
      }
    }
    std::move(on_cancel)();
  }
  void Heartbeat() override { call_->Heartbeat(); }

  void Cancel() {
    std::vector<absl::AnyInvocable<void() &&>> callbacks;
    {
      absl::MutexLock lock(&mu_);
      if (cancelled_) return;
      cancelled_ = true;
      callbacks.swap(on_cancel_);
    }
    for (auto& callback : callbacks) std::move(callback)();
  }

 private:
  const std::shared_ptr<EffectCall> call_;
  const std::string id_;
  mutable absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<absl::AnyInvocable<void() &&>> on_cancel_ ABSL_GUARDED_BY(mu_);
};

using EffectDone = absl::AnyInvocable<void(absl::StatusOr<v1::EffectResult>) &&>;

// The calls of one effect: collects their results in call order and answers
// once, when the last is in or when the effect is cancelled.
class Batch {
 public:
  Batch(std::shared_ptr<EffectCall> call, const v1::ToolCalls& calls, EffectDone done)
      : call_(std::move(call)), done_(std::move(done)), remaining_(calls.calls_size()) {
    result_.mutable_tools();
    for (const v1::ToolCall& c : calls.calls()) {
      result_.mutable_tools()->add_results()->set_id(c.id());
      settled_.push_back(false);
      contexts_.push_back(std::make_shared<CallContext>(call_, c.id()));
    }
  }

  const std::shared_ptr<CallContext>& context(int index) const { return contexts_[index]; }

  // Once per call; later reports (a tool answering twice, or after a cancel)
  // are dropped.
  void Finish(int index, ToolOutput output) {
    EffectDone done;
    v1::EffectResult answer;
    {
      absl::MutexLock lock(&mu_);
      if (finished_ || settled_[index]) return;
      settled_[index] = true;
      v1::ToolResult* result = result_.mutable_tools()->mutable_results(index);
      if (output.ok()) {
        *result->mutable_output() = *std::move(output);
      } else {
        result->set_error(output.status().message().empty()
                              ? std::string(absl::StatusCodeToString(output.status().code()))
                              : std::string(output.status().message()));
      }
      if (--remaining_ > 0) return;
      finished_ = true;
      done = std::move(done_);
      answer = std::move(result_);
    }
    std::move(done)(std::move(answer));
  }

  // Answers now; every call is cancelled.
  void Cancel() {
    EffectDone done;
    {
      absl::MutexLock lock(&mu_);
      if (finished_) return;
      finished_ = true;
      done = std::move(done_);
    }
    for (const auto& context : contexts_) context->Cancel();
    std::move(done)(absl::CancelledError("tool calls cancelled"));
  }

  // With no calls there is nothing to wait for.
  void FinishIfEmpty() {
    EffectDone done;
    v1::EffectResult answer;
    {
      absl::MutexLock lock(&mu_);
      if (finished_ || remaining_ > 0) return;
      finished_ = true;
      done = std::move(done_);
      answer = std::move(result_);
    }
    std::move(done)(std::move(answer));
  }

  void Heartbeat() { call_->Heartbeat(); }

 private:
  const std::shared_ptr<EffectCall> call_;
  std::vector<std::shared_ptr<CallContext>> contexts_;  // Fixed after construction.
  absl::Mutex mu_;
  EffectDone done_ ABSL_GUARDED_BY(mu_);
  v1::EffectResult result_ ABSL_GUARDED_BY(mu_);
  std::vector<bool> settled_ ABSL_GUARDED_BY(mu_);
  int remaining_ ABSL_GUARDED_BY(mu_);
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

// Arguments as the tool sees them: unset is {}, and a JSON object sent as a
// string (as OpenAI's function.arguments is) is parsed.
Value NormalizeArguments(const Value& arguments) {
  if (arguments.kind_case() == Value::KIND_NOT_SET) {
    Value empty;
    empty.mutable_struct_value();
    return empty;
  }
  if (arguments.has_string_value()) {
    absl::StatusOr<Value> parsed = ParseJsonValue(arguments.string_value());
    if (parsed.ok() && parsed->has_struct_value()) return *std::move(parsed);
  }
  return arguments;
}

class ToolRegistryImpl final : public ToolRegistry {
 public:
  explicit ToolRegistryImpl(const ToolRegistryOptions& options) : options_(options) {}

  absl::Status Init() {
    if (options_.threads < 1) return absl::InvalidArgumentError("threads: must be at least 1");
    http_client_ = options_.http_client;
    if (http_client_ == nullptr) {
      FLOWORK_ASSIGN_OR_RETURN(own_http_client_, core::HttpClient::Create({}));
      http_client_ = own_http_client_.get();
    }
    FLOWORK_ASSIGN_OR_RETURN(executor_, core::CreateThreadPoolExecutor({options_.threads}));
    return absl::OkStatus();
  }

  absl::Status RegisterNative(ToolDefinition definition, NativeTool tool) override {
    if (!tool) return absl::InvalidArgumentError("tool: empty function");
    FLOWORK_ASSIGN_OR_RETURN(std::shared_ptr<Tool> entry, MakeTool(std::move(definition)));
    entry->sync = std::move(tool);
    return Add(std::move(entry));
  }

  absl::Status RegisterNativeAsync(ToolDefinition definition, AsyncNativeTool tool) override {
    if (!tool) return absl::InvalidArgumentError("tool: empty function");
    FLOWORK_ASSIGN_OR_RETURN(std::shared_ptr<Tool> entry, MakeTool(std::move(definition)));
    entry->async = std::move(tool);
    return Add(std::move(entry));
  }

  absl::Status RegisterHttp(const v1::HttpTool& config) override {
    ToolDefinition definition{.name = config.name(),
                              .description = config.description(),
                              .parameters_json_schema = config.parameters_json_schema()};
    FLOWORK_ASSIGN_OR_RETURN(std::shared_ptr<Tool> entry, MakeTool(std::move(definition)));
    absl::StatusOr<std::shared_ptr<const tools::HttpToolRunner>> runner =
        tools::HttpToolRunner::Create(config,
                                      {options_.http_timeout, options_.max_http_response_bytes},
                                      *http_client_, *executor_);
    if (!runner.ok()) {
      return absl::Status(runner.status().code(), absl::StrCat("http tool \"", config.name(),
                                                               "\": ", runner.status().message()));
    }
    entry->http = *std::move(runner);
    return Add(std::move(entry));
  }

  void SetAgentTools(std::string_view agent, std::vector<std::string> tools) override {
    absl::MutexLock lock(&mu_);
    agent_tools_[std::string(agent)] = std::move(tools);
  }

  absl::StatusOr<std::string> OpenAiToolsJson(std::string_view agent) const override {
    FLOWORK_ASSIGN_OR_RETURN(std::vector<std::string> names, AllowedTools(agent));
    return OpenAiToolsJsonOf(names);
  }

  absl::StatusOr<std::string> OpenAiToolsJsonOf(
      const std::vector<std::string>& names) const override {
    Value list;
    list.mutable_list_value();
    for (const std::string& name : names) {
      std::shared_ptr<const Tool> tool = Find(name);
      if (tool == nullptr) {
        return absl::NotFoundError(absl::StrCat("tool \"", name, "\" is not registered"));
      }
      Value entry;
      auto& fields = *entry.mutable_struct_value()->mutable_fields();
      fields["type"].set_string_value("function");
      auto& function = *fields["function"].mutable_struct_value()->mutable_fields();
      function["name"].set_string_value(tool->name);
      function["description"].set_string_value(tool->description);
      function["parameters"] = tool->parameters;
      *list.mutable_list_value()->add_values() = std::move(entry);
    }
    return JsonValueToString(list);
  }

  void Perform(const v1::Effect& effect, std::shared_ptr<EffectCall> call,
               EffectDone done) override {
    if (!effect.has_tools()) {
      return std::move(done)(
          absl::InvalidArgumentError("tool registry: the effect is not a tools effect"));
    }
    const std::string& agent = call->task().agent();
    absl::StatusOr<std::vector<std::string>> allowed_list = AllowedTools(agent);
    if (!allowed_list.ok()) {
      return std::move(done)(absl::Status(
          allowed_list.status().code(),
          absl::StrCat("tools of agent \"", agent, "\": ", allowed_list.status().message())));
    }
    const absl::flat_hash_set<std::string> allowed(allowed_list->begin(), allowed_list->end());

    const v1::ToolCalls& calls = effect.tools();
    auto batch = std::make_shared<Batch>(call, calls, std::move(done));
    call->OnCancel([weak = std::weak_ptr<Batch>(batch)] {
      if (auto batch = weak.lock()) batch->Cancel();
    });
    batch->FinishIfEmpty();
    for (int i = 0; i < calls.calls_size(); ++i) {
      const v1::ToolCall& tool_call = calls.calls(i);
      if (!allowed.contains(tool_call.name())) {
        batch->Finish(i, absl::PermissionDeniedError(absl::StrCat(
                             "tool ", tool_call.name(), " is not allowed for agent ", agent)));
        continue;
      }
      std::shared_ptr<const Tool> tool = Find(tool_call.name());
      if (tool == nullptr) {
        batch->Finish(i, absl::NotFoundError(absl::StrCat("unknown tool ", tool_call.name())));
        continue;
      }
      Value arguments = NormalizeArguments(tool_call.arguments());
      if (absl::Status valid = tool->schema.Validate(arguments, "arguments"); !valid.ok()) {
        batch->Finish(
            i, absl::InvalidArgumentError(absl::StrCat("invalid arguments: ", valid.message())));
        continue;
      }
      Run(std::move(tool), std::move(arguments), batch, i);
    }
  }

 private:
  absl::StatusOr<std::shared_ptr<Tool>> MakeTool(ToolDefinition definition) const {
    if (!IsToolName(definition.name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("name: \"", definition.name, "\" is not 1 to 64 of [a-zA-Z0-9_-]"));
    }
    auto tool = std::make_shared<Tool>();
    tool->name = definition.name;
    tool->description = definition.description;
    const bool has_text = !definition.parameters_json_schema.empty();
    const bool has_struct = definition.parameters.fields_size() > 0;
    if (has_text && has_struct) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tool \"", definition.name, "\": set parameters_json_schema or parameters, not both"));
    }
    if (has_text) {
      absl::StatusOr<Value> parsed = ParseJsonValue(definition.parameters_json_schema);
      if (!parsed.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("tool \"", definition.name, "\": schema: ", parsed.status().message()));
      }
      tool->parameters = *std::move(parsed);
    } else if (has_struct) {
      *tool->parameters.mutable_struct_value() = std::move(definition.parameters);
    } else {
      auto& fields = *tool->parameters.mutable_struct_value()->mutable_fields();
      fields["type"].set_string_value("object");
      fields["properties"].mutable_struct_value();
    }
    if (!tool->parameters.has_struct_value()) {
      return absl::InvalidArgumentError(
          absl::StrCat("tool \"", definition.name, "\": schema: must be a JSON object"));
    }
    absl::StatusOr<JsonSchema> schema = JsonSchema::Compile(tool->parameters);
    if (!schema.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("tool \"", definition.name, "\": ", schema.status().message()));
    }
    tool->schema = *std::move(schema);
    return tool;
  }

  absl::Status Add(std::shared_ptr<Tool> tool) {
    absl::MutexLock lock(&mu_);
    auto [it, inserted] = tools_.try_emplace(tool->name, tool);
    if (!inserted) {
      return absl::AlreadyExistsError(absl::StrCat("tool \"", tool->name, "\" is registered"));
    }
    return absl::OkStatus();
  }

  std::shared_ptr<const Tool> Find(const std::string& name) const {
    absl::MutexLock lock(&mu_);
    auto it = tools_.find(name);
    return it == tools_.end() ? nullptr : it->second;
  }

  absl::StatusOr<std::vector<std::string>> AllowedTools(std::string_view agent) const {
    {
      absl::MutexLock lock(&mu_);
      auto it = agent_tools_.find(std::string(agent));
      if (it != agent_tools_.end()) return it->second;
    }
    if (!options_.agent_tools) return std::vector<std::string>();
    absl::StatusOr<std::vector<std::string>> tools = options_.agent_tools(agent);
    if (absl::IsNotFound(tools.status())) return std::vector<std::string>();
    return tools;
  }

  void Run(std::shared_ptr<const Tool> tool, Value arguments, std::shared_ptr<Batch> batch,
           int index) {
    std::shared_ptr<CallContext> context = batch->context(index);
    auto finish = [batch, index](ToolOutput output) {
      batch->Heartbeat();
      batch->Finish(index, std::move(output));
    };
    if (tool->http) return tool->http->Call(arguments, context, std::move(finish));
    if (tool->async) {
      try {
        tool->async(arguments, context, std::move(finish));
      } catch (const std::exception& e) {
        batch->Finish(index, absl::InternalError(absl::StrCat("tool threw: ", e.what())));
      } catch (...) {
        batch->Finish(index, absl::InternalError("tool threw"));
      }
      return;
    }
    executor_->Schedule([tool = std::move(tool), arguments = std::move(arguments),
                         context = std::move(context), finish = std::move(finish)]() mutable {
      if (context->cancelled()) return finish(absl::CancelledError("cancelled"));
      ToolOutput output = absl::InternalError("tool threw");
      try {
        output = tool->sync(arguments, *context);
      } catch (const std::exception& e) {
        output = absl::InternalError(absl::StrCat("tool threw: ", e.what()));
      } catch (...) {
      }
      finish(std::move(output));
    });
  }

  const ToolRegistryOptions options_;
  std::unique_ptr<core::HttpClient> own_http_client_;
  core::HttpClient* http_client_ = nullptr;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<const Tool>> tools_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::vector<std::string>> agent_tools_ ABSL_GUARDED_BY(mu_);
  // Last: destroyed first, finishing queued work while the rest still exists.
  std::unique_ptr<core::Executor> executor_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ToolRegistry>> ToolRegistry::Create(
    const ToolRegistryOptions& options) {
  auto registry = std::make_unique<ToolRegistryImpl>(options);
  FLOWORK_RETURN_IF_ERROR(registry->Init());
  return registry;
}

}  // namespace flowork::agent
