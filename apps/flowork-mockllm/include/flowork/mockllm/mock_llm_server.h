// A deterministic fake model server for the router's tests, benchmarks and
// demo. Not installed: tests embed it in-process, the flowork-mockllm binary
// wraps it as a server.
//
// Wire formats (each streaming and not, each with usage):
//   OpenAI     POST /v1/chat/completions, POST /v1/completions,
//              POST /v1/embeddings, GET /v1/models
//   Anthropic  POST /v1/messages
//   Ollama     POST /api/chat (streams NDJSON unless "stream":false),
//              POST /api/embed, GET /api/tags
//   plus       GET /healthz
// Errors come in each API's own shape: OpenAI {"error":{"message","type",
// "param","code"}}, Anthropic {"type":"error","error":{"type","message"}},
// Ollama {"error":"..."}. Bad JSON answers 400, an unknown path 404.
//
// The answer. Its subject is the text of the last user message (or, when a
// tool result came after it, of that tool result). The answer text T is
//   "Mock answer to: <first 40 bytes of the subject, cut at a UTF-8 boundary>."
// split at whitespace into words and repeated word by word until it has
// exactly `tokens` words; a token is one word plus the space that follows it
// (the last token has none). T is sent as `chunks` deltas of consecutive
// tokens, as even as possible (earlier deltas take the extra token; never
// more deltas than tokens). A request's max_tokens (OpenAI max_tokens /
// max_completion_tokens, Anthropic max_tokens, Ollama options.num_predict)
// truncates the answer, which then ends with finish reason "length"
// (Anthropic "max_tokens").
//   Usage: prompt tokens = whitespace-separated words of every message text
//   (system prompt and tool results included); completion tokens = tokens
//   of the answer actually generated; cached tokens are always 0.
//   Prefill: when the last message is the assistant's and T starts with its
//   text, the answer is the rest of T (a client that resends what it got as
//   prefill receives exactly the remainder); otherwise the answer is T.
//   Tool calls: only when the request declares tools. Each "call:<name>"
//   marker (name: letters, digits, '_', '-', '.') asks for one call of
//   <name> with the arguments {"query":"<the text after the marker up to the
//   next marker, trimmed>"}. The markers that count are those of the subject
//   when it is a user message; when it is a tool result, those of every tool
//   result in the run of tool results ending with it (parallel calls
//   answered), in order. Any such marker makes the answer those calls, in
//   order (each call's arguments streamed as `chunks` deltas, call after
//   call, where the API streams arguments); its completion tokens are the
//   words of the arguments JSONs. Without one the answer is text about the
//   subject.
//   Ids are "mock-<n>", n counting answered generation requests from 1; tool
//   calls are "call_<c>" (Anthropic "toolu_<c>"), c counting the server's
//   tool calls from 1; timestamps are fixed at 1700000000
//   (2023-11-14T22:13:20Z). Same requests, same bytes.
//
// Knobs: every MockKnobs field below has a default per server (the options)
// and a request header that overrides it for one request; the header comment
// on each field names it. Invalid header values answer 400 naming the header.
//
// Thread-safety: MockLlmServer is thread-safe.

#ifndef FLOWORK_MOCKLLM_MOCK_LLM_SERVER_H_
#define FLOWORK_MOCKLLM_MOCK_LLM_SERVER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace flowork::mockllm {

