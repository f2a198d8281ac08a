#include "answer.h"

#include <cmath>
#include <cstdint>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "boost/json.hpp"
#include "flowork/core/internal/strings.h"

namespace flowork::mockllm {

using core::internal::ToAbsl;

namespace {

constexpr size_t kSubjectBytes = 40;

bool IsContinuationByte(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

// The first `limit` bytes of `text`, shortened so no UTF-8 character is cut.
std::string_view Utf8Prefix(std::string_view text, size_t limit) {
  if (text.size() <= limit) return text;
  size_t end = limit;
  while (end > 0 && IsContinuationByte(text[end])) --end;
  return text.substr(0, end);
}

std::vector<std::string> Words(std::string_view text) {
  return absl::StrSplit(ToAbsl(text), absl::ByAnyChar(" \t\r\n\f\v"), absl::SkipEmpty());
}

bool IsToolNameChar(char c) { return absl::ascii_isalnum(c) || c == '_' || c == '-' || c == '.'; }

// The calls `text` asks for: one per "call:<name>" marker, in order, each
// with the text up to the next marker (trimmed) as its query. A "call:" not
// followed by a name is no marker.
std::vector<ToolCall> RequestedToolCalls(std::string_view text) {
  constexpr std::string_view kMarker = "call:";
  struct Marker {
    size_t begin;       // Of "call:".
    size_t name_begin;  // Of <name>.
    size_t name_end;    // Where the query starts.
  };
  std::vector<Marker> markers;
  size_t at = text.find(kMarker);
  while (at != std::string_view::npos) {
    const size_t name_begin = at + kMarker.size();
    size_t name_end = name_begin;
    while (name_end < text.size() && IsToolNameChar(text[name_end])) ++name_end;
    if (name_end > name_begin) markers.push_back({at, name_begin, name_end});
    at = text.find(kMarker, name_end);
  }
  std::vector<ToolCall> calls;
  for (size_t i = 0; i < markers.size(); ++i) {
    const Marker& marker = markers[i];
    const size_t query_end = i + 1 < markers.size() ? markers[i + 1].begin : text.size();
    ToolCall call;
    call.name = std::string(text.substr(marker.name_begin, marker.name_end - marker.name_begin));
    call.query = std::string(absl::StripAsciiWhitespace(
        ToAbsl(text.substr(marker.name_end, query_end - marker.name_end))));
    call.arguments_json = boost::json::serialize(boost::json::object{{"query", call.query}});
    calls.push_back(std::move(call));
  }
  return calls;
}

// `tokens` without the text `prefill` covers, or nullopt when their
// concatenation does not start with it. A token the prefill ends inside
// keeps its rest as the first token.
std::optional<std::vector<std::string>> ContinueAfter(const std::vector<std::string>& tokens,
                                                      std::string_view prefill) {
  std::vector<std::string> rest;
  size_t covered = 0;  // Bytes of `prefill` matched so far.
  for (const std::string& token : tokens) {
    if (covered == prefill.size()) {
      rest.push_back(token);
      continue;
    }
    const size_t take = std::min(token.size(), prefill.size() - covered);
    if (std::string_view(token).substr(0, take) != prefill.substr(covered, take)) {
      return std::nullopt;
    }
    covered += take;
    if (take < token.size()) rest.push_back(token.substr(take));
  }
  if (covered != prefill.size()) return std::nullopt;  // The prefill is longer than T.
  return rest;
}

uint64_t Fnv1a(std::string_view bytes) {
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (char c : bytes) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

int CountWords(std::string_view text) { return static_cast<int>(Words(text).size()); }

std::vector<std::string> AnswerTokens(std::string_view subject, int count) {
  const std::vector<std::string> words =
      Words(absl::StrCat("Mock answer to: ", ToAbsl(Utf8Prefix(subject, kSubjectBytes)), "."));
  std::vector<std::string> tokens;
  tokens.reserve(count);
  for (int i = 0; i < count; ++i) {
    tokens.push_back(words[i % words.size()]);
    if (i + 1 < count) tokens.back().push_back(' ');
  }
  return tokens;
}

std::vector<std::string> JoinIntoGroups(const std::vector<std::string>& pieces, int groups) {
  std::vector<std::string> joined;
  if (pieces.empty() || groups <= 0) return joined;
  const size_t count = std::min(pieces.size(), static_cast<size_t>(groups));
  const size_t base = pieces.size() / count;
  const size_t extra = pieces.size() % count;
  size_t next = 0;
  for (size_t g = 0; g < count; ++g) {
    const size_t size = base + (g < extra ? 1 : 0);
    std::string group;
    for (size_t i = 0; i < size; ++i) group += pieces[next++];
    joined.push_back(std::move(group));
  }
  return joined;
}

std::vector<std::string> SplitBytes(std::string_view text, int parts) {
  std::vector<std::string> pieces;
  if (text.empty() || parts <= 0) return pieces;
  const size_t count = std::min(text.size(), static_cast<size_t>(parts));
  size_t begin = 0;
  for (size_t p = 1; p <= count && begin < text.size(); ++p) {
    size_t end = p == count ? text.size() : text.size() * p / count;
    while (end < text.size() && IsContinuationByte(text[end])) ++end;
    if (end <= begin) continue;
    pieces.emplace_back(text.substr(begin, end - begin));
    begin = end;
  }
  return pieces;
}

absl::StatusOr<Answer> MakeAnswer(const Conversation& conversation, const MockKnobs& knobs) {
  Answer answer;
  for (const Turn& turn : conversation.turns) answer.prompt_tokens += CountWords(turn.text);

  std::optional<std::string_view> prefill;
  size_t end = conversation.turns.size();
  if (end > 0 && conversation.turns[end - 1].role == Turn::Role::kAssistant) {
    if (knobs.refuse_prefill) return absl::InvalidArgumentError("prefill not supported");
    prefill = conversation.turns[end - 1].text;
    --end;
  }
  // The subject: the last user message or tool result.
  std::optional<size_t> subject;
  for (size_t i = end; i > 0; --i) {
    const Turn::Role role = conversation.turns[i - 1].role;
    if (role == Turn::Role::kUser || role == Turn::Role::kTool) {
      subject = i - 1;
      break;
    }
  }
  const std::string_view subject_text = subject.has_value()
                                            ? std::string_view(conversation.turns[*subject].text)
                                            : std::string_view();

  if (conversation.has_tools && subject.has_value()) {
    // Markers of a user message, or of every tool result in the run that
    // ends with the subject (parallel calls answered together).
    size_t first = *subject;
    if (conversation.turns[*subject].role == Turn::Role::kTool) {
      while (first > 0 && conversation.turns[first - 1].role == Turn::Role::kTool) --first;
    }
    std::vector<ToolCall> calls;
    for (size_t i = first; i <= *subject; ++i) {
      for (ToolCall& call : RequestedToolCalls(conversation.turns[i].text)) {
        calls.push_back(std::move(call));
      }
    }
    if (!calls.empty()) {
      for (ToolCall& call : calls) {
        call.argument_deltas = SplitBytes(call.arguments_json, knobs.chunks);
        answer.deltas.insert(answer.deltas.end(), call.argument_deltas.begin(),
                             call.argument_deltas.end());
        answer.completion_tokens += CountWords(call.arguments_json);
      }
      answer.finish = Answer::Finish::kToolCalls;
      answer.tool_calls = std::move(calls);
      return answer;
    }
  }

  std::vector<std::string> tokens = AnswerTokens(subject_text, knobs.tokens);
  if (prefill.has_value()) {
    if (std::optional<std::vector<std::string>> rest = ContinueAfter(tokens, *prefill)) {
      tokens = *std::move(rest);
    }
  }
  if (conversation.max_tokens.has_value() &&
      tokens.size() > static_cast<size_t>(*conversation.max_tokens)) {
    tokens.resize(*conversation.max_tokens);
    answer.finish = Answer::Finish::kLength;
  }
  for (const std::string& token : tokens) answer.text += token;
  answer.deltas = JoinIntoGroups(tokens, knobs.chunks);
  answer.completion_tokens = static_cast<int>(tokens.size());
  return answer;
}

std::vector<double> EmbeddingOf(std::string_view input, int dimensions) {
  const uint64_t seed = Fnv1a(input);
  std::vector<double> vector(dimensions);
  double norm = 0;
  for (int i = 0; i < dimensions; ++i) {
    const uint64_t bits = SplitMix64(seed + static_cast<uint64_t>(i));
    vector[i] = static_cast<double>(bits >> 11) * 0x1.0p-53 * 2.0 - 1.0;
    norm += vector[i] * vector[i];
  }
  norm = std::sqrt(norm);
  for (double& v : vector) {
    if (norm > 0) v /= norm;
    v = std::round(v * 1e6) / 1e6;  // Short, stable JSON numbers.
  }
  return vector;
}

}  // namespace flowork::mockllm
