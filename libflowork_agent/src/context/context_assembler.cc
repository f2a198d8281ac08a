#include "flowork/agent/context_assembler.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "flowork/agent/token_counter.h"
#include "flowork/agent/v1/context.pb.h"
#include "flowork/agent/v1/effect.pb.h"
#include "flowork/core/internal/strings.h"
#include "google/protobuf/struct.pb.h"

namespace flowork::agent {
namespace {

using core::internal::ToAbsl;

// Sections of the system message are joined with this, and text is stripped
// of surrounding whitespace first, so the counter's subadditivity over
// whitespace makes the sum of the parts' counts an upper bound of the whole.
constexpr std::string_view kSeparator = "\n\n";
constexpr std::string_view kSummaryHeading = "## Summary of the earlier conversation\n";
constexpr std::string_view kRetrievedHeading = "## Relevant memories";

std::string_view Strip(std::string_view s) {
  const auto space = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
  };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

bool HasToolCalls(const v1::ChatMessage& m) {
  return m.role() == "assistant" && m.tool_calls_size() > 0;
}

// Messages that are sent together or not at all: an assistant message with
// tool calls and the tool messages right after it; any other message alone.
// A tool message with no such assistant message before it is an orphan.
struct Unit {
  uint64_t first = 0;
  uint64_t end = 0;  // One past the last message.
  bool pinned = false;
  bool orphan = false;
  bool summarized = false;  // Starts at or before the summary boundary.
  bool has_tool_results = false;
  int64_t full_tokens = 0;
  int64_t elided_tokens = 0;  // With its tool results replaced by stubs.
};

std::vector<Unit> SplitIntoUnits(const v1::Session& session) {
  const uint64_t n = static_cast<uint64_t>(session.messages_size());
  const bool has_summary = !session.summary().empty();
  std::vector<Unit> units;
  uint64_t i = 0;
  while (i < n) {
    Unit unit;
    unit.first = i;
    const v1::ChatMessage& m = session.messages(static_cast<int>(i));
    uint64_t j = i + 1;
    if (m.role() == "tool") {
      unit.orphan = true;
    } else if (HasToolCalls(m)) {
      while (j < n && session.messages(static_cast<int>(j)).role() == "tool") ++j;
      unit.has_tool_results = j > i + 1;
    }
    unit.end = j;
    for (uint64_t k = i; k < j; ++k) unit.pinned |= session.messages(static_cast<int>(k)).pinned();
    unit.summarized = has_summary && unit.first <= session.summarized_through();
    units.push_back(unit);
    i = j;
  }
  return units;
}

std::string ElisionStub(int64_t tokens) {
  return absl::StrCat("[tool result elided: ", tokens, " tokens]");
}

v1::ChatMessage Elided(const v1::ChatMessage& tool_result, const TokenCounter& counter) {
  v1::ChatMessage stub;
  stub.set_role(tool_result.role());
  stub.set_tool_call_id(tool_result.tool_call_id());
  stub.set_name(tool_result.name());
  stub.set_content(ElisionStub(counter.CountText(tool_result.content())));
  return stub;
}

void CostUnit(const v1::Session& session, const TokenCounter& counter, Unit& unit) {
  for (uint64_t k = unit.first; k < unit.end; ++k) {
    const v1::ChatMessage& m = session.messages(static_cast<int>(k));
    const int64_t full = counter.CountMessage(m);
    unit.full_tokens += full;
    unit.elided_tokens += k > unit.first ? counter.CountMessage(Elided(m, counter)) : full;
  }
  // A stub is never worth more than what it replaces.
  unit.elided_tokens = std::min(unit.elided_tokens, unit.full_tokens);
}

// `text` cut to at most `max_tokens` (as counted alone), ending with
// "<marker_prefix>N tokens omitted]". Cuts at a code point, or returns the
// marker alone when nothing of the text fits beside it.
std::string CutText(std::string_view text, int64_t max_tokens, std::string_view marker_prefix,
                    const TokenCounter& counter) {
  const int64_t total = counter.CountText(text);
  const auto marker = [&](int64_t omitted) {
    return absl::StrCat(ToAbsl(marker_prefix), omitted, " tokens omitted]");
  };
  // The marker never says more than `total`, so this bounds its cost.
  const int64_t room =
      max_tokens - counter.CountText(kSeparator) - counter.CountText(marker(total));
  // The prefix ends at a code point boundary at or before `p`.
  const auto boundary = [&](size_t p) {
    while (p > 0 && p < text.size() && (static_cast<unsigned char>(text[p]) & 0xC0) == 0x80) --p;
    return p;
  };
  // The longest prefix that fits; counts grow with the prefix, nearly always.
  size_t lo = 0;
  size_t hi = room > 0 ? text.size() : 0;
  while (lo < hi) {
    const size_t mid = lo + (hi - lo + 1) / 2;
    if (counter.CountText(Strip(text.substr(0, boundary(mid)))) <= room) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  lo = boundary(lo);
  const std::string_view prefix = room > 0 ? Strip(text.substr(0, lo)) : std::string_view();
  if (prefix.empty()) {
    // Nothing fits beside the marker; the marker alone, unless it is longer.
    std::string alone = marker(total);
    return counter.CountText(alone) < total ? alone : std::string(text);
  }
  return absl::StrCat(ToAbsl(prefix), ToAbsl(kSeparator),
                      marker(std::max<int64_t>(0, total - counter.CountText(prefix))));
}

// JSON with a fixed key order (struct keys sorted), so equal messages give
// equal request bytes: journaled requests replay identically and providers'
// prompt caches see the same prefix.
void AppendJsonString(std::string_view s, std::string& out) {
  out.push_back('"');
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out.append("\\\"");
        break;
      case '\\':
        out.append("\\\\");
        break;
      case '\n':
        out.append("\\n");
        break;
      case '\r':
        out.append("\\r");
        break;
      case '\t':
        out.append("\\t");
        break;
      default:
        if (c < 0x20) {
          constexpr char kHex[] = "0123456789abcdef";
          out.append("\\u00");
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 0xF]);
        } else {
          out.push_back(ch);
        }
    }
  }
  out.push_back('"');
}

