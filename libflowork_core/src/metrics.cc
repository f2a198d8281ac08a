#include "flowork/core/metrics.h"

#include <sstream>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "flowork/core/logging.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"

namespace flowork::core {
namespace {

class PromCounter final : public Counter {
 public:
  explicit PromCounter(prometheus::Counter& counter) : counter_(counter) {}
  void Increment(double amount) override { counter_.Increment(amount); }
  double Value() const override { return counter_.Value(); }

 private:
  prometheus::Counter& counter_;
};

class PromGauge final : public Gauge {
 public:
  explicit PromGauge(prometheus::Gauge& gauge) : gauge_(gauge) {}
  void Set(double value) override { gauge_.Set(value); }
  void Add(double amount) override { gauge_.Increment(amount); }
  double Value() const override { return gauge_.Value(); }

 private:
  prometheus::Gauge& gauge_;
};

class PromHistogram final : public Histogram {
 public:
  explicit PromHistogram(prometheus::Histogram& histogram) : histogram_(histogram) {}
  void Observe(double value) override { histogram_.Observe(value); }

 private:
  prometheus::Histogram& histogram_;
};

// Stands in for a metric prometheus-cpp refused (bad name, or a name reused
// with another kind), so a mistake costs a log line, not the process.
class NullMetric final : public Counter, public Gauge, public Histogram {
 public:
  void Increment(double) override {}
  void Set(double) override {}
  void Add(double) override {}
  void Observe(double) override {}
  double Value() const override { return 0; }
};

NullMetric& Null() {
  static NullMetric* const null = new NullMetric();
  return *null;
}

class PromRegistry final : public MetricsRegistry {
 public:
  Counter& GetCounter(std::string_view name, std::string_view help,
                      const MetricLabels& labels) override {
    absl::MutexLock lock(&mu_);
    auto* family = Family<prometheus::Counter>(name, help, counters_);
    if (family == nullptr) return Null();
    try {
      return Wrap<PromCounter>(family->Add(labels), counter_wrappers_);
    } catch (const std::exception& e) {
      Log(LogLevel::kError, "metric refused", {{"name", std::string(name)}, {"error", e.what()}});
      return Null();
    }
  }

  Gauge& GetGauge(std::string_view name, std::string_view help,
                  const MetricLabels& labels) override {
    absl::MutexLock lock(&mu_);
    auto* family = Family<prometheus::Gauge>(name, help, gauges_);
    if (family == nullptr) return Null();
    try {
      return Wrap<PromGauge>(family->Add(labels), gauge_wrappers_);
    } catch (const std::exception& e) {
      Log(LogLevel::kError, "metric refused", {{"name", std::string(name)}, {"error", e.what()}});
      return Null();
    }
  }

  Histogram& GetHistogram(std::string_view name, std::string_view help,
                          const std::vector<double>& bucket_bounds,
                          const MetricLabels& labels) override {
    absl::MutexLock lock(&mu_);
    auto* family = Family<prometheus::Histogram>(name, help, histograms_);
    if (family == nullptr) return Null();
    try {
      return Wrap<PromHistogram>(family->Add(labels, bucket_bounds), histogram_wrappers_);
    } catch (const std::exception& e) {
      Log(LogLevel::kError, "metric refused", {{"name", std::string(name)}, {"error", e.what()}});
      return Null();
    }
  }

  std::string TextExposition() const override {
    std::ostringstream out;
    prometheus::TextSerializer().Serialize(out, registry_.Collect());
    return out.str();
  }

 private:
  template <typename M>
  using Families = absl::flat_hash_map<std::string, prometheus::Family<M>*>;
  template <typename W>
  using Wrappers = absl::flat_hash_map<const void*, std::unique_ptr<W>>;

  // The family of that name, registered on first use; null (and logged) when
  // prometheus-cpp refuses it.
  template <typename M>
  prometheus::Family<M>* Family(std::string_view name, std::string_view help, Families<M>& families)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = families.find(std::string(name));
    if (it != families.end()) return it->second;
    try {
      auto* family = &prometheus::detail::Builder<M>()
                          .Name(std::string(name))
                          .Help(std::string(help))
                          .Register(registry_);
      families.emplace(std::string(name), family);
      return family;
    } catch (const std::exception& e) {
      Log(LogLevel::kError, "metric refused", {{"name", std::string(name)}, {"error", e.what()}});
      return nullptr;
    }
  }

  // One wrapper per prometheus metric, so repeated Get* calls return the same object.
  template <typename W, typename M>
  W& Wrap(M& metric, Wrappers<W>& wrappers) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto [it, inserted] = wrappers.try_emplace(&metric, nullptr);
    if (inserted) it->second = std::make_unique<W>(metric);
    return *it->second;
  }

  absl::Mutex mu_;
  prometheus::Registry registry_;
  Families<prometheus::Counter> counters_ ABSL_GUARDED_BY(mu_);
  Families<prometheus::Gauge> gauges_ ABSL_GUARDED_BY(mu_);
  Families<prometheus::Histogram> histograms_ ABSL_GUARDED_BY(mu_);
  Wrappers<PromCounter> counter_wrappers_ ABSL_GUARDED_BY(mu_);
  Wrappers<PromGauge> gauge_wrappers_ ABSL_GUARDED_BY(mu_);
  Wrappers<PromHistogram> histogram_wrappers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

std::unique_ptr<MetricsRegistry> MetricsRegistry::Create() {
  return std::make_unique<PromRegistry>();
}

}  // namespace flowork::core