// How the mock answers. Durations are whole milliseconds in headers.
struct MockKnobs {
  // x-mock-latency-ms: delay before the response headers. Default 0.
  absl::Duration latency = absl::ZeroDuration();
  // x-mock-ttft-ms: delay, after the headers, before the first content delta
  // of a stream (the stream's opening events go out with it). Default 0.
  absl::Duration ttft = absl::ZeroDuration();
  // x-mock-late-first-token-ms: the same as ttft, meant for hedging tests;
  // the larger of the two applies. Default 0.
  absl::Duration late_first_token = absl::ZeroDuration();
  // x-mock-chunk-interval-ms: delay between content deltas. Default 0.
  // A non-streamed answer is sent when its last delta would have been:
  // after latency + ttft + (deltas - 1) * interval.
  absl::Duration chunk_interval = absl::ZeroDuration();
  // x-mock-trickle-ms: sends the response bytes slowly, as pieces of at most
  // kTricklePieceBytes with this delay between them (a non-streamed answer
  // then goes out chunked). Default 0 (off).
  absl::Duration trickle = absl::ZeroDuration();
  // x-mock-chunks: number of content deltas, 1..10000. Default 4.
  int chunks = 4;
  // x-mock-tokens: answer length in tokens, 0..100000. Default 16.
  int tokens = 16;
  // x-mock-status: 0 (or 200) answers normally; 400..599 answers that status
  // with an API-shaped error body. Default 0.
  int status = 0;
  // x-mock-retry-after: seconds, sent as Retry-After on injected errors
  // (x-mock-status, x-mock-fail-first); -1 sends none. Default -1.
  int retry_after_seconds = -1;
  // x-mock-error-code: the OpenAI error "code" of injected errors (e.g.
  // "context_length_exceeded"); "" sends null. Default "".
  std::string error_code;
  // x-mock-hang: accepts the request and never answers; the response is
  // dropped (500) when the client leaves or the server shuts down.
  // Default false.
  bool hang = false;
  // x-mock-cut-after: streams only: sends this many content deltas, then
  // closes the connection without ending the stream (an incomplete chunked
  // body). -1 is off. Default -1.
  int cut_after = -1;
  // x-mock-malformed-chunk: streams only: the Nth (1-based) content delta is
  // sent as invalid JSON in its place. 0 is off. Default 0.
  int malformed_chunk = 0;
  // x-mock-fail-first: the first N requests answer 503 (API-shaped), later
  // ones normally; counted per value of x-mock-fail-key. Default 0.
  int fail_first = 0;
  // x-mock-fail-key: the counter x-mock-fail-first uses. Default "default".
  std::string fail_key = "default";
  // x-mock-refuse-prefill: a request whose last message is the assistant's
  // answers 400 "prefill not supported". Default false.
  bool refuse_prefill = false;
};

// Largest piece x-mock-trickle writes at once.
inline constexpr int kTricklePieceBytes = 16;

// Options of a MockLlmServer. Every field documents its default.
struct MockLlmOptions {
  // "host:port" to listen on; port 0 picks a free port. Default loopback.
  std::string address = "127.0.0.1:0";
  // HTTP I/O threads; 0 = the number of cores. Default 1.
  int threads = 1;
  // Model ids listed by GET /v1/models and /api/tags. Requests may name any
  // model; answers echo it (or the first of these when absent).
  // Default {"mock-1"}.
  std::vector<std::string> models = {"mock-1"};
  // Knobs of requests that send no x-mock-* header. Defaults as documented.
  MockKnobs knobs;
};

// The mock model server. Delays run on one timer thread, never on the I/O
// threads. Thread-safe.
class MockLlmServer {
 public:
  virtual ~MockLlmServer() = default;

  // Binds and starts serving. kInvalidArgument for bad options (address,
  // knobs, empty model list), kUnavailable when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<MockLlmServer>> Create(const MockLlmOptions& options);

  // The port actually bound.
  virtual int port() const = 0;

  // Requests received (any path, including errors), in total or for one
  // path ("/v1/chat/completions"; the query is not part of it).
  virtual int64_t calls() const = 0;
  virtual int64_t calls(std::string_view path) const = 0;

  // Stops accepting, drops hanging responses at once, lets other responses
  // in progress finish for up to `grace`, then cuts the rest and stops the
  // timer thread. Idempotent; the destructor calls it with a zero grace.
  virtual void Shutdown(absl::Duration grace) = 0;
};

}  // namespace flowork::mockllm

#endif  // FLOWORK_MOCKLLM_MOCK_LLM_SERVER_H_
