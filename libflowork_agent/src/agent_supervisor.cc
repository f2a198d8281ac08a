#include "flowork/agent/agent_supervisor.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace flowork::agent {
namespace {

constexpr absl::Duration kDefaultInitialBackoff = absl::Seconds(10);
constexpr absl::Duration kDefaultMaxBackoff = absl::Seconds(300);
constexpr absl::Duration kDefaultHealthyReset = absl::Minutes(10);
constexpr uint32_t kDefaultCrashLoopAfter = 3;
constexpr absl::Duration kDefaultHealthInterval = absl::Seconds(30);

using State = v1::AgentState;

absl::string_view StateName(State state) {
  absl::string_view name = v1::AgentState_Name(state);
  absl::ConsumePrefix(&name, "AGENT_STATE_");
  return name;
}

bool IsRunning(State state) {
  return state == v1::AGENT_STATE_READY || state == v1::AGENT_STATE_BUSY;
}

bool IsUp(State state) {
  return state == v1::AGENT_STATE_STARTING || IsRunning(state) || state == v1::AGENT_STATE_DRAINING;
}

bool IsDown(State state) {
  return state == v1::AGENT_STATE_CREATED || state == v1::AGENT_STATE_STOPPED ||
         state == v1::AGENT_STATE_FAILED || state == v1::AGENT_STATE_CRASH_LOOP;
}

absl::Status IllegalTransition(const std::string& name, const char* operation, State from,
                               State to) {
  return absl::FailedPreconditionError(absl::StrCat("agent \"", name, "\": ", operation,
                                                    " cannot go from ", StateName(from), " to ",
                                                    StateName(to)));
}

// A proto Duration that must be well-formed and non-negative.
absl::StatusOr<absl::Duration> ReadDuration(const google::protobuf::Duration& d,
                                            const std::string& field) {
  if (d.nanos() <= -1'000'000'000 || d.nanos() >= 1'000'000'000 ||
      (d.seconds() > 0 && d.nanos() < 0) || (d.seconds() < 0 && d.nanos() > 0)) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": malformed duration"));
  }
  absl::Duration result = absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
  if (result < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", absl::FormatDuration(result), " is negative"));
  }
  return result;
}

// The failure as it is recorded, with where it came from.
absl::Status Annotate(const absl::Status& status, const char* context) {
  return absl::Status(status.code(), absl::StrCat(context, ": ", status.message()));
}

// Marks the agents whose hooks this thread is inside of, so Remove can refuse
// to wait for a hook call it is itself part of.
struct HookScope {
  const void* agent;
  const HookScope* outer;
};
thread_local const HookScope* current_hook_scope = nullptr;

bool InsideHooksOf(const void* agent) {
  for (const HookScope* scope = current_hook_scope; scope != nullptr; scope = scope->outer) {
    if (scope->agent == agent) return true;
  }
  return false;
}

}  // namespace

// Shared with completion callbacks; cleared when the supervisor goes, so
// late callbacks do nothing.
class AgentSupervisor::Liveness {
 public:
  explicit Liveness(AgentSupervisor* supervisor) : supervisor_(supervisor) {}

  void Clear() {
    absl::MutexLock lock(&mu_);
    supervisor_ = nullptr;
  }

  template <typename F>
  void IfAlive(F&& f) {
    absl::ReaderMutexLock lock(&mu_);
    if (supervisor_ != nullptr) f(*supervisor_);
  }

 private:
  absl::Mutex mu_;
  AgentSupervisor* supervisor_ ABSL_GUARDED_BY(mu_);
};

AgentSupervisor::AgentSupervisor(const core::Clock& clock)
    : clock_(clock), liveness_(std::make_shared<Liveness>(this)) {}

AgentSupervisor::~AgentSupervisor() { liveness_->Clear(); }

