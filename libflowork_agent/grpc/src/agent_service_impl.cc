#include "agent_service_impl.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "flowork/agent/llm_agent.h"
#include "flowork/agent/remote_work_hub.h"
#include "flowork/agent/task_state.h"
#include "flowork/core/internal/status_macros.h"
#include "task_events.h"

namespace flowork::agent::internal {
namespace {

grpc::Status ToGrpc(const absl::Status& status) {
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

// Finishes a unary call with `result`'s value or its status.
template <typename Response>
grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* context,
                                 absl::StatusOr<Response> result, Response* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!result.ok()) {
    reactor->Finish(ToGrpc(result.status()));
  } else {
    *response = *std::move(result);
    reactor->Finish(grpc::Status::OK);
  }
  return reactor;
}

grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* context, const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpc(status));
  return reactor;
}

absl::Status NoAgent(const std::string& name) {
  return absl::NotFoundError(absl::StrCat("agent \"", name, "\" not found"));
}

absl::Status NoTask(const std::string& id) {
  return absl::NotFoundError(absl::StrCat("task \"", id, "\" not found"));
}

bool ValidName(const std::string& name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

// Checks a spec the server can run; fills the defaults.
absl::Status CheckSpec(v1::AgentSpec& spec, const std::string& where) {
  if (!ValidName(spec.name())) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ".name: \"", spec.name(), "\" must match [a-z0-9-]+"));
  }
  if (absl::StartsWith(spec.name(), "flowork-")) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ".name: names starting with \"flowork-\" are reserved"));
  }
  if (spec.kind() == v1::AgentSpec::KIND_UNSPECIFIED) spec.set_kind(v1::AgentSpec::KIND_LLM);
  if (spec.kind() != v1::AgentSpec::KIND_LLM && spec.kind() != v1::AgentSpec::KIND_REMOTE) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ".kind: ", v1::AgentSpec::Kind_Name(spec.kind()),
                     " agents cannot be declared here; native agents are registered in code"));
  }
  // A remote agent's work is done by workers leasing it (WorkerService).
  if (spec.kind() == v1::AgentSpec::KIND_REMOTE) return absl::OkStatus();
  if (spec.model().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ".model: required (a model or route of the router)"));
  }
  return CheckApprovalSpec(spec, where);
}

// Every state a task can still leave.
std::vector<v1::TaskState> UnfinishedStates() {
  std::vector<v1::TaskState> states;
  for (int s = v1::TaskState_MIN; s <= v1::TaskState_MAX; ++s) {
    if (!v1::TaskState_IsValid(s)) continue;
    const auto state = static_cast<v1::TaskState>(s);
    if (state != v1::TASK_STATE_UNSPECIFIED && !IsFinal(state)) states.push_back(state);
  }
  return states;
}

absl::Status CheckTenant(const std::string& asked, const std::string& caller) {
  if (asked.empty() || asked == caller) return absl::OkStatus();
  return absl::PermissionDeniedError(
      absl::StrCat("tenant: \"", asked, "\" is not the caller's tenant"));
}

}  // namespace

// ---------------------------------------------------------------------------
// Event streams.

class EventStream;

// The state of one event stream, shared by its reactor, the pump and the
// store's watch. The reactor is alive while `finished_` is false.
class EventFollower : public std::enable_shared_from_this<EventFollower> {
 public:
  EventFollower(WatchedTaskStore& store, EventPump& pump, TaskProgress* progress,
                std::string task_id, uint64_t after)
      : store_(store),
        pump_(pump),
        progress_(progress),
        task_id_(std::move(task_id)),
        cursor_(after) {}

  void Begin(EventStream* stream);
  // On the pump's thread: reads what is new and writes it.
  void Refresh();
  void WriteDone(bool ok);
  void Cancelled();
  // From OnDone: no more calls to the reactor.
  void Detach();
  void MarkQueued(bool queued) { queued_.store(queued); }
  bool TryQueue() { return !queued_.exchange(true); }

 private:
  void Conclude(const absl::Status& status);
  // A piece of the running model call's answer: a live-only token event.
  void Token(std::string_view text);
  // Starts the next write or the Finish, when neither is in flight.
  void Pump();

  WatchedTaskStore& store_;
  EventPump& pump_;
  TaskProgress* const progress_;
  const std::string task_id_;
  int64_t watch_token_ = 0;
  int64_t progress_token_ = 0;
  uint64_t tokens_ ABSL_GUARDED_BY(mu_) = 0;  // Token events since cursor_ moved.
  // Until the first Refresh has queued what the journal held, tokens wait
  // here: they follow those events (the created event first, always).
  bool replayed_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::string> early_tokens_ ABSL_GUARDED_BY(mu_);
  // A token event after the events queued so far.
  void QueueToken(std::string_view text) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::atomic<bool> queued_{false};
  absl::Mutex mu_;
  EventStream* stream_ ABSL_GUARDED_BY(mu_) = nullptr;
  uint64_t cursor_ ABSL_GUARDED_BY(mu_);  // The last event id queued.
  std::deque<v1::TaskEvent> pending_ ABSL_GUARDED_BY(mu_);
  v1::TaskEvent current_;  // Being written; touched only by the one writer.
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool concluded_ ABSL_GUARDED_BY(mu_) = false;  // Finish once pending_ is written.
  grpc::Status final_status_ ABSL_GUARDED_BY(mu_);
  bool finished_ ABSL_GUARDED_BY(mu_) = false;  // Finish was called.
};

