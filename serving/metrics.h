// Prometheus text exposition (format 0.0.4) of the engine's metrics: gauges, counters (with
// labels) and histograms, with vLLM's meanings under the prefix "dsmoe_" (see serving/README.md).
#ifndef SERVING_METRICS_H_
#define SERVING_METRICS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"

namespace serving {

// Cumulative buckets: counts[i] observations <= bounds[i], plus +Inf, a sum and a count.
// Thread-safe.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double value);
  // The metric's lines: # HELP, # TYPE, _bucket{le=...}, _sum, _count.
  std::string Render(const std::string& name, const std::string& help) const;
  int64_t count() const;

 private:
  std::vector<double> bounds_;
  mutable absl::Mutex mu_;
  std::vector<int64_t> counts_ ABSL_GUARDED_BY(mu_);  // per bucket, not cumulative; last is +Inf
  double sum_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t count_ ABSL_GUARDED_BY(mu_) = 0;
};

// Latency buckets in seconds, as vLLM's.
std::vector<double> LatencyBuckets();

// "# HELP name help\n# TYPE name type\n" then one sample line per label set ({} for none).
std::string RenderSamples(const std::string& name, const std::string& type, const std::string& help,
                          const std::vector<std::pair<std::string, double>>& labelled_values);

// A Prometheus label value with \, " and newlines escaped.
std::string EscapeLabel(const std::string& value);

}  // namespace serving

#endif  // SERVING_METRICS_H_
