#include "flowork/agent/json_schema.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace flowork::agent {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

google::protobuf::Value Json(const std::string& text) {
  absl::StatusOr<google::protobuf::Value> value = ParseJsonValue(text);
  EXPECT_TRUE(value.ok()) << value.status();
  return value.ok() ? *value : google::protobuf::Value();
}

// The validation error of `value` against `schema`, "" when valid.
std::string Error(const std::string& schema, const std::string& value) {
  absl::StatusOr<JsonSchema> compiled = JsonSchema::Parse(schema);
  if (!compiled.ok()) return "bad schema: " + compiled.status().ToString();
  absl::Status status = compiled->Validate(Json(value), "arguments");
  if (!status.ok()) {
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  }
  return std::string(status.message());
}

constexpr char kWeather[] = R"({
  "type": "object",
  "properties": {
    "city": {"type": "string", "minLength": 2, "maxLength": 10},
    "days": {"type": "integer", "minimum": 1, "maximum": 7},
    "unit": {"enum": ["c", "f"]},
    "where": {
      "type": "object",
      "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}},
      "required": ["lat", "lon"],
      "additionalProperties": false
    },
    "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2}
  },
  "required": ["city"],
  "additionalProperties": false
})";

TEST(JsonSchemaTest, AcceptsAValidValue) {
  EXPECT_EQ(Error(kWeather, R"({"city": "Paris", "days": 3, "unit": "c",
                               "where": {"lat": 48.8, "lon": 2.3}, "tags": ["a", "b"]})"),
            "");
}

TEST(JsonSchemaTest, TypeMismatchNamesThePath) {
  EXPECT_EQ(Error(kWeather, R"({"city": 12})"), "arguments.city: expected string, got integer");
  EXPECT_EQ(Error(kWeather, R"("Paris")"), "arguments: expected object, got string");
  EXPECT_EQ(Error(R"({"type": ["string", "null"]})", "true"),
            "arguments: expected string or null, got boolean");
  EXPECT_EQ(Error(R"({"type": ["string", "null"]})", "null"), "");
}

TEST(JsonSchemaTest, IntegerIsANumberWithoutFraction) {
  EXPECT_EQ(Error(kWeather, R"({"city": "Rome", "days": 2.5})"),
            "arguments.days: expected integer, got number");
  EXPECT_EQ(Error(kWeather, R"({"city": "Rome", "days": 2.0})"), "");
  EXPECT_EQ(Error(R"({"type": "number"})", "3"), "");
  EXPECT_EQ(Error(R"({"type": "number"})", R"("3")"), "arguments: expected number, got string");
}

TEST(JsonSchemaTest, RequiredPropertyMissing) {
  EXPECT_EQ(Error(kWeather, R"({"days": 2})"), "arguments.city: missing required property");
}

TEST(JsonSchemaTest, AdditionalPropertiesFalseRejectsUnknownNames) {
  EXPECT_THAT(Error(kWeather, R"({"city": "Oslo", "country": "NO"})"),
              AllOf(HasSubstr("arguments.country: unknown property"), HasSubstr("city, days")));
  // additionalProperties as a schema checks the extra values.
  EXPECT_EQ(Error(R"({"type": "object", "additionalProperties": {"type": "integer"}})",
                  R"({"a": 1, "b": "x"})"),
            "arguments.b: expected integer, got string");
}

TEST(JsonSchemaTest, Enum) {
  EXPECT_EQ(Error(kWeather, R"({"city": "Oslo", "unit": "k"})"),
            R"(arguments.unit: must be one of ["c", "f"], got "k")");
  EXPECT_EQ(Error(R"({"enum": [1, "x", null, {"a": [1]}]})", R"({"a": [1]})"), "");
  EXPECT_EQ(Error(R"({"const": 3})", "4"), "arguments: must be 3");
}

TEST(JsonSchemaTest, MinimumAndMaximum) {
  EXPECT_EQ(Error(kWeather, R"({"city": "Oslo", "days": 0})"),
            "arguments.days: must be >= 1, got 0");
  EXPECT_EQ(Error(kWeather, R"({"city": "Oslo", "days": 8})"),
            "arguments.days: must be <= 7, got 8");
  EXPECT_EQ(Error(R"({"exclusiveMinimum": 0, "exclusiveMaximum": 1})", "0"),
            "arguments: must be > 0, got 0");
  EXPECT_EQ(Error(R"({"exclusiveMinimum": 0, "exclusiveMaximum": 1})", "1"),
            "arguments: must be < 1, got 1");
  // Draft 4's boolean form.
  EXPECT_EQ(Error(R"({"minimum": 0, "exclusiveMinimum": true})", "0"),
            "arguments: must be > 0, got 0");
}

