#include "server/frontend/metrics.h"

#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "prometheus/metric_family.h"

namespace drr::server {
namespace {

// {tenant label: value} of the series of `family` in `metrics`.
std::map<std::string, double> ByTenant(const ServerMetrics& metrics,
                                       const std::string& family) {
  std::map<std::string, double> values;
  for (const prometheus::MetricFamily& f : metrics.registry().Collect()) {
    if (f.name != family) continue;
    for (const prometheus::ClientMetric& m : f.metric) {
      const double value = f.type == prometheus::MetricType::Counter
                               ? m.counter.value
                               : m.gauge.value;
      values[m.label.at(0).value] = value;
    }
  }
  return values;
}

TEST(ServerMetricsTest, PerTenantSeriesAreBoundedAndTheRestCountAsOther) {
  ServerMetrics metrics("cpu");
  const int tenants = ServerMetrics::kMaxTenantSeries + 50;
  for (int t = 0; t < tenants; ++t) {
    const std::string tenant = absl::StrCat("tenant", t);
    metrics.CountTenantRequest(tenant);
    metrics.CountTenantRequest(tenant);
    metrics.SetTenantStoredBytes(tenant, 1000 + t);
  }
  const auto requests = ByTenant(metrics, "drr_tenant_requests_total");
  ASSERT_EQ(requests.size(), size_t{ServerMetrics::kMaxTenantSeries} + 1);
  EXPECT_EQ(requests.at("tenant0"), 2);
  EXPECT_EQ(requests.at("other"), 2 * 50);
  const auto stored = ByTenant(metrics, "drr_tenant_stored_bytes");
  ASSERT_EQ(stored.size(), size_t{ServerMetrics::kMaxTenantSeries});
  EXPECT_EQ(stored.at("tenant7"), 1007);
  EXPECT_EQ(stored.count("other"), 0u);
  // A tenant labelled before the bound was reached keeps its own series.
  metrics.CountTenantRequest("tenant0");
  EXPECT_EQ(ByTenant(metrics, "drr_tenant_requests_total").at("tenant0"), 3);
}

}  // namespace
}  // namespace drr::server
