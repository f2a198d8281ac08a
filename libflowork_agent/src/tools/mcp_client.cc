#include "flowork/agent/mcp_client.h"

#include <pthread.h>
#include <signal.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "boost/asio/executor_work_guard.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/posix/stream_descriptor.hpp"
#include "boost/asio/post.hpp"
#include "boost/asio/steady_timer.hpp"
#include "boost/asio/write.hpp"
#include "boost/json.hpp"
#include "flowork/core/internal/strings.h"
#include "flowork/core/logging.h"
#include "tools/child_process.h"

namespace flowork::agent {
namespace internal {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using core::internal::ToAbsl;

constexpr std::string_view kSupportedVersions[] = {"2024-11-05", "2025-03-26", "2025-06-18"};
constexpr char kSupportedVersionList[] = "2024-11-05, 2025-03-26, 2025-06-18";
// How much of the server's stderr an error message quotes.
constexpr size_t kStderrTailBytes = 1024;
// After the server's stdout closes, how long to wait for its stderr and exit
// status before failing the calls in flight.
constexpr absl::Duration kDeathDrain = absl::Milliseconds(500);
// A server whose cursors never end is broken, not large.
constexpr int kMaxListPages = 1000;
// Longer waits are as good as none, and keep steady_timer from overflowing.
constexpr absl::Duration kLongestWait = absl::Hours(24 * 365);

bool IsSupportedVersion(std::string_view version) {
  for (std::string_view v : kSupportedVersions) {
    if (v == version) return true;
  }
  return false;
}

std::string_view View(const json::string& s) { return {s.data(), s.size()}; }

// The string at `key` of `object`, or "" when absent or not a string.
std::string StringAt(const json::object& object, std::string_view key) {
  const json::value* v = object.if_contains(json::string_view(key.data(), key.size()));
  if (v == nullptr || !v->is_string()) return "";
  return std::string(View(v->get_string()));
}

void ToProto(const json::value& in, google::protobuf::Value* out) {
  switch (in.kind()) {
    case json::kind::null:
      out->set_null_value(google::protobuf::NULL_VALUE);
      break;
    case json::kind::bool_:
      out->set_bool_value(in.get_bool());
      break;
    case json::kind::int64:
      out->set_number_value(static_cast<double>(in.get_int64()));
      break;
    case json::kind::uint64:
      out->set_number_value(static_cast<double>(in.get_uint64()));
      break;
    case json::kind::double_:
      out->set_number_value(in.get_double());
      break;
    case json::kind::string:
      out->set_string_value(std::string(View(in.get_string())));
      break;
    case json::kind::array: {
      google::protobuf::ListValue* list = out->mutable_list_value();
      for (const json::value& item : in.get_array()) ToProto(item, list->add_values());
      break;
    }
    case json::kind::object: {
      auto* fields = out->mutable_struct_value()->mutable_fields();
      for (const auto& [key, value] : in.get_object()) {
        ToProto(value, &(*fields)[std::string(key.data(), key.size())]);
      }
      break;
    }
  }
}

json::value ToJson(const google::protobuf::Value& in) {
  switch (in.kind_case()) {
    case google::protobuf::Value::kNumberValue: {
      const double d = in.number_value();
      if (!std::isfinite(d)) return nullptr;
      // Whole numbers go out as integers: a tool that takes a count should
      // see 3, not 3.0.
      if (d == std::trunc(d) && std::fabs(d) < 9.0e15) return static_cast<int64_t>(d);
      return d;
    }
    case google::protobuf::Value::kStringValue:
      return json::string(in.string_value());
    case google::protobuf::Value::kBoolValue:
      return in.bool_value();
    case google::protobuf::Value::kStructValue: {
      json::object object;
      for (const auto& [key, value] : in.struct_value().fields()) object[key] = ToJson(value);
      return object;
    }
    case google::protobuf::Value::kListValue: {
      json::array array;
      for (const google::protobuf::Value& value : in.list_value().values()) {
        array.push_back(ToJson(value));
      }
      return array;
    }
    case google::protobuf::Value::kNullValue:
    case google::protobuf::Value::KIND_NOT_SET:
      break;
  }
  return nullptr;
}

absl::StatusOr<json::object> ArgumentsToJson(const google::protobuf::Value& arguments) {
  switch (arguments.kind_case()) {
    case google::protobuf::Value::KIND_NOT_SET:
    case google::protobuf::Value::kNullValue:
      return json::object();
    case google::protobuf::Value::kStructValue:
      return std::move(ToJson(arguments).as_object());
    default:
      return absl::InvalidArgumentError("arguments: must be a JSON object");
  }
}

// The request id of a response: we send integers, and accept them back as
// numbers or numeric strings.
std::optional<int64_t> RequestId(const json::value& id) {
  if (id.is_int64()) return id.get_int64();
  if (id.is_uint64() && id.get_uint64() <= INT64_MAX) return static_cast<int64_t>(id.get_uint64());
  if (id.is_double() && id.get_double() == std::trunc(id.get_double())) {
    return static_cast<int64_t>(id.get_double());
  }
  if (id.is_string()) {
    int64_t value = 0;
    std::string_view s = View(id.get_string());
    if (s.empty() || s.size() > 18) return std::nullopt;
    for (char c : s) {
      if (c < '0' || c > '9') return std::nullopt;
      value = value * 10 + (c - '0');
    }
    return value;
  }
  return std::nullopt;
}

absl::Status RpcErrorStatus(std::string_view prefix, const json::value& error) {
  int64_t code = 0;
  std::string message = "no message";
  if (error.is_object()) {
    const json::object& object = error.get_object();
    if (const json::value* c = object.if_contains("code"); c != nullptr && c->is_int64()) {
      code = c->get_int64();
    }
    if (std::string m = StringAt(object, "message"); !m.empty()) message = std::move(m);
  }
  std::string text = absl::StrCat(ToAbsl(prefix), ": ", message, " (JSON-RPC error ", code, ")");
  switch (code) {
    case -32602:
      return absl::InvalidArgumentError(text);
    case -32601:
      return absl::UnimplementedError(text);
    case -32002:
      return absl::NotFoundError(text);
    case -32700:
    case -32600:
    case -32603:
      return absl::InternalError(text);
    default:
      return absl::UnknownError(text);
  }
}

// One item of a tool result's `content`, as text.
std::string ContentText(const json::value& item) {
  if (!item.is_object()) return "";
  const json::object& object = item.get_object();
  const std::string type = StringAt(object, "type");
  if (type == "text") return StringAt(object, "text");
  if (type == "resource") {
    if (const json::value* r = object.if_contains("resource"); r != nullptr && r->is_object()) {
      if (r->get_object().contains("text")) return StringAt(r->get_object(), "text");
      return absl::StrCat("[resource ", StringAt(r->get_object(), "uri"), "]");
    }
  }
  if (type == "resource_link") return absl::StrCat("[resource ", StringAt(object, "uri"), "]");
  std::string mime = StringAt(object, "mimeType");
  return absl::StrCat("[", type.empty() ? "content" : type, mime.empty() ? "" : " ", mime, "]");
}

absl::StatusOr<v1::ToolResult> ParseToolResult(std::string_view prefix, const json::value& result) {
  if (!result.is_object()) {
    return absl::InternalError(absl::StrCat(ToAbsl(prefix), ": the result is not an object"));
  }
  const json::object& object = result.get_object();
  std::vector<std::string> parts;
  if (const json::value* content = object.if_contains("content");
      content != nullptr && content->is_array()) {
    for (const json::value& item : content->get_array()) parts.push_back(ContentText(item));
  }
  std::string text = absl::StrJoin(parts, "\n");
  const json::value* is_error = object.if_contains("isError");
  v1::ToolResult tool_result;
  if (is_error != nullptr && is_error->is_bool() && is_error->get_bool()) {
    tool_result.set_error(text.empty() ? "the tool reported an error without a message" : text);
    return tool_result;
  }
  if (const json::value* structured = object.if_contains("structuredContent");
      structured != nullptr && !structured->is_null()) {
    ToProto(*structured, tool_result.mutable_output());
  } else {
    tool_result.mutable_output()->set_string_value(std::move(text));
  }
  return tool_result;
}

// Appends one tools/list page to `tools`; sets `next_cursor` ("" at the end).
absl::Status AppendTools(const json::value& result, std::vector<McpTool>& tools,
                         std::string& next_cursor) {
  if (!result.is_object()) return absl::InternalError("tools/list: the result is not an object");
  const json::object& object = result.get_object();
  const json::value* list = object.if_contains("tools");
  if (list == nullptr || !list->is_array()) {
    return absl::InternalError("tools/list: the result has no \"tools\" array");
  }
  for (const json::value& item : list->get_array()) {
    const size_t index = tools.size();
    if (!item.is_object() || StringAt(item.get_object(), "name").empty()) {
      return absl::InternalError(absl::StrCat("tools/list: tools[", index, "] has no name"));
    }
    const json::object& tool = item.get_object();
    McpTool& out = tools.emplace_back();
    out.name = StringAt(tool, "name");
    out.description = StringAt(tool, "description");
    const json::value* schema = tool.if_contains("inputSchema");
    out.input_schema = schema != nullptr && schema->is_object() ? json::serialize(*schema)
                                                                : R"({"type":"object"})";
  }
  next_cursor = StringAt(object, "nextCursor");
  return absl::OkStatus();
}

template <typename Closeable>
void CloseQuietly(Closeable& closeable) {
  boost::system::error_code ignored;
  closeable.close(ignored);
}

}  // namespace

// The client's state and its I/O thread. Every member below `thread_` is
// touched only on that thread; the public entry points post to it.
class McpSession : public std::enable_shared_from_this<McpSession> {
 public:
  using Reply = absl::StatusOr<json::value>;
  using ReplyCallback = absl::AnyInvocable<void(Reply) &&>;