TEST(JsonSchemaTest, MinLengthAndMaxLengthCountCharacters) {
  EXPECT_EQ(Error(kWeather, R"({"city": "X"})"),
            "arguments.city: must have at least 2 characters, got 1");
  EXPECT_EQ(Error(kWeather, R"({"city": "Llanfairpwll"})"),
            "arguments.city: must have at most 10 characters, got 12");
  // Five code points, ten bytes.
  EXPECT_EQ(Error(R"({"maxLength": 5})", R"("ÀÉÎÕÜ")"), "");
}

TEST(JsonSchemaTest, ItemsAndItemCountsInNestedArrays) {
  EXPECT_EQ(Error(kWeather, R"({"city": "Oslo", "tags": ["a", 2]})"),
            "arguments.tags[1]: expected string, got integer");
  EXPECT_EQ(Error(kWeather, R"({"city": "Oslo", "tags": ["a", "b", "c"]})"),
            "arguments.tags: must have at most 2 items, got 3");
  EXPECT_EQ(Error(R"({"type": "array", "minItems": 1,
                      "items": {"type": "array", "items": {"type": "object",
                                "properties": {"n": {"type": "integer"}}}}})",
                  R"([[{"n": 1}], [{"n": 1}, {"n": "two"}]])"),
            "arguments[1][1].n: expected integer, got string");
  EXPECT_EQ(Error(R"({"minItems": 1})", "[]"), "arguments: must have at least 1 items, got 0");
}

TEST(JsonSchemaTest, NestedObjectsNameTheFullPath) {
  EXPECT_EQ(Error(kWeather, R"({"city": "Oslo", "where": {"lat": "north"}})"),
            "arguments.where.lon: missing required property; "
            "arguments.where.lat: expected number, got string");
}

TEST(JsonSchemaTest, ReportsEveryViolation) {
  const std::string error = Error(kWeather, R"({"days": 9, "unit": "k"})");
  EXPECT_THAT(error, HasSubstr("arguments.city: missing required property"));
  EXPECT_THAT(error, HasSubstr("arguments.days: must be <= 7"));
  EXPECT_THAT(error, HasSubstr("arguments.unit: must be one of"));
}

TEST(JsonSchemaTest, OddPropertyNamesAreQuoted) {
  EXPECT_EQ(Error(R"({"properties": {"a b": {"type": "string"}}})", R"({"a b": 1})"),
            R"(arguments["a b"]: expected string, got integer)");
}

TEST(JsonSchemaTest, AnyOf) {
  const std::string schema =
      R"({"anyOf": [{"type": "string"}, {"type": "integer", "minimum": 0}]})";
  EXPECT_EQ(Error(schema, R"("x")"), "");
  EXPECT_EQ(Error(schema, "4"), "");
  EXPECT_THAT(Error(schema, "-1"), HasSubstr("arguments: matches none of the anyOf schemas"));
}

TEST(JsonSchemaTest, BooleanAndEmptySchemas) {
  EXPECT_EQ(Error("true", R"({"anything": [1]})"), "");
  EXPECT_EQ(Error("{}", "null"), "");
  EXPECT_EQ(Error("false", "1"), "arguments: no value is allowed here");
  EXPECT_EQ(Error(R"({"properties": {"x": false}})", R"({"x": 1})"),
            "arguments.x: no value is allowed here");
  EXPECT_TRUE(JsonSchema().Validate(Json("[1, 2]")).ok());
}

TEST(JsonSchemaTest, BadSchemasAreRejectedWithThePath) {
  auto error = [](const std::string& schema) {
    absl::StatusOr<JsonSchema> compiled = JsonSchema::Parse(schema);
    EXPECT_FALSE(compiled.ok());
    return std::string(compiled.status().message());
  };
  EXPECT_EQ(error(R"({"properties": {"city": {"type": "strng"}}})"),
            R"(schema.properties.city.type: unknown type "strng")");
  EXPECT_EQ(error(R"({"required": "city"})"), "schema.required: expected an array of names");
  EXPECT_EQ(error(R"({"minLength": -1})"), "schema.minLength: expected a non-negative integer");
  EXPECT_EQ(error(R"({"items": [{"type": "string"}]})"),
            "schema.items: a list of schemas (tuple validation) is not supported");
  EXPECT_EQ(error("42"), "schema: a schema must be an object or a boolean");
  EXPECT_THAT(error("{not json"), HasSubstr("not valid JSON"));
}

TEST(JsonSchemaTest, SchemaFromAStructAndAnnotationsAreIgnored) {
  google::protobuf::Value schema =
      Json(R"({"type": "object", "title": "t", "description": "d", "format": "date",
               "properties": {"n": {"type": "integer", "default": 1}}})");
  absl::StatusOr<JsonSchema> compiled = JsonSchema::Compile(schema.struct_value());
  ASSERT_TRUE(compiled.ok()) << compiled.status();
  EXPECT_TRUE(compiled->Validate(Json(R"({"n": 2})")).ok());
  EXPECT_EQ(compiled->Validate(Json(R"({"n": "2"})")).message(),
            "value.n: expected integer, got string");
  EXPECT_TRUE(compiled->schema().has_struct_value());
}

}  // namespace
}  // namespace flowork::agent
