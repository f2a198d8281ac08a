#include "response_plan.h"

#include <algorithm>
#include <atomic>
#include <optional>
#include <utility>

#include "boost/asio/post.hpp"
#include "boost/asio/steady_timer.hpp"

namespace flowork::mockllm {

namespace asio = boost::asio;

ResponsePlan WholeResponsePlan(core::HttpResponse response, absl::Duration delay) {
  ResponsePlan plan;
  plan.push_back({.kind = Step::Kind::kSend, .delay = delay, .response = std::move(response)});
  return plan;
}

ResponsePlan StreamResponsePlan(core::HttpHeaders headers, StreamEvents events,
                                const MockKnobs& knobs) {
  ResponsePlan plan;
  plan.push_back({.kind = Step::Kind::kStartStream,
                  .delay = knobs.latency,
                  .response = {.status = 200, .headers = std::move(headers)}});
  const absl::Duration first = std::max(knobs.ttft, knobs.late_first_token);
  const size_t deltas = events.deltas.size();
  const std::optional<size_t> cut_before =
      knobs.cut_after >= 0 ? std::optional<size_t>(std::min<size_t>(knobs.cut_after, deltas))
                           : std::nullopt;
  std::string pending = std::move(events.prelude);  // Goes out with the next write.
  for (size_t i = 0; i <= deltas; ++i) {
    const absl::Duration delay = i == 0 ? first : knobs.chunk_interval;
    if (cut_before == i) {
      plan.push_back({.kind = Step::Kind::kCut, .delay = std::max(delay, kCutFlushDelay)});
      return plan;
    }
    if (i == deltas) {
      plan.push_back({.kind = Step::Kind::kWrite,
                      .delay = deltas == 0 ? first : absl::ZeroDuration(),
                      .data = pending + events.epilogue});
      break;
    }
    const bool malformed = knobs.malformed_chunk == static_cast<int>(i) + 1;
    plan.push_back({.kind = Step::Kind::kWrite,
                    .delay = delay,
                    .data = pending + (malformed ? events.malformed : events.deltas[i])});
    pending.clear();
  }
  plan.push_back({.kind = Step::Kind::kFinish});
  return plan;
}

ResponsePlan HangPlan() { return {{.kind = Step::Kind::kHang}}; }

ResponsePlan TrickledPlan(ResponsePlan plan, absl::Duration every, size_t piece_bytes) {
  ResponsePlan trickled;
  auto add_pieces = [&](const std::string& bytes, absl::Duration first_delay) {
    for (size_t at = 0; at < bytes.size(); at += piece_bytes) {
      trickled.push_back({.kind = Step::Kind::kWrite,
                          .delay = at == 0 ? first_delay : every,
                          .data = bytes.substr(at, piece_bytes)});
    }
  };
  for (Step& step : plan) {
    switch (step.kind) {
      case Step::Kind::kSend: {
        std::string body = std::move(step.response.body);
        trickled.push_back({.kind = Step::Kind::kStartStream,
                            .delay = step.delay,
                            .response = {.status = step.response.status,
                                         .headers = std::move(step.response.headers)}});
        add_pieces(body, every);
        trickled.push_back({.kind = Step::Kind::kFinish});
        break;
      }
      case Step::Kind::kWrite:
        add_pieces(step.data, step.delay);
        break;
      default:
        trickled.push_back(std::move(step));
        break;
    }
  }
  return trickled;
}

// One plan being played. Touched by one thread at a time: the caller of Play
// until it is adopted, then the timer thread.
class ResponseScheduler::Playback {
 public:
  enum class Progress { kDone, kWaiting, kHanging };

  Playback(ResponsePlan plan, std::unique_ptr<core::HttpResponseWriter> writer)
      : plan_(std::move(plan)), writer_(std::move(writer)) {}

  core::HttpResponseWriter& writer() { return *writer_; }

  // Runs the steps that are due; stops before one that has to wait.
  Progress RunDueSteps() {
    for (; next_ < plan_.size() && writer_ != nullptr; ++next_) {
      Step& step = plan_[next_];
      if (step.delay > absl::ZeroDuration()) return Progress::kWaiting;
      switch (step.kind) {
        case Step::Kind::kSend:
          writer_->Send(std::move(step.response));
          writer_.reset();
          break;
        case Step::Kind::kStartStream:
          writer_->StartStream(step.response.status, std::move(step.response.headers));
          break;
        case Step::Kind::kWrite:
          if (!writer_->Write(std::move(step.data))) writer_.reset();  // The client left.
          break;
        case Step::Kind::kFinish:
          writer_->Finish();
          writer_.reset();
          break;
        case Step::Kind::kCut:
          writer_.reset();
          break;
        case Step::Kind::kHang:
          return Progress::kHanging;
      }
    }
    writer_.reset();  // A plan that ends without an answer answers 500.
    return Progress::kDone;
  }