  McpSession(const McpServerOptions& options, std::unique_ptr<ChildProcess> child)
      : options_(options),
        label_(absl::StrCat("mcp server \"", options.command, "\"")),
        child_(std::move(child)),
        work_(asio::make_work_guard(io_)),
        stdin_(io_, child_->TakeStdin()),
        stdout_(io_, child_->TakeStdout()),
        stderr_(io_, child_->TakeStderr()),
        death_timer_(io_) {}

  ~McpSession() {
    if (thread_.joinable()) {  // Start failed before Shutdown; not expected.
      work_.reset();
      io_.stop();
      thread_.join();
    }
  }

  void StartThread() {
    thread_ = std::thread([this] {
      // A write to a server that died must fail with EPIPE, not kill the
      // program; only this thread writes to the server.
      sigset_t pipe;
      sigemptyset(&pipe);
      sigaddset(&pipe, SIGPIPE);
      pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
      io_.run();
      // Set when the client was destroyed on this thread: the session ends
      // here, after run() has returned.
      std::shared_ptr<McpSession> last_reference = std::move(keepalive_);
    });
    thread_id_ = thread_.get_id();
    Post([this] {
      ReadStdout();
      ReadStderr();
    });
  }

  // The handshake; blocks the caller.
  absl::Status Initialize() {
    struct Outcome {
      absl::Notification done;
      absl::Status status;
    };
    auto outcome = std::make_shared<Outcome>();
    Post([this, outcome] {
      json::object params;
      params["protocolVersion"] = options_.protocol_version;
      params["capabilities"] = json::object();
      params["clientInfo"] = {{"name", "flowork"}, {"version", "0.1.0"}};
      SendRequest(NextId(), "initialize", "initialize", std::move(params), options_.startup_timeout,
                  [this, outcome](Reply reply) {
                    outcome->status = OnInitialized(std::move(reply));
                    outcome->done.Notify();
                  });
    });
    outcome->done.WaitForNotification();
    return outcome->status;
  }

