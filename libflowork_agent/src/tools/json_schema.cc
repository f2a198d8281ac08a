#include "flowork/agent/json_schema.h"

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "flowork/core/internal/status_macros.h"
#include "google/protobuf/util/json_util.h"

namespace flowork::agent {

using google::protobuf::ListValue;
using google::protobuf::Struct;
using google::protobuf::Value;

namespace {

constexpr int kMaxSchemaDepth = 64;
constexpr size_t kMaxErrors = 20;

enum TypeBit : uint32_t {
  kNull = 1 << 0,
  kBoolean = 1 << 1,
  kInteger = 1 << 2,
  kNumber = 1 << 3,  // Includes integers.
  kString = 1 << 4,
  kArray = 1 << 5,
  kObject = 1 << 6,
};

std::optional<uint32_t> TypeFromName(const std::string& name) {
  if (name == "null") return kNull;
  if (name == "boolean") return kBoolean;
  if (name == "integer") return kInteger;
  if (name == "number") return kNumber;
  if (name == "string") return kString;
  if (name == "array") return kArray;
  if (name == "object") return kObject;
  return std::nullopt;
}

std::string TypeNames(uint32_t types) {
  std::vector<std::string> names;
  if (types & kObject) names.push_back("object");
  if (types & kArray) names.push_back("array");
  if (types & kString) names.push_back("string");
  if (types & kNumber) {
    names.push_back("number");
  } else if (types & kInteger) {
    names.push_back("integer");
  }
  if (types & kBoolean) names.push_back("boolean");
  if (types & kNull) names.push_back("null");
  return absl::StrJoin(names, " or ");
}

bool IsIntegral(double d) { return std::isfinite(d) && std::floor(d) == d; }

const char* KindName(const Value& v) {
  switch (v.kind_case()) {
    case Value::kStructValue:
      return "object";
    case Value::kListValue:
      return "array";
    case Value::kStringValue:
      return "string";
    case Value::kNumberValue:
      return IsIntegral(v.number_value()) ? "integer" : "number";
    case Value::kBoolValue:
      return "boolean";
    case Value::kNullValue:
    case Value::KIND_NOT_SET:
      break;
  }
  return "null";
}

bool HasType(const Value& v, uint32_t types) {
  switch (v.kind_case()) {
    case Value::kStructValue:
      return types & kObject;
    case Value::kListValue:
      return types & kArray;
    case Value::kStringValue:
      return types & kString;
    case Value::kNumberValue:
      return (types & kNumber) || ((types & kInteger) && IsIntegral(v.number_value()));
    case Value::kBoolValue:
      return types & kBoolean;
    case Value::kNullValue:
    case Value::KIND_NOT_SET:
      break;
  }
  return types & kNull;
}

bool JsonEquals(const Value& a, const Value& b) {
  const bool a_null = a.kind_case() == Value::KIND_NOT_SET || a.has_null_value();
  const bool b_null = b.kind_case() == Value::KIND_NOT_SET || b.has_null_value();
  if (a_null || b_null) return a_null == b_null;
  if (a.kind_case() != b.kind_case()) return false;
  switch (a.kind_case()) {
    case Value::kNumberValue:
      return a.number_value() == b.number_value();
    case Value::kStringValue:
      return a.string_value() == b.string_value();
    case Value::kBoolValue:
      return a.bool_value() == b.bool_value();
    case Value::kListValue: {
      const ListValue& x = a.list_value();
      const ListValue& y = b.list_value();
      if (x.values_size() != y.values_size()) return false;
      for (int i = 0; i < x.values_size(); ++i) {
        if (!JsonEquals(x.values(i), y.values(i))) return false;
      }
      return true;
    }
    case Value::kStructValue: {
      const auto& x = a.struct_value().fields();
      const auto& y = b.struct_value().fields();
      if (x.size() != y.size()) return false;
      for (const auto& [key, value] : x) {
        auto it = y.find(key);
        if (it == y.end() || !JsonEquals(value, it->second)) return false;
      }
      return true;
    }
    default:
      return false;
  }
}

// UTF-8 code points: every byte that is not a continuation byte.
size_t CodePoints(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

bool IsIdentifier(const std::string& s) {
  if (s.empty() || absl::ascii_isdigit(static_cast<unsigned char>(s[0]))) return false;
  for (unsigned char c : s) {
    if (!absl::ascii_isalnum(c) && c != '_') return false;
  }
  return true;
}

std::string Member(std::string_view path, const std::string& name) {
  if (IsIdentifier(name)) return absl::StrCat(std::string(path), ".", name);
  return absl::StrCat(std::string(path), "[", JsonValueToString([&] {
                        Value v;
                        v.set_string_value(name);
                        return v;
                      }()),
                      "]");
}

std::string FormatNumber(double d) {
  Value v;
  v.set_number_value(d);
  return JsonValueToString(v);
}

}  // namespace

struct JsonSchema::Node {
  Value source;
  bool reject_all = false;  // The schema `false`.
  uint32_t types = 0;       // 0: any type.
  std::map<std::string, std::unique_ptr<Node>> properties;
  std::vector<std::string> required;
  bool no_additional = false;
  std::unique_ptr<Node> additional;  // Schema of properties not in `properties`.
  std::unique_ptr<Node> items;
  std::optional<double> min_items, max_items, min_length, max_length;
  std::optional<double> minimum, maximum, exclusive_minimum, exclusive_maximum;
  std::optional<std::vector<Value>> enum_values;
  std::optional<Value> const_value;
  std::vector<std::unique_ptr<Node>> any_of;
};

namespace {

using Node = JsonSchema::Node;

absl::StatusOr<std::unique_ptr<Node>> CompileNode(const Value& schema, const std::string& path,
                                                  int depth);

absl::Status Bad(const std::string& path, std::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", std::string(what)));
}

absl::StatusOr<double> NumberField(const Value& v, const std::string& path) {
  if (!v.has_number_value()) return Bad(path, "expected a number");
  return v.number_value();
}

absl::StatusOr<double> CountField(const Value& v, const std::string& path) {
  if (!v.has_number_value() || !IsIntegral(v.number_value()) || v.number_value() < 0) {
    return Bad(path, "expected a non-negative integer");
  }
  return v.number_value();
}

absl::StatusOr<std::unique_ptr<Node>> CompileNode(const Value& schema, const std::string& path,
                                                  int depth) {
  if (depth > kMaxSchemaDepth) return Bad(path, "nested too deeply");
  auto node = std::make_unique<Node>();
  node->source = schema;
  if (schema.has_bool_value()) {
    node->reject_all = !schema.bool_value();
    return node;
  }
  if (!schema.has_struct_value()) return Bad(path, "a schema must be an object or a boolean");
  const auto& fields = schema.struct_value().fields();
  auto field = [&](const char* name) -> const Value* {
    auto it = fields.find(name);
    return it == fields.end() ? nullptr : &it->second;
  };
  auto at = [&](const char* name) { return absl::StrCat(path, ".", name); };

  if (const Value* type = field("type")) {
    std::vector<const Value*> names;
    if (type->has_list_value()) {
      for (const Value& v : type->list_value().values()) names.push_back(&v);
    } else {
      names.push_back(type);
    }
    for (const Value* name : names) {
      if (!name->has_string_value()) return Bad(at("type"), "expected a type name");
      std::optional<uint32_t> bit = TypeFromName(name->string_value());
      if (!bit) return Bad(at("type"), absl::StrCat("unknown type \"", name->string_value(), "\""));
      node->types |= *bit;
    }
    if (node->types == 0) return Bad(at("type"), "empty list of types");
  }
  if (const Value* properties = field("properties")) {
    if (!properties->has_struct_value()) return Bad(at("properties"), "expected an object");
    for (const auto& [name, sub] : properties->struct_value().fields()) {
      FLOWORK_ASSIGN_OR_RETURN(node->properties[name],
                               CompileNode(sub, Member(at("properties"), name), depth + 1));
    }
  }
  if (const Value* required = field("required")) {
    if (!required->has_list_value()) return Bad(at("required"), "expected an array of names");
    for (const Value& name : required->list_value().values()) {
      if (!name.has_string_value()) return Bad(at("required"), "expected an array of names");
      node->required.push_back(name.string_value());
    }
  }
  if (const Value* additional = field("additionalProperties")) {
    if (additional->has_bool_value()) {
      node->no_additional = !additional->bool_value();
    } else {
      FLOWORK_ASSIGN_OR_RETURN(node->additional,
                               CompileNode(*additional, at("additionalProperties"), depth + 1));
    }
  }
  if (const Value* items = field("items")) {
    if (items->has_list_value()) {
      return Bad(at("items"), "a list of schemas (tuple validation) is not supported");
    }
    FLOWORK_ASSIGN_OR_RETURN(node->items, CompileNode(*items, at("items"), depth + 1));
  }
  if (const Value* v = field("minItems")) {
    FLOWORK_ASSIGN_OR_RETURN(node->min_items, CountField(*v, at("minItems")));
  }
  if (const Value* v = field("maxItems")) {
    FLOWORK_ASSIGN_OR_RETURN(node->max_items, CountField(*v, at("maxItems")));
  }
  if (const Value* v = field("minLength")) {
    FLOWORK_ASSIGN_OR_RETURN(node->min_length, CountField(*v, at("minLength")));
  }
  if (const Value* v = field("maxLength")) {
    FLOWORK_ASSIGN_OR_RETURN(node->max_length, CountField(*v, at("maxLength")));
  }
  if (const Value* v = field("minimum")) {
    FLOWORK_ASSIGN_OR_RETURN(node->minimum, NumberField(*v, at("minimum")));
  }
  if (const Value* v = field("maximum")) {
    FLOWORK_ASSIGN_OR_RETURN(node->maximum, NumberField(*v, at("maximum")));
  }
  // Draft 4 spelled exclusive bounds as booleans next to minimum/maximum.
  if (const Value* v = field("exclusiveMinimum")) {
    if (v->has_bool_value()) {
      if (v->bool_value() && node->minimum) std::swap(node->exclusive_minimum, node->minimum);
    } else {
      FLOWORK_ASSIGN_OR_RETURN(node->exclusive_minimum, NumberField(*v, at("exclusiveMinimum")));
    }
  }
  if (const Value* v = field("exclusiveMaximum")) {
    if (v->has_bool_value()) {
      if (v->bool_value() && node->maximum) std::swap(node->exclusive_maximum, node->maximum);
    } else {
      FLOWORK_ASSIGN_OR_RETURN(node->exclusive_maximum, NumberField(*v, at("exclusiveMaximum")));
    }
  }
  if (const Value* v = field("enum")) {
    if (!v->has_list_value()) return Bad(at("enum"), "expected an array");
    node->enum_values.emplace(v->list_value().values().begin(), v->list_value().values().end());
  }
  if (const Value* v = field("const")) node->const_value = *v;
  if (const Value* v = field("anyOf")) {
    if (!v->has_list_value() || v->list_value().values().empty()) {
      return Bad(at("anyOf"), "expected a non-empty array of schemas");
    }
    for (int i = 0; i < v->list_value().values_size(); ++i) {
      FLOWORK_ASSIGN_OR_RETURN(node->any_of.emplace_back(),
                               CompileNode(v->list_value().values(i),
                                           absl::StrCat(at("anyOf"), "[", i, "]"), depth + 1));
    }
  }
  return node;
}

class Validator {
 public:
  void Check(const Node& node, const Value& value, const std::string& path) {
    if (node.reject_all) return Add(path, "no value is allowed here");
    if (node.types != 0 && !HasType(value, node.types)) {
      return Add(path, absl::StrCat("expected ", TypeNames(node.types), ", got ", KindName(value)));
    }
    if (node.const_value && !JsonEquals(*node.const_value, value)) {
      Add(path, absl::StrCat("must be ", JsonValueToString(*node.const_value)));
    }
    if (node.enum_values) {
      bool found = false;
      for (const Value& allowed : *node.enum_values) found = found || JsonEquals(allowed, value);
      if (!found) {
        std::vector<std::string> texts;
        for (const Value& allowed : *node.enum_values) texts.push_back(JsonValueToString(allowed));
        Add(path, absl::StrCat("must be one of [", absl::StrJoin(texts, ", "), "], got ",
                               JsonValueToString(value)));
      }
    }
    switch (value.kind_case()) {
      case Value::kNumberValue:
        CheckNumber(node, value.number_value(), path);
        break;
      case Value::kStringValue:
        CheckString(node, value.string_value(), path);
        break;
      case Value::kListValue:
        CheckArray(node, value.list_value(), path);
        break;
      case Value::kStructValue:
        CheckObject(node, value.struct_value(), path);
        break;
      default:
        break;
    }
    if (!node.any_of.empty()) {
      std::string first_error;
      for (const auto& option : node.any_of) {
        Validator inner;
        inner.Check(*option, value, path);
        if (inner.errors_.empty()) return;
        if (first_error.empty()) first_error = inner.errors_.front();
      }
      Add(path, absl::StrCat("matches none of the anyOf schemas (first: ", first_error, ")"));
    }
  }

