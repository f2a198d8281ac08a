// Submit a task to flowork-agent over gRPC and stream its events:
//   example_agent_client [AGENT] [INPUT]
// Environment: FLOWORK_AGENT_GRPC (default 127.0.0.1:1988), FLOWORK_API_KEY
// (when the server has `keys:`). Exits 0 when the task succeeded.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "flowork/agent/v1/agent_service.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace {

void Authorize(grpc::ClientContext& context) {
  if (const char* key = std::getenv("FLOWORK_API_KEY"); key != nullptr && *key != '\0') {
    context.AddMetadata("authorization", std::string("Bearer ") + key);
  }
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(5));
}

}  // namespace

int main(int argc, char** argv) {
  const char* target = std::getenv("FLOWORK_AGENT_GRPC");
  auto stub = flowork::agent::v1::AgentService::NewStub(grpc::CreateChannel(
      target != nullptr ? target : "127.0.0.1:1988", grpc::InsecureChannelCredentials()));

  flowork::agent::v1::SubmitTaskRequest submit;
  submit.set_agent(argc > 1 ? argv[1] : "assistant");
  submit.mutable_input()->set_string_value(argc > 2 ? argv[2] : "Say hello");
  flowork::agent::v1::Task task;
  {
    grpc::ClientContext context;
    Authorize(context);
    grpc::Status status = stub->SubmitTask(&context, submit, &task);
    if (!status.ok()) {
      std::fprintf(stderr, "submit: %s\n", status.error_message().c_str());
      return 1;
    }
  }
  std::printf("task %s\n", task.id().c_str());

  // Events from the journal; the stream ends when the task does. After a
  // disconnect, pass the last event id as `after`.
  flowork::agent::v1::WatchTaskEventsRequest watch;
  watch.set_id(task.id());
  grpc::ClientContext context;
  Authorize(context);
  std::unique_ptr<grpc::ClientReader<flowork::agent::v1::TaskEvent>> events =
      stub->WatchTaskEvents(&context, watch);
  flowork::agent::v1::TaskEvent event;
  std::string state;
  while (events->Read(&event)) {
    std::printf("%s %s\n", event.id().c_str(), event.type().c_str());
    if (event.type() == "dev.flowork.task.finished") {
      const auto& fields = event.data().struct_value().fields();
      if (auto it = fields.find("state"); it != fields.end()) state = it->second.string_value();
      if (auto it = fields.find("output"); it != fields.end()) {
        std::printf("output: %s\n", it->second.string_value().c_str());
      }
    }
  }
  grpc::Status status = events->Finish();
  if (!status.ok()) {
    std::fprintf(stderr, "events: %s\n", status.error_message().c_str());
    return 1;
  }
  std::printf("state: %s\n", state.c_str());
  return state == "TASK_STATE_SUCCEEDED" ? 0 : 1;
}
