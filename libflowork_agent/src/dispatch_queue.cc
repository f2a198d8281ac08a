#include "flowork/agent/dispatch_queue.h"

#include <algorithm>
#include <array>
#include <set>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "flowork/core/internal/strings.h"

namespace flowork::agent {
namespace {

using core::internal::ToAbsl;

// Priority classes, most urgent first: interactive, standard, batch.
constexpr int kClasses = 3;

// A model budget's bucket holds one minute's worth of requests or tokens.
constexpr absl::Duration kBucketSpan = absl::Minutes(1);

int ClassOf(v1::Priority priority) {
  switch (priority) {
    case v1::PRIORITY_INTERACTIVE:
      return 0;
    case v1::PRIORITY_BATCH:
      return 2;
    default:
      return 1;
  }
}

// How long a bucket refilling `per_minute` a minute takes to refill `units`.
absl::Duration RefillTime(int64_t units, int64_t per_minute) {
  return kBucketSpan * units / per_minute;
}

bool AgingEnabled(absl::Duration interval) {
  return interval > absl::ZeroDuration() && interval != absl::InfiniteDuration();
}

struct AgentState {
  std::string name;
  int64_t queued = 0;
  int64_t running = 0;
  int max_running = 0;  // 0: unlimited.
};

struct TenantState;
struct Group;
struct Lane;

// A queued task and where it sits.
struct Entry {
  ReadyTask task;
  uint64_t seq = 0;  // Push order: the last tie-break.
  int base_class = 1;
  int cls = 1;  // After aging.
  absl::Time promote_at = absl::InfiniteFuture();
  TenantState* tenant = nullptr;
  AgentState* agent = nullptr;
  Group* group = nullptr;
};

// Inside a tenant: earliest deadline, then longest ready, then push order.
struct ByUrgency {
  bool operator()(const Entry* a, const Entry* b) const {
    if (a->task.deadline != b->task.deadline) return a->task.deadline < b->task.deadline;
    if (a->task.ready_since != b->task.ready_since)
      return a->task.ready_since < b->task.ready_since;
    return a->seq < b->seq;
  }
};

// The queued tasks of one (class, tenant, agent, model). Admission is decided
// per group head: when the head waits for its agent or model, so does the
// rest of the group, which keeps skipping blocked work O(#blocked groups).
struct Group {
  std::pair<std::string, std::string> key;  // Agent, model.
  Lane* lane = nullptr;
  AgentState* agent = nullptr;
  std::set<Entry*, ByUrgency> tasks;
};

// Non-empty groups ordered by their most urgent task (heads are unique).
struct ByHead {
  bool operator()(const Group* a, const Group* b) const {
    return ByUrgency()(*a->tasks.begin(), *b->tasks.begin());
  }
};

// One tenant's tasks in one class, and its stride-scheduling pass there.
struct Lane {
  TenantState* tenant = nullptr;
  int cls = 0;
  double pass = 0;
  std::set<Group*, ByHead> groups;
  absl::flat_hash_map<std::pair<std::string, std::string>, std::unique_ptr<Group>> by_key;
};

struct TenantState {
  std::string name;
  int64_t queued = 0;
  int64_t running = 0;
  int max_running = 0;  // 0: unlimited.
  double stride = 1;    // 1 / weight.
  std::array<Lane, kClasses> lanes;
};

// Lanes with work, lowest pass first; the tenant name breaks ties.
struct ByPass {
  bool operator()(const Lane* a, const Lane* b) const {
    if (a->pass != b->pass) return a->pass < b->pass;
    return a->tenant->name < b->tenant->name;
  }
};

struct ClassState {
  std::set<Lane*, ByPass> active;
  // The largest pass a dispatch started from: a lane that becomes active, or
  // that fell behind while blocked, is brought up to it so it banks no burst.
  double vtime = 0;
};

// A model's buckets as theoretical arrival times (GCRA): the bucket is full
// when the time is in the past, and short of one minute's worth by how far it
// lies in the future. Exact to the nanosecond, and refills need no timer.
struct ModelState {
  ModelBudget budget;
  absl::Time request_tat = absl::InfinitePast();
  absl::Time token_tat = absl::InfinitePast();
  // Tokens used beyond the estimate, charged at the next Pop.
  int64_t overrun = 0;
  absl::Time backoff_until = absl::InfinitePast();
};

struct RunningTask {
  TenantState* tenant = nullptr;
  AgentState* agent = nullptr;
  std::string model;
  int64_t estimated_tokens = 0;
};

struct ByPromotion {
  bool operator()(const Entry* a, const Entry* b) const {
    if (a->promote_at != b->promote_at) return a->promote_at < b->promote_at;
    return a->seq < b->seq;
  }
};

absl::Status Negative(const std::string& field, int64_t value) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", value, " is negative"));
}

absl::Status Validate(const DispatchQueueOptions& options) {
  if (options.max_running < 0) return Negative("max_running", options.max_running);
  for (const auto& [agent, limit] : options.max_running_per_agent) {
    if (limit < 0) return Negative(absl::StrCat("max_running_per_agent[\"", agent, "\"]"), limit);
  }
  if (options.default_max_running_per_agent < 0) {
    return Negative("default_max_running_per_agent", options.default_max_running_per_agent);
  }
  for (const auto& [tenant, limit] : options.max_running_per_tenant) {
    if (limit < 0) return Negative(absl::StrCat("max_running_per_tenant[\"", tenant, "\"]"), limit);
  }
  if (options.default_max_running_per_tenant < 0) {
    return Negative("default_max_running_per_tenant", options.default_max_running_per_tenant);
  }
  for (const auto& [tenant, weight] : options.tenant_weights) {
    if (weight < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("tenant_weights[\"", tenant, "\"]: ", weight, " is below 1"));
    }
  }
  if (options.default_tenant_weight < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("default_tenant_weight: ", options.default_tenant_weight, " is below 1"));
  }
  for (const auto& [model, budget] : options.model_budgets) {
    const std::string field = absl::StrCat("model_budgets[\"", model, "\"]");
    if (budget.requests_per_minute < 0) {
      return Negative(absl::StrCat(field, ".requests_per_minute"), budget.requests_per_minute);
    }
    if (budget.tokens_per_minute < 0) {
      return Negative(absl::StrCat(field, ".tokens_per_minute"), budget.tokens_per_minute);
    }
  }
  if (options.aging_interval < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "aging_interval: ", absl::FormatDuration(options.aging_interval), " is negative"));
  }
  return absl::OkStatus();
}

