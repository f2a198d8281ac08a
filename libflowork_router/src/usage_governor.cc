// In-memory UsageGovernor: one small mutex-guarded state per key and per
// tenant, found through a sharded, read-mostly name map.
//
// Lock order: a shard's map lock is never held while a subject is locked by
// Admit/Settle; Admit locks the key's state before the tenant's (they live in
// separate name spaces, so the two are always different objects). The sweeper
// holds one shard's map lock and then each of its states' locks in turn.

#include "flowork/router/usage_governor.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <optional>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/civil_time.h"

namespace flowork::router {
namespace {

// Shared with LlmRetryAfter in the agent library: the same key, so a status
// from here reads back through either.
constexpr char kRetryAfterPayload[] = "flowork.retry_after_ms";

constexpr int kShards = 16;
// A state nobody used for this long, with full buckets, nothing in flight and
// nothing spent this UTC month, may be dropped (it would be rebuilt equal).
constexpr absl::Duration kIdleEviction = absl::Minutes(10);
// How often one shard is swept at most; sweeps happen when a shard grows.
constexpr absl::Duration kSweepInterval = absl::Minutes(1);
// Slack for floating-point refill arithmetic.
constexpr double kEpsilon = 1e-9;

enum class SubjectKind { kKey, kTenant };

int64_t DayIndex(absl::Time t) {
  return absl::ToCivilDay(t, absl::UTCTimeZone()) - absl::CivilDay(1970, 1, 1);
}

int64_t MonthIndex(absl::Time t) {
  return absl::ToCivilMonth(t, absl::UTCTimeZone()) - absl::CivilMonth(1970, 1);
}

absl::Time NextDayStart(absl::Time t) {
  return absl::FromCivil(absl::ToCivilDay(t, absl::UTCTimeZone()) + 1, absl::UTCTimeZone());
}

absl::Time NextMonthStart(absl::Time t) {
  return absl::FromCivil(absl::ToCivilMonth(t, absl::UTCTimeZone()) + 1, absl::UTCTimeZone());
}

// A token bucket refilled lazily. `available` may go negative (debt) when a
// request used more than it reserved or its estimate exceeded the capacity.
struct Bucket {
  bool active = false;  // A limit was set at the last admission.
  double capacity = 0;
  double per_second = 0;
  double available = 0;
  absl::Time updated;

  // Applies the limit from the running config (nullopt: unlimited).
  void Configure(std::optional<double> per_minute, absl::Time now) {
    if (!per_minute) {
      active = false;
      return;
    }
    if (!active) {
      // New, or unlimited until now: start full.
      active = true;
      capacity = *per_minute;
      per_second = *per_minute / 60;
      available = capacity;
      updated = now;
      return;
    }
    capacity = *per_minute;
    per_second = *per_minute / 60;
    Refill(now);
  }

  void Refill(absl::Time now) {
    if (now > updated) {
      available += absl::ToDoubleSeconds(now - updated) * per_second;
      updated = now;
    }
    available = std::min(available, capacity);
  }

  // How long until `need` is available; zero when it is now. A need above
  // the capacity waits for a full bucket (and then leaves it in debt).
  absl::Duration WaitFor(double need) const {
    const double target = std::min(need, capacity);
    if (available + kEpsilon >= target) return absl::ZeroDuration();
    // Round up to a whole millisecond so waiting that long is enough.
    const double millis = std::ceil((target - available) / per_second * 1000 - 1e-6);
    return absl::Milliseconds(std::max(millis, 1.0));
  }

