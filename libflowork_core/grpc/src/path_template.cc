#include "path_template.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace flowork::core {
namespace {

bool IsIdentChar(char c) { return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_'; }

bool IsValidFieldPath(absl::string_view path) {
  if (path.empty()) return false;
  for (absl::string_view part : absl::StrSplit(path, '.')) {
    if (part.empty()) return false;
    for (char c : part) {
      if (!IsIdentChar(c)) return false;
    }
  }
  return true;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decodes; `keep_slash` leaves %2F encoded (multi-segment values).
std::string PercentDecode(absl::string_view in, bool keep_slash) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%' && i + 2 < in.size()) {
      int hi = HexValue(in[i + 1]);
      int lo = HexValue(in[i + 2]);
      if (hi >= 0 && lo >= 0) {
        char decoded = static_cast<char>(hi * 16 + lo);
        if (!(keep_slash && decoded == '/')) {
          out.push_back(decoded);
          i += 2;
          continue;
        }
      }
    }
    out.push_back(in[i]);
  }
  return out;
}

}  // namespace

absl::StatusOr<PathTemplate> PathTemplate::Parse(absl::string_view text) {
  PathTemplate result;
  result.text_ = std::string(text);
  auto error = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("path template \"", text, "\": ", why));
  };
  if (text.empty() || text[0] != '/') return error("must start with '/'");
  absl::string_view rest = text.substr(1);

  // The verb is a ':' after the last '/' that is outside braces.
  int depth = 0;
  size_t verb_at = absl::string_view::npos;
  for (size_t i = 0; i < rest.size(); ++i) {
    if (rest[i] == '{') ++depth;
    if (rest[i] == '}') --depth;
    if (rest[i] == '/' && depth == 0) verb_at = absl::string_view::npos;
    if (rest[i] == ':' && depth == 0) verb_at = i;
  }
  if (verb_at != absl::string_view::npos) {
    result.verb_ = std::string(rest.substr(verb_at + 1));
    if (result.verb_.empty()) return error("empty verb after ':'");
    rest = rest.substr(0, verb_at);
  }

  std::optional<Variable> open_variable;
  size_t i = 0;
  while (i <= rest.size()) {
    size_t end = i;
    if (i < rest.size() && rest[i] == '{') {
      if (open_variable) return error("nested variables are not allowed");
      size_t close = rest.find('}', i);
      if (close == absl::string_view::npos) return error("unclosed '{'");
      absl::string_view inside = rest.substr(i + 1, close - i - 1);
      size_t eq = inside.find('=');
      absl::string_view field = inside.substr(0, eq);
      if (!IsValidFieldPath(field)) return error(absl::StrCat("bad field path \"", field, "\""));
      Variable variable{std::string(field), result.segments_.size(), 0};
      absl::string_view pattern = eq == absl::string_view::npos ? "*" : inside.substr(eq + 1);
      if (pattern.empty()) return error(absl::StrCat("empty pattern for {", field, "}"));
      for (absl::string_view seg : absl::StrSplit(pattern, '/')) {
        if (seg.empty()) return error("empty segment");
        if (seg == "*") {
          result.segments_.push_back({Segment::kStar, ""});
        } else if (seg == "**") {
          result.segments_.push_back({Segment::kDoubleStar, ""});
        } else {
          result.segments_.push_back({Segment::kLiteral, std::string(seg)});
        }
      }
      variable.end = result.segments_.size();
      for (const Variable& v : result.variables_) {
        if (v.field_path == variable.field_path) {
          return error(absl::StrCat("variable {", field, "} appears twice"));
        }
      }
      result.variables_.push_back(std::move(variable));
      end = close + 1;
      if (end < rest.size() && rest[end] != '/') return error("a variable must end a segment");
    } else {
      end = rest.find('/', i);
      if (end == absl::string_view::npos) end = rest.size();
      absl::string_view seg = rest.substr(i, end - i);
      if (seg.empty()) return error("empty segment");
      if (seg.find_first_of("{}") != absl::string_view::npos) return error("misplaced brace");
      if (seg == "*") {
        result.segments_.push_back({Segment::kStar, ""});
      } else if (seg == "**") {
        result.segments_.push_back({Segment::kDoubleStar, ""});
      } else {
        result.segments_.push_back({Segment::kLiteral, std::string(seg)});
      }
    }
    i = end + 1;
  }
  for (size_t s = 0; s + 1 < result.segments_.size(); ++s) {
    if (result.segments_[s].kind == Segment::kDoubleStar) {
      return error("'**' must be the last segment");
    }
  }
  return result;
}

bool PathTemplate::MoreSpecificThan(const PathTemplate& other) const {
  if (verb_.empty() != other.verb_.empty()) return !verb_.empty();
  auto literals = [](const PathTemplate& t) {
    return std::count_if(t.segments_.begin(), t.segments_.end(),
                         [](const Segment& s) { return s.kind == Segment::kLiteral; });
  };
  return literals(*this) > literals(other);
}

std::optional<PathTemplate::Bindings> PathTemplate::Match(absl::string_view path) const {
  if (path.empty() || path[0] != '/') return std::nullopt;
  path.remove_prefix(1);
  if (!verb_.empty()) {
    const std::string suffix = absl::StrCat(":", verb_);
    if (path.size() <= suffix.size() || path.substr(path.size() - suffix.size()) != suffix) {
      return std::nullopt;
    }
    path.remove_suffix(suffix.size());
  }
  std::vector<absl::string_view> parts = absl::StrSplit(path, '/');
  // Where each template segment's match starts in `parts`.
  std::vector<size_t> starts(segments_.size() + 1, 0);
  size_t p = 0;
  for (size_t s = 0; s < segments_.size(); ++s) {
    starts[s] = p;
    const Segment& seg = segments_[s];
    if (seg.kind == Segment::kDoubleStar) {
      p = parts.size();
      continue;
    }
    if (p >= parts.size() || parts[p].empty()) return std::nullopt;
    if (seg.kind == Segment::kLiteral && parts[p] != seg.literal) return std::nullopt;
    ++p;
  }
  starts[segments_.size()] = p;
  if (p != parts.size()) return std::nullopt;

  Bindings bindings;
  for (const Variable& v : variables_) {
    const size_t first = starts[v.begin];
    const size_t last = starts[v.end];
    std::vector<absl::string_view> covered(parts.begin() + first, parts.begin() + last);
    const bool single = v.end - v.begin == 1 && segments_[v.begin].kind != Segment::kDoubleStar;
    bindings.emplace_back(v.field_path, PercentDecode(absl::StrJoin(covered, "/"), !single));
  }
  return bindings;
}

}  // namespace flowork::core