absl::Status AgentSupervisor::Add(const v1::AgentSpec& spec, AgentHooks& hooks) {
  if (spec.name().empty()) return absl::InvalidArgumentError("agent.name: empty");
  const std::string prefix = absl::StrCat("agent \"", spec.name(), "\": restart.");
  const v1::RestartPolicy& restart = spec.restart();
  Agent agent;
  agent.hooks = &hooks;
  agent.max_concurrency = spec.limits().max_concurrency();
  Policy& policy = agent.policy;
  switch (restart.mode()) {
    case v1::RestartPolicy::MODE_UNSPECIFIED:
    case v1::RestartPolicy::MODE_ON_FAILURE:
      policy.mode = v1::RestartPolicy::MODE_ON_FAILURE;
      break;
    case v1::RestartPolicy::MODE_ALWAYS:
    case v1::RestartPolicy::MODE_NEVER:
      policy.mode = restart.mode();
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(prefix, "mode: unknown mode ", static_cast<int>(restart.mode())));
  }
  // Unset or zero takes the default, except health_interval, where an
  // explicit zero turns health checks off.
  struct DurationField {
    const char* name;
    bool present;
    const google::protobuf::Duration& value;
    absl::Duration fallback;
    bool zero_is_off;
    absl::Duration& out;
  };
  const DurationField fields[] = {
      {"initial_backoff", restart.has_initial_backoff(), restart.initial_backoff(),
       kDefaultInitialBackoff, false, policy.initial_backoff},
      {"max_backoff", restart.has_max_backoff(), restart.max_backoff(), kDefaultMaxBackoff, false,
       policy.max_backoff},
      {"healthy_reset", restart.has_healthy_reset(), restart.healthy_reset(), kDefaultHealthyReset,
       false, policy.healthy_reset},
      {"health_interval", restart.has_health_interval(), restart.health_interval(),
       kDefaultHealthInterval, true, policy.health_interval},
  };
  for (const DurationField& field : fields) {
    field.out = field.fallback;
    if (!field.present) continue;
    absl::StatusOr<absl::Duration> value = ReadDuration(field.value, prefix + field.name);
    if (!value.ok()) return value.status();
    if (*value > absl::ZeroDuration() || field.zero_is_off) field.out = *value;
  }
  if (policy.max_backoff < policy.initial_backoff) {
    return absl::InvalidArgumentError(absl::StrCat(
        prefix, "max_backoff: ", absl::FormatDuration(policy.max_backoff),
        " is shorter than initial_backoff ", absl::FormatDuration(policy.initial_backoff)));
  }
  policy.crash_loop_after =
      restart.crash_loop_after() == 0 ? kDefaultCrashLoopAfter : restart.crash_loop_after();

  absl::MutexLock lock(&mu_);
  auto [it, inserted] = agents_.emplace(spec.name(), std::move(agent));
  if (!inserted) {
    return absl::AlreadyExistsError(
        absl::StrCat("agent \"", spec.name(), "\" is already supervised"));
  }
  return absl::OkStatus();
}

absl::Status AgentSupervisor::Remove(const std::string& name) {
  absl::MutexLock lock(&mu_);
  while (true) {
    absl::StatusOr<Agent*> agent = Find(name);
    if (!agent.ok()) return agent.status();
    if (!IsDown((*agent)->state)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "agent \"", name, "\": Remove needs CREATED, STOPPED, FAILED or CRASH_LOOP, not ",
          StateName((*agent)->state)));
    }
    if ((*agent)->hook_calls == 0) break;
    if (InsideHooksOf(*agent)) {
      return absl::FailedPreconditionError(
          absl::StrCat("agent \"", name, "\": Remove called from inside its own hooks"));
    }
    auto idle = [this, &name]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
      auto it = agents_.find(name);
      return it == agents_.end() || it->second.hook_calls == 0;
    };
    mu_.Await(absl::Condition(&idle));
  }
  agents_.erase(name);
  return absl::OkStatus();
}

absl::Status AgentSupervisor::Start(const std::string& name) {
  std::vector<HookCall> calls;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<Agent*> agent = Find(name);
    if (!agent.ok()) return agent.status();
    if (!IsDown((*agent)->state)) {
      return IllegalTransition(name, "Start", (*agent)->state, v1::AGENT_STATE_STARTING);
    }
    calls.push_back(BeginStart(name, **agent));
  }
  Run(std::move(calls));
  return absl::OkStatus();
}

