// The memory_pin_* tools over a PinnedMemoryStore.

#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "flowork/agent/tool_sources.h"

namespace flowork::agent {
namespace {

constexpr char kTextSchema[] = R"json({"type":"object","properties":{
  "block":{"type":"string","description":"The pinned block's name."},
  "text":{"type":"string"}},"required":["block","text"]})json";
constexpr char kReplaceSchema[] = R"json({"type":"object","properties":{
  "block":{"type":"string","description":"The pinned block's name."},
  "old_text":{"type":"string","description":"Text in the block to replace (its first occurrence)."},
  "text":{"type":"string","description":"The replacement."}},
  "required":["block","old_text","text"]})json";

std::string Field(const google::protobuf::Value& arguments, const char* name) {
  const auto& fields = arguments.struct_value().fields();
  auto it = fields.find(name);
  return it == fields.end() ? "" : it->second.string_value();
}

}  // namespace

absl::Status RegisterPinnedMemoryTools(ToolRegistry& registry, PinnedMemoryStore& store,
                                       MemorySpecLookup specs) {
  auto shared_specs = std::make_shared<MemorySpecLookup>(std::move(specs));
  struct Tool {
    const char* name;
    const char* description;
    const char* schema;
    PinnedEdit::Kind kind;
  };
  const Tool tools[] = {
      {"memory_pin_set",
       "Replace the whole text of one of your pinned memory blocks (always shown to you).",
       kTextSchema, PinnedEdit::Kind::kSet},
      {"memory_pin_append", "Add a line at the end of one of your pinned memory blocks.",
       kTextSchema, PinnedEdit::Kind::kAppend},
      {"memory_pin_replace",
       "Replace the first occurrence of old_text in one of your pinned memory blocks.",
       kReplaceSchema, PinnedEdit::Kind::kReplace},
  };
  for (const Tool& tool : tools) {
    ToolDefinition definition;
    definition.name = tool.name;
    definition.description = tool.description;
    definition.parameters_json_schema = tool.schema;
    absl::Status registered = registry.RegisterNative(
        std::move(definition),
        [&store, shared_specs, kind = tool.kind](
            const google::protobuf::Value& arguments,
            ToolContext& context) -> absl::StatusOr<google::protobuf::Value> {
          const v1::Task& task = context.task();
          absl::StatusOr<v1::MemorySpec> spec = (*shared_specs)(task.agent());
          if (!spec.ok()) return spec.status();
          PinnedEdit edit;
          edit.name = Field(arguments, "block");
          edit.kind = kind;
          edit.text = Field(arguments, "text");
          edit.old_text = Field(arguments, "old_text");
          edit.edit_key = absl::StrCat(task.id(), "/", context.call_id());
          const v1::PinnedBlockSpec* declared = nullptr;
          std::vector<std::string> names;
          for (const v1::PinnedBlockSpec& block : spec->pinned_blocks()) {
            names.push_back(block.name());
            if (block.name() == edit.name) declared = &block;
          }
          if (declared == nullptr) {
            return absl::InvalidArgumentError(absl::StrCat(
                "block: no pinned block \"", edit.name,
                "\"; the blocks are: ", names.empty() ? "(none)" : absl::StrJoin(names, ", ")));
          }
          if (declared->per_session() && task.session_id().empty()) {
            return absl::FailedPreconditionError(absl::StrCat(
                "block \"", edit.name, "\" is kept per session and this task has no session"));
          }
          edit.initial_text = declared->initial_text();
          edit.max_bytes = declared->max_bytes() == 0 ? kDefaultPinnedBlockBytes
                                                      : static_cast<size_t>(declared->max_bytes());
          PinnedScope scope{.tenant = task.tenant(), .agent = task.agent()};
          if (declared->per_session()) scope.session_id = task.session_id();
          absl::StatusOr<v1::PinnedBlock> block = store.Edit(scope, edit);
          if (!block.ok()) return block.status();
          google::protobuf::Value out;
          auto& fields = *out.mutable_struct_value()->mutable_fields();
          fields["block"].set_string_value(block->name());
          fields["text"].set_string_value(block->text());
          fields["bytes"].set_number_value(static_cast<double>(block->text().size()));
          fields["max_bytes"].set_number_value(static_cast<double>(edit.max_bytes));
          return out;
        });
    if (!registered.ok()) return registered;
  }
  return absl::OkStatus();
}

}  // namespace flowork::agent