void AppendJsonValue(const google::protobuf::Value& value, std::string& out) {
  switch (value.kind_case()) {
    case google::protobuf::Value::kStringValue:
      AppendJsonString(value.string_value(), out);
      return;
    case google::protobuf::Value::kNumberValue: {
      const double d = value.number_value();
      if (!std::isfinite(d)) {
        out.append("null");
        return;
      }
      char buffer[32];
      const auto result = std::to_chars(buffer, buffer + sizeof(buffer), d);
      out.append(buffer, result.ptr);
      return;
    }
    case google::protobuf::Value::kBoolValue:
      out.append(value.bool_value() ? "true" : "false");
      return;
    case google::protobuf::Value::kStructValue: {
      std::vector<std::pair<std::string_view, const google::protobuf::Value*>> fields;
      for (const auto& [key, field] : value.struct_value().fields())
        fields.emplace_back(key, &field);
      std::sort(fields.begin(), fields.end());
      out.push_back('{');
      for (size_t i = 0; i < fields.size(); ++i) {
        if (i > 0) out.push_back(',');
        AppendJsonString(fields[i].first, out);
        out.push_back(':');
        AppendJsonValue(*fields[i].second, out);
      }
      out.push_back('}');
      return;
    }
    case google::protobuf::Value::kListValue: {
      out.push_back('[');
      bool first = true;
      for (const google::protobuf::Value& item : value.list_value().values()) {
        if (!first) out.push_back(',');
        first = false;
        AppendJsonValue(item, out);
      }
      out.push_back(']');
      return;
    }
    case google::protobuf::Value::kNullValue:
    case google::protobuf::Value::KIND_NOT_SET:
      out.append("null");
      return;
  }
}

// Tool call arguments as OpenAI sends them: a JSON object text.
std::string ArgumentsJson(const v1::ToolCall& call) {
  if (call.arguments().kind_case() == google::protobuf::Value::KIND_NOT_SET) return "{}";
  std::string json;
  AppendJsonValue(call.arguments(), json);
  return json;
}

std::string MarkerText(int64_t dropped) {
  return absl::StrCat("[earlier conversation truncated: ", dropped, " messages]");
}

v1::ChatMessage SystemMessage(std::string content) {
  v1::ChatMessage m;
  m.set_role("system");
  m.set_content(std::move(content));
  return m;
}