template <typename Map>
int LimitFor(const Map& limits, int fallback, const std::string& name) {
  auto it = limits.find(name);
  return it == limits.end() ? fallback : it->second;
}

}  // namespace

struct DispatchQueue::State {
  DispatchQueueOptions options;
  uint64_t next_seq = 0;
  absl::flat_hash_map<std::string, std::unique_ptr<Entry>> queued;
  absl::flat_hash_map<std::string, RunningTask> running;
  absl::flat_hash_map<std::string, std::unique_ptr<TenantState>> tenants;
  absl::flat_hash_map<std::string, std::unique_ptr<AgentState>> agents;
  // Models with a budget or a backoff.
  absl::flat_hash_map<std::string, ModelState> models;
  bool overrun_pending = false;
  std::array<ClassState, kClasses> classes;
  // Queued tasks that age into a higher class at promote_at.
  std::set<Entry*, ByPromotion> promotions;

  void SetOptions(DispatchQueueOptions new_options) {
    const bool aging_changed = new_options.aging_interval != options.aging_interval;
    options = std::move(new_options);
    for (auto& [name, tenant] : tenants) RefreshLimits(*tenant);
    for (auto& [name, agent] : agents) RefreshLimits(*agent);
    for (auto& [name, model] : models) model.budget = ModelBudget();
    for (const auto& [name, budget] : options.model_budgets) models[name].budget = budget;
    // A model neither budgeted nor ever backed off needs no state.
    for (auto it = models.begin(); it != models.end();) {
      const ModelState& model = it->second;
      const bool unlimited =
          model.budget.requests_per_minute == 0 && model.budget.tokens_per_minute == 0;
      if (unlimited && model.backoff_until == absl::InfinitePast()) {
        models.erase(it++);
      } else {
        ++it;
      }
    }
    if (aging_changed) {
      promotions.clear();
      for (auto& [id, entry] : queued) {
        entry->promote_at = NextPromotion(*entry);
        if (entry->promote_at != absl::InfiniteFuture()) promotions.insert(entry.get());
      }
    }
  }

  void RefreshLimits(TenantState& tenant) const {
    tenant.max_running = LimitFor(options.max_running_per_tenant,
                                  options.default_max_running_per_tenant, tenant.name);
    tenant.stride =
        1.0 / LimitFor(options.tenant_weights, options.default_tenant_weight, tenant.name);
  }

