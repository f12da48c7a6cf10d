// Alert rules per tenant: what the AlertService's rule calls change and the
// alert evaluator loads. Kept in Postgres (common/pg/alert_rules.cc: table
// alert_rules, the telemetry.v1.Rule serialized in `spec`) with an
// in-memory fake for tests (common/testing/fakes.h).
//
// Tenant isolation: every call but Generation and LoadAll is for one tenant
// and sees only that tenant's rules; another tenant's rule id is NOT_FOUND.
// Every change (create, update, delete) bumps the generation in the same
// transaction, so the evaluator notices a change with one cheap poll.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/strip.h"
#include "telemetry/v1/alert.pb.h"

namespace telemetry {

struct RulePage {
  std::vector<telemetry::v1::Rule> rules;  // ordered by rule_id
  std::string next_page_token;             // "" on the last page
};

class AlertRuleStore {
 public:
  static constexpr int kMaxPageSize = 1000;

  virtual ~AlertRuleStore() = default;

  // Stores a new rule: the store assigns rule_id (32 hex digits, random),
  // version 1 and created_at_ns = updated_at_ns = now; whatever the caller
  // put there is replaced. Returns the rule as stored.
  virtual absl::StatusOr<telemetry::v1::Rule> Create(int64_t tenant_id,
                                                     const telemetry::v1::Rule& rule) = 0;
  // NOT_FOUND ("rule <id> not found") when the tenant has no such rule.
  virtual absl::StatusOr<telemetry::v1::Rule> Get(int64_t tenant_id,
                                                  const std::string& rule_id) = 0;
  // Replaces the definition of rule.rule_id(); version goes up by one,
  // created_at_ns is kept, updated_at_ns = now. With rule.version() != 0 the
  // update applies only if that is still the current version (else ABORTED
  // naming both). NOT_FOUND when the tenant has no such rule.
  virtual absl::StatusOr<telemetry::v1::Rule> Update(int64_t tenant_id,
                                                     const telemetry::v1::Rule& rule) = 0;
  // NOT_FOUND when the tenant has no such rule.
  virtual absl::Status Delete(int64_t tenant_id, const std::string& rule_id) = 0;
  // Up to `page_size` (1 to kMaxPageSize) rules ordered by rule_id, after
  // the position `page_token` (from the previous page; "" = the first page)
  // names. A token that is not one of ours is INVALID_ARGUMENT.
  virtual absl::StatusOr<RulePage> List(int64_t tenant_id, int page_size,
                                        const std::string& page_token) = 0;

  // For the evaluator: the counter every change bumps ...
  virtual absl::StatusOr<int64_t> Generation() = 0;
  // ... and every rule of every tenant, (tenant_id, rule), ordered by tenant
  // then rule_id.
  virtual absl::StatusOr<std::vector<std::pair<int64_t, telemetry::v1::Rule>>> LoadAll() = 0;
};

// Helpers shared by the implementations.
namespace alert_rules {

// 16 random bytes as 32 lowercase hex digits (sorts the same in every
// collation, so keyset paging agrees between Postgres and the fake).
inline std::string NewRuleId() {
  static thread_local std::mt19937_64 gen([] {
    std::random_device rd;
    std::seed_seq seq{rd(), rd(), rd(), rd(), rd(), rd(), rd(), rd()};
    return std::mt19937_64(seq);
  }());
  std::string bytes(16, '\0');
  for (size_t i = 0; i < bytes.size(); i += 8) {
    uint64_t v = gen();
    for (size_t j = 0; j < 8; ++j) bytes[i + j] = static_cast<char>((v >> (8 * j)) & 0xff);
  }
  return absl::BytesToHexString(bytes);
}

// A page token: "r1." + the hex of the last rule_id of the previous page.
inline std::string EncodePageToken(const std::string& last_rule_id) {
  return "r1." + absl::BytesToHexString(last_rule_id);
}

// The last rule_id of the previous page, or INVALID_ARGUMENT.
inline absl::StatusOr<std::string> DecodePageToken(const std::string& token) {
  constexpr absl::string_view kPrefix = "r1.";
  absl::string_view hex = token;
  const bool ok = absl::ConsumePrefix(&hex, kPrefix) && !hex.empty() && hex.size() % 2 == 0 &&
                  hex.find_first_not_of("0123456789abcdef") == absl::string_view::npos;
  if (!ok) return absl::InvalidArgumentError("page_token: not a token from ListRules");
  return absl::HexStringToBytes(hex);
}

inline absl::Status CheckPageSize(int page_size) {
  if (page_size < 1 || page_size > AlertRuleStore::kMaxPageSize) {
    return absl::InvalidArgumentError("page_size: must be between 1 and 1000");
  }
  return absl::OkStatus();
}

inline absl::Status RuleNotFound(const std::string& rule_id) {
  return absl::NotFoundError("rule " + rule_id + " not found");
}

inline absl::Status VersionMismatch(const std::string& rule_id, int64_t current, int64_t expected) {
  return absl::AbortedError("rule " + rule_id + " is at version " + std::to_string(current) +
                            "; the update was based on version " + std::to_string(expected) +
                            " (get the rule again and retry)");
}

}  // namespace alert_rules
}  // namespace telemetry