std::string MessageRange(uint64_t first, uint64_t last) {
  if (first == last) return absl::StrCat("messages[", first, "]");
  return absl::StrCat("messages[", first, "..", last, "]");
}

constexpr std::string_view kNoRoom = "no room in the context window";

// Builds the one system message section by section, and what it costs.
class SystemMessageBuilder {
 public:
  explicit SystemMessageBuilder(const TokenCounter& counter)
      : counter_(counter),
        base_tokens_(counter.CountMessage(SystemMessage(""))),
        separator_tokens_(counter.CountText(kSeparator)) {}

  // What adding `section` (stripped, non-empty) would cost.
  int64_t CostOf(std::string_view section) const {
    return Overhead() + counter_.CountText(section);
  }
  // The tokens a section pays beyond its text: the message's overhead for the
  // first, a separator for the others.
  int64_t Overhead() const { return sections_.empty() ? base_tokens_ : separator_tokens_; }

  void Add(std::string section, int64_t cost) {
    sections_.push_back(std::move(section));
    tokens_ += cost;
  }

  int64_t tokens() const { return tokens_; }
  bool empty() const { return sections_.empty(); }
  std::string Content() const {
    std::string content;
    for (const std::string& section : sections_) {
      if (!content.empty()) content.append(kSeparator);
      content.append(section);
    }
    return content;
  }

 private:
  const TokenCounter& counter_;
  const int64_t base_tokens_;
  const int64_t separator_tokens_;
  std::vector<std::string> sections_;
  int64_t tokens_ = 0;
};

enum class UnitFate { kDropped, kFull, kElided, kCut };

