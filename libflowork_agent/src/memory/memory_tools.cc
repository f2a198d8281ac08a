#include "flowork/agent/memory_tools.h"

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <map>
#include <string>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "flowork/core/internal/status_macros.h"
#include "flowork/core/internal/strings.h"
#include "google/protobuf/util/json_util.h"
#include "memory/memory_common.h"
#include "store/task_txn.h"  // FromTimestamp

namespace flowork::agent {
namespace {

using core::internal::ToAbsl;
using google::protobuf::Struct;
using google::protobuf::Value;

constexpr char kRememberDescription[] =
    "Store a fact in long-term memory so it can be recalled in later tasks. Keep each memory "
    "short and self-contained.";
constexpr char kRememberParameters[] = R"json({
  "type": "object",
  "properties": {
    "text": {"type": "string", "description": "The fact to remember, in plain words."},
    "tags": {"type": "object", "additionalProperties": {"type": "string"},
             "description": "Optional labels, such as {\"topic\": \"billing\"}."}
  },
  "required": ["text"],
  "additionalProperties": false
})json";

constexpr char kRecallDescription[] =
    "Search long-term memory for facts relevant to a query; returns the best matches first.";
constexpr char kRecallParameters[] = R"json({
  "type": "object",
  "properties": {
    "query": {"type": "string", "description": "Words to search for."},
    "limit": {"type": "integer", "minimum": 1, "maximum": 100,
              "description": "Most memories to return; default 5."}
  },
  "required": ["query"],
  "additionalProperties": false
})json";

absl::StatusOr<Struct> ParseJsonObject(std::string_view json) {
  Struct object;
  const auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), &object);
  if (!status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("arguments: not a JSON object: ",
                     absl::string_view(status.message().data(), status.message().size())));
  }
  return object;
}

// The call's arguments as an object, or the error to give back to the model.
absl::StatusOr<Struct> Arguments(const v1::ToolCall& call) {
  const Value& arguments = call.arguments();
  switch (arguments.kind_case()) {
    case Value::kStructValue:
      return arguments.struct_value();
    case Value::kStringValue:  // OpenAI sends the arguments as JSON text.
      return ParseJsonObject(arguments.string_value());
    case Value::KIND_NOT_SET:
    case Value::kNullValue:
      return Struct();
    default:
      return absl::InvalidArgumentError("arguments: expected a JSON object");
  }
}

absl::Status CheckKnown(const Struct& arguments, std::initializer_list<std::string_view> known) {
  for (const auto& [name, value] : arguments.fields()) {
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      return absl::InvalidArgumentError(absl::StrCat("unknown argument \"", name, "\""));
    }
  }
  return absl::OkStatus();
}

// The string argument `name`; kInvalidArgument when missing or not a string.
absl::StatusOr<std::string> RequiredString(const Struct& arguments, const std::string& name) {
  auto it = arguments.fields().find(name);
  if (it == arguments.fields().end() || it->second.kind_case() == Value::kNullValue) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": required"));
  }
  if (it->second.kind_case() != Value::kStringValue) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": expected a string"));
  }
  return it->second.string_value();
}

absl::StatusOr<std::map<std::string, std::string>> OptionalTags(const Struct& arguments) {
  std::map<std::string, std::string> tags;
  auto it = arguments.fields().find("tags");
  if (it == arguments.fields().end() || it->second.kind_case() == Value::kNullValue) return tags;
  if (it->second.kind_case() != Value::kStructValue) {
    return absl::InvalidArgumentError("tags: expected an object of strings");
  }
  for (const auto& [key, value] : it->second.struct_value().fields()) {
    if (value.kind_case() != Value::kStringValue) {
      return absl::InvalidArgumentError(absl::StrCat("tags.", key, ": expected a string"));
    }
    tags.emplace(key, value.string_value());
  }
  return tags;
}

absl::StatusOr<int> OptionalLimit(const Struct& arguments) {
  auto it = arguments.fields().find("limit");
  if (it == arguments.fields().end() || it->second.kind_case() == Value::kNullValue) return 5;
  const absl::Status range = absl::InvalidArgumentError(
      absl::StrCat("limit: expected an integer from 1 to ", kMaxRecallLimit));
  if (it->second.kind_case() != Value::kNumberValue) return range;
  const double limit = it->second.number_value();
  if (!(limit >= 1 && limit <= kMaxRecallLimit) || std::floor(limit) != limit) return range;
  return static_cast<int>(limit);
}