absl::Status AgentSupervisor::Stop(const std::string& name) {
  std::vector<HookCall> calls;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<Agent*> agent = Find(name);
    if (!agent.ok()) return agent.status();
    Agent& a = **agent;
    SettleHealthy(a, clock_.Now());
    switch (a.state) {
      case v1::AGENT_STATE_STARTING:
      case v1::AGENT_STATE_READY:
        calls.push_back(BeginStop(name, a));
        break;
      case v1::AGENT_STATE_BUSY:
        EnterDraining(a, absl::InfiniteFuture());
        break;
      case v1::AGENT_STATE_DRAINING:
        break;
      case v1::AGENT_STATE_STOPPED:
        // Only an exit awaiting its MODE_ALWAYS restart has something to stop.
        if (a.next_restart == absl::InfiniteFuture()) {
          return IllegalTransition(name, "Stop", a.state, v1::AGENT_STATE_STOPPED);
        }
        a.next_restart = absl::InfiniteFuture();
        break;
      default:
        a.next_restart = absl::InfiniteFuture();
        a.state = v1::AGENT_STATE_STOPPED;
        break;
    }
  }
  Run(std::move(calls));
  return absl::OkStatus();
}

absl::Status AgentSupervisor::Restart(const std::string& name) {
  std::vector<HookCall> calls;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<Agent*> agent = Find(name);
    if (!agent.ok()) return agent.status();
    Agent& a = **agent;
    switch (a.state) {
      case v1::AGENT_STATE_READY:
        calls.push_back(BeginStop(name, a));
        break;
      case v1::AGENT_STATE_STOPPED:
      case v1::AGENT_STATE_FAILED:
      case v1::AGENT_STATE_CRASH_LOOP:
        break;
      default:
        return IllegalTransition(name, "Restart", a.state, v1::AGENT_STATE_STARTING);
    }
    a.consecutive_failures = 0;
    ++a.restarts;
    calls.push_back(BeginStart(name, a));
  }
  Run(std::move(calls));
  return absl::OkStatus();
}

absl::Status AgentSupervisor::Drain(const std::string& name, absl::Duration grace) {
  if (grace < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("agent \"", name, "\": drain grace ",
                                                   absl::FormatDuration(grace), " is negative"));
  }
  std::vector<HookCall> calls;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<Agent*> agent = Find(name);
    if (!agent.ok()) return agent.status();
    Agent& a = **agent;
    const absl::Time now = clock_.Now();
    SettleHealthy(a, now);
    switch (a.state) {
      case v1::AGENT_STATE_READY:
        calls.push_back(BeginStop(name, a));
        break;
      case v1::AGENT_STATE_BUSY:
        EnterDraining(a, now + grace);
        break;
      case v1::AGENT_STATE_DRAINING:
        a.drain_deadline = std::min(a.drain_deadline, now + grace);
        break;
      default:
        return IllegalTransition(name, "Drain", a.state, v1::AGENT_STATE_DRAINING);
    }
  }
  Run(std::move(calls));
  return absl::OkStatus();
}

bool AgentSupervisor::MayTakeTask(const std::string& name) const {
  absl::MutexLock lock(&mu_);
  auto it = agents_.find(name);
  if (it == agents_.end()) return false;
  const Agent& a = it->second;
  return IsRunning(a.state) && (a.max_concurrency == 0 || a.running_tasks < a.max_concurrency);
}

absl::Status AgentSupervisor::TaskStarted(const std::string& name) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Agent*> agent = Find(name);
  if (!agent.ok()) return agent.status();
  Agent& a = **agent;
  if (!IsRunning(a.state)) {
    return IllegalTransition(name, "TaskStarted", a.state, v1::AGENT_STATE_BUSY);
  }
  if (a.max_concurrency != 0 && a.running_tasks >= a.max_concurrency) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "agent \"", name, "\" is running its max_concurrency of ", a.max_concurrency, " tasks"));
  }
  ++a.running_tasks;
  a.state = v1::AGENT_STATE_BUSY;
  return absl::OkStatus();
}

