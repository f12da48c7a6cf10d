#include "services/alert/rule.h"

namespace telemetry::alert {

bool GlobMatch(const std::string& pattern, const std::string& text) {
  // Iterative match with one backtrack point per '*' (linear in practice,
  // never exponential).
  size_t p = 0, t = 0, star = std::string::npos, mark = 0;
  while (t < text.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
      ++p;
      ++t;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = t;
    } else if (star != std::string::npos) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

bool Compare(Comparison c, double value, double threshold) {
  switch (c) {
    case Comparison::kGt:
      return value > threshold;
    case Comparison::kGe:
      return value >= threshold;
    case Comparison::kLt:
      return value < threshold;
    case Comparison::kLe:
      return value <= threshold;
    case Comparison::kEq:
      return value == threshold;
    case Comparison::kNe:
      return value != threshold;
  }
  return false;
}

const char* AggregateName(Aggregate a) {
  switch (a) {
    case Aggregate::kAvg:
      return "avg";
    case Aggregate::kMin:
      return "min";
    case Aggregate::kMax:
      return "max";
    case Aggregate::kCount:
      return "count";
    case Aggregate::kSum:
      return "sum";
    case Aggregate::kLast:
      return "last";
    case Aggregate::kRate:
      return "rate";
  }
  return "?";
}

const char* ComparisonSymbol(Comparison c) {
  switch (c) {
    case Comparison::kGt:
      return ">";
    case Comparison::kGe:
      return ">=";
    case Comparison::kLt:
      return "<";
    case Comparison::kLe:
      return "<=";
    case Comparison::kEq:
      return "==";
    case Comparison::kNe:
      return "!=";
  }
  return "?";
}

}  // namespace telemetry::alert
