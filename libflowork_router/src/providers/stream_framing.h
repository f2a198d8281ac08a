// Private to the translators: cutting an upstream byte stream, delivered in
// arbitrary pieces, into server-sent events or NDJSON lines. Not thread-safe.
#ifndef FLOWORK_ROUTER_SRC_PROVIDERS_STREAM_FRAMING_H_
#define FLOWORK_ROUTER_SRC_PROVIDERS_STREAM_FRAMING_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace flowork::router::wire {

// An event or line larger than this is dropped as malformed rather than
// buffered without bound.
inline constexpr std::size_t kMaxFrameBytes = 16 << 20;

// One server-sent event as received.
struct SseEvent {
  std::string name;        // The "event:" field; "" when absent.
  std::string data;        // The "data:" lines, joined by "\n".
  bool has_data = false;   // At least one "data:" line.
  bool oversized = false;  // Larger than kMaxFrameBytes; the rest is cut.
  std::string raw;         // The event's bytes as received, blank line included.
};

// Splits a text/event-stream per the WHATWG rules: lines end in CRLF, LF or
// CR; a blank line ends an event; lines starting with ':' are comments; one
// space after a field's colon is dropped. An event left unfinished when the
// stream ends is discarded, as the spec says.
class SseReader {
 public:
  // Consumes `bytes` and returns the events they complete, in order.
  std::vector<SseEvent> Feed(std::string_view bytes);
  // The stream ended: completes a line whose CR was the last byte seen.
  std::vector<SseEvent> Finish();

 private:
  void AppendText(std::string_view text);
  void EndLine(std::vector<SseEvent>& events);

  std::string line_;             // The current line, without its terminator.
  bool line_has_bytes_ = false;  // Even when an oversized event keeps none.
  bool pending_cr_ = false;      // The last byte was a CR; a LF may complete it.
  SseEvent event_;
};

// One NDJSON line.
struct NdjsonLine {
  std::string text;        // Without its "\n" or "\r\n".
  bool oversized = false;  // Larger than kMaxFrameBytes; the rest is cut.
};

// Splits newline-delimited JSON. Blank lines are skipped.
class NdjsonReader {
 public:
  // Consumes `bytes` and returns the lines they complete, in order.
  std::vector<NdjsonLine> Feed(std::string_view bytes);
  // The stream ended: the last line when it had no newline.
  std::vector<NdjsonLine> Finish();

 private:
  void Complete(std::vector<NdjsonLine>& lines);

  NdjsonLine line_;
};

}  // namespace flowork::router::wire

#endif  // FLOWORK_ROUTER_SRC_PROVIDERS_STREAM_FRAMING_H_
