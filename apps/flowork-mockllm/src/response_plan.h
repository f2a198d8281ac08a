// A response as a timed list of writer steps, and the scheduler that plays
// such plans without ever blocking an I/O thread.
#ifndef FLOWORK_MOCKLLM_SRC_RESPONSE_PLAN_H_
#define FLOWORK_MOCKLLM_SRC_RESPONSE_PLAN_H_

#include <cstddef>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "boost/asio/executor_work_guard.hpp"
#include "boost/asio/io_context.hpp"
#include "flowork/core/http_server.h"
#include "flowork/mockllm/mock_llm_server.h"
#include "wire_format.h"

namespace flowork::mockllm {

// One thing to do to a response writer, after a delay.
struct Step {
  enum class Kind {
    kSend,         // writer.Send(response).
    kStartStream,  // writer.StartStream(response.status, response.headers).
    kWrite,        // writer.Write(data).
    kFinish,       // writer.Finish().
    kCut,          // Drops the writer mid-stream: the connection is cut.
    kHang,         // Keeps the writer, answering nothing, until cancelled.
  };
  Kind kind = Kind::kSend;
  absl::Duration delay = absl::ZeroDuration();  // Wait before this step.
  core::HttpResponse response;
  std::string data;
};

// Steps in order; the last one sends, finishes, cuts or hangs.
using ResponsePlan = std::vector<Step>;

// The core server cuts a connection at once when a stream's writer is
// dropped, discarding chunks it has queued but not yet written; a cut waits
// at least this long after the last write so those chunks reach the client.
inline constexpr absl::Duration kCutFlushDelay = absl::Milliseconds(50);

// `response` sent whole after `delay`.
ResponsePlan WholeResponsePlan(core::HttpResponse response, absl::Duration delay);

// A stream of `events` under `knobs`: headers after latency, the prelude and
// first delta after max(ttft, late_first_token), the next deltas every
// chunk_interval, then the epilogue; cut_after and malformed_chunk applied.
ResponsePlan StreamResponsePlan(core::HttpHeaders headers, StreamEvents events,
                                const MockKnobs& knobs);

// Accepts and never answers.
ResponsePlan HangPlan();

// `plan` with its bytes sent in pieces of at most `piece_bytes`, `every`
// apart. A whole response becomes a stream of its body.
ResponsePlan TrickledPlan(ResponsePlan plan, absl::Duration every, size_t piece_bytes);

// Plays response plans: the steps due at once on the caller's thread, the
// rest on one timer thread (a boost::asio::io_context with steady timers).
// A playback ends early when its client leaves. Thread-safe.
//
// The writers handed to Play must come from an HTTP server that is shut down
// before this scheduler is destroyed (their OnCancel callbacks refer to it).
class ResponseScheduler {
 public:
  ResponseScheduler();
  ResponseScheduler(const ResponseScheduler&) = delete;
  ResponseScheduler& operator=(const ResponseScheduler&) = delete;
  ~ResponseScheduler();  // Stop().

  // Plays `plan` on `writer`. After Stop the writer is dropped at once.
  void Play(ResponsePlan plan, std::unique_ptr<core::HttpResponseWriter> writer);

  // Drops the writers of hanging playbacks, now and from now on.
  void DropHangs();

  // Drops every pending playback's writer and joins the timer thread.
  // Idempotent.
  void Stop();

 private:
  class Playback;

  // Runs `work` on the timer thread; false (work dropped) after Stop.
  template <typename Work>
  bool Post(Work work);

  // Timer thread only.
  void Adopt(const std::shared_ptr<Playback>& playback);
  void Continue(const std::shared_ptr<Playback>& playback);
  void Wait(const std::shared_ptr<Playback>& playback);
  void Cancel(const std::shared_ptr<Playback>& playback);

  boost::asio::io_context context_{1};
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::thread thread_;

  absl::Mutex mu_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;

  // Timer thread only.
  absl::flat_hash_set<std::shared_ptr<Playback>> playing_;
  bool drop_hangs_ = false;
};

}  // namespace flowork::mockllm

#endif  // FLOWORK_MOCKLLM_SRC_RESPONSE_PLAN_H_