  void RefreshLimits(AgentState& agent) const {
    agent.max_running =
        LimitFor(options.max_running_per_agent, options.default_max_running_per_agent, agent.name);
  }

  TenantState* TenantFor(const std::string& name) {
    std::unique_ptr<TenantState>& slot = tenants[name];
    if (slot == nullptr) {
      slot = std::make_unique<TenantState>();
      slot->name = name;
      for (int cls = 0; cls < kClasses; ++cls) {
        slot->lanes[cls].tenant = slot.get();
        slot->lanes[cls].cls = cls;
        slot->lanes[cls].pass = classes[cls].vtime;
      }
      RefreshLimits(*slot);
    }
    return slot.get();
  }

  AgentState* AgentFor(const std::string& name) {
    std::unique_ptr<AgentState>& slot = agents[name];
    if (slot == nullptr) {
      slot = std::make_unique<AgentState>();
      slot->name = name;
      RefreshLimits(*slot);
    }
    return slot.get();
  }

  // Tenants and agents are forgotten once nothing of theirs is queued or
  // running, so memory follows the live work; a returning tenant starts at
  // the class's virtual time, as any newly active one does.
  void DropIfIdle(TenantState* tenant) {
    if (tenant->queued > 0 || tenant->running > 0) return;
    tenants.erase(tenants.find(tenant->name));
  }

  void DropIfIdle(AgentState* agent) {
    if (agent->queued > 0 || agent->running > 0) return;
    agents.erase(agents.find(agent->name));
  }

  absl::Time NextPromotion(const Entry& entry) const {
    if (entry.cls == 0 || !AgingEnabled(options.aging_interval)) return absl::InfiniteFuture();
    return entry.task.ready_since + options.aging_interval * (entry.base_class - entry.cls + 1);
  }

  // Puts `entry` into its lane and group for its current class.
  void Attach(Entry* entry) {
    Lane& lane = entry->tenant->lanes[entry->cls];
    auto [it, inserted] = lane.by_key.try_emplace({entry->task.agent, entry->task.model});
    if (inserted) {
      it->second = std::make_unique<Group>();
      it->second->key = it->first;
      it->second->lane = &lane;
      it->second->agent = entry->agent;
    }
    Group* group = it->second.get();
    const bool lane_was_idle = lane.groups.empty();
    const bool new_head = group->tasks.empty() || ByUrgency()(entry, *group->tasks.begin());
    if (new_head && !group->tasks.empty()) lane.groups.erase(group);
    group->tasks.insert(entry);
    entry->group = group;
    if (new_head) lane.groups.insert(group);
    if (lane_was_idle) {
      ClassState& cls = classes[lane.cls];
      lane.pass = std::max(lane.pass, cls.vtime);
      cls.active.insert(&lane);
    }
    if (entry->promote_at != absl::InfiniteFuture()) promotions.insert(entry);
  }

  // Takes `entry` out of its group, lane and the promotion schedule.
  void Detach(Entry* entry) {
    Group* group = entry->group;
    Lane& lane = *group->lane;
    const bool was_head = *group->tasks.begin() == entry;
    if (was_head) lane.groups.erase(group);
    group->tasks.erase(entry);
    entry->group = nullptr;
    if (group->tasks.empty()) {
      lane.by_key.erase(lane.by_key.find(group->key));
    } else if (was_head) {
      lane.groups.insert(group);
    }
    if (lane.groups.empty()) classes[lane.cls].active.erase(&lane);
    if (entry->promote_at != absl::InfiniteFuture()) promotions.erase(entry);
  }

  void ApplyAging(absl::Time now) {
    while (!promotions.empty()) {
      Entry* entry = *promotions.begin();
      if (entry->promote_at > now) break;
      Detach(entry);
      --entry->cls;
      entry->promote_at = NextPromotion(*entry);
      Attach(entry);
    }
  }

  static absl::Time TokenTat(const ModelState& model, absl::Time now) {
    if (model.overrun <= 0) return model.token_tat;
    return std::max(model.token_tat, now) +
           RefillTime(model.overrun, model.budget.tokens_per_minute);
  }

  void SettleOverruns(absl::Time now) {
    if (!overrun_pending) return;
    overrun_pending = false;
    for (auto& [name, model] : models) {
      if (model.overrun > 0 && model.budget.tokens_per_minute > 0) {
        model.token_tat = TokenTat(model, now);
      }
      model.overrun = 0;
    }
  }

