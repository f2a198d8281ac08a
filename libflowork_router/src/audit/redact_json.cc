// RedactJson: secrets out of captured bodies before they reach the audit log.
#include "boost/json.hpp"

#include "absl/strings/match.h"
#include "flowork/router/audit_log.h"

namespace flowork::router {
namespace {

constexpr char kRedacted[] = "[REDACTED]";

bool Listed(boost::json::string_view name, const std::vector<std::string>& fields) {
  for (const std::string& field : fields) {
    if (absl::EqualsIgnoreCase(absl::string_view(name.data(), name.size()), field)) return true;
  }
  return false;
}

void Redact(boost::json::value& value, const std::vector<std::string>& fields) {
  if (boost::json::object* object = value.if_object()) {
    for (auto& member : *object) {
      if (Listed(member.key(), fields)) {
        member.value() = kRedacted;
      } else {
        Redact(member.value(), fields);
      }
    }
  } else if (boost::json::array* array = value.if_array()) {
    for (boost::json::value& element : *array) Redact(element, fields);
  }
}

}  // namespace

std::string RedactJson(std::string_view json, const std::vector<std::string>& fields) {
  boost::system::error_code error;
  boost::json::value value =
      boost::json::parse(boost::json::string_view(json.data(), json.size()), error);
  if (error) return kRedacted;
  Redact(value, fields);
  return boost::json::serialize(value);
}

}  // namespace flowork::router