// One assembly with `marker_reserve` tokens held back for the truncation
// marker. `units` carry their costs.
AssembledContext Pack(const ContextInputs& in, const TokenCounter& counter,
                      const std::vector<Unit>& units, int64_t marker_reserve) {
  AssembledContext out;
  out.budget_tokens = in.context_window - in.reserved_output_tokens;
  const int64_t budget = out.budget_tokens - counter.RequestOverhead();
  int64_t used = 0;
  const auto room = [&] { return budget - marker_reserve - used; };
  const auto omit = [&](ContextOmission::Kind kind, std::string what, int64_t before, int64_t after,
                        std::string_view reason) {
    out.omissions.push_back({.kind = kind,
                             .what = std::move(what),
                             .tokens_before = before,
                             .tokens_after = after,
                             .reason = std::string(reason)});
  };
  SystemMessageBuilder system(counter);

  // 1. The system prompt, cut if it alone does not fit.
  if (const std::string_view prompt = Strip(in.system_prompt); !prompt.empty()) {
    const int64_t cost = system.CostOf(prompt);
    if (cost <= room()) {
      system.Add(std::string(prompt), cost);
    } else {
      std::string cut =
          CutText(prompt, room() - system.Overhead(), "[system prompt truncated: ", counter);
      const int64_t cut_cost = system.CostOf(cut);
      if (cut != prompt) {
        omit(ContextOmission::Kind::kTruncated, "system prompt", cost - system.Overhead(),
             cut_cost - system.Overhead(), kNoRoom);
      }
      system.Add(std::move(cut), cut_cost);
    }
    used = system.tokens();
  }

  // 2. Pinned memory blocks, each within its limit.
  for (const MemoryBlock& block : in.pinned_blocks) {
    std::string_view content = Strip(block.content);
    if (content.empty()) continue;
    const std::string what = absl::StrCat("pinned block \"", ToAbsl(block.label), "\"");
    const int64_t tokens = counter.CountText(content);
    std::string cut;
    if (tokens > in.max_pinned_block_tokens) {
      cut = CutText(content, in.max_pinned_block_tokens, "[memory block truncated: ", counter);
      content = cut;
      omit(ContextOmission::Kind::kTruncated, what, tokens, counter.CountText(content),
           absl::StrCat("over max_pinned_block_tokens (", in.max_pinned_block_tokens, ")"));
    }
    std::string section = block.label.empty() ? std::string(content)
                                              : absl::StrCat("## ", ToAbsl(Strip(block.label)),
                                                             "\n", ToAbsl(content));
    const int64_t cost = system.CostOf(section);
    if (cost <= room()) {
      system.Add(std::move(section), cost);
      used += cost;
    } else {
      omit(ContextOmission::Kind::kDropped, what, counter.CountText(content), 0, kNoRoom);
    }
  }

  const v1::Session* session = in.session;
  std::vector<UnitFate> fate(units.size(), UnitFate::kDropped);
  v1::ChatMessage cut_message;  // The newest turn's message when it had to be cut.

  // 3. The newest turn.
  size_t newest = units.size();
  for (size_t u = units.size(); u-- > 0;) {
    if (!units[u].orphan && !units[u].summarized) {
      newest = u;
      break;
    }
  }
  bool turns_fit = true;
  if (newest < units.size()) {
    const Unit& unit = units[newest];
    if (unit.full_tokens <= room()) {
      fate[newest] = UnitFate::kFull;
      used += unit.full_tokens;
    } else if (unit.has_tool_results && unit.elided_tokens <= room()) {
      fate[newest] = UnitFate::kElided;
      used += unit.elided_tokens;
    } else if (unit.end - unit.first == 1) {
      const v1::ChatMessage& m = session->messages(static_cast<int>(unit.first));
      cut_message = m;
      cut_message.clear_content();
      const int64_t bare = counter.CountMessage(cut_message);
      cut_message.set_content(CutText(m.content(), room() - bare, "[message truncated: ", counter));
      const int64_t cost = counter.CountMessage(cut_message);
      if (!m.content().empty() && cost <= room()) {
        fate[newest] = UnitFate::kCut;
        used += cost;
        omit(ContextOmission::Kind::kTruncated, MessageRange(unit.first, unit.first),
             unit.full_tokens, cost, kNoRoom);
      }
    }
    turns_fit = fate[newest] != UnitFate::kDropped;
  }

  // 4. The summary.
  bool summary_sent = false;
  if (session != nullptr) {
    if (const std::string_view summary = Strip(session->summary()); !summary.empty()) {
      std::string section = absl::StrCat(ToAbsl(kSummaryHeading), ToAbsl(summary));
      const int64_t cost = system.CostOf(section);
      if (cost <= room()) {
        system.Add(std::move(section), cost);
        used += cost;
        summary_sent = true;
      } else {
        omit(ContextOmission::Kind::kDropped, "summary", counter.CountText(summary), 0, kNoRoom);
      }
    }
  }

  // 5. Retrieved memories, best first, within their share.
  if (!in.retrieved.empty()) {
    std::vector<size_t> order(in.retrieved.size());
    std::iota(order.begin(), order.end(), size_t{0});
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      return in.retrieved[a].score > in.retrieved[b].score;
    });
    const int64_t share = in.max_retrieved_tokens > 0 ? in.max_retrieved_tokens
                                                      : std::max<int64_t>(0, out.budget_tokens / 4);
    std::string section(kRetrievedHeading);
    const int64_t heading_cost = system.CostOf(section);
    const int64_t newline_cost = counter.CountText("\n");
    int64_t section_cost = heading_cost;
    bool full = false;
    int kept = 0;
    for (size_t rank = 0; rank < order.size(); ++rank) {
      const RetrievedMemory& memory = in.retrieved[order[rank]];
      const std::string what = absl::StrCat("retrieved memory \"", ToAbsl(memory.id), "\"");
      const std::string_view content = Strip(memory.content);
      if (content.empty()) continue;
      const int64_t tokens = counter.CountText(content);
      if (static_cast<int64_t>(rank) >= in.max_retrieved) {
        omit(ContextOmission::Kind::kDropped, what, tokens, 0,
             absl::StrCat("not in the top ", in.max_retrieved, " by score"));
        continue;
      }
      std::string bullet = absl::StrCat("- ", ToAbsl(content));
      const int64_t cost = newline_cost + counter.CountText(bullet);
      if (!full && section_cost + cost <= share && section_cost + cost <= room()) {
        section.append("\n").append(bullet);
        section_cost += cost;
        ++kept;
      } else {
        // Lower scores never displace a higher one that did not fit.
        full = true;
        omit(ContextOmission::Kind::kDropped, what, tokens, 0,
             section_cost + cost <= room() ? "over max_retrieved_tokens" : kNoRoom);
      }
    }
    if (kept > 0) {
      system.Add(std::move(section), section_cost);
      used += section_cost;
    }
  }

  // 6 and 7. Pinned session messages, then the other turns since the summary.
  if (turns_fit) {
    for (size_t u = units.size(); u-- > 0;) {
      const Unit& unit = units[u];
      if (u == newest || unit.orphan || !unit.pinned) continue;
      if (unit.full_tokens <= room()) {
        fate[u] = UnitFate::kFull;
        used += unit.full_tokens;
      }
    }
    std::vector<size_t> turns;  // Oldest first.
    int64_t total = 0;
    for (size_t u = 0; u < units.size(); ++u) {
      const Unit& unit = units[u];
      if (u == newest || unit.orphan || unit.pinned || unit.summarized) continue;
      turns.push_back(u);
      fate[u] = UnitFate::kFull;
      total += unit.full_tokens;
    }
    const int64_t turn_room = room();
    // Elide tool results, oldest first, just until the turns fit.
    for (size_t t = 0; t < turns.size() && total > turn_room; ++t) {
      const Unit& unit = units[turns[t]];
      if (!unit.has_tool_results) continue;
      fate[turns[t]] = UnitFate::kElided;
      total -= unit.full_tokens - unit.elided_tokens;
    }
    if (total > turn_room) {
      // Everything is elided now; drop the oldest turns until the rest fits,
      // then give the newest of them back their tool results while room lasts.
      size_t first_kept = 0;
      while (first_kept < turns.size() && total > turn_room) {
        total -= units[turns[first_kept]].elided_tokens;
        fate[turns[first_kept]] = UnitFate::kDropped;
        ++first_kept;
      }
      for (size_t t = turns.size(); t-- > first_kept;) {
        const Unit& unit = units[turns[t]];
        if (fate[turns[t]] != UnitFate::kElided) continue;
        const int64_t extra = unit.full_tokens - unit.elided_tokens;
        if (total + extra > turn_room) break;
        fate[turns[t]] = UnitFate::kFull;
        total += extra;
      }
    }
    used += total;
  }

  // What the model gets, and what it does not.
  std::vector<v1::ChatMessage> turn_messages;
  int64_t dropped = 0;
  int64_t dropped_tokens = 0;
  struct DroppedRun {
    uint64_t first = 0;
    uint64_t last = 0;
    int64_t tokens = 0;
    std::string_view reason;
    int count = 0;
  } run;
  const auto flush_run = [&] {
    if (run.count > 0) {
      omit(ContextOmission::Kind::kDropped, MessageRange(run.first, run.last), run.tokens, 0,
           run.reason);
    }
    run.count = 0;
  };
  for (size_t u = 0; u < units.size(); ++u) {
    const Unit& unit = units[u];
    if (fate[u] == UnitFate::kDropped) {
      const uint64_t count = unit.end - unit.first;
      if (unit.summarized && summary_sent) continue;
      dropped += static_cast<int64_t>(count);
      dropped_tokens += unit.full_tokens;
      std::string_view reason = kNoRoom;
      if (unit.orphan) {
        reason = "tool result without the assistant message that called it";
      } else if (unit.summarized) {
        reason = "covered by the summary, which did not fit";
      } else if (!turns_fit) {
        reason = "the newest turn does not fit";
      }
      // Runs of dropped messages with one reason are reported as one range.
      if (run.count > 0 && run.reason == reason && run.last + 1 == unit.first) {
        run.last = unit.end - 1;
        run.tokens += unit.full_tokens;
      } else {
        flush_run();
        run = {.first = unit.first,
               .last = unit.end - 1,
               .tokens = unit.full_tokens,
               .reason = reason,
               .count = 1};
      }
      continue;
    }
    flush_run();
    for (uint64_t k = unit.first; k < unit.end; ++k) {
      const v1::ChatMessage& m = session->messages(static_cast<int>(k));
      out.kept_messages.push_back(k);
      if (fate[u] == UnitFate::kCut) {
        turn_messages.push_back(cut_message);
      } else if (fate[u] == UnitFate::kElided && k > unit.first) {
        turn_messages.push_back(Elided(m, counter));
        omit(ContextOmission::Kind::kElided, MessageRange(k, k), counter.CountMessage(m),
             counter.CountMessage(turn_messages.back()), "older tool result, to make room");
      } else {
        turn_messages.push_back(m);
      }
      turn_messages.back().clear_pinned();
    }
  }

  flush_run();
  if (!system.empty()) out.messages.push_back(SystemMessage(system.Content()));
  if (dropped > 0) out.messages.push_back(SystemMessage(MarkerText(dropped)));
  for (v1::ChatMessage& m : turn_messages) out.messages.push_back(std::move(m));
  out.dropped_messages = dropped;
  out.dropped_tokens = dropped_tokens;
  out.total_tokens = counter.CountMessages(out.messages);
  out.fits = out.total_tokens <= out.budget_tokens;
  return out;
}

