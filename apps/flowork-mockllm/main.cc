// flowork-mockllm: flags -> options -> mock server -> serve -> drain.
#include <csignal>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "flowork/core/logging.h"
#include "flowork/core/process.h"
#include "flowork/mockllm/mock_llm_server.h"

ABSL_FLAG(std::string, http, "127.0.0.1:2410", "HTTP listen address host:port (port 0 = any)");
ABSL_FLAG(bool, allow_non_loopback, false, "Listen on a non-loopback address (no auth!)");
ABSL_FLAG(int, threads, 1, "HTTP I/O threads; 0 = one per core");
ABSL_FLAG(std::vector<std::string>, models, {"mock-1"}, "Model ids served, comma-separated");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warning or error");
// Defaults of the per-request knobs; each x-mock-* header overrides its flag.
ABSL_FLAG(int64_t, latency_ms, 0, "x-mock-latency-ms: delay before the response headers");
ABSL_FLAG(int64_t, ttft_ms, 0, "x-mock-ttft-ms: delay before the first content delta");
ABSL_FLAG(int64_t, late_first_token_ms, 0, "x-mock-late-first-token-ms: as ttft_ms");
ABSL_FLAG(int64_t, chunk_interval_ms, 0, "x-mock-chunk-interval-ms: delay between deltas");
ABSL_FLAG(int64_t, trickle_ms, 0, "x-mock-trickle-ms: send bytes in small pieces this far apart");
ABSL_FLAG(int, chunks, 4, "x-mock-chunks: content deltas per answer");
ABSL_FLAG(int, tokens, 16, "x-mock-tokens: answer length in tokens");
ABSL_FLAG(int, status, 0, "x-mock-status: answer this HTTP error status (0 = normal)");
ABSL_FLAG(int, retry_after, -1, "x-mock-retry-after: Retry-After seconds on injected errors");
ABSL_FLAG(std::string, error_code, "", "x-mock-error-code: OpenAI error code of injected errors");
ABSL_FLAG(bool, hang, false, "x-mock-hang: accept requests and never answer");
ABSL_FLAG(int, cut_after, -1, "x-mock-cut-after: cut streams after N deltas (-1 = off)");
ABSL_FLAG(int, malformed_chunk, 0, "x-mock-malformed-chunk: Nth delta is invalid JSON (0 = off)");
ABSL_FLAG(int, fail_first, 0, "x-mock-fail-first: answer 503 to the first N requests");
ABSL_FLAG(std::string, fail_key, "default", "x-mock-fail-key: counter of fail_first");
ABSL_FLAG(bool, refuse_prefill, false, "x-mock-refuse-prefill: answer 400 to prefill");

namespace {

using flowork::core::Log;
using flowork::core::LogLevel;

int Fail(std::string_view what, const absl::Status& status) {
  Log(LogLevel::kError, what, {{"error", status.message()}});
  return 2;
}

flowork::mockllm::MockKnobs KnobsFromFlags() {
  flowork::mockllm::MockKnobs knobs;
  knobs.latency = absl::Milliseconds(absl::GetFlag(FLAGS_latency_ms));
  knobs.ttft = absl::Milliseconds(absl::GetFlag(FLAGS_ttft_ms));
  knobs.late_first_token = absl::Milliseconds(absl::GetFlag(FLAGS_late_first_token_ms));
  knobs.chunk_interval = absl::Milliseconds(absl::GetFlag(FLAGS_chunk_interval_ms));
  knobs.trickle = absl::Milliseconds(absl::GetFlag(FLAGS_trickle_ms));
  knobs.chunks = absl::GetFlag(FLAGS_chunks);
  knobs.tokens = absl::GetFlag(FLAGS_tokens);
  knobs.status = absl::GetFlag(FLAGS_status);
  knobs.retry_after_seconds = absl::GetFlag(FLAGS_retry_after);
  knobs.error_code = absl::GetFlag(FLAGS_error_code);
  knobs.hang = absl::GetFlag(FLAGS_hang);
  knobs.cut_after = absl::GetFlag(FLAGS_cut_after);
  knobs.malformed_chunk = absl::GetFlag(FLAGS_malformed_chunk);
  knobs.fail_first = absl::GetFlag(FLAGS_fail_first);
  knobs.fail_key = absl::GetFlag(FLAGS_fail_key);
  knobs.refuse_prefill = absl::GetFlag(FLAGS_refuse_prefill);
  return knobs;
}

}  // namespace

int main(int argc, char** argv) {
  flowork::core::BlockServerSignals();
  flowork::core::TuneServerProcess();
  absl::SetProgramUsageMessage(
      "Deterministic fake OpenAI/Anthropic/Ollama model server with latency and fault knobs.");
  absl::ParseCommandLine(argc, argv);

  absl::StatusOr<LogLevel> level = flowork::core::ParseLogLevel(absl::GetFlag(FLAGS_log_level));
  if (!level.ok()) return Fail("invalid flags", level.status());
  flowork::core::SetLogLevel(*level);

  flowork::mockllm::MockLlmOptions options;
  options.address = absl::GetFlag(FLAGS_http);
  options.threads = absl::GetFlag(FLAGS_threads);
  options.models = absl::GetFlag(FLAGS_models);
  options.knobs = KnobsFromFlags();
  if (!absl::GetFlag(FLAGS_allow_non_loopback) &&
      !flowork::core::IsLoopbackAddress(options.address)) {
    return Fail("invalid flags",
                absl::InvalidArgumentError(absl::StrCat(
                    "--http=", options.address,
                    " is not loopback; the mock has no auth (pass --allow_non_loopback)")));
  }

  auto server = flowork::mockllm::MockLlmServer::Create(options);
  if (!server.ok()) return Fail("cannot start", server.status());
  const std::string host = options.address.substr(0, options.address.rfind(':'));
  Log(LogLevel::kInfo, "flowork-mockllm serving",
      {{"http", absl::StrCat(host, ":", (*server)->port())}});

  int signal;
  while ((signal = flowork::core::WaitForServerSignal()) == SIGHUP) {
    Log(LogLevel::kInfo, "flowork-mockllm has no configuration to reload; SIGHUP ignored");
  }
  Log(LogLevel::kInfo, "flowork-mockllm draining", {{"signal", absl::StrCat(signal)}});
  (*server)->Shutdown(absl::Seconds(2));
  Log(LogLevel::kInfo, "flowork-mockllm stopped", {{"calls", absl::StrCat((*server)->calls())}});
  return 0;
}
