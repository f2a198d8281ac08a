// Private to flowork::agent_grpc: flowork.agent.v1.AgentService over an
// AgentRuntime, scoped to the caller's tenant.
#ifndef FLOWORK_AGENT_GRPC_SRC_AGENT_SERVICE_IMPL_H_
#define FLOWORK_AGENT_GRPC_SRC_AGENT_SERVICE_IMPL_H_

#include <deque>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "agent_tooling.h"
#include "api_keys.h"
#include "flowork/agent/agent_runtime.h"
#include "flowork/agent/agent_spec_store.h"
#include "flowork/agent/llm_agent.h"
#include "flowork/agent/task_progress.h"
#include "flowork/agent/v1/agent_service.grpc.pb.h"
#include "watched_task_store.h"

namespace flowork::agent::internal {

class EventFollower;

// Refreshes event streams off the store's writer thread: one thread reading
// the journal for the streams whose task changed.
class EventPump {
 public:
  EventPump();
  ~EventPump();  // Stops the thread; what is queued is dropped.
  void Schedule(std::shared_ptr<EventFollower> follower);

 private:
  void Loop();

  absl::Mutex mu_;
  absl::CondVar wake_;
  std::deque<std::shared_ptr<EventFollower>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// The service. Agents are either shared (declared in the config; usable by
// every tenant, managed by the config only) or a tenant's own (created
// through the API, kept in the AgentSpecStore). Thread-safe.
class AgentServiceImpl final : public v1::AgentService::CallbackService {
 public:
  // Every dependency must outlive the service.
  AgentServiceImpl(AgentRuntime& runtime, WatchedTaskStore& store, AgentSpecStore& specs,
                   const ApiKeys& keys, AgentTooling tooling = {},
                   TaskProgress* progress = nullptr);
  ~AgentServiceImpl() override;

  // Registers an agent: shared (tenant "") from the config, or a tenant's
  // from the spec store (`version` kept). kInvalidArgument for a bad spec,
  // prefixed with `where`.
  absl::Status AddAgent(const std::string& tenant, v1::AgentSpec spec, const std::string& where);