// A transcript line per message, for the summariser.
std::string TranscriptOf(const v1::ChatMessage& m) {
  std::string line = absl::StrCat(ToAbsl(m.role()));
  if (!m.name().empty()) absl::StrAppend(&line, " (", ToAbsl(m.name()), ")");
  if (m.role() == "tool" && !m.tool_call_id().empty()) {
    absl::StrAppend(&line, " [result of ", ToAbsl(m.tool_call_id()), "]");
  }
  absl::StrAppend(&line, ": ", ToAbsl(Strip(m.content())));
  for (const v1::ToolCall& call : m.tool_calls()) {
    absl::StrAppend(&line, "\n  calls ", ToAbsl(call.name()), " [", ToAbsl(call.id()), "] ",
                    ArgumentsJson(call));
  }
  return line;
}

}  // namespace

AssembledContext AssembleContext(const ContextInputs& inputs, const TokenCounter& counter) {
  std::vector<Unit> units;
  int64_t marker_reserve = 0;
  if (inputs.session != nullptr && inputs.session->messages_size() > 0) {
    units = SplitIntoUnits(*inputs.session);
    for (Unit& unit : units) CostUnit(*inputs.session, counter, unit);
    marker_reserve =
        counter.CountMessage(SystemMessage(MarkerText(inputs.session->messages_size())));
  }
  // Held back only when something must be dropped: the first pass tells.
  AssembledContext assembled = Pack(inputs, counter, units, 0);
  if (assembled.dropped_messages > 0) assembled = Pack(inputs, counter, units, marker_reserve);
  return assembled;
}