  // Fails what is in flight, stops the server and ends the I/O thread. Once.
  void Shutdown() {
    const bool on_io_thread = std::this_thread::get_id() == thread_id_;
    RunOnIoThread(on_io_thread, [this] {
      closing_ = true;
      FailAll(absl::CancelledError(absl::StrCat(label_, ": the client was destroyed")));
      // EOF on stdin is how MCP asks a stdio server to exit.
      CloseQuietly(stdin_);
    });
    // Meanwhile the I/O thread drains the server's stdout and stderr, so it
    // cannot block on a full pipe while exiting.
    child_->Stop(options_.shutdown_grace);
    RunOnIoThread(on_io_thread, [this] {
      CloseQuietly(stdout_);
      CloseQuietly(stderr_);
      death_timer_.cancel();
    });
    work_.reset();
    if (on_io_thread) {
      keepalive_ = shared_from_this();
      thread_.detach();
    } else {
      thread_.join();
    }
  }

  const McpServerInfo& info() const { return info_; }

  void ListTools(McpClient::ListToolsCallback done) {
    Post([this, done = std::move(done)]() mutable {
      auto listing = std::make_shared<Listing>();
      listing->done = std::move(done);
      ListPage(std::move(listing), "");
    });
  }

  std::shared_ptr<McpToolCall> CallTool(std::string name, google::protobuf::Value arguments,
                                        absl::Duration timeout, McpClient::CallToolCallback done);

