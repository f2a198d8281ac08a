#include "knobs.h"

#include <cstdint>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace flowork::mockllm {
namespace {

constexpr int64_t kMaxDelayMs = 3'600'000;  // One hour.
constexpr int kMaxChunks = 10'000;
constexpr int kMaxTokens = 100'000;

absl::Status OutOfRange(std::string_view name, std::string_view range) {
  return absl::InvalidArgumentError(
      absl::StrCat(std::string(name), ": must be ", std::string(range)));
}

absl::Status CheckDelay(std::string_view name, absl::Duration delay) {
  if (delay < absl::ZeroDuration() || delay > absl::Milliseconds(kMaxDelayMs)) {
    return OutOfRange(name, "between 0 and 3600000 ms");
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> ParseInt(const std::string& name, const std::string& value) {
  int64_t number = 0;
  if (!absl::SimpleAtoi(value, &number)) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": expected an integer, got \"", value, "\""));
  }
  return number;
}

absl::StatusOr<bool> ParseBool(const std::string& name, const std::string& value) {
  bool flag = false;
  if (!absl::SimpleAtob(value, &flag)) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": expected true or false, got \"", value, "\""));
  }
  return flag;
}

// Sets the knob `name` (lower case, "x-mock-" stripped) from `value`.
absl::Status ApplyOne(const std::string& name, const std::string& value, MockKnobs& knobs) {
  const std::string header = absl::StrCat("x-mock-", name);
  if (name == "fail-key") {
    knobs.fail_key = value;
    return absl::OkStatus();
  }
  if (name == "error-code") {
    knobs.error_code = value;
    return absl::OkStatus();
  }
  if (name == "hang" || name == "refuse-prefill") {
    absl::StatusOr<bool> flag = ParseBool(header, value);
    if (!flag.ok()) return flag.status();
    (name == "hang" ? knobs.hang : knobs.refuse_prefill) = *flag;
    return absl::OkStatus();
  }
  absl::Duration* delay = name == "latency-ms"            ? &knobs.latency
                          : name == "ttft-ms"             ? &knobs.ttft
                          : name == "late-first-token-ms" ? &knobs.late_first_token
                          : name == "chunk-interval-ms"   ? &knobs.chunk_interval
                          : name == "trickle-ms"          ? &knobs.trickle
                                                          : nullptr;
  int* number = name == "chunks"            ? &knobs.chunks
                : name == "tokens"          ? &knobs.tokens
                : name == "status"          ? &knobs.status
                : name == "retry-after"     ? &knobs.retry_after_seconds
                : name == "cut-after"       ? &knobs.cut_after
                : name == "malformed-chunk" ? &knobs.malformed_chunk
                : name == "fail-first"      ? &knobs.fail_first
                                            : nullptr;
  if (delay == nullptr && number == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("unknown knob header ", header));
  }
  absl::StatusOr<int64_t> parsed = ParseInt(header, value);
  if (!parsed.ok()) return parsed.status();
  if (delay != nullptr) {
    if (*parsed < 0 || *parsed > kMaxDelayMs) return OutOfRange(header, "between 0 and 3600000 ms");
    *delay = absl::Milliseconds(*parsed);
    return absl::OkStatus();
  }
  if (*parsed < INT32_MIN || *parsed > INT32_MAX) return OutOfRange(header, "a 32-bit integer");
  *number = static_cast<int>(*parsed);
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateKnobs(const MockKnobs& knobs, KnobNaming naming) {
  const bool headers = naming == KnobNaming::kHeader;
  auto name = [headers](std::string_view field, std::string_view header) {
    return headers ? header : field;
  };
  const std::pair<std::string_view, absl::Duration> delays[] = {
      {name("latency", "x-mock-latency-ms"), knobs.latency},
      {name("ttft", "x-mock-ttft-ms"), knobs.ttft},
      {name("late_first_token", "x-mock-late-first-token-ms"), knobs.late_first_token},
      {name("chunk_interval", "x-mock-chunk-interval-ms"), knobs.chunk_interval},
      {name("trickle", "x-mock-trickle-ms"), knobs.trickle}};
  for (const auto& [field, delay] : delays) {
    if (absl::Status status = CheckDelay(field, delay); !status.ok()) return status;
  }
  if (knobs.chunks < 1 || knobs.chunks > kMaxChunks) {
    return OutOfRange(name("chunks", "x-mock-chunks"), "1..10000");
  }
  if (knobs.tokens < 0 || knobs.tokens > kMaxTokens) {
    return OutOfRange(name("tokens", "x-mock-tokens"), "0..100000");
  }
  if (knobs.status != 0 && knobs.status != 200 && (knobs.status < 400 || knobs.status > 599)) {
    return OutOfRange(name("status", "x-mock-status"), "0, 200 or 400..599");
  }
  if (knobs.retry_after_seconds < -1) {
    return OutOfRange(name("retry_after_seconds", "x-mock-retry-after"), ">= -1");
  }
  if (knobs.cut_after < -1) return OutOfRange(name("cut_after", "x-mock-cut-after"), ">= -1");
  if (knobs.malformed_chunk < 0) {
    return OutOfRange(name("malformed_chunk", "x-mock-malformed-chunk"), ">= 0");
  }
  if (knobs.fail_first < 0) return OutOfRange(name("fail_first", "x-mock-fail-first"), ">= 0");
  return absl::OkStatus();
}

absl::StatusOr<MockKnobs> ApplyKnobHeaders(const core::HttpHeaders& headers, MockKnobs defaults) {
  for (const auto& [raw_name, value] : headers) {
    const std::string name = absl::AsciiStrToLower(raw_name);
    if (!absl::StartsWith(name, "x-mock-")) continue;
    absl::Status applied =
        ApplyOne(name.substr(7), std::string(absl::StripAsciiWhitespace(value)), defaults);
    if (!applied.ok()) return applied;
  }
  absl::Status valid = ValidateKnobs(defaults, KnobNaming::kHeader);
  if (!valid.ok()) return valid;
  return defaults;
}

}  // namespace flowork::mockllm
