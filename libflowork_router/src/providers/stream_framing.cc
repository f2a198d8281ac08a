#include "providers/stream_framing.h"

#include <utility>

namespace flowork::router::wire {

std::vector<SseEvent> SseReader::Feed(std::string_view bytes) {
  std::vector<SseEvent> events;
  size_t i = 0;
  if (pending_cr_ && !bytes.empty()) {
    pending_cr_ = false;
    if (bytes[0] == '\n') {
      AppendText("\n");
      i = 1;
    }
    EndLine(events);
  }
  while (i < bytes.size()) {
    const size_t end = bytes.find_first_of("\r\n", i);
    const std::string_view text =
        bytes.substr(i, end == std::string_view::npos ? std::string_view::npos : end - i);
    if (!text.empty()) line_has_bytes_ = true;
    AppendText(text);
    if (!event_.oversized) line_.append(text);
    if (end == std::string_view::npos) break;
    if (bytes[end] == '\n') {
      AppendText("\n");
      i = end + 1;
    } else {
      AppendText("\r");
      if (end + 1 == bytes.size()) {
        // Whether a LF follows is only known with the next bytes; ending
        // the line now could split a CRLF across two forwarded events.
        pending_cr_ = true;
        break;
      }
      i = end + 1;
      if (bytes[i] == '\n') {
        AppendText("\n");
        ++i;
      }
    }
    EndLine(events);
  }
  return events;
}

std::vector<SseEvent> SseReader::Finish() {
  std::vector<SseEvent> events;
  if (pending_cr_) {
    pending_cr_ = false;
    EndLine(events);
  }
  return events;
}

void SseReader::AppendText(std::string_view text) {
  if (event_.oversized) return;
  if (event_.raw.size() + text.size() > kMaxFrameBytes) {
    event_.oversized = true;
    line_.clear();
    return;
  }
  event_.raw.append(text);
}

void SseReader::EndLine(std::vector<SseEvent>& events) {
  if (!line_has_bytes_) {
    events.push_back(std::move(event_));
    event_ = SseEvent();
    return;
  }
  line_has_bytes_ = false;
  // An oversized event's lines are no longer kept; it is dropped whole.
  std::string_view line = line_;
  if (!event_.oversized && line[0] != ':') {
    const size_t colon = line.find(':');
    std::string_view field = line.substr(0, colon);
    std::string_view value =
        colon == std::string_view::npos ? std::string_view() : line.substr(colon + 1);
    if (!value.empty() && value[0] == ' ') value.remove_prefix(1);
    if (field == "data") {
      if (event_.has_data) event_.data += '\n';
      event_.data.append(value);
      event_.has_data = true;
    } else if (field == "event") {
      event_.name = std::string(value);
    }
  }
  line_.clear();
}

std::vector<NdjsonLine> NdjsonReader::Feed(std::string_view bytes) {
  std::vector<NdjsonLine> lines;
  size_t i = 0;
  while (i < bytes.size()) {
    const size_t end = bytes.find('\n', i);
    const std::string_view text =
        bytes.substr(i, end == std::string_view::npos ? std::string_view::npos : end - i);
    if (!line_.oversized) {
      if (line_.text.size() + text.size() > kMaxFrameBytes) {
        line_.oversized = true;
        line_.text.clear();
      } else {
        line_.text.append(text);
      }
    }
    if (end == std::string_view::npos) break;
    Complete(lines);
    i = end + 1;
  }
  return lines;
}

std::vector<NdjsonLine> NdjsonReader::Finish() {
  std::vector<NdjsonLine> lines;
  Complete(lines);
  return lines;
}

void NdjsonReader::Complete(std::vector<NdjsonLine>& lines) {
  if (!line_.text.empty() && line_.text.back() == '\r') line_.text.pop_back();
  const bool blank = line_.text.find_first_not_of(" \t") == std::string::npos;
  if (!blank || line_.oversized) lines.push_back(std::move(line_));
  line_ = NdjsonLine();
}

}  // namespace flowork::router::wire