  // The earliest time the model's backoff and budgets let a task reserving
  // `tokens` start; InfinitePast when nothing limits the model.
  absl::Time ModelReadyAt(const std::string& name, int64_t tokens, absl::Time now) const {
    if (models.empty()) return absl::InfinitePast();
    auto it = models.find(name);
    if (it == models.end()) return absl::InfinitePast();
    const ModelState& model = it->second;
    absl::Time ready_at = model.backoff_until;
    const int64_t rpm = model.budget.requests_per_minute;
    if (rpm > 0)
      ready_at = std::max(ready_at, model.request_tat + RefillTime(1, rpm) - kBucketSpan);
    const int64_t tpm = model.budget.tokens_per_minute;
    if (tpm > 0) {
      // More than a whole bucket waits for a full one rather than forever.
      const int64_t need = std::clamp<int64_t>(tokens, 0, tpm);
      ready_at = std::max(ready_at, TokenTat(model, now) + RefillTime(need, tpm) - kBucketSpan);
    }
    return ready_at;
  }

  struct Choice {
    Entry* entry = nullptr;
    // When nothing may start: the earliest a model-blocked task could.
    absl::Time wakeup = absl::InfiniteFuture();
  };

  // The first task in dispatch order that may start at `now`. Costs one step
  // per lane or group skipped because it waits, plus O(log n) set walks.
  Choice Select(absl::Time now) const {
    Choice choice;
    if (options.max_running > 0 && running.size() >= static_cast<size_t>(options.max_running)) {
      return choice;
    }
    // Models whose budget holds back a task that ranks earlier.
    absl::flat_hash_set<absl::string_view> held;
    for (const ClassState& cls : classes) {
      for (const Lane* lane : cls.active) {
        const TenantState& tenant = *lane->tenant;
        if (tenant.max_running > 0 && tenant.running >= tenant.max_running) continue;
        for (const Group* group : lane->groups) {
          const AgentState& agent = *group->agent;
          if (agent.max_running > 0 && agent.running >= agent.max_running) continue;
          const std::string& model = group->key.second;
          if (!held.empty() && held.contains(ToAbsl(model))) continue;
          Entry* head = *group->tasks.begin();
          const absl::Time ready_at = ModelReadyAt(model, head->task.estimated_tokens, now);
          if (now >= ready_at) {
            choice.entry = head;
            return choice;
          }
          held.insert(ToAbsl(model));
          choice.wakeup = std::min(choice.wakeup, ready_at);
        }
      }
    }
    return choice;
  }

  ReadyTask Dispatch(Entry* entry, absl::Time now) {
    // Stride scheduling: the lane pays one stride from where it started, and
    // a lane that fell behind while blocked starts from the virtual time: it
    // went first, as its place in line said, but banks no further burst.
    Lane& lane = *entry->group->lane;
    ClassState& cls = classes[lane.cls];
    cls.active.erase(&lane);
    cls.vtime = std::max(cls.vtime, lane.pass);
    lane.pass = cls.vtime + entry->tenant->stride;
    cls.active.insert(&lane);
    Detach(entry);

    if (!models.empty()) {
      auto it = models.find(entry->task.model);
      if (it != models.end()) {
        ModelState& model = it->second;
        const int64_t rpm = model.budget.requests_per_minute;
        if (rpm > 0) model.request_tat = std::max(model.request_tat, now) + RefillTime(1, rpm);
        const int64_t tpm = model.budget.tokens_per_minute;
        if (tpm > 0) {
          model.token_tat = std::max(model.token_tat, now) +
                            RefillTime(std::max<int64_t>(entry->task.estimated_tokens, 0), tpm);
        }
        // A backoff that has ended on a model without a budget leaves no state.
        if (rpm == 0 && tpm == 0) models.erase(it);
      }
    }

    --entry->tenant->queued;
    ++entry->tenant->running;
    --entry->agent->queued;
    ++entry->agent->running;
    auto it = queued.find(entry->task.id);
    std::unique_ptr<Entry> owned = std::move(it->second);
    queued.erase(it);
    ReadyTask task = std::move(owned->task);
    running.emplace(task.id,
                    RunningTask{owned->tenant, owned->agent, task.model, task.estimated_tokens});
    return task;
  }
};