  bool Full() const { return !active || available + kEpsilon >= capacity; }
};

struct SubjectState {
  absl::Mutex mu;
  bool evicted ABSL_GUARDED_BY(mu) = false;
  Bucket requests ABSL_GUARDED_BY(mu);
  Bucket tokens ABSL_GUARDED_BY(mu);
  // Spend of the UTC day and month that end at day_end and month_end; kept
  // as instants so the request path compares times instead of converting
  // to civil time.
  absl::Time day_end ABSL_GUARDED_BY(mu) = absl::InfinitePast();
  double day_spent ABSL_GUARDED_BY(mu) = 0;
  absl::Time month_end ABSL_GUARDED_BY(mu) = absl::InfinitePast();
  double month_spent ABSL_GUARDED_BY(mu) = 0;
  int64_t in_flight ABSL_GUARDED_BY(mu) = 0;
  absl::Time last_used ABSL_GUARDED_BY(mu);

  // Starts a new day or month of spend when `now` is past the one kept.
  void Roll(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (now >= day_end) {
      day_end = NextDayStart(now);
      day_spent = 0;
    }
    if (now >= month_end) {
      month_end = NextMonthStart(now);
      month_spent = 0;
    }
  }

  bool Idle(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (in_flight > 0 || now - last_used < kIdleEviction) return false;
    Roll(now);
    requests.Refill(now);
    tokens.Refill(now);
    return requests.Full() && tokens.Full() && day_spent == 0 && month_spent == 0;
  }
};

std::string SubjectName(SubjectKind kind, const std::string& name) {
  if (kind == SubjectKind::kTenant) return absl::StrCat("tenant \"", name, "\"");
  if (name.empty()) return "anonymous key";
  return absl::StrCat("key \"", name, "\"");
}

std::string FormatNumber(double value) { return absl::StrCat(value); }

// The longest wait any limit asks for, and which limit that is.
struct Refusal {
  absl::Duration wait = absl::ZeroDuration();
  std::string message;

  // `describe` builds the message only when this limit is the one reported.
  template <typename Describe>
  void Consider(absl::Duration candidate, const Describe& describe) {
    if (candidate > wait) {
      wait = candidate;
      message = describe();
    }
  }
};

// Checks every limit of one subject, adding any refusal to `refusal`.
void Check(SubjectKind kind, const std::string& name, SubjectState& state, const v1::Limits* limits,
           const v1::Budget* budget, double estimate, absl::Time now, Refusal& refusal)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(state.mu) {
  state.Roll(now);
  state.requests.Configure(
      limits != nullptr && limits->has_rpm() ? std::optional<double>(limits->rpm()) : std::nullopt,
      now);
  state.tokens.Configure(limits != nullptr && limits->has_tpm()
                             ? std::optional<double>(static_cast<double>(limits->tpm()))
                             : std::nullopt,
                         now);
  if (state.requests.active) {
    refusal.Consider(state.requests.WaitFor(1), [&] {
      return absl::StrCat(SubjectName(kind, name), ": requests per minute (", limits->rpm(),
                          ") exceeded");
    });
  }
  if (state.tokens.active) {
    refusal.Consider(state.tokens.WaitFor(estimate), [&] {
      return absl::StrCat(SubjectName(kind, name), ": tokens per minute (", limits->tpm(),
                          ") exceeded");
    });
  }
  if (budget != nullptr && budget->has_usd_per_day() && state.day_spent >= budget->usd_per_day()) {
    refusal.Consider(state.day_end - now, [&] {
      return absl::StrCat(SubjectName(kind, name), ": budget of ",
                          FormatNumber(budget->usd_per_day()), " USD per UTC day spent");
    });
  }
  if (budget != nullptr && budget->has_usd_per_month() &&
      state.month_spent >= budget->usd_per_month()) {
    refusal.Consider(state.month_end - now, [&] {
      return absl::StrCat(SubjectName(kind, name), ": budget of ",
                          FormatNumber(budget->usd_per_month()), " USD per UTC month spent");
    });
  }
}

void Reserve(SubjectState& state, double estimate, absl::Time now)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(state.mu) {
  if (state.requests.active) state.requests.available -= 1;
  if (state.tokens.active) state.tokens.available -= estimate;
  ++state.in_flight;
  state.last_used = now;
}

void Book(SubjectState& state, absl::Time now, double cost_usd)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(state.mu) {
  state.Roll(now);
  state.day_spent += cost_usd;
  state.month_spent += cost_usd;
}

class InMemoryUsageGovernor final : public UsageGovernor {
 public:
  explicit InMemoryUsageGovernor(const core::Clock& clock) : clock_(clock) {}

