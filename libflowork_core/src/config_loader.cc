#include "flowork/core/config_loader.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "flowork/core/internal/status_macros.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "yaml-cpp/yaml.h"

namespace flowork::core {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::EnumDescriptor;
using google::protobuf::EnumValueDescriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::OneofDescriptor;
using google::protobuf::Reflection;

using EnvLookup = std::function<std::optional<std::string>(std::string_view name)>;

constexpr std::string_view kDurationType = "google.protobuf.Duration";
// google.protobuf.Duration's documented range: about 10,000 years.
constexpr int64_t kMaxDurationSeconds = 315'576'000'000;

std::optional<std::string> LookupProcessEnv(std::string_view name) {
  const char* value = std::getenv(std::string(name).c_str());
  if (value == nullptr) return std::nullopt;
  return std::string(value);
}

// How a node reads in an error message: `a mapping`, `"abc"`, `null`.
std::string Describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Sequence:
      return "a sequence";
    case YAML::NodeType::Scalar:
      return absl::StrCat("\"", node.Scalar(), "\"");
    default:
      return "null";
  }
}

// The prefix enum values conventionally carry: the enum's type name in
// UPPER_SNAKE, e.g. `Objective` -> `OBJECTIVE_`, `LightBlue` -> `LIGHT_BLUE_`.
std::string EnumValuePrefix(const EnumDescriptor& type) {
  const std::string& name = type.name();
  std::string prefix;
  for (size_t i = 0; i < name.size(); ++i) {
    if (i > 0 && absl::ascii_isupper(name[i]) && !absl::ascii_isupper(name[i - 1])) {
      prefix += '_';
    }
    prefix += absl::ascii_toupper(name[i]);
  }
  prefix += '_';
  return prefix;
}

// The proto field name, or else the json_name (lowerCamel) form.
const FieldDescriptor* FindField(const Descriptor& descriptor, const std::string& name) {
  if (const FieldDescriptor* field = descriptor.FindFieldByName(name)) {
    return field;
  }
  for (int i = 0; i < descriptor.field_count(); ++i) {
    if (descriptor.field(i)->json_name() == name) return descriptor.field(i);
  }
  return nullptr;
}

// An optionally signed run of decimal digits.
bool IsDecimalInteger(std::string_view text) {
  if (text.starts_with('-') || text.starts_with('+')) {
    text.remove_prefix(1);
  }
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return absl::ascii_isdigit(static_cast<unsigned char>(c));
  });
}

// A number without a unit, e.g. "2" or "1.5", which a duration must not be.
bool IsBareNumber(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return absl::ascii_isdigit(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '+';
  });
}

// Walks a YAML node tree alongside a message's descriptor, filling the
// message through reflection. Stops at the first problem, which it reports as
// `<source>:<line>: <field path>: <problem>`.
class ProtoYamlReader {
 public:
  ProtoYamlReader(std::string_view source_name, EnvLookup lookup_env)
      : source_name_(source_name), lookup_env_(std::move(lookup_env)) {}

  absl::Status ReadDocument(const YAML::Node& root, Message* message) const;

 private:
  absl::Status ReadMessage(const YAML::Node& node, const std::string& path, Message* message) const;
  // One field of `message`, whatever its shape; `node` is not null.
  absl::Status ReadField(const YAML::Node& node, const std::string& path,
                         const FieldDescriptor* field, Message* message) const;
  absl::Status ReadRepeated(const YAML::Node& node, const std::string& path,
                            const FieldDescriptor* field, Message* message) const;
  absl::Status ReadMap(const YAML::Node& node, const std::string& path,
                       const FieldDescriptor* field, Message* message) const;
  // Sets a singular field, or appends one element to a repeated field.
  absl::Status ReadValue(const YAML::Node& node, const std::string& path,
                         const FieldDescriptor* field, Message* message) const;
  // Sets the key of a map entry; returns the key as written in paths:
  // `"a"` for strings, `5` for numbers.
  absl::StatusOr<std::string> ReadMapKey(const YAML::Node& node, const std::string& path,
                                         const FieldDescriptor* key_field, Message* entry) const;
  absl::Status ReadDuration(const YAML::Node& node, const std::string& path,
                            Message* duration) const;

