// Private: google.api.http path templates.
#ifndef FLOWORK_CORE_GRPC_SRC_PATH_TEMPLATE_H_
#define FLOWORK_CORE_GRPC_SRC_PATH_TEMPLATE_H_

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace flowork::core {

// A parsed google.api.http path template:
//   Template = "/" Segments [ Verb ] ;
//   Segments = Segment { "/" Segment } ;
//   Segment  = "*" | "**" | LITERAL | Variable ;
//   Variable = "{" FieldPath [ "=" Segments ] "}" ;
//   Verb     = ":" LITERAL ;
// `**` matches zero or more segments and must be the last segment. An
// immutable value; thread-safe.
class PathTemplate {
 public:
  // A bound variable: the field path ("book.name") and its value.
  using Bindings = std::vector<std::pair<std::string, std::string>>;

  // kInvalidArgument naming the problem and its position.
  static absl::StatusOr<PathTemplate> Parse(absl::string_view text);

  // Matches a request path (no query). Returns the variables, percent-decoded
  // (multi-segment values keep their '/' and do not decode %2F), or nullopt.
  std::optional<Bindings> Match(absl::string_view path) const;

  const std::string& text() const { return text_; }

  // Ranks templates for matching: one with a verb, then one with more literal
  // segments, is the more specific ("/v1/x/{id}:cancel" before "/v1/x/{id}").
  bool MoreSpecificThan(const PathTemplate& other) const;

 private:
  struct Segment {
    enum Kind { kLiteral, kStar, kDoubleStar } kind;
    std::string literal;
  };
  struct Variable {
    std::string field_path;
    size_t begin;  // Index of the first segment it covers.
    size_t end;    // One past its last segment.
  };

  std::string text_;
  std::vector<Segment> segments_;
  std::vector<Variable> variables_;
  std::string verb_;
};

}  // namespace flowork::core

#endif  // FLOWORK_CORE_GRPC_SRC_PATH_TEMPLATE_H_