absl::Status AgentSupervisor::TaskFinished(const std::string& name) {
  std::vector<HookCall> calls;
  {
    absl::MutexLock lock(&mu_);
    absl::StatusOr<Agent*> agent = Find(name);
    if (!agent.ok()) return agent.status();
    Agent& a = **agent;
    if (a.running_tasks == 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("agent \"", name, "\" has no running task (", StateName(a.state), ")"));
    }
    if (--a.running_tasks == 0) {
      if (a.state == v1::AGENT_STATE_BUSY) {
        a.state = v1::AGENT_STATE_READY;
      } else if (a.state == v1::AGENT_STATE_DRAINING) {
        calls.push_back(BeginStop(name, a));
      }
    }
  }
  Run(std::move(calls));
  return absl::OkStatus();
}

absl::Status AgentSupervisor::ReportFailure(const std::string& name, const absl::Status& error) {
  if (error.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("agent \"", name, "\": ReportFailure needs an error, got OK"));
  }
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Agent*> agent = Find(name);
  if (!agent.ok()) return agent.status();
  if (!IsUp((*agent)->state)) {
    return IllegalTransition(name, "ReportFailure", (*agent)->state, v1::AGENT_STATE_FAILED);
  }
  Fail(**agent, error, clock_.Now());
  return absl::OkStatus();
}

absl::Status AgentSupervisor::ReportExited(const std::string& name) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Agent*> agent = Find(name);
  if (!agent.ok()) return agent.status();
  Agent& a = **agent;
  if (!IsUp(a.state)) {
    return IllegalTransition(name, "ReportExited", a.state, v1::AGENT_STATE_STOPPED);
  }
  const absl::Time now = clock_.Now();
  SettleHealthy(a, now);
  const bool restart =
      a.policy.mode == v1::RestartPolicy::MODE_ALWAYS && a.state != v1::AGENT_STATE_DRAINING;
  LeaveRunning(a);
  a.state = v1::AGENT_STATE_STOPPED;
  if (restart) {
    ++a.consecutive_failures;
    if (a.consecutive_failures >= a.policy.crash_loop_after) a.state = v1::AGENT_STATE_CRASH_LOOP;
    ScheduleRestart(a, now);
  }
  return absl::OkStatus();
}

std::vector<SupervisorAction> AgentSupervisor::Poll() {
  std::vector<SupervisorAction> actions;
  std::vector<HookCall> calls;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = clock_.Now();
    for (auto& [name, a] : agents_) {
      SettleHealthy(a, now);
      if (a.health_check_in_flight && IsUp(a.state) && a.health_check_deadline <= now) {
        const std::string waited = absl::FormatDuration(a.policy.health_interval);
        Fail(a,
             absl::DeadlineExceededError(absl::StrCat("health check: no answer within ", waited)),
             now);
      }
      if (a.next_restart <= now) {
        ++a.restarts;
        calls.push_back(BeginStart(name, a));
      } else if (IsRunning(a.state) && !a.health_check_in_flight && a.next_health_check <= now) {
        a.health_check_in_flight = true;
        a.health_check_deadline = now + a.policy.health_interval;
        a.next_health_check = now + a.policy.health_interval;
        ++a.hook_calls;
        calls.push_back({HookCall::kCheckHealth, name, &a, a.hooks, a.incarnation});
      } else if (a.state == v1::AGENT_STATE_DRAINING && !a.handed_back && a.drain_deadline <= now) {
        a.handed_back = true;
        actions.push_back({SupervisorAction::kHandBack, name});
      }
    }
  }
  Run(std::move(calls));
  return actions;
}

absl::Time AgentSupervisor::NextWakeup() const {
  absl::MutexLock lock(&mu_);
  absl::Time next = absl::InfiniteFuture();
  for (const auto& [name, a] : agents_) {
    next = std::min(next, a.next_restart);
    if (a.health_check_in_flight) {
      next = std::min(next, a.health_check_deadline);
    } else if (IsRunning(a.state)) {
      next = std::min(next, a.next_health_check);
    }
    if (a.state == v1::AGENT_STATE_DRAINING && !a.handed_back) {
      next = std::min(next, a.drain_deadline);
    }
  }
  return next;
}