  // Thread-safe.
  void Cancel(int64_t id) {
    Post([this, id] {
      auto it = pending_.find(id);
      if (it == pending_.end()) return;
      std::unique_ptr<Pending> pending = std::move(it->second);
      pending_.erase(it);
      pending->timer.cancel();
      NotifyCancelled(id, *pending, "cancelled by the client");
      std::move(pending->done)(
          absl::CancelledError(absl::StrCat(label_, ": ", pending->what, ": cancelled")));
    });
  }

  const McpServerOptions& options() const { return options_; }

 private:
  // A request waiting for its answer.
  struct Pending {
    explicit Pending(asio::io_context& io) : timer(io) {}
    std::string method;
    // How messages name it, e.g. `tools/call "search"`.
    std::string what;
    absl::Duration timeout;
    asio::steady_timer timer;
    ReplyCallback done;
  };

  // A ListTools call across its pages.
  struct Listing {
    std::vector<McpTool> tools;
    McpClient::ListToolsCallback done;
    int pages = 0;
  };

  template <typename Fn>
  void Post(Fn&& fn) {
    asio::post(io_, std::forward<Fn>(fn));
  }

  template <typename Fn>
  void RunOnIoThread(bool on_io_thread, Fn&& fn) {
    if (on_io_thread) {
      fn();
    } else {
      Post(std::forward<Fn>(fn));
    }
  }

  int64_t NextId() { return next_id_.fetch_add(1, std::memory_order_relaxed); }

  // ---- Everything below runs on the I/O thread. ----

  absl::Status OnInitialized(Reply reply) {
    if (!reply.ok()) {
      if (absl::IsDeadlineExceeded(reply.status())) {
        return absl::UnavailableError(absl::StrCat(label_, " did not answer initialize within ",
                                                   absl::FormatDuration(options_.startup_timeout),
                                                   StderrTail()));
      }
      return reply.status();
    }
    if (!reply->is_object()) {
      return absl::UnavailableError(
          absl::StrCat(label_, ": initialize: the result is not an object"));
    }
    const json::object& result = reply->get_object();
    info_.protocol_version = StringAt(result, "protocolVersion");
    if (!IsSupportedVersion(info_.protocol_version)) {
      return absl::FailedPreconditionError(
          absl::StrCat(label_, " speaks protocol \"", info_.protocol_version,
                       "\"; this client speaks ", kSupportedVersionList));
    }
    if (const json::value* server = result.if_contains("serverInfo");
        server != nullptr && server->is_object()) {
      info_.name = StringAt(server->get_object(), "name");
      info_.version = StringAt(server->get_object(), "version");
    }
    info_.instructions = StringAt(result, "instructions");
    SendNotification("notifications/initialized", json::object());
    return absl::OkStatus();
  }