class EventStream final : public grpc::ServerWriteReactor<v1::TaskEvent> {
 public:
  explicit EventStream(std::shared_ptr<EventFollower> follower) : follower_(std::move(follower)) {}
  void OnWriteDone(bool ok) override { follower_->WriteDone(ok); }
  void OnCancel() override { follower_->Cancelled(); }
  void OnDone() override {
    follower_->Detach();
    delete this;
  }

 private:
  std::shared_ptr<EventFollower> follower_;
};

// A stream refused before it began.
class RefusedStream final : public grpc::ServerWriteReactor<v1::TaskEvent> {
 public:
  explicit RefusedStream(const absl::Status& status) { Finish(ToGrpc(status)); }
  void OnDone() override { delete this; }
};

void EventFollower::Begin(EventStream* stream) {
  {
    absl::MutexLock lock(&mu_);
    stream_ = stream;
  }
  std::weak_ptr<EventFollower> weak = weak_from_this();
  watch_token_ = store_.Watch(task_id_, [this, weak] {
    if (auto self = weak.lock()) pump_.Schedule(std::move(self));
  });
  if (progress_ != nullptr) {
    progress_token_ = progress_->Subscribe(task_id_, [this, weak](std::string_view text) {
      if (auto self = weak.lock()) Token(text);
    });
  }
  pump_.Schedule(shared_from_this());  // What the journal holds already.
}

void EventFollower::Token(std::string_view text) {
  {
    absl::MutexLock lock(&mu_);
    if (finished_ || concluded_) return;
    if (!replayed_) {
      early_tokens_.emplace_back(text);
      return;
    }
    QueueToken(text);
  }
  Pump();
}

void EventFollower::QueueToken(std::string_view text) {
  // Ids "<last journal event>.<n>": ordered among the journal's, never
  // replayed (resume with the last whole-number id).
  v1::TaskEvent event;
  event.set_specversion("1.0");
  event.set_id(absl::StrCat(cursor_, ".", ++tokens_));
  event.set_source(absl::StrCat("/v1/tasks/", task_id_));
  event.set_type("dev.flowork.task.token");
  const absl::Time now = absl::Now();
  event.mutable_time()->set_seconds(absl::ToUnixSeconds(now));
  event.mutable_time()->set_nanos(static_cast<int32_t>(
      absl::ToInt64Nanoseconds(now - absl::FromUnixSeconds(absl::ToUnixSeconds(now)))));
  event.set_subject(task_id_);
  event.set_datacontenttype("application/json");
  (*event.mutable_data()->mutable_struct_value()->mutable_fields())["text"].set_string_value(
      std::string(text));
  pending_.push_back(std::move(event));
}

void EventFollower::Refresh() {
  uint64_t cursor;
  {
    absl::MutexLock lock(&mu_);
    if (finished_ || concluded_) return;
    cursor = cursor_;
  }
  // The task first: when it is final, the journal read after it is complete.
  absl::StatusOr<v1::Task> task = store_.Get(task_id_);
  if (!task.ok()) return Conclude(task.status());
  absl::StatusOr<std::vector<v1::StepRecord>> steps =
      store_.Journal(task_id_, JournalSeqFor(cursor));
  if (!steps.ok()) return Conclude(steps.status());
  std::vector<v1::TaskEvent> events = TaskEvents(*task, *steps, cursor);
  {
    absl::MutexLock lock(&mu_);
    for (v1::TaskEvent& event : events) {
      uint64_t id = 0;
      if (!absl::SimpleAtoi(event.id(), &id) || id <= cursor_) continue;
      cursor_ = id;
      tokens_ = 0;
      pending_.push_back(std::move(event));
    }
    if (IsFinal(task->state())) concluded_ = true;  // final_status_ stays OK.
    if (!replayed_) {
      replayed_ = true;
      // A finished task's answer is in its events; tokens would only repeat it.
      if (!concluded_) {
        for (const std::string& text : early_tokens_) QueueToken(text);
      }
      early_tokens_.clear();
    }
  }
  Pump();
}

void EventFollower::WriteDone(bool ok) {
  {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) {  // The client left.
      pending_.clear();
      concluded_ = true;
      final_status_ = grpc::Status::CANCELLED;
    }
  }
  Pump();
}

void EventFollower::Cancelled() { Conclude(absl::CancelledError("the client cancelled")); }

void EventFollower::Conclude(const absl::Status& status) {
  {
    absl::MutexLock lock(&mu_);
    if (concluded_) return;
    concluded_ = true;
    final_status_ = ToGrpc(status);
    if (status.code() == absl::StatusCode::kCancelled) pending_.clear();
  }
  Pump();
}