std::string ToOpenAiMessagesJson(const std::vector<v1::ChatMessage>& messages) {
  std::string json = "[";
  for (const v1::ChatMessage& m : messages) {
    if (json.size() > 1) json.push_back(',');
    json.append("{\"role\":");
    AppendJsonString(m.role(), json);
    json.append(",\"content\":");
    if (m.content().empty() && m.tool_calls_size() > 0) {
      json.append("null");
    } else {
      AppendJsonString(m.content(), json);
    }
    if (!m.name().empty()) {
      json.append(",\"name\":");
      AppendJsonString(m.name(), json);
    }
    if (!m.tool_call_id().empty()) {
      json.append(",\"tool_call_id\":");
      AppendJsonString(m.tool_call_id(), json);
    }
    if (m.tool_calls_size() > 0) {
      json.append(",\"tool_calls\":[");
      for (int i = 0; i < m.tool_calls_size(); ++i) {
        const v1::ToolCall& call = m.tool_calls(i);
        if (i > 0) json.push_back(',');
        json.append("{\"id\":");
        AppendJsonString(call.id(), json);
        json.append(",\"type\":\"function\",\"function\":{\"name\":");
        AppendJsonString(call.name(), json);
        json.append(",\"arguments\":");
        AppendJsonString(ArgumentsJson(call), json);
        json.append("}}");
      }
      json.push_back(']');
    }
    json.push_back('}');
  }
  json.push_back(']');
  return json;
}

bool NeedsCompaction(const AssembledContext& assembled, const CompactionOptions& options) {
  return assembled.dropped_messages > 0 &&
         assembled.dropped_tokens >= std::max<int64_t>(1, options.min_dropped_tokens);
}

