#include "flowork/agent/token_counter.h"

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "flowork/agent/v1/context.pb.h"
#include "flowork/agent/v1/effect.pb.h"
#include "google/protobuf/struct.pb.h"

namespace flowork::agent {
namespace {

// Token estimates without a tokenizer. Text is scanned once, by character
// class, and each run is charged in milli-tokens; the sum is scaled by the
// family's factor and rounded up. Runs never span whitespace, so joining texts
// at whitespace never costs more than the parts (see TokenCounter).
//
// Calibration (cl100k_base, the gpt family's tokenizer; counts are exact
// tokenizations published with tiktoken and the OpenAI cookbook, except the
// code line, whose count follows from cl100k's pre-tokenizer):
//
//   text                                          cl100k  estimate  error
//   "Hello world"                                      2         2     0%
//   "Hello, world!"                                    4         4     0%
//   "The quick brown fox jumps over the lazy dog"      9         9     0%
//   "tiktoken is great!"                               6         5   -17%
//   "antidisestablishmentarianism"                     6         7   +17%
//   "2 + 2 = 4"                                        7         7     0%
//   "1234567890"                                       4         4     0%
//   "お誕生日おめでとう"                                9        10   +11%
//   the cookbook's 6-message chat (with names)       129       144   +12%
//   def hello():\n    print("Hello, world!")          10        13   +30%
//
// The per-word rule (1 token up to 6 letters, then 1 more per 4 letters)
// overcounts long common words ("following" is 1 token, estimated 1.75) and
// undercounts invented ones ("tiktoken" is 3); punctuation runs cost 1 token
// for the first character and a third for each further one, so code, whose
// punctuation cl100k merges into few tokens, is overcounted most.
struct Profile {
  std::string_view name;
  // Percent applied to the text estimate: how much more the family's
  // tokenizer needs than cl100k for the same English.
  int64_t scale_percent;
  // ASCII letter runs up to this long cost 1 token; each further letter
  // costs letter_milli.
  int64_t short_word_letters;
  int64_t letter_milli;
  // Digit runs cost 1 token per this many digits (cl100k: groups of 3;
  // SentencePiece vocabularies split every digit).
  int64_t digits_per_token;
  // Punctuation: the first character of a run, each further one, and a lone
  // character glued to the word after it ("(self", "_name", ".com").
  int64_t punct_first_milli;
  int64_t punct_next_milli;
  int64_t punct_before_word_milli;
  // Newlines per token in a run of them, and spaces per token in an indent.
  int64_t newlines_per_token;
  int64_t spaces_per_token;
  // Per code point: CJK (Han, kana, Hangul, CJK punctuation, full width),
  // other 2-byte (Latin-1 and extended, Greek, Cyrillic, Hebrew, Arabic),
  // other 3-byte (Indic, Thai, symbols), 4-byte (emoji, rare Han).
  int64_t cjk_milli;
  int64_t two_byte_milli;
  int64_t three_byte_milli;
  int64_t four_byte_milli;
  // Chat format overheads, in tokens.
  int64_t message_overhead;      // Role and separators of each message.
  int64_t name_overhead;         // A message's `name`, beyond its text.
  int64_t tool_call_overhead;    // Each tool call, beyond its name and arguments.
  int64_t tool_result_overhead;  // Each "tool" message, beyond its content.
  int64_t request_overhead;      // Once per request (reply primer, BOS).
};

// OpenAI: 3 tokens per message + 1 for the role, 1 per name, 3 for the
// reply primer (the cookbook's num_tokens_from_messages). o200k needs fewer
// tokens than cl100k for the same text; the cl100k calibration keeps it high.
constexpr Profile kGptProfile = {
    .name = "estimate/gpt",
    .scale_percent = 100,
    .short_word_letters = 6,
    .letter_milli = 250,
    .digits_per_token = 3,
    .punct_first_milli = 1000,
    .punct_next_milli = 334,
    .punct_before_word_milli = 500,
    .newlines_per_token = 2,
    .spaces_per_token = 8,
    .cjk_milli = 1100,
    .two_byte_milli = 500,
    .three_byte_milli = 1000,
    .four_byte_milli = 2000,
    .message_overhead = 4,
    .name_overhead = 1,
    .tool_call_overhead = 8,
    .tool_result_overhead = 2,
    .request_overhead = 3,
};

// Anthropic publishes no tokenizer for Claude 3 and later; measured usage
// runs 15-30% above cl100k on English, so +30%, and every digit counted.
constexpr Profile kClaudeProfile = {
    .name = "estimate/claude",
    .scale_percent = 130,
    .short_word_letters = 6,
    .letter_milli = 250,
    .digits_per_token = 1,
    .punct_first_milli = 1000,
    .punct_next_milli = 500,
    .punct_before_word_milli = 500,
    .newlines_per_token = 1,
    .spaces_per_token = 4,
    .cjk_milli = 1500,
    .two_byte_milli = 600,
    .three_byte_milli = 1200,
    .four_byte_milli = 2500,
    .message_overhead = 5,
    .name_overhead = 1,
    .tool_call_overhead = 15,
    .tool_result_overhead = 6,
    .request_overhead = 5,
};

// Llama 3 uses a 128k tiktoken vocabulary close to cl100k; Llama 2 and
// CodeLlama a 32k SentencePiece one that splits digits and needs ~15% more.
// The profile covers both: +15%, digits split, headers of the Llama 3
// template (<|start_header_id|>role<|end_header_id|>\n\n ... <|eot_id|>).
constexpr Profile kLlamaProfile = {
    .name = "estimate/llama",
    .scale_percent = 115,
    .short_word_letters = 6,
    .letter_milli = 250,
    .digits_per_token = 1,
    .punct_first_milli = 1000,
    .punct_next_milli = 700,
    .punct_before_word_milli = 700,
    .newlines_per_token = 1,
    .spaces_per_token = 4,
    .cjk_milli = 1500,
    .two_byte_milli = 600,
    .three_byte_milli = 1200,
    .four_byte_milli = 2500,
    .message_overhead = 5,
    .name_overhead = 2,
    .tool_call_overhead = 10,
    .tool_result_overhead = 3,
    .request_overhead = 5,
};

// Mistral 7B and Mixtral: 32k SentencePiece with byte fallback (digits split,
// CJK often 2+ tokens per character); [INST] ... [/INST] turns.
constexpr Profile kMistralProfile = {
    .name = "estimate/mistral",
    .scale_percent = 120,
    .short_word_letters = 6,
    .letter_milli = 250,
    .digits_per_token = 1,
    .punct_first_milli = 1000,
    .punct_next_milli = 800,
    .punct_before_word_milli = 800,
    .newlines_per_token = 1,
    .spaces_per_token = 4,
    .cjk_milli = 2000,
    .two_byte_milli = 700,
    .three_byte_milli = 1500,
    .four_byte_milli = 3000,
    .message_overhead = 6,
    .name_overhead = 2,
    .tool_call_overhead = 12,
    .tool_result_overhead = 4,
    .request_overhead = 3,
};

// Qwen: 151k BPE, digits split, efficient on Chinese; ChatML
// (<|im_start|>role\n ... <|im_end|>\n).
constexpr Profile kQwenProfile = {
    .name = "estimate/qwen",
    .scale_percent = 105,
    .short_word_letters = 6,
    .letter_milli = 250,
    .digits_per_token = 1,
    .punct_first_milli = 1000,
    .punct_next_milli = 334,
    .punct_before_word_milli = 500,
    .newlines_per_token = 2,
    .spaces_per_token = 8,
    .cjk_milli = 1000,
    .two_byte_milli = 500,
    .three_byte_milli = 1000,
    .four_byte_milli = 2000,
    .message_overhead = 5,
    .name_overhead = 2,
    .tool_call_overhead = 10,
    .tool_result_overhead = 4,
    .request_overhead = 3,
};

// Gemma: 256k SentencePiece, digits split, good multilingual coverage;
// <start_of_turn>role\n ... <end_of_turn>\n, plus <bos>.
constexpr Profile kGemmaProfile = {
    .name = "estimate/gemma",
    .scale_percent = 105,
    .short_word_letters = 6,
    .letter_milli = 250,
    .digits_per_token = 1,
    .punct_first_milli = 1000,
    .punct_next_milli = 600,
    .punct_before_word_milli = 600,
    .newlines_per_token = 1,
    .spaces_per_token = 4,
    .cjk_milli = 1000,
    .two_byte_milli = 500,
    .three_byte_milli = 1000,
    .four_byte_milli = 2000,
    .message_overhead = 5,
    .name_overhead = 2,
    .tool_call_overhead = 10,
    .tool_result_overhead = 4,
    .request_overhead = 4,
};

// Unknown tokenizer: at or above every family above.
constexpr Profile kDefaultProfile = {
    .name = "estimate/default",
    .scale_percent = 130,
    .short_word_letters = 6,
    .letter_milli = 250,
    .digits_per_token = 1,
    .punct_first_milli = 1000,
    .punct_next_milli = 800,
    .punct_before_word_milli = 800,
    .newlines_per_token = 1,
    .spaces_per_token = 4,
    .cjk_milli = 2000,
    .two_byte_milli = 700,
    .three_byte_milli = 1500,
    .four_byte_milli = 3000,
    .message_overhead = 6,
    .name_overhead = 2,
    .tool_call_overhead = 15,
    .tool_result_overhead = 6,
    .request_overhead = 5,
};

bool IsAsciiLetter(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsAsciiDigit(unsigned char c) { return c >= '0' && c <= '9'; }
bool IsAsciiSpace(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

bool IsCjk(uint32_t cp) {
  return (cp >= 0x1100 && cp <= 0x11FF) ||  // Hangul Jamo
         (cp >= 0x2E80 && cp <= 0x9FFF) ||  // CJK radicals .. unified ideographs, kana
         (cp >= 0xA960 && cp <= 0xA97F) ||  // Hangul Jamo extended
         (cp >= 0xAC00 && cp <= 0xD7FF) ||  // Hangul syllables
         (cp >= 0xF900 && cp <= 0xFAFF) ||  // CJK compatibility ideographs
         (cp >= 0xFE30 && cp <= 0xFE4F) ||  // CJK compatibility forms
         (cp >= 0xFF00 && cp <= 0xFFEF);    // Half and full width forms
}

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

class EstimatingTokenCounter final : public TokenCounter {
 public:
  explicit constexpr EstimatingTokenCounter(const Profile& profile) : p_(profile) {}

  std::string_view name() const override { return p_.name; }

  int64_t CountText(std::string_view text) const override { return ScaleToTokens(TextMilli(text)); }

  int64_t CountMessage(const v1::ChatMessage& message) const override {
    int64_t tokens = p_.message_overhead + CountText(message.content());
    if (!message.name().empty()) tokens += p_.name_overhead + CountText(message.name());
    for (const v1::ToolCall& call : message.tool_calls()) {
      tokens += p_.tool_call_overhead + CountText(call.name()) + CountValue(call.arguments());
    }
    if (message.role() == "tool") tokens += p_.tool_result_overhead;
    return tokens;
  }

  int64_t RequestOverhead() const override { return p_.request_overhead; }

 private:
  int64_t ScaleToTokens(int64_t milli) const {
    return CeilDiv(milli * p_.scale_percent, 100 * 1000);
  }

  // Arguments as the compact JSON a model sees: `{"key":"value",...}`.
  // Structural characters are charged like cl100k merges them: `{"`, `":"`,
  // `","` and `"}` are one token each.
  int64_t CountValue(const google::protobuf::Value& value) const {
    switch (value.kind_case()) {
      case google::protobuf::Value::kStringValue:
        return 1 + CountText(value.string_value());
      case google::protobuf::Value::kNumberValue: {
        const double d = value.number_value();
        if (!std::isfinite(d) || std::fabs(d) >= 1e15 || d != std::floor(d)) return 6;
        int64_t digits = 1;
        for (double x = std::fabs(d); x >= 10; x /= 10) ++digits;
        return CeilDiv(digits, p_.digits_per_token) + (d < 0 ? 1 : 0);
      }
      case google::protobuf::Value::kStructValue: {
        int64_t tokens = 2;
        for (const auto& [key, field] : value.struct_value().fields()) {
          tokens += 2 + CountText(key) + CountValue(field);
        }
        return tokens;
      }
      case google::protobuf::Value::kListValue: {
        int64_t tokens = 2;
        for (const google::protobuf::Value& item : value.list_value().values()) {
          tokens += 1 + CountValue(item);
        }
        return tokens;
      }
      case google::protobuf::Value::kBoolValue:
      case google::protobuf::Value::kNullValue:
        return 1;
      case google::protobuf::Value::KIND_NOT_SET:
        return 0;
    }
    return 1;
  }

  // The estimate of `text` in milli-tokens, before scaling.
  int64_t TextMilli(std::string_view text) const {
    const size_t n = text.size();
    const auto at = [&](size_t i) -> unsigned char {
      return i < n ? static_cast<unsigned char>(text[i]) : 0;
    };
    int64_t milli = 0;
    size_t i = 0;
    while (i < n) {
      const unsigned char c = at(i);
      size_t j = i + 1;
      if (IsAsciiLetter(c)) {
        while (j < n && IsAsciiLetter(at(j))) ++j;
        const int64_t letters = static_cast<int64_t>(j - i);
        milli += 1000;
        if (letters > p_.short_word_letters) {
          milli += (letters - p_.short_word_letters) * p_.letter_milli;
        }
      } else if (IsAsciiDigit(c)) {
        while (j < n && IsAsciiDigit(at(j))) ++j;
        milli += 1000 * CeilDiv(static_cast<int64_t>(j - i), p_.digits_per_token);
      } else if (IsAsciiSpace(c)) {
        int64_t newlines = c == '\n' ? 1 : 0;
        int64_t trailing_spaces = (c == ' ' || c == '\t') ? 1 : 0;
        for (; j < n && IsAsciiSpace(at(j)); ++j) {
          if (at(j) == '\n') {
            ++newlines;
            trailing_spaces = 0;
          } else if (at(j) == ' ' || at(j) == '\t') {
            ++trailing_spaces;
          }
        }
        milli += 1000 * CeilDiv(newlines, p_.newlines_per_token);
        // The last space joins the word after it; the ones before it are an
        // indent token. Before digits or at the end it stands alone.
        if (trailing_spaces > 1) {
          milli += 1000 * CeilDiv(trailing_spaces - 1, p_.spaces_per_token);
        }
        if (trailing_spaces > 0 && (j == n || IsAsciiDigit(at(j)))) milli += 1000;
      } else if (c < 0x80) {
        while (j < n && at(j) < 0x80 && !IsAsciiLetter(at(j)) && !IsAsciiDigit(at(j)) &&
               !IsAsciiSpace(at(j))) {
          ++j;
        }
        const bool before_letter = IsAsciiLetter(at(j)) && j < n;
        if (j - i == 1 && c == '\'' && before_letter && i > 0 && IsAsciiLetter(at(i - 1))) {
          // Contraction ("don't"): the suffix word carries it.
        } else if (j - i == 1 && before_letter) {
          milli += p_.punct_before_word_milli;
        } else {
          milli += p_.punct_first_milli + static_cast<int64_t>(j - i - 1) * p_.punct_next_milli;
        }
      } else {
        // One UTF-8 code point; a stray continuation or truncated sequence is
        // a byte token.
        size_t length = 0;
        uint32_t cp = 0;
        if ((c & 0xE0) == 0xC0) {
          length = 2;
          cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
          length = 3;
          cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
          length = 4;
          cp = c & 0x07;
        }
        bool valid = length > 0 && i + length <= n;
        for (size_t k = 1; valid && k < length; ++k) {
          if ((at(i + k) & 0xC0) != 0x80) valid = false;
          cp = (cp << 6) | (at(i + k) & 0x3F);
        }
        if (!valid) {
          milli += 1000;
        } else {
          j = i + length;
          if (IsCjk(cp)) {
            milli += p_.cjk_milli;
          } else if (length == 2) {
            milli += p_.two_byte_milli;
          } else if (length == 3) {
            milli += p_.three_byte_milli;
          } else {
            milli += p_.four_byte_milli;
          }
        }
      }
      i = j;
    }
    return milli;
  }

  const Profile& p_;
};

const EstimatingTokenCounter kGptCounter(kGptProfile);
const EstimatingTokenCounter kClaudeCounter(kClaudeProfile);
const EstimatingTokenCounter kLlamaCounter(kLlamaProfile);
const EstimatingTokenCounter kMistralCounter(kMistralProfile);
const EstimatingTokenCounter kQwenCounter(kQwenProfile);
const EstimatingTokenCounter kGemmaCounter(kGemmaProfile);
const EstimatingTokenCounter kDefaultCounter(kDefaultProfile);

bool Contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

}  // namespace

int64_t TokenCounter::CountMessages(const std::vector<v1::ChatMessage>& messages) const {
  int64_t tokens = RequestOverhead();
  for (const v1::ChatMessage& message : messages) tokens += CountMessage(message);
  return tokens;
}

ModelFamily ModelFamilyOf(std::string_view model) {
  std::string lower(model);
  for (char& c : lower) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  const std::string_view m = lower;
  // Most specific first: "dolphin-mixtral" is Mistral, "codellama" Llama.
  if (Contains(m, "claude")) return ModelFamily::kClaude;
  if (Contains(m, "mistral") || Contains(m, "mixtral") || Contains(m, "codestral") ||
      Contains(m, "pixtral") || Contains(m, "magistral") || Contains(m, "devstral")) {
    return ModelFamily::kMistral;
  }
  if (Contains(m, "qwen") || Contains(m, "qwq")) return ModelFamily::kQwen;
  if (Contains(m, "gemma") || Contains(m, "gemini")) return ModelFamily::kGemma;
  if (Contains(m, "llama")) return ModelFamily::kLlama;
  if (Contains(m, "gpt") || Contains(m, "davinci") || Contains(m, "text-embedding")) {
    return ModelFamily::kGpt;
  }
  const size_t slash = m.rfind('/');
  const std::string_view last = slash == std::string_view::npos ? m : m.substr(slash + 1);
  if (last.size() >= 2 && last[0] == 'o' && last[1] >= '1' && last[1] <= '9' &&
      (last.size() == 2 || last[2] == '-')) {
    return ModelFamily::kGpt;
  }
  return ModelFamily::kDefault;
}

const TokenCounter& TokenCounterFor(ModelFamily family) {
  switch (family) {
    case ModelFamily::kGpt:
      return kGptCounter;
    case ModelFamily::kClaude:
      return kClaudeCounter;
    case ModelFamily::kLlama:
      return kLlamaCounter;
    case ModelFamily::kMistral:
      return kMistralCounter;
    case ModelFamily::kQwen:
      return kQwenCounter;
    case ModelFamily::kGemma:
      return kGemmaCounter;
    case ModelFamily::kDefault:
      break;
  }
  return kDefaultCounter;
}

const TokenCounter& TokenCounterFor(std::string_view model) {
  return TokenCounterFor(ModelFamilyOf(model));
}

}  // namespace flowork::agent