  std::vector<std::string> errors_;

 private:
  void Add(const std::string& path, std::string_view what) {
    if (errors_.size() < kMaxErrors) errors_.push_back(absl::StrCat(path, ": ", std::string(what)));
  }

  void CheckNumber(const Node& node, double d, const std::string& path) {
    if (node.minimum && d < *node.minimum) {
      Add(path,
          absl::StrCat("must be >= ", FormatNumber(*node.minimum), ", got ", FormatNumber(d)));
    }
    if (node.maximum && d > *node.maximum) {
      Add(path,
          absl::StrCat("must be <= ", FormatNumber(*node.maximum), ", got ", FormatNumber(d)));
    }
    if (node.exclusive_minimum && d <= *node.exclusive_minimum) {
      Add(path, absl::StrCat("must be > ", FormatNumber(*node.exclusive_minimum), ", got ",
                             FormatNumber(d)));
    }
    if (node.exclusive_maximum && d >= *node.exclusive_maximum) {
      Add(path, absl::StrCat("must be < ", FormatNumber(*node.exclusive_maximum), ", got ",
                             FormatNumber(d)));
    }
  }

  void CheckString(const Node& node, const std::string& s, const std::string& path) {
    const size_t n = CodePoints(s);
    if (node.min_length && static_cast<double>(n) < *node.min_length) {
      Add(path, absl::StrCat("must have at least ", FormatNumber(*node.min_length),
                             " characters, got ", n));
    }
    if (node.max_length && static_cast<double>(n) > *node.max_length) {
      Add(path, absl::StrCat("must have at most ", FormatNumber(*node.max_length),
                             " characters, got ", n));
    }
  }