void EventFollower::Pump() {
  EventStream* stream = nullptr;
  bool write = false;
  grpc::Status status;
  {
    absl::MutexLock lock(&mu_);
    if (finished_ || writing_ || stream_ == nullptr) return;
    if (!pending_.empty()) {
      current_ = std::move(pending_.front());
      pending_.pop_front();
      writing_ = true;
      write = true;
    } else if (concluded_) {
      finished_ = true;
      status = final_status_;
    } else {
      return;
    }
    stream = stream_;
  }
  // Outside the lock: the reactor's callbacks take it. The reactor stays
  // alive: it is destroyed only after Finish, and only this path calls it.
  if (write) {
    stream->StartWrite(&current_);
  } else {
    stream->Finish(status);
  }
}

void EventFollower::Detach() {
  store_.Unwatch(task_id_, watch_token_);
  if (progress_ != nullptr) progress_->Unsubscribe(progress_token_);
  absl::MutexLock lock(&mu_);
  stream_ = nullptr;
  finished_ = true;
}

EventPump::EventPump() : thread_([this] { Loop(); }) {}

EventPump::~EventPump() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    queue_.clear();
  }
  wake_.Signal();
  thread_.join();
}

void EventPump::Schedule(std::shared_ptr<EventFollower> follower) {
  if (!follower->TryQueue()) return;  // Already queued: that refresh will see this change.
  absl::MutexLock lock(&mu_);
  if (stopping_) return;
  queue_.push_back(std::move(follower));
  wake_.Signal();
}

void EventPump::Loop() {
  for (;;) {
    std::shared_ptr<EventFollower> next;
    {
      absl::MutexLock lock(&mu_);
      while (!stopping_ && queue_.empty()) wake_.Wait(&mu_);
      if (stopping_) return;
      next = std::move(queue_.front());
      queue_.pop_front();
    }
    next->MarkQueued(false);  // A change from now on queues it again.
    next->Refresh();
  }
}

// ---------------------------------------------------------------------------
// The service.

AgentServiceImpl::AgentServiceImpl(AgentRuntime& runtime, WatchedTaskStore& store,
                                   AgentSpecStore& specs, const ApiKeys& keys, AgentTooling tooling,
                                   TaskProgress* progress)
    : runtime_(runtime),
      store_(store),
      specs_(specs),
      keys_(keys),
      tooling_(tooling),
      progress_(progress) {}

AgentServiceImpl::~AgentServiceImpl() = default;

absl::Status AgentServiceImpl::AddAgent(const std::string& tenant, v1::AgentSpec spec,
                                        const std::string& where) {
  FLOWORK_RETURN_IF_ERROR(CheckSpec(spec, where));
  absl::MutexLock writes(&writes_);
  {
    absl::MutexLock lock(&mu_);
    if (agents_.count(spec.name()) > 0) {
      return absl::AlreadyExistsError(
          absl::StrCat(where, ".name: agent \"", spec.name(), "\" is declared twice"));
    }
  }
  return Register(tenant, std::move(spec), /*persist=*/false).status();
}

absl::StatusOr<v1::AgentSpec> AgentServiceImpl::Register(const std::string& tenant,
                                                         v1::AgentSpec spec, bool persist) {
  std::shared_ptr<Agent> agent;
  if (spec.kind() == v1::AgentSpec::KIND_REMOTE) {
    agent = CreateRemoteAgent(spec);
  } else {
    FLOWORK_ASSIGN_OR_RETURN(LlmAgentOptions options, AgentOptions(spec));
    FLOWORK_ASSIGN_OR_RETURN(agent, CreateLlmAgent(spec, std::move(options)));
  }
  const uint64_t version = spec.version() == 0 ? 1 : spec.version();
  FLOWORK_RETURN_IF_ERROR(runtime_.RegisterAgent(spec, std::move(agent)).status());
  spec.set_version(version);
  // A name registered before (deleted, then created again) was left stopped.
  absl::StatusOr<v1::AgentStatus> status = runtime_.GetAgentStatus(spec.name());
  if (status.ok() && status->state() == v1::AGENT_STATE_STOPPED) {
    runtime_.StartAgent(spec.name()).IgnoreError();
  }
  if (persist) FLOWORK_RETURN_IF_ERROR(specs_.Put({tenant, spec}));
  if (tooling_.tools != nullptr) {
    tooling_.tools->SetAgentTools(spec.name(), {spec.tools().begin(), spec.tools().end()});
  }
  if (tooling_.policies != nullptr) tooling_.policies->Set(spec);
  absl::MutexLock lock(&mu_);
  agents_[spec.name()] = Entry{tenant, spec};
  return spec;
}

absl::StatusOr<v1::AgentSpec> AgentServiceImpl::VisibleAgent(const std::string& tenant,
                                                             const std::string& name) const {
  absl::MutexLock lock(&mu_);
  auto it = agents_.find(name);
  if (it == agents_.end() || (!it->second.tenant.empty() && it->second.tenant != tenant)) {
    return NoAgent(name);
  }
  return it->second.spec;
}