  absl::StatusOr<std::string> ReadScalar(const YAML::Node& node, const std::string& path,
                                         absl::string_view expected) const;
  template <typename Int>
  absl::StatusOr<Int> ReadInteger(const YAML::Node& node, const std::string& path,
                                  const FieldDescriptor* field) const;
  absl::StatusOr<double> ReadDouble(const YAML::Node& node, const std::string& path,
                                    const FieldDescriptor* field) const;
  absl::StatusOr<bool> ReadBool(const YAML::Node& node, const std::string& path,
                                const FieldDescriptor* field) const;
  // String and bytes values, with `${NAME}` references resolved.
  absl::StatusOr<std::string> ReadString(const YAML::Node& node, const std::string& path,
                                         const FieldDescriptor* field) const;
  absl::StatusOr<int> ReadEnum(const YAML::Node& node, const std::string& path,
                               const FieldDescriptor* field) const;

  absl::StatusOr<std::string> ExpandEnv(const YAML::Node& node, const std::string& path,
                                        std::string_view text) const;
  absl::Status Error(const YAML::Node& node, const std::string& path,
                     absl::string_view problem) const;

  std::string source_name_;
  EnvLookup lookup_env_;
};

absl::Status ProtoYamlReader::ReadDocument(const YAML::Node& root, Message* message) const {
  if (root.IsNull()) return absl::OkStatus();
  if (!root.IsMap()) {
    return Error(root, "",
                 absl::StrCat("expected a mapping at the top level, got ", Describe(root)));
  }
  return ReadMessage(root, "", message);
}

absl::Status ProtoYamlReader::ReadMessage(const YAML::Node& node, const std::string& path,
                                          Message* message) const {
  const Descriptor& descriptor = *message->GetDescriptor();
  if (descriptor.full_name() == kDurationType) {
    return ReadDuration(node, path, message);
  }
  if (!node.IsMap()) {
    return Error(node, path, absl::StrCat("expected a mapping, got ", Describe(node)));
  }
  std::set<const FieldDescriptor*> seen;
  std::map<const OneofDescriptor*, const FieldDescriptor*> oneof_members;
  for (const auto& entry : node) {
    const YAML::Node& key = entry.first;
    const YAML::Node& value = entry.second;
    if (!key.IsScalar()) {
      return Error(key, path, absl::StrCat("expected a field name, got ", Describe(key)));
    }
    const std::string field_path =
        path.empty() ? key.Scalar() : absl::StrCat(path, ".", key.Scalar());
    const FieldDescriptor* field = FindField(descriptor, key.Scalar());
    if (field == nullptr) return Error(key, field_path, "unknown field");
    if (!seen.insert(field).second) {
      return Error(key, field_path, "duplicate field");
    }
    if (value.IsNull()) continue;
    if (const OneofDescriptor* oneof = field->real_containing_oneof()) {
      const auto [member, inserted] = oneof_members.emplace(oneof, field);
      if (!inserted) {
        return Error(key, field_path,
                     absl::StrCat("conflicts with ", member->second->name(), " (both in oneof ",
                                  oneof->name(), ")"));
      }
    }
    FLOWORK_RETURN_IF_ERROR(ReadField(value, field_path, field, message));
  }
  return absl::OkStatus();
}

absl::Status ProtoYamlReader::ReadField(const YAML::Node& node, const std::string& path,
                                        const FieldDescriptor* field, Message* message) const {
  if (field->is_map()) return ReadMap(node, path, field, message);
  if (field->is_repeated()) return ReadRepeated(node, path, field, message);
  return ReadValue(node, path, field, message);
}

absl::Status ProtoYamlReader::ReadRepeated(const YAML::Node& node, const std::string& path,
                                           const FieldDescriptor* field, Message* message) const {
  if (!node.IsSequence()) {
    return Error(node, path, absl::StrCat("expected a sequence, got ", Describe(node)));
  }
  size_t index = 0;
  for (const YAML::Node& element : node) {
    FLOWORK_RETURN_IF_ERROR(
        ReadValue(element, absl::StrCat(path, "[", index, "]"), field, message));
    ++index;
  }
  return absl::OkStatus();
}

absl::Status ProtoYamlReader::ReadMap(const YAML::Node& node, const std::string& path,
                                      const FieldDescriptor* field, Message* message) const {
  if (!node.IsMap()) {
    return Error(node, path, absl::StrCat("expected a mapping, got ", Describe(node)));
  }
  const Descriptor& entry_type = *field->message_type();
  std::set<std::string> seen;
  for (const auto& item : node) {
    Message* entry = message->GetReflection()->AddMessage(message, field);
    FLOWORK_ASSIGN_OR_RETURN(const std::string key,
                             ReadMapKey(item.first, path, entry_type.map_key(), entry));
    const std::string entry_path = absl::StrCat(path, "[", key, "]");
    if (!seen.insert(key).second) {
      return Error(item.first, entry_path, "duplicate key");
    }
    FLOWORK_RETURN_IF_ERROR(ReadValue(item.second, entry_path, entry_type.map_value(), entry));
  }
  return absl::OkStatus();
}