Value StringValue(std::string text) {
  Value value;
  value.set_string_value(std::move(text));
  return value;
}

Value MemoryJson(const v1::Memory& memory, double score) {
  Value value;
  auto& fields = *value.mutable_struct_value()->mutable_fields();
  fields["id"] = StringValue(memory.id());
  fields["text"] = StringValue(memory.text());
  auto& tags = *fields["tags"].mutable_struct_value()->mutable_fields();
  for (const auto& [key, tag] : memory.tags()) tags[key] = StringValue(tag);
  fields["score"].set_number_value(score);
  const absl::Time created = internal::FromTimestamp(memory.create_time());
  fields["create_time"] =
      StringValue(absl::FormatTime(absl::RFC3339_full, created, absl::UTCTimeZone()));
  fields["shared"].set_bool_value(memory.agent().empty());
  return value;
}

v1::ToolResult ErrorResult(const v1::ToolCall& call, const absl::Status& status) {
  v1::ToolResult result;
  result.set_id(call.id());
  result.set_error(std::string(status.message()));
  return result;
}

}  // namespace

std::vector<MemoryToolDefinition> MemoryTools::Definitions() {
  std::vector<MemoryToolDefinition> definitions;
  for (const auto& [name, description, parameters] :
       {std::tuple(kRemember, kRememberDescription, kRememberParameters),
        std::tuple(kRecall, kRecallDescription, kRecallParameters)}) {
    MemoryToolDefinition& definition = definitions.emplace_back();
    definition.name = std::string(name);
    definition.description = description;
    // The schemas are constants of this file; a test checks they parse.
    definition.parameters = ParseJsonObject(parameters).value_or(Struct());
  }
  return definitions;
}

absl::StatusOr<v1::ToolResult> MemoryTools::Call(const MemoryScope& scope,
                                                 const v1::ToolCall& call) const {
  if (call.name() != kRemember && call.name() != kRecall) {
    return absl::NotFoundError(absl::StrCat("tool \"", call.name(), "\" is not a memory tool"));
  }
  // A bad scope is the caller's mistake, not the model's.
  FLOWORK_RETURN_IF_ERROR(internal::ValidateScope(scope));
  absl::StatusOr<Struct> arguments = Arguments(call);
  if (!arguments.ok()) return ErrorResult(call, arguments.status());

  v1::ToolResult result;
  result.set_id(call.id());
  if (call.name() == kRemember) {
    absl::Status known = CheckKnown(*arguments, {"text", "tags"});
    if (!known.ok()) return ErrorResult(call, known);
    absl::StatusOr<std::string> text = RequiredString(*arguments, "text");
    if (!text.ok()) return ErrorResult(call, text.status());
    absl::StatusOr<std::map<std::string, std::string>> tags = OptionalTags(*arguments);
    if (!tags.ok()) return ErrorResult(call, tags.status());
    absl::StatusOr<v1::Memory> memory = store_.Remember(scope, *std::move(text), *std::move(tags));
    if (absl::IsInvalidArgument(memory.status())) return ErrorResult(call, memory.status());
    if (!memory.ok()) return memory.status();
    auto& fields = *result.mutable_output()->mutable_struct_value()->mutable_fields();
    fields["id"] = StringValue(memory->id());  // Not the text: it would cost the model tokens.
    return result;
  }

  absl::Status known = CheckKnown(*arguments, {"query", "limit"});
  if (!known.ok()) return ErrorResult(call, known);
  absl::StatusOr<std::string> query = RequiredString(*arguments, "query");
  if (!query.ok()) return ErrorResult(call, query.status());
  absl::StatusOr<int> limit = OptionalLimit(*arguments);
  if (!limit.ok()) return ErrorResult(call, limit.status());
  absl::StatusOr<std::vector<ScoredMemory>> hits = store_.Recall(scope, *query, *limit);
  if (absl::IsInvalidArgument(hits.status())) return ErrorResult(call, hits.status());
  if (!hits.ok()) return hits.status();
  auto& fields = *result.mutable_output()->mutable_struct_value()->mutable_fields();
  auto& list = *fields["memories"].mutable_list_value();
  for (const ScoredMemory& hit : *hits) {
    *list.add_values() = MemoryJson(hit.memory, hit.score);
  }
  return result;
}

}  // namespace flowork::agent
