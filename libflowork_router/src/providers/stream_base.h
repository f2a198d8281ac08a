// Private to the translators: the bookkeeping every StreamTranslator shares.
#ifndef FLOWORK_ROUTER_SRC_PROVIDERS_STREAM_BASE_H_
#define FLOWORK_ROUTER_SRC_PROVIDERS_STREAM_BASE_H_

#include <exception>
#include <string>
#include <string_view>

#include "providers/translation.h"

namespace flowork::router::wire {

// Holds what a stream has shown so far. Subclasses write the fields; the
// accessors read them. Not thread-safe.
class StreamProgress : public StreamTranslator {
 public:
  bool saw_content() const override { return saw_content_; }
  bool saw_finish() const override { return saw_finish_; }
  bool saw_end() const override { return saw_end_; }
  int malformed_events() const override { return malformed_; }
  TokenUsage usage() const override { return usage_; }
  const std::string& text() const override { return text_; }

 protected:
  // Runs `f`, which appends to `out`. An exception (Boost.JSON throws, if
  // only on allocation failure) must not cross Feed or Finish: the event
  // being handled counts as malformed and what was written stays.
  template <typename F>
  std::string Guarded(F&& f) {
    std::string out;
    try {
      f(out);
    } catch (const std::exception&) {
      ++malformed_;
    }
    return out;
  }

  bool saw_content_ = false;
  bool saw_finish_ = false;
  bool saw_end_ = false;
  int malformed_ = 0;
  TokenUsage usage_;
  std::string text_;
};

}  // namespace flowork::router::wire

#endif  // FLOWORK_ROUTER_SRC_PROVIDERS_STREAM_BASE_H_