absl::StatusOr<v1::AgentStatus> AgentSupervisor::Status(const std::string& name) const {
  absl::MutexLock lock(&mu_);
  auto it = agents_.find(name);
  if (it == agents_.end()) {
    return absl::NotFoundError(absl::StrCat("agent \"", name, "\" is not supervised"));
  }
  return MakeStatus(name, it->second, clock_.Now());
}

std::vector<v1::AgentStatus> AgentSupervisor::List() const {
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_.Now();
  std::vector<v1::AgentStatus> result;
  result.reserve(agents_.size());
  for (const auto& [name, a] : agents_) result.push_back(MakeStatus(name, a, now));
  return result;
}

absl::StatusOr<AgentSupervisor::Agent*> AgentSupervisor::Find(const std::string& name) {
  auto it = agents_.find(name);
  if (it == agents_.end()) {
    return absl::NotFoundError(absl::StrCat("agent \"", name, "\" is not supervised"));
  }
  return &it->second;
}

void AgentSupervisor::SettleHealthy(Agent& agent, absl::Time now) {
  if (IsRunning(agent.state) && agent.healthy_since + agent.policy.healthy_reset <= now) {
    agent.consecutive_failures = 0;
  }
}

AgentSupervisor::HookCall AgentSupervisor::BeginStart(const std::string& name, Agent& agent) {
  LeaveRunning(agent);
  agent.state = v1::AGENT_STATE_STARTING;
  agent.next_restart = absl::InfiniteFuture();
  agent.incarnation = next_incarnation_++;
  ++agent.hook_calls;
  return {HookCall::kStart, name, &agent, agent.hooks, agent.incarnation};
}

AgentSupervisor::HookCall AgentSupervisor::BeginStop(const std::string& name, Agent& agent) {
  LeaveRunning(agent);
  agent.state = v1::AGENT_STATE_STOPPED;
  ++agent.hook_calls;
  return {HookCall::kStop, name, &agent, agent.hooks, agent.incarnation};
}

void AgentSupervisor::EnterRunning(Agent& agent, absl::Time now) {
  agent.state = agent.running_tasks > 0 ? v1::AGENT_STATE_BUSY : v1::AGENT_STATE_READY;
  agent.healthy_since = now;
  agent.next_health_check = agent.policy.health_interval > absl::ZeroDuration()
                                ? now + agent.policy.health_interval
                                : absl::InfiniteFuture();
  agent.health_check_in_flight = false;
  agent.health_check_deadline = absl::InfiniteFuture();
  agent.drain_deadline = absl::InfiniteFuture();
  agent.handed_back = false;
}

void AgentSupervisor::EnterDraining(Agent& agent, absl::Time deadline) {
  agent.state = v1::AGENT_STATE_DRAINING;
  agent.healthy_since = absl::InfiniteFuture();
  // A health check in flight still counts; no new one starts.
  agent.next_health_check = absl::InfiniteFuture();
  agent.drain_deadline = deadline;
  agent.handed_back = false;
}

void AgentSupervisor::LeaveRunning(Agent& agent) {
  agent.healthy_since = absl::InfiniteFuture();
  agent.next_health_check = absl::InfiniteFuture();
  agent.health_check_in_flight = false;
  agent.health_check_deadline = absl::InfiniteFuture();
  agent.drain_deadline = absl::InfiniteFuture();
  agent.handed_back = false;
}

void AgentSupervisor::Fail(Agent& agent, const absl::Status& error, absl::Time now) {
  SettleHealthy(agent, now);
  const bool was_draining = agent.state == v1::AGENT_STATE_DRAINING;
  LeaveRunning(agent);
  ++agent.consecutive_failures;
  agent.last_error = error.ToString();
  agent.state = v1::AGENT_STATE_FAILED;
  // A failure while draining ends the drain; the agent was going away anyway.
  if (was_draining || agent.policy.mode == v1::RestartPolicy::MODE_NEVER) return;
  if (agent.consecutive_failures >= agent.policy.crash_loop_after) {
    agent.state = v1::AGENT_STATE_CRASH_LOOP;
  }
  ScheduleRestart(agent, now);
}

