#ifndef FLOWORK_AGENT_TOOLS_HTTP_TOOL_H_
#define FLOWORK_AGENT_TOOLS_HTTP_TOOL_H_

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "flowork/agent/tool_registry.h"
#include "flowork/agent/v1/tools.pb.h"
#include "flowork/core/executor.h"
#include "flowork/core/http_client.h"
#include "google/protobuf/struct.pb.h"

namespace flowork::agent::tools {

// A piece of a template: literal text, or the argument named `text`.
struct TemplatePart {
  bool placeholder = false;
  std::string text;
};

// Performs the calls of one HttpTool: fills in the URL and body, resolves
// header secrets, checks the host and its addresses, and makes the request
// pinned to the checked addresses. Immutable after Create; thread-safe.
class HttpToolRunner : public std::enable_shared_from_this<HttpToolRunner> {
 public:
  struct Limits {
    absl::Duration default_timeout;
    std::size_t max_response_bytes;
  };

  // kInvalidArgument names the field at fault. `client` and `blocking` (which
  // reads secret files and resolves names) must outlive the runner's calls.
  static absl::StatusOr<std::shared_ptr<const HttpToolRunner>> Create(const v1::HttpTool& config,
                                                                      const Limits& limits,
                                                                      core::HttpClient& client,
                                                                      core::Executor& blocking);

  // `arguments` is an object that passed the tool's schema.
  void Call(const google::protobuf::Value& arguments, std::shared_ptr<ToolContext> context,
            ToolDone done) const;

 private:
  struct Header {
    std::string name;
    std::vector<TemplatePart> value;  // Placeholders here are secret references.
  };

  HttpToolRunner(const v1::HttpTool& config, const Limits& limits, core::HttpClient& client,
                 core::Executor& blocking)
      : config_(config), limits_(limits), client_(client), blocking_(blocking) {}

  // Runs on `blocking_`: secrets, DNS and the address check, then the request.
  void Start(std::string url, std::string body, std::shared_ptr<ToolContext> context,
             ToolDone done) const;

  const v1::HttpTool config_;
  const Limits limits_;
  core::HttpClient& client_;
  core::Executor& blocking_;
  std::string method_;
  std::string scheme_host_port_;    // "https://api.example.com:8443", verbatim from the template.
  std::string host_;                // Lower case, without brackets.
  std::vector<TemplatePart> path_;  // Path and query.
  std::vector<Header> headers_;
  bool has_body_template_ = false;
  google::protobuf::Value body_template_;
};

}  // namespace flowork::agent::tools

#endif  // FLOWORK_AGENT_TOOLS_HTTP_TOOL_H_