  void ListPage(std::shared_ptr<Listing> listing, const std::string& cursor) {
    json::object params;
    if (!cursor.empty()) params["cursor"] = cursor;
    SendRequest(NextId(), "tools/list", "tools/list", std::move(params), options_.call_timeout,
                [this, listing = std::move(listing)](Reply reply) mutable {
                  if (!reply.ok()) return std::move(listing->done)(reply.status());
                  std::string next_cursor;
                  absl::Status appended = AppendTools(*reply, listing->tools, next_cursor);
                  if (!appended.ok()) {
                    return std::move(listing->done)(absl::Status(
                        appended.code(), absl::StrCat(label_, ": ", appended.message())));
                  }
                  if (next_cursor.empty())
                    return std::move(listing->done)(std::move(listing->tools));
                  if (++listing->pages >= kMaxListPages) {
                    return std::move(listing->done)(absl::InternalError(absl::StrCat(
                        label_, ": tools/list: still more pages after ", kMaxListPages)));
                  }
                  ListPage(std::move(listing), next_cursor);
                });
  }

  void SendRequest(int64_t id, std::string method, std::string what, json::object params,
                   absl::Duration timeout, ReplyCallback done) {
    if (closing_) {
      return std::move(done)(
          absl::CancelledError(absl::StrCat(label_, ": the client was destroyed")));
    }
    if (dead_.has_value()) return std::move(done)(*dead_);
    auto pending = std::make_unique<Pending>(io_);
    pending->method = method;
    pending->what = std::move(what);
    pending->timeout = timeout;
    pending->done = std::move(done);
    if (timeout < kLongestWait) {
      pending->timer.expires_after(absl::ToChronoNanoseconds(timeout));
      pending->timer.async_wait([this, id](boost::system::error_code ec) {
        if (!ec) OnTimeout(id);
      });
    }
    pending_.emplace(id, std::move(pending));
    // While the server is dying the request waits to fail with the others.
    if (dying_) return;
    json::object message;
    message["jsonrpc"] = "2.0";
    message["id"] = id;
    message["method"] = method;
    message["params"] = std::move(params);
    Write(json::serialize(message));
  }

  void SendNotification(std::string_view method, json::object params) {
    json::object message;
    message["jsonrpc"] = "2.0";
    message["method"] = json::string_view(method.data(), method.size());
    message["params"] = std::move(params);
    Write(json::serialize(message));
  }

  void NotifyCancelled(int64_t id, const Pending& pending, std::string_view reason) {
    // The spec forbids cancelling initialize.
    if (pending.method == "initialize") return;
    json::object params;
    params["requestId"] = id;
    params["reason"] = json::string_view(reason.data(), reason.size());
    SendNotification("notifications/cancelled", std::move(params));
  }

  void OnTimeout(int64_t id) {
    auto it = pending_.find(id);
    if (it == pending_.end()) return;
    std::unique_ptr<Pending> pending = std::move(it->second);
    pending_.erase(it);
    NotifyCancelled(id, *pending, "timed out");
    std::move(pending->done)(absl::DeadlineExceededError(
        absl::StrCat(label_, ": ", pending->what, " got no answer within ",
                     absl::FormatDuration(pending->timeout))));
  }

  void FailAll(const absl::Status& status) {
    absl::flat_hash_map<int64_t, std::unique_ptr<Pending>> failed;
    failed.swap(pending_);
    for (auto& [id, pending] : failed) {
      pending->timer.cancel();
      std::move(pending->done)(status);
    }
  }

  void Write(std::string line) {
    if (dying_ || closing_ || !stdin_.is_open()) return;
    line.push_back('\n');
    outbox_.push_back(std::move(line));
    if (!writing_) WriteNext();
  }

  void WriteNext() {
    writing_ = true;
    // deque::push_back leaves the front element where it is.
    asio::async_write(stdin_, asio::buffer(outbox_.front()),
                      [this](boost::system::error_code ec, size_t) {
                        writing_ = false;
                        if (ec == asio::error::operation_aborted) return;
                        if (ec) return BeginDeath("stopped reading its stdin");
                        outbox_.pop_front();
                        if (!outbox_.empty()) WriteNext();
                      });
  }

  void ReadStdout() {
    stdout_.async_read_some(asio::buffer(stdout_chunk_),
                            [this](boost::system::error_code ec, size_t n) {
                              if (ec == asio::error::operation_aborted) return;
                              if (ec) return BeginDeath("closed its stdout");
                              OnStdout(std::string_view(stdout_chunk_.data(), n));
                              if (stdout_.is_open()) ReadStdout();
                            });
  }