CompactionPlan PlanCompaction(const v1::Session& session, const TokenCounter& counter,
                              const CompactionOptions& options) {
  CompactionPlan plan;
  const std::vector<Unit> units = SplitIntoUnits(session);
  // The newest turn and `keep_recent_tokens` before it stay out.
  size_t keep_from = units.size();
  int64_t recent = 0;
  for (size_t u = units.size(); u-- > 0;) {
    const Unit& unit = units[u];
    if (unit.summarized) break;
    if (unit.orphan) continue;
    keep_from = u;
    if (!unit.pinned) {
      for (uint64_t k = unit.first; k < unit.end; ++k) {
        recent += counter.CountMessage(session.messages(static_cast<int>(k)));
      }
    }
    if (recent >= options.keep_recent_tokens) break;
  }

  v1::ChatMessage instructions = SystemMessage(absl::StrCat(
      "You maintain the running summary of a conversation between a user and an AI assistant. "
      "Rewrite the summary so that it also covers the new messages. Keep facts, decisions, "
      "commitments, open questions, names, numbers, identifiers, file paths and the results of "
      "tool calls that later turns may rely on; drop pleasantries and repetition. Write notes "
      "for the assistant, in plain sentences or short bullet points, of at most about ",
      options.target_summary_tokens, " tokens. Reply with the new summary only."));
  const std::string_view previous = Strip(session.summary());
  std::string request = absl::StrCat(
      "Summary so far:\n", previous.empty() ? "(none)" : ToAbsl(previous), "\n\nNew messages:");
  v1::ChatMessage user;
  user.set_role("user");
  const int64_t fixed = counter.RequestOverhead() + counter.CountMessage(instructions) +
                        counter.CountMessage(user) + counter.CountText(request);
  int64_t tokens = fixed;
  const int64_t newline_tokens = counter.CountText("\n\n");
  bool any = false;
  for (size_t u = 0; u < keep_from; ++u) {
    const Unit& unit = units[u];
    if (unit.summarized) continue;
    std::string text;
    for (uint64_t k = unit.first; k < unit.end; ++k) {
      const v1::ChatMessage& m = session.messages(static_cast<int>(k));
      if (m.pinned()) continue;
      if (!text.empty()) text.append("\n");
      text.append(TranscriptOf(m));
    }
    int64_t cost = text.empty() ? 0 : newline_tokens + counter.CountText(text);
    if (tokens + cost > options.max_prompt_tokens) {
      if (any) break;
      // A first turn too long for the prompt on its own is cut.
      text = CutText(text, options.max_prompt_tokens - tokens - newline_tokens,
                     "[transcript truncated: ", counter);
      cost = newline_tokens + counter.CountText(text);
      if (tokens + cost > options.max_prompt_tokens) break;
    }
    if (!any) plan.first = unit.first;
    any = true;
    plan.through = unit.end - 1;
    if (!text.empty()) absl::StrAppend(&request, "\n\n", text);
    tokens += cost;
  }
  if (!any) return CompactionPlan{};
  if (!session.summary().empty()) plan.first = session.summarized_through() + 1;
  user.set_content(std::move(request));
  plan.prompt.push_back(std::move(instructions));
  plan.prompt.push_back(std::move(user));
  plan.prompt_tokens = counter.CountMessages(plan.prompt);
  return plan;
}

absl::Status ApplySummary(v1::Session& session, std::string_view summary, uint64_t through) {
  if (Strip(summary).empty()) return absl::InvalidArgumentError("ApplySummary: summary is empty");
  const uint64_t n = static_cast<uint64_t>(session.messages_size());
  if (through >= n) {
    return absl::InvalidArgumentError(absl::StrCat("ApplySummary: through ", through,
                                                   " is not a message index (the session has ", n,
                                                   " messages)"));
  }
  if (!session.summary().empty() && through <= session.summarized_through()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ApplySummary: through ", through, " does not move the summary boundary forward (it is at ",
        session.summarized_through(), ")"));
  }
  for (const Unit& unit : SplitIntoUnits(session)) {
    if (unit.first <= through && through + 1 < unit.end) {
      return absl::InvalidArgumentError(absl::StrCat("ApplySummary: through ", through,
                                                     " separates the tool calls of messages[",
                                                     unit.first, "] from their results"));
    }
  }
  session.set_summary(std::string(summary));
  session.set_summarized_through(through);
  return absl::OkStatus();
}

}  // namespace flowork::agent
