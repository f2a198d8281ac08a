#ifndef FLOWORK_CORE_METRICS_H_
#define FLOWORK_CORE_METRICS_H_

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace flowork::core {

// Label name -> value of one time series.
using MetricLabels = std::map<std::string, std::string>;

// A monotonically increasing count. Thread-safe, lock-free.
class Counter {
 public:
  virtual ~Counter() = default;
  virtual void Increment(double amount = 1) = 0;
  virtual double Value() const = 0;
};

// A value that goes up and down. Thread-safe.
class Gauge {
 public:
  virtual ~Gauge() = default;
  virtual void Set(double value) = 0;
  virtual void Add(double amount) = 0;
  virtual double Value() const = 0;
};

// Observations counted into fixed buckets. Thread-safe.
class Histogram {
 public:
  virtual ~Histogram() = default;
  virtual void Observe(double value) = 0;
};

// The metrics of one server, exposed in Prometheus text format on /metrics.
// Metrics returned by the Get* methods live as long as the registry; asking
// again for the same name and labels returns the same object. A metric the
// exposition format refuses (bad name or label, a name reused for another
// kind) is logged and replaced by one that records nothing. Thread-safe.
class MetricsRegistry {
 public:
  virtual ~MetricsRegistry() = default;

  static std::unique_ptr<MetricsRegistry> Create();

  // `name` must be a valid Prometheus metric name and keep one kind.
  virtual Counter& GetCounter(std::string_view name, std::string_view help,
                              const MetricLabels& labels = {}) = 0;
  virtual Gauge& GetGauge(std::string_view name, std::string_view help,
                          const MetricLabels& labels = {}) = 0;
  // `bucket_bounds` are the upper bounds, ascending; fixed by the first call.
  virtual Histogram& GetHistogram(std::string_view name, std::string_view help,
                                  const std::vector<double>& bucket_bounds,
                                  const MetricLabels& labels = {}) = 0;

  // Everything collected, in the Prometheus text exposition format 0.0.4.
  virtual std::string TextExposition() const = 0;
};

}  // namespace flowork::core

#endif  // FLOWORK_CORE_METRICS_H_