  void ReadStderr() {
    stderr_.async_read_some(
        asio::buffer(stderr_chunk_), [this](boost::system::error_code ec, size_t n) {
          if (ec == asio::error::operation_aborted) return;
          if (ec) {
            stderr_eof_ = true;
            return;
          }
          stderr_log_.append(stderr_chunk_.data(), n);
          if (stderr_log_.size() > options_.stderr_buffer_bytes) {
            stderr_log_.erase(0, stderr_log_.size() - options_.stderr_buffer_bytes);
          }
          if (stderr_.is_open()) ReadStderr();
        });
  }

  // Splits the stream into lines; a line longer than max_message_bytes is
  // skipped whole.
  void OnStdout(std::string_view bytes) {
    while (!bytes.empty()) {
      const size_t newline = bytes.find('\n');
      const std::string_view piece = bytes.substr(0, newline);
      if (!skipping_line_) {
        if (line_.size() + piece.size() > options_.max_message_bytes) {
          core::Log(core::LogLevel::kWarning, "mcp: skipped an oversized line from the server",
                    {{"server", label_}, {"limit", absl::StrCat(options_.max_message_bytes)}});
          skipping_line_ = true;
          line_.clear();
        } else {
          line_.append(piece);
        }
      }
      if (newline == std::string_view::npos) return;
      if (!skipping_line_) OnLine(line_);
      line_.clear();
      skipping_line_ = false;
      bytes.remove_prefix(newline + 1);
      // A callback may have destroyed the client.
      if (closing_) return;
    }
  }

  void OnLine(std::string_view line) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
    if (line.empty()) return;
    boost::system::error_code ec;
    json::parse_options parse_options;
    parse_options.max_depth = 256;
    json::value message = json::parse(json::string_view(line.data(), line.size()), ec,
                                      json::storage_ptr(), parse_options);
    if (ec) return SkipMalformed(line, ec.message());
    if (message.is_array()) {
      // A JSON-RPC batch (allowed by 2025-03-26).
      for (json::value& item : message.get_array()) {
        if (!item.is_object()) return SkipMalformed(line, "a batch item is not an object");
        OnMessage(item.get_object());
        if (closing_) return;
      }
      return;
    }
    if (!message.is_object()) return SkipMalformed(line, "not a JSON-RPC message");
    OnMessage(message.get_object());
  }

  void SkipMalformed(std::string_view line, std::string_view why) {
    constexpr size_t kQuoted = 80;
    core::Log(core::LogLevel::kWarning, "mcp: skipped a malformed line from the server",
              {{"server", label_}, {"error", why}, {"line", line.substr(0, kQuoted)}});
  }

  void OnMessage(json::object& message) {
    const json::value* id = message.if_contains("id");
    if (const json::value* method = message.if_contains("method"); method != nullptr) {
      if (!method->is_string()) return SkipMalformed(json::serialize(message), "method");
      // Requests need an answer; notifications (logging, progress, list
      // changes) are ignored.
      if (id != nullptr && !id->is_null()) AnswerServerRequest(*id, View(method->get_string()));
      return;
    }
    if (id == nullptr) return SkipMalformed(json::serialize(message), "neither method nor id");
    const std::optional<int64_t> request_id = RequestId(*id);
    auto it = request_id.has_value() ? pending_.find(*request_id) : pending_.end();
    if (it == pending_.end()) {
      // Typically the late answer to a call that timed out or was cancelled.
      core::Log(core::LogLevel::kDebug, "mcp: dropped an answer to no pending request",
                {{"server", label_}, {"id", json::serialize(*id)}});
      return;
    }
    std::unique_ptr<Pending> pending = std::move(it->second);
    pending_.erase(it);
    pending->timer.cancel();
    const std::string prefix = absl::StrCat(label_, ": ", pending->what);
    if (const json::value* error = message.if_contains("error"); error != nullptr) {
      return std::move(pending->done)(RpcErrorStatus(prefix, *error));
    }
    if (json::value* result = message.if_contains("result"); result != nullptr) {
      return std::move(pending->done)(std::move(*result));
    }
    std::move(pending->done)(
        absl::InternalError(absl::StrCat(prefix, ": the answer has neither result nor error")));
  }