  absl::StatusOr<UsageReservation> Admit(const UsageSubject& subject,
                                         uint64_t estimated_tokens) override {
    const double estimate = static_cast<double>(estimated_tokens);
    while (true) {
      std::shared_ptr<SubjectState> key = Find(SubjectKind::kKey, subject.key, true);
      std::shared_ptr<SubjectState> tenant =
          subject.tenant.empty() ? nullptr : Find(SubjectKind::kTenant, subject.tenant, true);
      absl::MutexLock key_lock(&key->mu);
      if (key->evicted) continue;
      const absl::Time now = clock_.Now();
      Refusal refusal;
      Check(SubjectKind::kKey, subject.key, *key, subject.key_limits, subject.key_budget, estimate,
            now, refusal);
      if (tenant == nullptr) {
        if (refusal.wait > absl::ZeroDuration()) return Refuse(refusal);
        Reserve(*key, estimate, now);
        return Reservation(subject, estimated_tokens);
      }
      absl::MutexLock tenant_lock(&tenant->mu);
      if (tenant->evicted) continue;
      Check(SubjectKind::kTenant, subject.tenant, *tenant, subject.tenant_limits,
            subject.tenant_budget, estimate, now, refusal);
      if (refusal.wait > absl::ZeroDuration()) return Refuse(refusal);
      Reserve(*key, estimate, now);
      Reserve(*tenant, estimate, now);
      return Reservation(subject, estimated_tokens);
    }
  }

  void Settle(UsageReservation reservation, const SettledUsage& usage) override {
    if (reservation.id == 0) return;
    const absl::Time now = clock_.Now();
    const double difference =
        static_cast<double>(reservation.reserved_tokens) - static_cast<double>(usage.tokens);
    auto settle = [&](SubjectKind kind, const std::string& name) {
      // In-flight states are never evicted, so this finds the one admitted.
      std::shared_ptr<SubjectState> state = Find(kind, name, false);
      if (state == nullptr) return;
      absl::MutexLock lock(&state->mu);
      if (state->tokens.active) {
        state->tokens.Refill(now);
        state->tokens.available =
            std::min(state->tokens.available + difference, state->tokens.capacity);
      }
      if (usage.cost_usd > 0) Book(*state, now, usage.cost_usd);
      if (state->in_flight > 0) --state->in_flight;
      state->last_used = now;
    };
    settle(SubjectKind::kKey, reservation.key);
    if (!reservation.tenant.empty()) settle(SubjectKind::kTenant, reservation.tenant);
  }

  void RecordSpend(const std::string& key, const std::string& tenant, absl::Time when,
                   double cost_usd) override {
    if (!(cost_usd > 0) || !std::isfinite(cost_usd)) return;
    const absl::Time now = clock_.Now();
    const bool today = DayIndex(when) == DayIndex(now);
    const bool this_month = MonthIndex(when) == MonthIndex(now);
    if (!this_month) return;
    auto record = [&](SubjectKind kind, const std::string& name) {
      while (true) {
        std::shared_ptr<SubjectState> state = Find(kind, name, true);
        absl::MutexLock lock(&state->mu);
        if (state->evicted) continue;
        state->Roll(now);
        if (today) state->day_spent += cost_usd;
        state->month_spent += cost_usd;
        state->last_used = now;
        return;
      }
    };
    record(SubjectKind::kKey, key);
    if (!tenant.empty()) record(SubjectKind::kTenant, tenant);
  }

 private:
  struct Shard {
    absl::Mutex mu;
    absl::flat_hash_map<std::string, std::shared_ptr<SubjectState>> states ABSL_GUARDED_BY(mu);
    absl::Time last_sweep ABSL_GUARDED_BY(mu) = absl::InfinitePast();
  };