  // The wait before the next step; starts it on `context`.
  void StartTimer(asio::io_context& context, absl::AnyInvocable<void(bool expired)> then) {
    if (!timer_.has_value()) timer_.emplace(context);
    Step& step = plan_[next_];
    timer_->expires_after(absl::ToChronoNanoseconds(step.delay));
    step.delay = absl::ZeroDuration();  // Due once the timer expires.
    timer_->async_wait(
        [then = std::move(then)](const boost::system::error_code& ec) mutable { then(!ec); });
  }

  // Drops the writer (the client sees a 500 or a cut) and any timer.
  void Abort() {
    cancelled_ = true;
    if (timer_.has_value()) timer_->cancel();
    writer_.reset();
  }

  bool cancelled() const { return cancelled_; }
  // Set, from any thread, when the client has gone.
  const std::shared_ptr<std::atomic<bool>>& client_gone() const { return client_gone_; }
  bool hanging() const {
    return writer_ != nullptr && next_ < plan_.size() && plan_[next_].kind == Step::Kind::kHang;
  }

 private:
  ResponsePlan plan_;
  size_t next_ = 0;
  std::unique_ptr<core::HttpResponseWriter> writer_;
  std::optional<asio::steady_timer> timer_;
  bool cancelled_ = false;
  const std::shared_ptr<std::atomic<bool>> client_gone_ =
      std::make_shared<std::atomic<bool>>(false);
};

ResponseScheduler::ResponseScheduler()
    : work_(asio::make_work_guard(context_)), thread_([this] { context_.run(); }) {}

ResponseScheduler::~ResponseScheduler() { Stop(); }

// A dropped `work` is destroyed after the lock is released (parameters
// outlive locals), so destructors it runs may Post again.
template <typename Work>
bool ResponseScheduler::Post(Work work) {
  absl::MutexLock lock(&mu_);
  if (stopped_) return false;
  asio::post(context_, std::move(work));
  return true;
}

void ResponseScheduler::Play(ResponsePlan plan, std::unique_ptr<core::HttpResponseWriter> writer) {
  auto playback = std::make_shared<Playback>(std::move(plan), std::move(writer));
  if (playback->RunDueSteps() == Playback::Progress::kDone) return;
  // From here on the playback belongs to the timer thread. A client that
  // leaves cancels it there: at once when adopted, else on adoption. A
  // callback that outlives the playback finds it gone.
  playback->writer().OnCancel(
      [this, gone = playback->client_gone(), weak = std::weak_ptr<Playback>(playback)] {
        gone->store(true);
        Post([this, weak] {
          std::shared_ptr<Playback> playback = weak.lock();
          if (playback != nullptr && playing_.contains(playback)) Cancel(playback);
        });
      });
  // If this is dropped (after Stop), so is the writer, answering 500 or
  // cutting the stream.
  Post([this, playback] { Adopt(playback); });
}

void ResponseScheduler::Adopt(const std::shared_ptr<Playback>& playback) {
  if (playback->client_gone()->load()) return playback->Abort();
  playing_.insert(playback);
  if (playback->hanging()) {
    if (drop_hangs_) Cancel(playback);
    return;
  }
  Wait(playback);
}

void ResponseScheduler::Wait(const std::shared_ptr<Playback>& playback) {
  playback->StartTimer(context_, [this, playback](bool expired) {
    if (!expired || playback->cancelled()) return;
    Continue(playback);
  });
}

void ResponseScheduler::Continue(const std::shared_ptr<Playback>& playback) {
  switch (playback->RunDueSteps()) {
    case Playback::Progress::kDone:
      playing_.erase(playback);
      return;
    case Playback::Progress::kWaiting:
      Wait(playback);
      return;
    case Playback::Progress::kHanging:
      if (drop_hangs_) Cancel(playback);
      return;
  }
}

void ResponseScheduler::Cancel(const std::shared_ptr<Playback>& playback) {
  playback->Abort();
  playing_.erase(playback);
}

void ResponseScheduler::DropHangs() {
  Post([this] {
    drop_hangs_ = true;
    std::vector<std::shared_ptr<Playback>> hanging;
    for (const std::shared_ptr<Playback>& playback : playing_) {
      if (playback->hanging()) hanging.push_back(playback);
    }
    for (const std::shared_ptr<Playback>& playback : hanging) Cancel(playback);
  });
}

void ResponseScheduler::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    // Queued after every playback already posted, so it sees them all.
    asio::post(context_, [this] {
      for (const std::shared_ptr<Playback>& playback : playing_) playback->Abort();
      playing_.clear();
    });
    stopped_ = true;
  }
  work_.reset();
  thread_.join();
}

}  // namespace flowork::mockllm
