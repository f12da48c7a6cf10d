#include "services/export/retention.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"

namespace telemetry {
namespace {

constexpr int64_t kDayNs = 86'400'000'000'000LL;
// Reasons listed per kept day; the rest are counted.
constexpr size_t kMaxReasons = 8;

std::string HourOfDay(int64_t ns) {
  return absl::FormatTime("%H:00", absl::FromUnixNanos(ns), absl::UTCTimeZone());
}

std::string TenantName(const std::map<int64_t, TenantRetention>& tenants, int64_t id) {
  auto it = tenants.find(id);
  return it == tenants.end() ? absl::StrCat("tenant ", id)
                             : absl::StrCat("tenant ", id, " (", it->second.name, ")");
}

}  // namespace

std::string RetentionDate(int64_t ns) {
  const absl::Time t = absl::FromUnixNanos(ns);
  if (ns % 3'600'000'000'000LL == 0 && absl::FormatTime("%H", t, absl::UTCTimeZone()) == "00") {
    return absl::FormatTime("%Y-%m-%d", t, absl::UTCTimeZone());
  }
  return absl::FormatTime("%Y-%m-%d %H:%M", t, absl::UTCTimeZone());
}

RetentionDecision DecideRetention(const RetentionDay& day,
                                  const std::map<int64_t, TenantRetention>& tenants,
                                  int64_t now_ns) {
  RetentionDecision d;
  d.day_ns = day.day_ns;
  d.segments = day.segments;
  d.readings = day.readings;
  std::set<int64_t> with_data;
  for (const auto& th : day.tenant_hours) with_data.insert(th.tenant_id);
  d.tenants.assign(with_data.begin(), with_data.end());
  const int64_t day_end = day.day_ns + kDayNs;
  std::vector<std::string> keep;
  auto until = [&](int32_t days) { return day_end + static_cast<int64_t>(days) * kDayNs; };

  // 1. Retention: every tenant with readings in the day must be past its own.
  std::vector<std::string> past;
  if (with_data.empty()) {
    // Nothing in it: it waits for the longest retention of any tenant (a
    // late reading of that tenant could still belong here).
    int32_t longest = 0;
    bool forever = false;
    for (const auto& [id, t] : tenants) {
      if (t.raw_retention_days <= 0) forever = true;
      longest = std::max(longest, t.raw_retention_days);
    }
    if (forever) {
      keep.push_back("no readings, but a tenant keeps raw readings forever (retention 0)");
    } else if (until(longest) > now_ns) {
      keep.push_back(absl::StrCat("no readings; kept until ", RetentionDate(until(longest)),
                                  " (the longest raw retention, ", longest, " days)"));
    }
  }
  for (int64_t id : with_data) {
    auto it = tenants.find(id);
    const int32_t days = it == tenants.end() ? 0 : it->second.raw_retention_days;
    if (days <= 0) {
      keep.push_back(absl::StrCat(TenantName(tenants, id), " keeps raw readings forever"));
    } else if (until(days) > now_ns) {
      keep.push_back(absl::StrCat(TenantName(tenants, id), " (raw retention ", days,
                                  " days) keeps it until ", RetentionDate(until(days))));
    } else {
      if (past.size() < 5) past.push_back(absl::StrCat("tenant ", id, ": ", days, " days"));
    }
  }
  // 2. Everything in it packed and archived at its current version.
  std::map<int64_t, const RetentionHour*> hours;
  for (const auto& h : day.hours) hours[h.hour_ns] = &h;
  for (const auto& h : day.hours) {
    if (h.state == "dropped" && !h.raw_rows) continue;  // dropped before; nothing there
    if (h.raw_rows || h.late_pending || h.state != "packed") {
      keep.push_back(absl::StrCat("hour ", HourOfDay(h.hour_ns), " has readings not packed yet"));
    }
  }
  for (const auto& th : day.tenant_hours) {
    auto it = hours.find(th.hour_ns);
    const int32_t packs = it == hours.end() ? 0 : it->second->packs;
    if (it == hours.end() || it->second->state != "packed") continue;  // said above
    if (th.archived_packs < 0) {
      keep.push_back(absl::StrCat(TenantName(tenants, th.tenant_id), " hour ",
                                  HourOfDay(th.hour_ns), " is not archived"));
    } else if (th.archived_packs < packs) {
      keep.push_back(absl::StrCat(TenantName(tenants, th.tenant_id), " hour ",
                                  HourOfDay(th.hour_ns), " is archived at content version ",
                                  th.archived_packs, ", the hour is at ", packs));
    }
  }
  if (keep.empty()) {
    d.drop = true;
    d.reasons.push_back(
        with_data.empty()
            ? "no readings, past the longest raw retention"
            : absl::StrCat("past the raw retention of every tenant with readings in it (",
                           absl::StrJoin(past, ", "),
                           with_data.size() > past.size()
                               ? absl::StrCat(" and ", with_data.size() - past.size(), " more")
                               : "",
                           "); ", day.tenant_hours.size(),
                           " tenant-hours archived at their current versions"));
    return d;
  }
  const size_t n = keep.size();
  if (n > kMaxReasons) {
    keep.resize(kMaxReasons);
    keep.push_back(absl::StrCat("... and ", n - kMaxReasons, " more"));
  }
  d.reasons = std::move(keep);
  return d;
}

std::vector<std::string> Retention::CheckArchive(const RetentionDay& day) {
  std::vector<std::string> problems;
  for (const auto& th : day.tenant_hours) {
    auto current = store_->CurrentExport(th.tenant_id, th.hour_ns);
    if (!current.ok()) {
      problems.push_back(absl::StrCat("tenant ", th.tenant_id, " hour ", HourOfDay(th.hour_ns),
                                      ": no current export (", current.status().ToString(), ")"));
      continue;
    }
    for (const auto& f : current->files) {
      auto size = archive_->FileSize(f.path);
      if (!size.ok()) {
        problems.push_back(absl::StrCat("archive file ", f.path, ": ", size.status().ToString()));
      } else if (*size != f.bytes) {
        problems.push_back(absl::StrCat("archive file ", f.path, " has ", *size,
                                        " bytes, the manifest says ", f.bytes));
      }
    }
    if (problems.size() > kMaxReasons) break;
  }
  if (problems.size() > kMaxReasons) {
    problems.resize(kMaxReasons);
    problems.push_back("... (more not checked)");
  }
  return problems;
}

absl::StatusOr<std::vector<RetentionDecision>> Retention::Run(int64_t from_ns, int64_t before_ns,
                                                              bool dry_run) {
  auto listed = store_->TenantRetentions();
  if (!listed.ok()) return listed.status();
  std::map<int64_t, TenantRetention> tenants;
  for (auto& t : *listed) tenants[t.tenant_id] = std::move(t);
  const int64_t now = clock_->NowNs();
  if (!dry_run) {
    // Enforcing, only the days some tenant's retention could have passed are
    // read (reading a day probes its partitions hour by hour: today's, the
    // largest, took tens of seconds on a test database, during which the
    // purge could not lock the parents). The dry run lists every day.
    int32_t shortest = 0;
    for (const auto& [id, t] : tenants) {
      if (t.raw_retention_days > 0 && (shortest == 0 || t.raw_retention_days < shortest)) {
        shortest = t.raw_retention_days;
      }
    }
    if (shortest == 0) return std::vector<RetentionDecision>();
    before_ns = std::min(before_ns, now - static_cast<int64_t>(shortest + 1) * kDayNs + 1);
  }
  auto days = store_->RetentionDays(from_ns, before_ns);
  if (!days.ok()) return days.status();
  std::vector<RetentionDecision> out;
  for (const RetentionDay& day : *days) {
    RetentionDecision d = DecideRetention(day, tenants, now);
    if (d.drop) {
      // The manifest says archived: the root must say so too.
      std::vector<std::string> problems = CheckArchive(day);
      if (!problems.empty()) {
        d.drop = false;
        d.reasons = std::move(problems);
      }
    }
    if (d.drop && !dry_run) {
      RetentionDecision under_lock;
      auto dropped = store_->DropRawDay(day.day_ns, [&](const RetentionDay& locked) {
        under_lock = DecideRetention(locked, tenants, now);
        return under_lock.drop;
      });
      if (!dropped.ok()) {
        d.error = dropped.status().ToString();
      } else if (!*dropped) {
        d = std::move(under_lock);  // it changed since the listing: why it stays now
      } else {
        d = std::move(under_lock);
        d.dropped = true;
      }
    }
    out.push_back(std::move(d));
  }
  return out;
}

}  // namespace telemetry