  absl::Status Refuse(const Refusal& refusal) {
    absl::Status status = absl::ResourceExhaustedError(refusal.message);
    status.SetPayload(kRetryAfterPayload,
                      absl::Cord(absl::StrCat(absl::ToInt64Milliseconds(refusal.wait))));
    return status;
  }

  UsageReservation Reservation(const UsageSubject& subject, uint64_t estimated_tokens) {
    UsageReservation reservation;
    reservation.id = next_id_.fetch_add(1, std::memory_order_relaxed);
    reservation.key = subject.key;
    reservation.tenant = subject.tenant;
    reservation.reserved_tokens = estimated_tokens;
    return reservation;
  }

  // The state of a subject; created when `create`, else null when unknown.
  std::shared_ptr<SubjectState> Find(SubjectKind kind, const std::string& name, bool create) {
    auto& shards = kind == SubjectKind::kKey ? key_shards_ : tenant_shards_;
    Shard& shard = shards[(absl::Hash<std::string>()(name) >> 40) % kShards];
    {
      absl::ReaderMutexLock lock(&shard.mu);
      auto it = shard.states.find(name);
      if (it != shard.states.end()) return it->second;
    }
    if (!create) return nullptr;
    const absl::Time now = clock_.Now();
    absl::MutexLock lock(&shard.mu);
    auto [it, inserted] = shard.states.try_emplace(name, nullptr);
    if (!inserted) return it->second;
    auto state = std::make_shared<SubjectState>();
    {
      absl::MutexLock state_lock(&state->mu);
      state->Roll(now);
      state->last_used = now;
    }
    it->second = state;
    if (now - shard.last_sweep >= kSweepInterval) {
      shard.last_sweep = now;
      Sweep(shard, now);
    }
    return state;
  }

  // Drops the idle states of one shard; a state is marked evicted under its
  // own lock so a caller still holding it looks it up again.
  static void Sweep(Shard& shard, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu) {
    for (auto it = shard.states.begin(); it != shard.states.end();) {
      SubjectState& state = *it->second;
      bool idle;
      {
        absl::MutexLock lock(&state.mu);
        idle = state.Idle(now);
        if (idle) state.evicted = true;
      }
      if (idle) {
        shard.states.erase(it++);
      } else {
        ++it;
      }
    }
  }

  const core::Clock& clock_;
  std::atomic<uint64_t> next_id_{1};
  // Keys and tenants are separate name spaces.
  std::array<Shard, kShards> key_shards_;
  std::array<Shard, kShards> tenant_shards_;
};

}  // namespace

std::unique_ptr<UsageGovernor> NewInMemoryUsageGovernor(const core::Clock& clock) {
  return std::make_unique<InMemoryUsageGovernor>(clock);
}

std::optional<absl::Duration> UsageRetryAfter(const absl::Status& status) {
  if (status.code() != absl::StatusCode::kResourceExhausted) return std::nullopt;
  const auto payload = status.GetPayload(kRetryAfterPayload);
  int64_t millis = 0;
  if (!payload || !absl::SimpleAtoi(std::string(*payload), &millis)) return std::nullopt;
  return absl::Milliseconds(millis);
}

double UsageCostUsd(const v1::Price& price, int64_t prompt_tokens, int64_t completion_tokens,
                    int64_t cached_tokens) {
  const int64_t prompt = std::max<int64_t>(prompt_tokens, 0);
  const int64_t completion = std::max<int64_t>(completion_tokens, 0);
  const int64_t cached = std::clamp<int64_t>(cached_tokens, 0, prompt);
  const double cached_price =
      price.cached_input_per_mtok() > 0 ? price.cached_input_per_mtok() : price.input_per_mtok();
  return (static_cast<double>(prompt - cached) * price.input_per_mtok() +
          static_cast<double>(cached) * cached_price +
          static_cast<double>(completion) * price.output_per_mtok()) /
         1e6;
}

}  // namespace flowork::router
