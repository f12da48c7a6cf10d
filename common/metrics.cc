#include "common/metrics.h"

#include <algorithm>
#include <sstream>

namespace telemetry {

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(new std::atomic<int64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i] = 0;
}

void Histogram::Observe(double v) {
  size_t i =
      static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  double old = sum_.load(std::memory_order_relaxed);
  while (!sum_.compare_exchange_weak(old, old + v, std::memory_order_relaxed)) {
  }
}

int64_t Histogram::Count() const {
  int64_t n = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) n += counts_[i].load(std::memory_order_relaxed);
  return n;
}

double Histogram::Quantile(double q) const {
  int64_t total = Count();
  if (total == 0) return 0;
  int64_t target = static_cast<int64_t>(q * static_cast<double>(total));
  int64_t seen = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    seen += counts_[i].load(std::memory_order_relaxed);
    if (seen > target) return i < bounds_.size() ? bounds_[i] : bounds_.back();
  }
  return bounds_.back();
}

std::string Histogram::Render(const std::string& name, const std::string& labels) const {
  std::ostringstream out;
  int64_t cumulative = 0;
  std::string sep = labels.empty() ? "" : ",";
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i].load(std::memory_order_relaxed);
    out << name << "_bucket{" << labels << sep << "le=\"" << bounds_[i] << "\"} " << cumulative
        << "\n";
  }
  cumulative += counts_[bounds_.size()].load(std::memory_order_relaxed);
  out << name << "_bucket{" << labels << sep << "le=\"+Inf\"} " << cumulative << "\n";
  std::string braces = labels.empty() ? "" : "{" + labels + "}";
  out << name << "_sum" << braces << " " << sum_.load(std::memory_order_relaxed) << "\n";
  out << name << "_count" << braces << " " << cumulative << "\n";
  return out.str();
}

std::vector<double> LatencyBuckets() {
  return {0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10};
}

MetricsRegistry::Family& MetricsRegistry::FamilyFor(const std::string& name,
                                                    const std::string& help,
                                                    const std::string& type) {
  Family& f = families_[name];
  if (f.type.empty()) {
    f.help = help;
    f.type = type;
  }
  return f;
}

Counter* MetricsRegistry::AddCounter(const std::string& name, const std::string& help,
                                     const std::string& labels) {
  absl::MutexLock lock(&mu_);
  auto& slot = FamilyFor(name, help, "counter").counters[labels];
  if (!slot) slot = std::make_unique<Counter>();
  return slot.get();
}

Gauge* MetricsRegistry::AddGauge(const std::string& name, const std::string& help,
                                 const std::string& labels) {
  absl::MutexLock lock(&mu_);
  auto& slot = FamilyFor(name, help, "gauge").gauges[labels];
  if (!slot) slot = std::make_unique<Gauge>();
  return slot.get();
}

Histogram* MetricsRegistry::AddHistogram(const std::string& name, const std::string& help,
                                         std::vector<double> bounds, const std::string& labels) {
  absl::MutexLock lock(&mu_);
  auto& slot = FamilyFor(name, help, "histogram").histograms[labels];
  if (!slot) slot = std::make_unique<Histogram>(std::move(bounds));
  return slot.get();
}

std::string MetricsRegistry::Render() const {
  absl::MutexLock lock(&mu_);
  std::ostringstream out;
  for (const auto& [name, f] : families_) {
    out << "# HELP " << name << " " << f.help << "\n# TYPE " << name << " " << f.type << "\n";
    auto braces = [](const std::string& l) { return l.empty() ? std::string() : "{" + l + "}"; };
    for (const auto& [labels, c] : f.counters)
      out << name << braces(labels) << " " << c->Value() << "\n";
    for (const auto& [labels, g] : f.gauges)
      out << name << braces(labels) << " " << g->Value() << "\n";
    for (const auto& [labels, h] : f.histograms) out << h->Render(name, labels);
  }
  return out.str();
}

MetricsRegistry* MetricsRegistry::Default() {
  static MetricsRegistry registry;
  return &registry;
}

}  // namespace telemetry
