#ifndef FLOWORK_AGENT_JSON_SCHEMA_H_
#define FLOWORK_AGENT_JSON_SCHEMA_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/protobuf/struct.pb.h"

namespace flowork::agent {

// A compiled JSON Schema that checks JSON values (tool arguments, structured
// model output). A small value type: copies share the compiled schema;
// thread-safe.
//
// The subset that matters for tool arguments and structured output:
//   type (a name or a list of names: object, array, string, number, integer,
//     boolean, null; "integer" is a number with no fractional part),
//   properties, required, additionalProperties (false or a schema),
//   items (one schema for every element), minItems, maxItems,
//   enum, const, minimum, maximum, exclusiveMinimum, exclusiveMaximum
//   (numbers, as in draft 6 and later), minLength, maxLength (in Unicode
//   code points), anyOf.
// Annotations (title, description, default, examples, $schema, ...) are
// ignored, as are keywords outside the subset (pattern, format, $ref, oneOf,
// allOf, ...): they never reject a value. A schema of `true` or `{}` accepts
// everything, `false` nothing.
class JsonSchema {
 public:
  // Accepts everything.
  JsonSchema();

  // Compiles a schema given as JSON text. kInvalidArgument names what is
  // wrong with it: `schema.properties.city.type: unknown type "strng"`.
  static absl::StatusOr<JsonSchema> Parse(std::string_view json);
  // The same for a schema already parsed (a google.protobuf.Value holding an
  // object or a bool).
  static absl::StatusOr<JsonSchema> Compile(const google::protobuf::Value& schema);
  static absl::StatusOr<JsonSchema> Compile(const google::protobuf::Struct& schema);

  // OK, or kInvalidArgument listing every violation (up to 20) by path from
  // `root`, separated by "; ":
  // `arguments.city: expected string, got number; arguments.days: missing
  // required property`. An unset Value counts as null.
  absl::Status Validate(const google::protobuf::Value& value,
                        std::string_view root = "value") const;

  // The schema as given (for passing it on, e.g. to a model).
  const google::protobuf::Value& schema() const;

  struct Node;  // Compiled form; defined in the implementation.

 private:
  explicit JsonSchema(std::shared_ptr<const Node> root);
  std::shared_ptr<const Node> root_;
};

// Parses JSON text into a google.protobuf.Value. kInvalidArgument when it is
// not valid JSON.
absl::StatusOr<google::protobuf::Value> ParseJsonValue(std::string_view json);

// Serializes a google.protobuf.Value as compact JSON text. A number with no
// fractional part prints without one ("3", not "3.0").
std::string JsonValueToString(const google::protobuf::Value& value);

}  // namespace flowork::agent

#endif  // FLOWORK_AGENT_JSON_SCHEMA_H_