  void AnswerServerRequest(const json::value& id, std::string_view method) {
    json::object reply;
    reply["jsonrpc"] = "2.0";
    reply["id"] = id;
    if (method == "ping") {
      reply["result"] = json::object();
    } else {
      // This client declares no capabilities (sampling, roots, elicitation).
      json::object error;
      error["code"] = -32601;
      error["message"] = absl::StrCat("method not found: ", ToAbsl(method));
      reply["error"] = std::move(error);
    }
    Write(json::serialize(reply));
  }

  // The server is gone or going: stop writing, give its stderr and exit
  // status a moment to arrive, then fail everything.
  void BeginDeath(std::string_view reason) {
    if (dying_ || closing_) return;
    dying_ = true;
    death_reason_ = std::string(reason);
    death_started_ = absl::Now();
    CloseQuietly(stdin_);
    CheckDeath();
  }

  void CheckDeath() {
    const bool reaped = child_->TryReap();
    if ((reaped && stderr_eof_) || absl::Now() - death_started_ >= kDeathDrain) {
      return FinishDeath(reaped);
    }
    death_timer_.expires_after(std::chrono::milliseconds(5));
    death_timer_.async_wait([this](boost::system::error_code ec) {
      if (!ec) CheckDeath();
    });
  }

  void FinishDeath(bool reaped) {
    const std::string how = reaped ? child_->ExitDescription() : death_reason_;
    dead_ = absl::UnavailableError(absl::StrCat(label_, " ", how, StderrTail()));
    core::Log(core::LogLevel::kWarning, "mcp: server is gone",
              {{"server", label_}, {"status", dead_->message()}});
    FailAll(*dead_);
  }

  // "; stderr: \"...\"" with the last lines the server wrote, or "".
  std::string StderrTail() const {
    std::string_view tail = stderr_log_;
    if (tail.size() > kStderrTailBytes) {
      tail = tail.substr(tail.size() - kStderrTailBytes);
      // Start at a line boundary when there is one.
      if (size_t newline = tail.find('\n'); newline != std::string_view::npos) {
        tail.remove_prefix(newline + 1);
      }
    }
    while (!tail.empty() && (tail.back() == '\n' || tail.back() == '\r' || tail.back() == ' ')) {
      tail.remove_suffix(1);
    }
    if (tail.empty()) return "; its stderr is empty";
    return absl::StrCat("; stderr: \"", absl::CEscape(ToAbsl(tail)), "\"");
  }

  const McpServerOptions options_;
  const std::string label_;
  std::unique_ptr<ChildProcess> child_;
  std::atomic<int64_t> next_id_{1};
  // Written by Initialize, before the client exists; read-only afterwards.
  McpServerInfo info_;

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::thread thread_;
  std::thread::id thread_id_;
  std::shared_ptr<McpSession> keepalive_;

  asio::posix::stream_descriptor stdin_;
  asio::posix::stream_descriptor stdout_;
  asio::posix::stream_descriptor stderr_;
  std::deque<std::string> outbox_;
  bool writing_ = false;
  std::array<char, 64 * 1024> stdout_chunk_;
  std::array<char, 4 * 1024> stderr_chunk_;
  std::string line_;
  bool skipping_line_ = false;
  std::string stderr_log_;
  bool stderr_eof_ = false;

  absl::flat_hash_map<int64_t, std::unique_ptr<Pending>> pending_;
  bool closing_ = false;
  bool dying_ = false;
  std::string death_reason_;
  absl::Time death_started_;
  asio::steady_timer death_timer_;
  std::optional<absl::Status> dead_;
};

namespace {

class SessionToolCall final : public McpToolCall {
 public:
  SessionToolCall(std::weak_ptr<McpSession> session, int64_t id)
      : session_(std::move(session)), id_(id) {}
  void Cancel() override {
    if (std::shared_ptr<McpSession> session = session_.lock()) session->Cancel(id_);
  }