absl::Status ProtoYamlReader::ReadValue(const YAML::Node& node, const std::string& path,
                                        const FieldDescriptor* field, Message* message) const {
  const Reflection& reflection = *message->GetReflection();
  const bool append = field->is_repeated();
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32: {
      FLOWORK_ASSIGN_OR_RETURN(const int32_t value, ReadInteger<int32_t>(node, path, field));
      if (append) {
        reflection.AddInt32(message, field, value);
      } else {
        reflection.SetInt32(message, field, value);
      }
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_INT64: {
      FLOWORK_ASSIGN_OR_RETURN(const int64_t value, ReadInteger<int64_t>(node, path, field));
      if (append) {
        reflection.AddInt64(message, field, value);
      } else {
        reflection.SetInt64(message, field, value);
      }
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_UINT32: {
      FLOWORK_ASSIGN_OR_RETURN(const uint32_t value, ReadInteger<uint32_t>(node, path, field));
      if (append) {
        reflection.AddUInt32(message, field, value);
      } else {
        reflection.SetUInt32(message, field, value);
      }
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_UINT64: {
      FLOWORK_ASSIGN_OR_RETURN(const uint64_t value, ReadInteger<uint64_t>(node, path, field));
      if (append) {
        reflection.AddUInt64(message, field, value);
      } else {
        reflection.SetUInt64(message, field, value);
      }
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_DOUBLE: {
      FLOWORK_ASSIGN_OR_RETURN(const double value, ReadDouble(node, path, field));
      if (append) {
        reflection.AddDouble(message, field, value);
      } else {
        reflection.SetDouble(message, field, value);
      }
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_FLOAT: {
      FLOWORK_ASSIGN_OR_RETURN(const double value, ReadDouble(node, path, field));
      if (append) {
        reflection.AddFloat(message, field, static_cast<float>(value));
      } else {
        reflection.SetFloat(message, field, static_cast<float>(value));
      }
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_BOOL: {
      FLOWORK_ASSIGN_OR_RETURN(const bool value, ReadBool(node, path, field));
      if (append) {
        reflection.AddBool(message, field, value);
      } else {
        reflection.SetBool(message, field, value);
      }
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_STRING: {
      FLOWORK_ASSIGN_OR_RETURN(std::string value, ReadString(node, path, field));
      if (append) {
        reflection.AddString(message, field, std::move(value));
      } else {
        reflection.SetString(message, field, std::move(value));
      }
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_ENUM: {
      FLOWORK_ASSIGN_OR_RETURN(const int value, ReadEnum(node, path, field));
      if (append) {
        reflection.AddEnumValue(message, field, value);
      } else {
        reflection.SetEnumValue(message, field, value);
      }
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_MESSAGE: {
      Message* child = append ? reflection.AddMessage(message, field)
                              : reflection.MutableMessage(message, field);
      return ReadMessage(node, path, child);
    }
  }
  return Error(node, path, "unsupported field type");
}

absl::StatusOr<std::string> ProtoYamlReader::ReadMapKey(const YAML::Node& node,
                                                        const std::string& path,
                                                        const FieldDescriptor* key_field,
                                                        Message* entry) const {
  const Reflection& reflection = *entry->GetReflection();
  switch (key_field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_STRING: {
      // Keys are names, not values: `${...}` stays as written.
      FLOWORK_ASSIGN_OR_RETURN(std::string key, ReadScalar(node, path, "a string key"));
      reflection.SetString(entry, key_field, key);
      return absl::StrCat("\"", key, "\"");
    }
    case FieldDescriptor::CPPTYPE_INT32: {
      FLOWORK_ASSIGN_OR_RETURN(const int32_t key, ReadInteger<int32_t>(node, path, key_field));
      reflection.SetInt32(entry, key_field, key);
      return absl::StrCat(key);
    }
    case FieldDescriptor::CPPTYPE_INT64: {
      FLOWORK_ASSIGN_OR_RETURN(const int64_t key, ReadInteger<int64_t>(node, path, key_field));
      reflection.SetInt64(entry, key_field, key);
      return absl::StrCat(key);
    }
    case FieldDescriptor::CPPTYPE_UINT32: {
      FLOWORK_ASSIGN_OR_RETURN(const uint32_t key, ReadInteger<uint32_t>(node, path, key_field));
      reflection.SetUInt32(entry, key_field, key);
      return absl::StrCat(key);
    }
    case FieldDescriptor::CPPTYPE_UINT64: {
      FLOWORK_ASSIGN_OR_RETURN(const uint64_t key, ReadInteger<uint64_t>(node, path, key_field));
      reflection.SetUInt64(entry, key_field, key);
      return absl::StrCat(key);
    }
    case FieldDescriptor::CPPTYPE_BOOL: {
      FLOWORK_ASSIGN_OR_RETURN(const bool key, ReadBool(node, path, key_field));
      reflection.SetBool(entry, key_field, key);
      return std::string(key ? "true" : "false");
    }
    default:
      // protoc accepts no other key types.
      return Error(node, path, "unsupported map key type");
  }
}

absl::Status ProtoYamlReader::ReadDuration(const YAML::Node& node, const std::string& path,
                                           Message* duration) const {
  FLOWORK_ASSIGN_OR_RETURN(const std::string text,
                           ReadScalar(node, path, "a duration such as \"250ms\""));
  if (IsBareNumber(text)) {
    return Error(node, path,
                 absl::StrCat("duration \"", text, "\" needs a unit (ns, us, ms, s, m or h)"));
  }
  absl::Duration value;
  if (!absl::ParseDuration(text, &value) || value == absl::InfiniteDuration() ||
      value == -absl::InfiniteDuration()) {
    return Error(
        node, path,
        absl::StrCat("invalid duration \"", text, "\" (expected e.g. 250ms, 2s, 1.5m, 1h)"));
  }
  if (value < absl::ZeroDuration()) {
    return Error(node, path, absl::StrCat("negative duration \"", text, "\""));
  }
  if (value > absl::Seconds(kMaxDurationSeconds)) {
    return Error(node, path, absl::StrCat("duration \"", text, "\" is out of range"));
  }
  absl::Duration remainder;
  const int64_t seconds = absl::IDivDuration(value, absl::Seconds(1), &remainder);
  const int64_t nanos = absl::ToInt64Nanoseconds(remainder);
  const Descriptor& type = *duration->GetDescriptor();
  const Reflection& reflection = *duration->GetReflection();
  reflection.SetInt64(duration, type.FindFieldByName("seconds"), seconds);
  reflection.SetInt32(duration, type.FindFieldByName("nanos"), static_cast<int32_t>(nanos));
  return absl::OkStatus();
}

absl::StatusOr<std::string> ProtoYamlReader::ReadScalar(const YAML::Node& node,
                                                        const std::string& path,
                                                        absl::string_view expected) const {
  if (!node.IsScalar()) {
    return Error(node, path, absl::StrCat("expected ", expected, ", got ", Describe(node)));
  }
  return node.Scalar();
}

template <typename Int>
absl::StatusOr<Int> ProtoYamlReader::ReadInteger(const YAML::Node& node, const std::string& path,
                                                 const FieldDescriptor* field) const {
  FLOWORK_ASSIGN_OR_RETURN(const std::string text, ReadScalar(node, path, field->type_name()));
  if (!IsDecimalInteger(text)) {
    return Error(node, path,
                 absl::StrCat("expected ", field->type_name(), ", got ", Describe(node)));
  }
  Int value;
  if (!absl::SimpleAtoi(text, &value)) {
    return Error(node, path, absl::StrCat(text, " is out of range for ", field->type_name()));
  }
  return value;
}

absl::StatusOr<double> ProtoYamlReader::ReadDouble(const YAML::Node& node, const std::string& path,
                                                   const FieldDescriptor* field) const {
  FLOWORK_ASSIGN_OR_RETURN(const std::string text, ReadScalar(node, path, field->type_name()));
  double value;
  if (!absl::SimpleAtod(text, &value)) {
    return Error(node, path,
                 absl::StrCat("expected ", field->type_name(), ", got ", Describe(node)));
  }
  if (field->cpp_type() == FieldDescriptor::CPPTYPE_FLOAT && std::isfinite(value) &&
      std::abs(value) > std::numeric_limits<float>::max()) {
    return Error(node, path, absl::StrCat(text, " is out of range for float"));
  }
  return value;
}

absl::StatusOr<bool> ProtoYamlReader::ReadBool(const YAML::Node& node, const std::string& path,
                                               const FieldDescriptor* field) const {
  FLOWORK_ASSIGN_OR_RETURN(const std::string text, ReadScalar(node, path, field->type_name()));
  if (text == "true" || text == "True" || text == "TRUE") return true;
  if (text == "false" || text == "False" || text == "FALSE") return false;
  return Error(node, path, absl::StrCat("expected bool (true or false), got ", Describe(node)));
}

absl::StatusOr<std::string> ProtoYamlReader::ReadString(const YAML::Node& node,
                                                        const std::string& path,
                                                        const FieldDescriptor* field) const {
  FLOWORK_ASSIGN_OR_RETURN(const std::string text, ReadScalar(node, path, field->type_name()));
  return ExpandEnv(node, path, text);
}

absl::StatusOr<int> ProtoYamlReader::ReadEnum(const YAML::Node& node, const std::string& path,
                                              const FieldDescriptor* field) const {
  const EnumDescriptor& type = *field->enum_type();
  FLOWORK_ASSIGN_OR_RETURN(const std::string text,
                           ReadScalar(node, path, absl::StrCat("a ", type.name(), " value")));
  const std::string prefixed = absl::StrCat(EnumValuePrefix(type), text);
  for (int i = 0; i < type.value_count(); ++i) {
    const EnumValueDescriptor& value = *type.value(i);
    if (absl::EqualsIgnoreCase(text, value.name()) ||
        absl::EqualsIgnoreCase(prefixed, value.name())) {
      return value.number();
    }
  }
  return Error(node, path, absl::StrCat("unknown value \"", text, "\""));
}

absl::StatusOr<std::string> ProtoYamlReader::ExpandEnv(const YAML::Node& node,
                                                       const std::string& path,
                                                       std::string_view text) const {
  std::string expanded;
  size_t pos = 0;
  while (pos < text.size()) {
    const std::string_view rest = text.substr(pos);
    if (rest.starts_with("$${")) {
      expanded += "${";
      pos += 3;
    } else if (rest.starts_with("${")) {
      const size_t end = rest.find('}');
      if (end == std::string_view::npos) {
        return Error(node, path, "unterminated \"${\" (write \"$${\" for a literal \"${\")");
      }
      const std::string_view name = rest.substr(2, end - 2);
      if (name.empty()) return Error(node, path, "empty \"${}\" reference");
      std::optional<std::string> value = lookup_env_(name);
      if (!value.has_value()) {
        return Error(node, path,
                     absl::StrCat("environment variable ", std::string(name), " is not set"));
      }
      expanded += *value;
      pos += end + 1;
    } else {
      expanded += text[pos];
      ++pos;
    }
  }
  return expanded;
}

absl::Status ProtoYamlReader::Error(const YAML::Node& node, const std::string& path,
                                    absl::string_view problem) const {
  // Nodes without a position (rare, e.g. some nulls) report line 1.
  const int line = std::max(node.Mark().line, 0) + 1;
  if (path.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(source_name_, ":", line, ": ", problem));
  }
  return absl::InvalidArgumentError(
      absl::StrCat(source_name_, ":", line, ": ", path, ": ", problem));
}

struct FileCloser {
  void operator()(std::FILE* file) const { std::fclose(file); }
};

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  std::unique_ptr<std::FILE, FileCloser> file(std::fopen(path.c_str(), "rb"));
  if (file == nullptr) {
    return absl::NotFoundError(absl::StrCat("cannot open config file ", path, ": ",
                                            std::generic_category().message(errno)));
  }
  std::string text;
  char buffer[8192];
  size_t count;
  while ((count = std::fread(buffer, 1, sizeof(buffer), file.get())) > 0) {
    text.append(buffer, count);
  }
  if (std::ferror(file.get())) {
    return absl::NotFoundError(absl::StrCat("cannot read config file ", path, ": ",
                                            std::generic_category().message(errno)));
  }
  return text;
}

}  // namespace

absl::Status ParseConfigText(std::string_view text, std::string_view source_name,
                             google::protobuf::Message* message, const ConfigLoadOptions& options) {
  message->Clear();
  absl::Status status;
  try {
    const YAML::Node root = YAML::Load(std::string(text));
    const ProtoYamlReader reader(
        source_name, options.lookup_env ? options.lookup_env : EnvLookup(LookupProcessEnv));
    status = reader.ReadDocument(root, message);
  } catch (const YAML::Exception& e) {
    status = absl::InvalidArgumentError(
        absl::StrCat(std::string(source_name), ":", std::max(e.mark.line, 0) + 1, ": ", e.msg));
  }
  if (!status.ok()) message->Clear();
  return status;
}

absl::Status LoadConfigFile(const std::string& path, google::protobuf::Message* message,
                            const ConfigLoadOptions& options) {
  message->Clear();
  FLOWORK_ASSIGN_OR_RETURN(const std::string text, ReadWholeFile(path));
  std::string source_name = std::filesystem::path(path).filename().string();
  if (source_name.empty()) source_name = path;
  return ParseConfigText(text, source_name, message, options);
}

}  // namespace flowork::core