  grpc::ServerUnaryReactor* ListAgents(grpc::CallbackServerContext* context,
                                       const v1::ListAgentsRequest* request,
                                       v1::ListAgentsResponse* response) override;
  grpc::ServerUnaryReactor* CreateAgent(grpc::CallbackServerContext* context,
                                        const v1::CreateAgentRequest* request,
                                        v1::AgentSpec* response) override;
  grpc::ServerUnaryReactor* GetAgent(grpc::CallbackServerContext* context,
                                     const v1::GetAgentRequest* request,
                                     v1::AgentSpec* response) override;
  grpc::ServerUnaryReactor* UpdateAgent(grpc::CallbackServerContext* context,
                                        const v1::UpdateAgentRequest* request,
                                        v1::AgentSpec* response) override;
  grpc::ServerUnaryReactor* DeleteAgent(grpc::CallbackServerContext* context,
                                        const v1::DeleteAgentRequest* request,
                                        v1::DeleteAgentResponse* response) override;
  grpc::ServerUnaryReactor* StartAgent(grpc::CallbackServerContext* context,
                                       const v1::AgentLifecycleRequest* request,
                                       v1::AgentStatus* response) override;
  grpc::ServerUnaryReactor* StopAgent(grpc::CallbackServerContext* context,
                                      const v1::AgentLifecycleRequest* request,
                                      v1::AgentStatus* response) override;
  grpc::ServerUnaryReactor* RestartAgent(grpc::CallbackServerContext* context,
                                         const v1::AgentLifecycleRequest* request,
                                         v1::AgentStatus* response) override;
  grpc::ServerUnaryReactor* SubmitTask(grpc::CallbackServerContext* context,
                                       const v1::SubmitTaskRequest* request,
                                       v1::Task* response) override;
  grpc::ServerUnaryReactor* GetTask(grpc::CallbackServerContext* context,
                                    const v1::GetTaskRequest* request, v1::Task* response) override;
  grpc::ServerUnaryReactor* ListTasks(grpc::CallbackServerContext* context,
                                      const v1::ListTasksRequest* request,
                                      v1::ListTasksResponse* response) override;
  grpc::ServerUnaryReactor* CancelTask(grpc::CallbackServerContext* context,
                                       const v1::CancelTaskRequest* request,
                                       v1::Task* response) override;
  grpc::ServerUnaryReactor* SignalTask(grpc::CallbackServerContext* context,
                                       const v1::SignalTaskRequest* request,
                                       v1::Task* response) override;
  grpc::ServerWriteReactor<v1::TaskEvent>* WatchTaskEvents(
      grpc::CallbackServerContext* context, const v1::WatchTaskEventsRequest* request) override;
  grpc::ServerUnaryReactor* CreateSchedule(grpc::CallbackServerContext* context,
                                           const v1::CreateScheduleRequest* request,
                                           v1::Schedule* response) override;
  grpc::ServerUnaryReactor* ListSchedules(grpc::CallbackServerContext* context,
                                          const v1::ListSchedulesRequest* request,
                                          v1::ListSchedulesResponse* response) override;
  grpc::ServerUnaryReactor* DeleteSchedule(grpc::CallbackServerContext* context,
                                           const v1::DeleteScheduleRequest* request,
                                           v1::DeleteScheduleResponse* response) override;
  grpc::ServerUnaryReactor* ListApprovals(grpc::CallbackServerContext* context,
                                          const v1::ListApprovalsRequest* request,
                                          v1::ListApprovalsResponse* response) override;
  grpc::ServerUnaryReactor* ApproveCall(grpc::CallbackServerContext* context,
                                        const v1::DecideCallRequest* request,
                                        v1::DecideCallResponse* response) override;
  grpc::ServerUnaryReactor* DenyCall(grpc::CallbackServerContext* context,
                                     const v1::DecideCallRequest* request,
                                     v1::DecideCallResponse* response) override;
  grpc::ServerUnaryReactor* CreateSession(grpc::CallbackServerContext* context,
                                          const v1::CreateSessionRequest* request,
                                          v1::Session* response) override;
  grpc::ServerUnaryReactor* GetSession(grpc::CallbackServerContext* context,
                                       const v1::GetSessionRequest* request,
                                       v1::Session* response) override;
  grpc::ServerUnaryReactor* ListSessions(grpc::CallbackServerContext* context,
                                         const v1::ListSessionsRequest* request,
                                         v1::ListSessionsResponse* response) override;
  grpc::ServerUnaryReactor* ListSessionMessages(grpc::CallbackServerContext* context,
                                                const v1::ListSessionMessagesRequest* request,
                                                v1::ListSessionMessagesResponse* response) override;

 private:
  struct Entry {
    std::string tenant;  // "" for a shared agent.
    v1::AgentSpec spec;
  };

  absl::StatusOr<v1::AgentSpec> VisibleAgent(const std::string& tenant,
                                             const std::string& name) const;
  // The caller's own (not shared) agent. kFailedPrecondition for a shared one.
  absl::StatusOr<Entry> OwnAgent(const std::string& tenant, const std::string& name) const;
  // The task, when it is the caller's; kNotFound otherwise.
  absl::StatusOr<v1::Task> OwnTask(const std::string& tenant, const std::string& id) const;
  absl::StatusOr<v1::AgentSpec> Register(const std::string& tenant, v1::AgentSpec spec,
                                         bool persist);
  absl::StatusOr<v1::AgentStatus> Lifecycle(grpc::CallbackServerContext* context,
                                            const std::string& name, int action);
  absl::Status Decide(grpc::CallbackServerContext* context, const v1::DecideCallRequest& request,
                      v1::Verdict verdict);
  // The session, when it is the caller's; kNotFound otherwise (and without
  // a session store).
  absl::StatusOr<v1::Session> OwnSession(const std::string& tenant, const std::string& id) const;
  // The LLM agent options of `spec`: its tools (kInvalidArgument naming an
  // unknown one) and the memory stores.
  absl::StatusOr<LlmAgentOptions> AgentOptions(const v1::AgentSpec& spec) const;

  AgentRuntime& runtime_;
  WatchedTaskStore& store_;
  AgentSpecStore& specs_;
  const ApiKeys& keys_;
  const AgentTooling tooling_;
  TaskProgress* const progress_;  // Nullable: no token events.
  mutable absl::Mutex mu_;
  std::map<std::string, Entry> agents_ ABSL_GUARDED_BY(mu_);
  // Serialises agent writes so the catalog, runtime and store agree.
  absl::Mutex writes_;
  EventPump pump_;
};

}  // namespace flowork::agent::internal

#endif  // FLOWORK_AGENT_GRPC_SRC_AGENT_SERVICE_IMPL_H_