 private:
  const std::weak_ptr<McpSession> session_;
  const int64_t id_;
};

}  // namespace

std::shared_ptr<McpToolCall> McpSession::CallTool(std::string name,
                                                  google::protobuf::Value arguments,
                                                  absl::Duration timeout,
                                                  McpClient::CallToolCallback done) {
  const int64_t id = NextId();
  Post([this, id, name = std::move(name), arguments = std::move(arguments), timeout,
        done = std::move(done)]() mutable {
    std::string what = absl::StrCat("tools/call \"", name, "\"");
    if (timeout <= absl::ZeroDuration()) {
      return std::move(done)(absl::DeadlineExceededError(
          absl::StrCat(label_, ": ", what, ": the timeout ", absl::FormatDuration(timeout),
                       " has passed already")));
    }
    absl::StatusOr<json::object> json_arguments = ArgumentsToJson(arguments);
    if (!json_arguments.ok()) {
      return std::move(done)(absl::InvalidArgumentError(
          absl::StrCat(label_, ": ", what, ": ", json_arguments.status().message())));
    }
    json::object params;
    params["name"] = name;
    params["arguments"] = *std::move(json_arguments);
    std::string prefix = absl::StrCat(label_, ": ", what);
    SendRequest(id, "tools/call", std::move(what), std::move(params), timeout,
                [prefix = std::move(prefix), done = std::move(done)](Reply reply) mutable {
                  if (!reply.ok()) return std::move(done)(reply.status());
                  std::move(done)(ParseToolResult(prefix, *reply));
                });
  });
  return std::make_shared<SessionToolCall>(weak_from_this(), id);
}

}  // namespace internal

absl::StatusOr<std::unique_ptr<McpClient>> McpClient::Start(const McpServerOptions& options) {
  if (options.command.empty()) return absl::InvalidArgumentError("command: empty");
  if (!internal::IsSupportedVersion(options.protocol_version)) {
    return absl::InvalidArgumentError(absl::StrCat("protocol_version: \"", options.protocol_version,
                                                   "\" is not one this client speaks"));
  }
  if (options.startup_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("startup_timeout: must be positive");
  }
  if (options.call_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("call_timeout: must be positive");
  }
  if (options.max_message_bytes == 0) {
    return absl::InvalidArgumentError("max_message_bytes: must be positive");
  }
  internal::ChildProcessOptions child_options;
  child_options.command = options.command;
  child_options.args = options.args;
  child_options.env = options.env;
  child_options.working_dir = options.working_dir;
  absl::StatusOr<std::unique_ptr<internal::ChildProcess>> child =
      internal::ChildProcess::Spawn(child_options);
  if (!child.ok()) {
    return absl::Status(child.status().code(), absl::StrCat("mcp server \"", options.command,
                                                            "\": ", child.status().message()));
  }
  auto session = std::make_shared<internal::McpSession>(options, *std::move(child));
  session->StartThread();
  if (absl::Status status = session->Initialize(); !status.ok()) {
    session->Shutdown();
    return status;
  }
  return std::unique_ptr<McpClient>(new McpClient(std::move(session)));
}

McpClient::McpClient(std::shared_ptr<internal::McpSession> session)
    : session_(std::move(session)) {}

McpClient::~McpClient() { session_->Shutdown(); }

const McpServerInfo& McpClient::server_info() const { return session_->info(); }

void McpClient::ListTools(ListToolsCallback done) { session_->ListTools(std::move(done)); }

std::shared_ptr<McpToolCall> McpClient::CallTool(std::string name,
                                                 google::protobuf::Value arguments,
                                                 absl::Duration timeout, CallToolCallback done) {
  return session_->CallTool(std::move(name), std::move(arguments), timeout, std::move(done));
}

std::shared_ptr<McpToolCall> McpClient::CallTool(std::string name,
                                                 google::protobuf::Value arguments,
                                                 CallToolCallback done) {
  const absl::Duration timeout = session_->options().call_timeout;
  return session_->CallTool(std::move(name), std::move(arguments), timeout, std::move(done));
}

}  // namespace flowork::agent