DispatchQueue::DispatchQueue() : state_(std::make_unique<State>()) {}

DispatchQueue::~DispatchQueue() = default;

absl::StatusOr<std::unique_ptr<DispatchQueue>> DispatchQueue::Create(DispatchQueueOptions options) {
  absl::Status valid = Validate(options);
  if (!valid.ok()) return valid;
  std::unique_ptr<DispatchQueue> queue(new DispatchQueue());
  {
    absl::MutexLock lock(&queue->mu_);
    queue->state_->SetOptions(std::move(options));
  }
  return queue;
}

bool DispatchQueue::Push(ReadyTask task) {
  absl::MutexLock lock(&mu_);
  State& s = *state_;
  if (s.queued.contains(task.id) || s.running.contains(task.id)) return false;
  auto entry = std::make_unique<Entry>();
  entry->seq = s.next_seq++;
  entry->base_class = ClassOf(task.priority);
  entry->cls = entry->base_class;
  entry->tenant = s.TenantFor(task.tenant);
  entry->agent = s.AgentFor(task.agent);
  entry->task = std::move(task);
  entry->promote_at = s.NextPromotion(*entry);
  ++entry->tenant->queued;
  ++entry->agent->queued;
  Entry* raw = entry.get();
  s.queued.emplace(raw->task.id, std::move(entry));
  s.Attach(raw);
  return true;
}

bool DispatchQueue::Remove(std::string_view id) {
  absl::MutexLock lock(&mu_);
  State& s = *state_;
  auto it = s.queued.find(ToAbsl(id));
  if (it == s.queued.end()) return false;
  std::unique_ptr<Entry> entry = std::move(it->second);
  s.queued.erase(it);
  s.Detach(entry.get());
  --entry->tenant->queued;
  --entry->agent->queued;
  s.DropIfIdle(entry->tenant);
  s.DropIfIdle(entry->agent);
  return true;
}

std::optional<ReadyTask> DispatchQueue::Pop(absl::Time now) {
  absl::MutexLock lock(&mu_);
  State& s = *state_;
  s.SettleOverruns(now);
  s.ApplyAging(now);
  State::Choice choice = s.Select(now);
  if (choice.entry == nullptr) return std::nullopt;
  return s.Dispatch(choice.entry, now);
}

void DispatchQueue::Finish(const ReadyTask& task, int64_t actual_tokens) {
  absl::MutexLock lock(&mu_);
  State& s = *state_;
  auto it = s.running.find(task.id);
  if (it == s.running.end()) return;
  RunningTask done = std::move(it->second);
  s.running.erase(it);
  --done.tenant->running;
  --done.agent->running;
  s.DropIfIdle(done.tenant);
  s.DropIfIdle(done.agent);
  auto model_it = s.models.find(done.model);
  if (model_it == s.models.end()) return;
  ModelState& model = model_it->second;
  const int64_t tpm = model.budget.tokens_per_minute;
  if (tpm <= 0) return;
  const int64_t difference =
      std::max<int64_t>(actual_tokens, 0) - std::max<int64_t>(done.estimated_tokens, 0);
  if (difference < 0) {
    // A refund needs no time: a bucket already full stays full.
    model.token_tat -= RefillTime(-difference, tpm);
  } else if (difference > 0) {
    // A charge does: it comes off what the bucket holds at the next Pop.
    model.overrun += difference;
    s.overrun_pending = true;
  }
}

void DispatchQueue::BackOffModel(std::string_view model, absl::Time until) {
  absl::MutexLock lock(&mu_);
  ModelState& state = state_->models[std::string(model)];
  state.backoff_until = std::max(state.backoff_until, until);
}

absl::Time DispatchQueue::NextWakeup(absl::Time now) const {
  absl::MutexLock lock(&mu_);
  State::Choice choice = state_->Select(now);
  return choice.entry != nullptr ? now : choice.wakeup;
}

size_t DispatchQueue::size() const {
  absl::MutexLock lock(&mu_);
  return state_->queued.size();
}

size_t DispatchQueue::running() const {
  absl::MutexLock lock(&mu_);
  return state_->running.size();
}

absl::Status DispatchQueue::UpdateOptions(DispatchQueueOptions options) {
  absl::Status valid = Validate(options);
  if (!valid.ok()) return valid;
  absl::MutexLock lock(&mu_);
  state_->SetOptions(std::move(options));
  return absl::OkStatus();
}

}  // namespace flowork::agent