  void CheckArray(const Node& node, const ListValue& list, const std::string& path) {
    const auto n = static_cast<size_t>(list.values_size());
    if (node.min_items && static_cast<double>(n) < *node.min_items) {
      Add(path,
          absl::StrCat("must have at least ", FormatNumber(*node.min_items), " items, got ", n));
    }
    if (node.max_items && static_cast<double>(n) > *node.max_items) {
      Add(path,
          absl::StrCat("must have at most ", FormatNumber(*node.max_items), " items, got ", n));
    }
    if (node.items) {
      for (size_t i = 0; i < n; ++i) {
        Check(*node.items, list.values(static_cast<int>(i)), absl::StrCat(path, "[", i, "]"));
      }
    }
  }

  void CheckObject(const Node& node, const Struct& object, const std::string& path) {
    for (const std::string& name : node.required) {
      if (!object.fields().contains(name)) Add(Member(path, name), "missing required property");
    }
    // Map order is unspecified: visit names sorted so errors read the same every time.
    std::map<std::string, const Value*> sorted;
    for (const auto& [name, value] : object.fields()) sorted.emplace(name, &value);
    for (const auto& [name, value] : sorted) {
      auto it = node.properties.find(name);
      if (it != node.properties.end()) {
        Check(*it->second, *value, Member(path, name));
      } else if (node.additional) {
        Check(*node.additional, *value, Member(path, name));
      } else if (node.no_additional) {
        std::vector<std::string> known;
        for (const auto& [known_name, unused] : node.properties) known.push_back(known_name);
        Add(Member(path, name), known.empty() ? std::string("unknown property; none are allowed")
                                              : absl::StrCat("unknown property; allowed: ",
                                                             absl::StrJoin(known, ", ")));
      }
    }
  }
};

}  // namespace

JsonSchema::JsonSchema() : root_(std::make_shared<Node>()) {}

JsonSchema::JsonSchema(std::shared_ptr<const Node> root) : root_(std::move(root)) {}

absl::StatusOr<JsonSchema> JsonSchema::Parse(std::string_view json) {
  absl::StatusOr<Value> value = ParseJsonValue(json);
  if (!value.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("schema: ", value.status().message()));
  }
  return Compile(*value);
}

absl::StatusOr<JsonSchema> JsonSchema::Compile(const Value& schema) {
  FLOWORK_ASSIGN_OR_RETURN(std::unique_ptr<Node> root, CompileNode(schema, "schema", 0));
  return JsonSchema(std::shared_ptr<const Node>(std::move(root)));
}

absl::StatusOr<JsonSchema> JsonSchema::Compile(const Struct& schema) {
  Value value;
  *value.mutable_struct_value() = schema;
  return Compile(value);
}

absl::Status JsonSchema::Validate(const Value& value, std::string_view root) const {
  Validator validator;
  validator.Check(*root_, value, std::string(root));
  if (validator.errors_.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrJoin(validator.errors_, "; "));
}

const Value& JsonSchema::schema() const { return root_->source; }

absl::StatusOr<Value> ParseJsonValue(std::string_view json) {
  Value value;
  const google::protobuf::util::Status status =
      google::protobuf::util::JsonStringToMessage(std::string(json), &value);
  if (!status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("not valid JSON: ", std::string(status.message())));
  }
  return value;
}

std::string JsonValueToString(const Value& value) {
  if (value.kind_case() == Value::KIND_NOT_SET) return "null";
  std::string out;
  if (!google::protobuf::util::MessageToJsonString(value, &out).ok()) return "null";
  return out;
}

}  // namespace flowork::agent
