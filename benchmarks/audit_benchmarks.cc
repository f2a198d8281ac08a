// The audit trail's writer: how many entries a second it seals, chains and
// commits, sustained. The caller appends as fast as it can and, only when the
// queue is full, sleeps 100 µs (not spinning: on a small machine a spinning
// caller takes the writer's core), so the rate is the writer's.
#include <stdlib.h>
#include <time.h>

#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "benchmark/benchmark.h"
#include "flowork/router/audit_log.h"

namespace {

namespace v1 = flowork::router::v1;

// What the gateway records for an ordinary chat request: a plan of three
// candidates, one attempt. With bodies: ~2 KB each way, as with capture_bodies.
v1::AuditEntry TypicalEntry(bool bodies) {
  v1::AuditEntry entry;
  entry.set_request_id("req-0123456789abcdef");
  entry.set_trace_id("4bf92f3577b34da6a3ce929d0e0e4736");
  entry.set_key("team-analytics");
  entry.set_tenant("acme");
  entry.set_api("openai.chat");
  entry.set_model("chat");
  entry.set_target("llama-3.1-8b@local-ollama");
  entry.set_objective("least_latency");
  entry.set_seed(1234567);
  for (const char* endpoint :
       {"llama-3.1-8b@local-ollama", "qwen2.5-7b@local-vllm", "gpt-4o-mini@openai"}) {
    v1::AuditCandidate& candidate = *entry.add_candidates();
    candidate.set_endpoint(endpoint);
    candidate.set_kept(endpoint[0] != 'g');
    candidate.set_reason(endpoint[0] != 'g' ? "" : "zone remote not allowed for key");
  }
  v1::AuditAttempt& attempt = *entry.add_attempts();
  attempt.set_endpoint("llama-3.1-8b@local-ollama");
  attempt.set_status(200);
  attempt.set_latency_us(412'000);
  attempt.set_ttft_us(38'000);
  entry.set_status(200);
  entry.set_outcome("ok");
  entry.set_endpoint("llama-3.1-8b@local-ollama");
  entry.set_prompt_tokens(812);
  entry.set_completion_tokens(164);
  entry.set_cost_usd(0.000231);
  entry.set_overhead_us(85);
  entry.set_duration_us(415'000);
  if (bodies) {
    entry.set_request_body(std::string(2048, 'q'));
    entry.set_response_body(std::string(2048, 'a'));
  }
  return entry;
}

double ProcessCpuSeconds() {
  timespec now{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) * 1e-9;
}

void BM_AuditLog_Append(benchmark::State& state) {
  // $TMPDIR picks the disk (TMPDIR=/dev/shm: the writer without the disk).
  const char* tmp = getenv("TMPDIR");
  std::string dir_template =
      absl::StrCat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/flowork-audit-bench-XXXXXX");
  const char* dir = mkdtemp(dir_template.data());
  if (dir == nullptr) return state.SkipWithError("mkdtemp failed");
  flowork::router::AuditLogOptions options;
  options.path = absl::StrCat(dir, "/audit.db");
  auto log = flowork::router::AuditLog::Open(options);
  if (!log.ok()) return state.SkipWithError(std::string(log.status().message()).c_str());
  const v1::AuditEntry entry = TypicalEntry(state.range(0) != 0);

  const absl::Time start = absl::Now();
  const double cpu_start = ProcessCpuSeconds();
  int64_t full_waits = 0;
  for (auto _ : state) {
    while (!(*log)->Append(entry)) {
      ++full_waits;
      absl::SleepFor(absl::Microseconds(100));
    }
  }
  const absl::Status flushed = (*log)->Flush();
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  const double cpu_seconds = ProcessCpuSeconds() - cpu_start;
  if (!flushed.ok()) state.SkipWithError(std::string(flushed.message()).c_str());
  const flowork::router::AuditLogStats stats = (*log)->stats();
  state.counters["committed_per_s"] = static_cast<double>(stats.written) / seconds;
  state.counters["full_waits"] = static_cast<double>(full_waits);
  // Caller and writer together: on a busy machine the wall-clock rate says
  // more about the neighbours; 1e6 / this is the rate one free core sustains.
  state.counters["cpu_us_per_entry"] = 1e6 * cpu_seconds / static_cast<double>(stats.written);
  state.SetItemsProcessed(state.iterations());
  log->reset();
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_AuditLog_Append)->ArgName("bodies")->Arg(0)->Arg(1)->MinTime(2.0)->UseRealTime();

}  // namespace