absl::StatusOr<AgentServiceImpl::Entry> AgentServiceImpl::OwnAgent(const std::string& tenant,
                                                                   const std::string& name) const {
  absl::MutexLock lock(&mu_);
  auto it = agents_.find(name);
  if (it == agents_.end() || (!it->second.tenant.empty() && it->second.tenant != tenant)) {
    return NoAgent(name);
  }
  if (it->second.tenant.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "agent \"", name, "\" is declared in the server's config and changes only there"));
  }
  return it->second;
}

absl::StatusOr<v1::Task> AgentServiceImpl::OwnTask(const std::string& tenant,
                                                   const std::string& id) const {
  absl::StatusOr<v1::Task> task = runtime_.Get(id);
  if (absl::IsNotFound(task.status()) || (task.ok() && task->tenant() != tenant)) {
    return NoTask(id);
  }
  return task;
}

grpc::ServerUnaryReactor* AgentServiceImpl::ListAgents(grpc::CallbackServerContext* context,
                                                       const v1::ListAgentsRequest* request,
                                                       v1::ListAgentsResponse* response) {
  absl::StatusOr<std::string> tenant = keys_.Tenant(*context);
  if (!tenant.ok()) return Answer(context, tenant.status());
  absl::MutexLock lock(&mu_);
  for (const auto& [name, entry] : agents_) {
    if (!entry.tenant.empty() && entry.tenant != *tenant) continue;
    if (request->kind() != v1::AgentSpec::KIND_UNSPECIFIED && entry.spec.kind() != request->kind())
      continue;
    *response->add_agents() = entry.spec;
  }
  return Answer(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* AgentServiceImpl::CreateAgent(grpc::CallbackServerContext* context,
                                                        const v1::CreateAgentRequest* request,
                                                        v1::AgentSpec* response) {
  return Answer(
      context,
      [&]() -> absl::StatusOr<v1::AgentSpec> {
        FLOWORK_ASSIGN_OR_RETURN(std::string tenant, keys_.Tenant(*context));
        v1::AgentSpec spec = request->agent();
        spec.clear_version();
        FLOWORK_RETURN_IF_ERROR(CheckSpec(spec, "agent"));
        absl::MutexLock writes(&writes_);
        {
          absl::MutexLock lock(&mu_);
          if (agents_.count(spec.name()) > 0) {
            return absl::AlreadyExistsError(
                absl::StrCat("agent \"", spec.name(), "\" already exists"));
          }
        }
        return Register(tenant, std::move(spec), /*persist=*/true);
      }(),
      response);
}

grpc::ServerUnaryReactor* AgentServiceImpl::GetAgent(grpc::CallbackServerContext* context,
                                                     const v1::GetAgentRequest* request,
                                                     v1::AgentSpec* response) {
  return Answer(
      context,
      [&]() -> absl::StatusOr<v1::AgentSpec> {
        FLOWORK_ASSIGN_OR_RETURN(std::string tenant, keys_.Tenant(*context));
        return VisibleAgent(tenant, request->name());
      }(),
      response);
}

grpc::ServerUnaryReactor* AgentServiceImpl::UpdateAgent(grpc::CallbackServerContext* context,
                                                        const v1::UpdateAgentRequest* request,
                                                        v1::AgentSpec* response) {
  return Answer(
      context,
      [&]() -> absl::StatusOr<v1::AgentSpec> {
        FLOWORK_ASSIGN_OR_RETURN(std::string tenant, keys_.Tenant(*context));
        v1::AgentSpec spec = request->agent();
        if (spec.name().empty()) spec.set_name(request->name());
        if (spec.name() != request->name()) {
          return absl::InvalidArgumentError(
              absl::StrCat("agent.name: \"", spec.name(), "\" is not \"", request->name(), "\""));
        }
        FLOWORK_RETURN_IF_ERROR(CheckSpec(spec, "agent"));
        absl::MutexLock writes(&writes_);
        FLOWORK_ASSIGN_OR_RETURN(Entry entry, OwnAgent(tenant, request->name()));
        spec.set_version(entry.spec.version() + 1);
        return Register(tenant, std::move(spec), /*persist=*/true);
      }(),
      response);
}

grpc::ServerUnaryReactor* AgentServiceImpl::DeleteAgent(grpc::CallbackServerContext* context,
                                                        const v1::DeleteAgentRequest* request,
                                                        v1::DeleteAgentResponse* response) {
  return Answer(
      context,
      [&]() -> absl::StatusOr<v1::DeleteAgentResponse> {
        FLOWORK_ASSIGN_OR_RETURN(std::string tenant, keys_.Tenant(*context));
        absl::MutexLock writes(&writes_);
        FLOWORK_ASSIGN_OR_RETURN(Entry entry, OwnAgent(tenant, request->name()));
        TaskFilter unfinished;
        unfinished.agent = request->name();
        unfinished.states = UnfinishedStates();
        unfinished.page_size = 1;
        FLOWORK_ASSIGN_OR_RETURN(TaskPage page, store_.List(unfinished));
        if (!page.tasks.empty()) {
          return absl::FailedPreconditionError(absl::StrCat(
              "agent \"", request->name(), "\" has unfinished tasks (cancel them first), e.g. ",
              page.tasks.front().id()));
        }
        runtime_.StopAgent(request->name()).IgnoreError();
        FLOWORK_RETURN_IF_ERROR(specs_.Delete(request->name()));
        if (tooling_.tools != nullptr) tooling_.tools->SetAgentTools(request->name(), {});
        if (tooling_.policies != nullptr) tooling_.policies->Remove(request->name());
        absl::MutexLock lock(&mu_);
        agents_.erase(request->name());
        return v1::DeleteAgentResponse();
      }(),
      response);
}

absl::StatusOr<v1::AgentStatus> AgentServiceImpl::Lifecycle(grpc::CallbackServerContext* context,
                                                            const std::string& name, int action) {
  FLOWORK_ASSIGN_OR_RETURN(std::string tenant, keys_.Tenant(*context));
  FLOWORK_RETURN_IF_ERROR(OwnAgent(tenant, name).status());
  switch (action) {
    case 0:
      FLOWORK_RETURN_IF_ERROR(runtime_.StartAgent(name));
      break;
    case 1:
      FLOWORK_RETURN_IF_ERROR(runtime_.StopAgent(name));
      break;
    default:
      FLOWORK_RETURN_IF_ERROR(runtime_.RestartAgent(name));
      break;
  }
  return runtime_.GetAgentStatus(name);
}

grpc::ServerUnaryReactor* AgentServiceImpl::StartAgent(grpc::CallbackServerContext* context,
                                                       const v1::AgentLifecycleRequest* request,
                                                       v1::AgentStatus* response) {
  return Answer(context, Lifecycle(context, request->name(), 0), response);
}

grpc::ServerUnaryReactor* AgentServiceImpl::StopAgent(grpc::CallbackServerContext* context,
                                                      const v1::AgentLifecycleRequest* request,
                                                      v1::AgentStatus* response) {
  return Answer(context, Lifecycle(context, request->name(), 1), response);
}

grpc::ServerUnaryReactor* AgentServiceImpl::RestartAgent(grpc::CallbackServerContext* context,
                                                         const v1::AgentLifecycleRequest* request,
                                                         v1::AgentStatus* response) {
  return Answer(context, Lifecycle(context, request->name(), 2), response);
}

grpc::ServerUnaryReactor* AgentServiceImpl::SubmitTask(grpc::CallbackServerContext* context,
                                                       const v1::SubmitTaskRequest* request,
                                                       v1::Task* response) {
  return Answer(
      context,
      [&]() -> absl::StatusOr<v1::Task> {
        FLOWORK_ASSIGN_OR_RETURN(std::string tenant, keys_.Tenant(*context));
        FLOWORK_RETURN_IF_ERROR(CheckTenant(request->tenant(), tenant));
        if (request->agent().empty()) return absl::InvalidArgumentError("agent: required");
        FLOWORK_RETURN_IF_ERROR(VisibleAgent(tenant, request->agent()).status());
        if (!request->parent_id().empty()) {
          absl::StatusOr<v1::Task> parent = OwnTask(tenant, request->parent_id());
          if (!parent.ok()) {
            return absl::NotFoundError(
                absl::StrCat("parent_id: task \"", request->parent_id(), "\" not found"));
          }
        }
        v1::Task task;
        task.set_agent(request->agent());
        task.set_tenant(tenant);
        if (request->has_input()) *task.mutable_input() = request->input();
        task.set_priority(request->priority());
        if (request->has_deadline()) *task.mutable_deadline() = request->deadline();
        task.set_idempotency_key(request->idempotency_key());
        if (request->has_not_before()) *task.mutable_not_before() = request->not_before();
        task.set_parent_id(request->parent_id());
        *task.mutable_labels() = request->labels();
        if (!request->session_id().empty()) {
          absl::StatusOr<v1::Session> session = OwnSession(tenant, request->session_id());
          if (absl::IsNotFound(session.status())) {
            return absl::NotFoundError(absl::StrCat("session_id: ", session.status().message()));
          }
          FLOWORK_RETURN_IF_ERROR(session.status());
          if (session->agent() != request->agent()) {
            return absl::InvalidArgumentError(
                absl::StrCat("session_id: session \"", session->id(), "\" is agent \"",
                             session->agent(), "\"'s, not \"", request->agent(), "\"'s"));
          }
          task.set_session_id(session->id());
        }
        FLOWORK_ASSIGN_OR_RETURN(SubmitResult submitted, runtime_.Submit(std::move(task)));
        return std::move(submitted.task);
      }(),
      response);
}

grpc::ServerUnaryReactor* AgentServiceImpl::GetTask(grpc::CallbackServerContext* context,
                                                    const v1::GetTaskRequest* request,
                                                    v1::Task* response) {
  return Answer(
      context,
      [&]() -> absl::StatusOr<v1::Task> {
        FLOWORK_ASSIGN_OR_RETURN(std::string tenant, keys_.Tenant(*context));
        return OwnTask(tenant, request->id());
      }(),
      response);
}

grpc::ServerUnaryReactor* AgentServiceImpl::ListTasks(grpc::CallbackServerContext* context,
                                                      const v1::ListTasksRequest* request,
                                                      v1::ListTasksResponse* response) {
  return Answer(
      context,
      [&]() -> absl::StatusOr<v1::ListTasksResponse> {
        FLOWORK_ASSIGN_OR_RETURN(std::string tenant, keys_.Tenant(*context));
        FLOWORK_RETURN_IF_ERROR(CheckTenant(request->tenant(), tenant));
        TaskFilter filter;
        filter.agent = request->agent();
        filter.tenant = tenant;
        if (request->state() != v1::TASK_STATE_UNSPECIFIED) filter.states = {request->state()};
        filter.page_size = request->page_size();
        filter.page_token = request->page_token();
        FLOWORK_ASSIGN_OR_RETURN(TaskPage page, store_.List(filter));
        v1::ListTasksResponse out;
        for (v1::Task& task : page.tasks) *out.add_tasks() = std::move(task);
        out.set_next_page_token(page.next_page_token);
        return out;
      }(),
      response);
}

grpc::ServerUnaryReactor* AgentServiceImpl::CancelTask(grpc::CallbackServerContext* context,
                                                       const v1::CancelTaskRequest* request,
                                                       v1::Task* response) {
  return Answer(
      context,
      [&]() -> absl::StatusOr<v1::Task> {
        FLOWORK_ASSIGN_OR_RETURN(std::string tenant, keys_.Tenant(*context));
        FLOWORK_RETURN_IF_ERROR(OwnTask(tenant, request->id()).status());
        FLOWORK_RETURN_IF_ERROR(runtime_.Cancel(request->id()));
        return runtime_.Get(request->id());
      }(),
      response);
}

grpc::ServerUnaryReactor* AgentServiceImpl::SignalTask(grpc::CallbackServerContext* context,
                                                       const v1::SignalTaskRequest* request,
                                                       v1::Task* response) {
  return Answer(
      context,
      [&]() -> absl::StatusOr<v1::Task> {
        FLOWORK_ASSIGN_OR_RETURN(std::string tenant, keys_.Tenant(*context));
        FLOWORK_RETURN_IF_ERROR(OwnTask(tenant, request->id()).status());
        FLOWORK_RETURN_IF_ERROR(
            runtime_.Signal(request->id(), request->name(), request->payload()));
        return runtime_.Get(request->id());
      }(),
      response);
}

grpc::ServerWriteReactor<v1::TaskEvent>* AgentServiceImpl::WatchTaskEvents(
    grpc::CallbackServerContext* context, const v1::WatchTaskEventsRequest* request) {
  absl::StatusOr<std::string> tenant = keys_.Tenant(*context);
  absl::Status allowed = tenant.ok() ? OwnTask(*tenant, request->id()).status() : tenant.status();
  if (!allowed.ok()) return new RefusedStream(allowed);
  auto follower =
      std::make_shared<EventFollower>(store_, pump_, progress_, request->id(), request->after());
  auto* stream = new EventStream(follower);
  follower->Begin(stream);
  return stream;
}

grpc::ServerUnaryReactor* AgentServiceImpl::CreateSchedule(grpc::CallbackServerContext* context,
                                                           const v1::CreateScheduleRequest* request,
                                                           v1::Schedule* response) {
  return Answer(
      context,
      [&]() -> absl::StatusOr<v1::Schedule> {
        FLOWORK_ASSIGN_OR_RETURN(std::string tenant, keys_.Tenant(*context));
        v1::Schedule schedule = request->schedule();
        FLOWORK_RETURN_IF_ERROR(CheckTenant(schedule.task().tenant(), tenant));
        schedule.mutable_task()->set_tenant(tenant);
        if (schedule.task().agent().empty()) {
          return absl::InvalidArgumentError("schedule.task.agent: required");
        }
        if (!VisibleAgent(tenant, schedule.task().agent()).ok()) {
          return absl::NotFoundError(absl::StrCat("schedule.task.agent: no agent named \"",
                                                  schedule.task().agent(), "\""));
        }
        return runtime_.AddSchedule(std::move(schedule));
      }(),
      response);
}

grpc::ServerUnaryReactor* AgentServiceImpl::ListSchedules(grpc::CallbackServerContext* context,
                                                          const v1::ListSchedulesRequest* request,
                                                          v1::ListSchedulesResponse* response) {
  return Answer(
      context,
      [&]() -> absl::StatusOr<v1::ListSchedulesResponse> {
        FLOWORK_ASSIGN_OR_RETURN(std::string tenant, keys_.Tenant(*context));
        FLOWORK_ASSIGN_OR_RETURN(std::vector<v1::Schedule> all, runtime_.ListSchedules());
        v1::ListSchedulesResponse out;
        for (v1::Schedule& schedule : all) {
          if (schedule.task().tenant() == tenant) *out.add_schedules() = std::move(schedule);
        }
        return out;
      }(),
      response);
}

grpc::ServerUnaryReactor* AgentServiceImpl::DeleteSchedule(grpc::CallbackServerContext* context,
                                                           const v1::DeleteScheduleRequest* request,
                                                           v1::DeleteScheduleResponse* response) {
  return Answer(
      context,
      [&]() -> absl::StatusOr<v1::DeleteScheduleResponse> {
        FLOWORK_ASSIGN_OR_RETURN(std::string tenant, keys_.Tenant(*context));
        FLOWORK_ASSIGN_OR_RETURN(std::vector<v1::Schedule> all, runtime_.ListSchedules());
        for (const v1::Schedule& schedule : all) {
          if (schedule.task().tenant() != tenant) continue;
          if (schedule.id() == request->id() || schedule.name() == request->id()) {
            FLOWORK_RETURN_IF_ERROR(runtime_.RemoveSchedule(schedule.name()));
            return v1::DeleteScheduleResponse();
          }
        }
        return absl::NotFoundError(absl::StrCat("schedule \"", request->id(), "\" not found"));
      }(),
      response);
}

grpc::ServerUnaryReactor* AgentServiceImpl::ListApprovals(grpc::CallbackServerContext* context,
                                                          const v1::ListApprovalsRequest* request,
                                                          v1::ListApprovalsResponse* response) {
  return Answer(
      context,
      [&]() -> absl::StatusOr<v1::ListApprovalsResponse> {
        FLOWORK_ASSIGN_OR_RETURN(std::string tenant, keys_.Tenant(*context));
        if (!request->state().empty() && request->state() != "pending") {
          return absl::InvalidArgumentError(absl::StrCat("state: \"", request->state(),
                                                         "\" (only pending approvals are listed)"));
        }
        v1::ListApprovalsResponse out;
        for (v1::PendingApproval& pending : runtime_.PendingApprovals()) {
          if (pending.tenant() != tenant) continue;
          v1::Approval& approval = *out.add_approvals();
          approval.set_id(absl::StrCat(pending.task_id(), ".", pending.call_id()));
          *approval.mutable_pending() = std::move(pending);
        }
        return out;
      }(),
      response);
}

absl::Status AgentServiceImpl::Decide(grpc::CallbackServerContext* context,
                                      const v1::DecideCallRequest& request, v1::Verdict verdict) {
  FLOWORK_ASSIGN_OR_RETURN(std::string tenant, keys_.Tenant(*context));
  const size_t dot = request.id().find('.');
  const absl::Status none =
      absl::NotFoundError(absl::StrCat("approval \"", request.id(), "\" not found"));
  if (dot == std::string::npos) return none;
  const std::string task_id = request.id().substr(0, dot);
  if (!OwnTask(tenant, task_id).ok()) return none;
  ApprovalVerdict decision;
  decision.verdict = verdict;
  decision.who = request.who().empty() ? absl::StrCat("tenant ", tenant) : request.who();
  decision.comment = request.comment();
  if (request.has_edited_arguments()) {
    if (verdict != v1::VERDICT_APPROVE) {
      return absl::InvalidArgumentError("edited_arguments: only when approving");
    }
    decision.edited_arguments = request.edited_arguments();
  }
  absl::Status decided = runtime_.Decide(task_id, request.id().substr(dot + 1), decision);
  return absl::IsNotFound(decided) ? none : decided;
}

grpc::ServerUnaryReactor* AgentServiceImpl::ApproveCall(grpc::CallbackServerContext* context,
                                                        const v1::DecideCallRequest* request,
                                                        v1::DecideCallResponse* response) {
  absl::Status status = Decide(context, *request, v1::VERDICT_APPROVE);
  return Answer(context,
                status.ok() ? absl::StatusOr<v1::DecideCallResponse>(v1::DecideCallResponse())
                            : absl::StatusOr<v1::DecideCallResponse>(status),
                response);
}

grpc::ServerUnaryReactor* AgentServiceImpl::DenyCall(grpc::CallbackServerContext* context,
                                                     const v1::DecideCallRequest* request,
                                                     v1::DecideCallResponse* response) {
  absl::Status status = Decide(context, *request, v1::VERDICT_DENY);
  return Answer(context,
                status.ok() ? absl::StatusOr<v1::DecideCallResponse>(v1::DecideCallResponse())
                            : absl::StatusOr<v1::DecideCallResponse>(status),
                response);
}

absl::StatusOr<LlmAgentOptions> AgentServiceImpl::AgentOptions(const v1::AgentSpec& spec) const {
  LlmAgentOptions options;
  options.pinned = tooling_.pinned;
  options.memory = tooling_.memory;
  if (spec.tools().empty()) return options;
  if (tooling_.tools == nullptr) return absl::InvalidArgumentError("tools: this server has none");
  absl::StatusOr<std::string> tools =
      tooling_.tools->OpenAiToolsJsonOf({spec.tools().begin(), spec.tools().end()});
  if (!tools.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("tools: ", tools.status().message()));
  }
  options.tools_json = *std::move(tools);
  return options;
}

// ---------------------------------------------------------------------------
// Sessions.

absl::StatusOr<v1::Session> AgentServiceImpl::OwnSession(const std::string& tenant,
                                                         const std::string& id) const {
  const absl::Status none = absl::NotFoundError(absl::StrCat("session \"", id, "\" not found"));
  if (tooling_.sessions == nullptr || id.empty()) return none;
  absl::StatusOr<v1::Session> session = tooling_.sessions->Get(id);
  if (absl::IsNotFound(session.status()) || (session.ok() && session->tenant() != tenant)) {
    return none;
  }
  return session;
}

grpc::ServerUnaryReactor* AgentServiceImpl::CreateSession(grpc::CallbackServerContext* context,
                                                          const v1::CreateSessionRequest* request,
                                                          v1::Session* response) {
  return Answer(
      context,
      [&]() -> absl::StatusOr<v1::Session> {
        FLOWORK_ASSIGN_OR_RETURN(std::string tenant, keys_.Tenant(*context));
        if (request->agent().empty()) return absl::InvalidArgumentError("agent: required");
        FLOWORK_RETURN_IF_ERROR(VisibleAgent(tenant, request->agent()).status());
        if (tooling_.sessions == nullptr) {
          return absl::FailedPreconditionError("this server keeps no sessions");
        }
        v1::Session session;
        session.set_id(request->id());
        session.set_tenant(tenant);
        session.set_agent(request->agent());
        *session.mutable_labels() = request->labels();
        return tooling_.sessions->Create(std::move(session));
      }(),
      response);
}

grpc::ServerUnaryReactor* AgentServiceImpl::GetSession(grpc::CallbackServerContext* context,
                                                       const v1::GetSessionRequest* request,
                                                       v1::Session* response) {
  return Answer(
      context,
      [&]() -> absl::StatusOr<v1::Session> {
        FLOWORK_ASSIGN_OR_RETURN(std::string tenant, keys_.Tenant(*context));
        return OwnSession(tenant, request->id());
      }(),
      response);
}

grpc::ServerUnaryReactor* AgentServiceImpl::ListSessions(grpc::CallbackServerContext* context,
                                                         const v1::ListSessionsRequest* request,
                                                         v1::ListSessionsResponse* response) {
  return Answer(
      context,
      [&]() -> absl::StatusOr<v1::ListSessionsResponse> {
        FLOWORK_ASSIGN_OR_RETURN(std::string tenant, keys_.Tenant(*context));
        v1::ListSessionsResponse out;
        if (tooling_.sessions == nullptr) return out;
        if (request->page_size() < 0 || request->page_size() > kMaxSessionListLimit) {
          return absl::InvalidArgumentError(absl::StrCat("page_size: 0 to ", kMaxSessionListLimit));
        }
        const int size = request->page_size() == 0 ? 100 : request->page_size();
        // One more than asked tells whether another page follows.
        FLOWORK_ASSIGN_OR_RETURN(std::vector<v1::Session> sessions,
                                 tooling_.sessions->List(tenant, request->agent(),
                                                         std::min(size + 1, kMaxSessionListLimit),
                                                         request->page_token()));
        const bool more = static_cast<int>(sessions.size()) > size;
        if (more) sessions.resize(static_cast<size_t>(size));
        for (v1::Session& session : sessions) *out.add_sessions() = std::move(session);
        if (more && out.sessions_size() > 0) {
          out.set_next_page_token(out.sessions(out.sessions_size() - 1).id());
        }
        return out;
      }(),
      response);
}

grpc::ServerUnaryReactor* AgentServiceImpl::ListSessionMessages(
    grpc::CallbackServerContext* context, const v1::ListSessionMessagesRequest* request,
    v1::ListSessionMessagesResponse* response) {
  return Answer(
      context,
      [&]() -> absl::StatusOr<v1::ListSessionMessagesResponse> {
        FLOWORK_ASSIGN_OR_RETURN(std::string tenant, keys_.Tenant(*context));
        FLOWORK_RETURN_IF_ERROR(OwnSession(tenant, request->id()).status());
        if (request->limit() < 0 || request->limit() > kMaxSessionMessagesLimit) {
          return absl::InvalidArgumentError(absl::StrCat("limit: 0 to ", kMaxSessionMessagesLimit));
        }
        FLOWORK_ASSIGN_OR_RETURN(
            std::vector<v1::SessionMessage> messages,
            tooling_.sessions->ListMessages(request->id(), request->after(),
                                            request->limit() == 0 ? 100 : request->limit()));
        v1::ListSessionMessagesResponse out;
        for (v1::SessionMessage& message : messages) *out.add_messages() = std::move(message);
        return out;
      }(),
      response);
}

}  // namespace flowork::agent::internal