void AgentSupervisor::ScheduleRestart(Agent& agent, absl::Time now) {
  absl::Duration backoff = agent.policy.initial_backoff;
  for (uint32_t i = 1; i < agent.consecutive_failures && backoff < agent.policy.max_backoff; ++i) {
    backoff *= 2;
  }
  agent.next_restart = now + std::min(backoff, agent.policy.max_backoff);
}

v1::AgentStatus AgentSupervisor::MakeStatus(const std::string& name, const Agent& agent,
                                            absl::Time now) const {
  v1::AgentStatus status;
  status.set_name(name);
  status.set_state(agent.state);
  status.set_restarts(agent.restarts);
  const bool healthy_long_enough =
      IsRunning(agent.state) && agent.healthy_since + agent.policy.healthy_reset <= now;
  status.set_consecutive_failures(healthy_long_enough ? 0 : agent.consecutive_failures);
  status.set_last_error(agent.last_error);
  if (agent.next_restart != absl::InfiniteFuture()) {
    const int64_t seconds = absl::ToUnixSeconds(agent.next_restart);
    status.mutable_next_restart_time()->set_seconds(seconds);
    status.mutable_next_restart_time()->set_nanos(static_cast<int32_t>(
        absl::ToInt64Nanoseconds(agent.next_restart - absl::FromUnixSeconds(seconds))));
  }
  status.set_running_tasks(agent.running_tasks);
  return status;
}

void AgentSupervisor::Run(std::vector<HookCall> calls) {
  for (HookCall& call : calls) {
    HookScope scope{call.agent, current_hook_scope};
    current_hook_scope = &scope;
    switch (call.kind) {
      case HookCall::kStart:
        call.hooks->Start([liveness = liveness_, name = call.name,
                           incarnation = call.incarnation](absl::Status status) mutable {
          liveness->IfAlive([&](AgentSupervisor& supervisor) {
            supervisor.OnStarted(name, incarnation, std::move(status));
          });
        });
        break;
      case HookCall::kStop:
        call.hooks->Stop();
        break;
      case HookCall::kCheckHealth:
        call.hooks->CheckHealth([liveness = liveness_, name = call.name,
                                 incarnation = call.incarnation](absl::Status status) mutable {
          liveness->IfAlive([&](AgentSupervisor& supervisor) {
            supervisor.OnHealthChecked(name, incarnation, std::move(status));
          });
        });
        break;
    }
    current_hook_scope = scope.outer;
    absl::MutexLock lock(&mu_);
    // Remove waits for this count to drop, so the agent is still there.
    --call.agent->hook_calls;
  }
}

void AgentSupervisor::OnStarted(const std::string& name, uint64_t incarnation,
                                absl::Status status) {
  absl::MutexLock lock(&mu_);
  auto it = agents_.find(name);
  if (it == agents_.end()) return;
  Agent& a = it->second;
  // An answer to an earlier Start, or to one overtaken by Stop or a failure.
  if (a.incarnation != incarnation || a.state != v1::AGENT_STATE_STARTING) return;
  const absl::Time now = clock_.Now();
  if (status.ok()) {
    EnterRunning(a, now);
  } else {
    Fail(a, Annotate(status, "start"), now);
  }
}

void AgentSupervisor::OnHealthChecked(const std::string& name, uint64_t incarnation,
                                      absl::Status status) {
  absl::MutexLock lock(&mu_);
  auto it = agents_.find(name);
  if (it == agents_.end()) return;
  Agent& a = it->second;
  if (a.incarnation != incarnation || !a.health_check_in_flight || !IsUp(a.state)) return;
  a.health_check_in_flight = false;
  a.health_check_deadline = absl::InfiniteFuture();
  if (!status.ok()) Fail(a, Annotate(status, "health check"), clock_.Now());
}

}  // namespace flowork::agent
