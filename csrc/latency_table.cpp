#include "latency_table.h"

#include <cmath>
#include <unordered_set>
#include <utility>

namespace hwnas {

namespace {

bool same(double a, double b) { return a == b || (std::isnan(a) && std::isnan(b)); }

std::string optional_stat_problem(const char* name, double x) {
  if (std::isnan(x) || (std::isfinite(x) && x >= 0)) return "";
  return std::string(name) + " must be finite and >= 0 (or unknown), got " + format_double(x);
}

}  // namespace

bool Stats::operator==(const Stats& o) const {
  return same(mean, o.mean) && same(median, o.median) && same(std, o.std) && same(p5, o.p5) &&
         same(p95, o.p95) && same(min, o.min) && n == o.n;
}

std::string stats_problem(const Stats& s) {
  if (!(std::isfinite(s.mean) && s.mean >= 0)) return "mean must be finite and >= 0, got " + format_double(s.mean);
  if (s.n < 1) return "n must be >= 1, got " + std::to_string(s.n);
  for (auto [name, x] : {std::pair{"median", s.median}, {"std", s.std}, {"p5", s.p5}, {"p95", s.p95}, {"min", s.min}}) {
    std::string problem = optional_stat_problem(name, x);
    if (!problem.empty()) return problem;
  }
  return "";
}

// ---------------------------------------------------------------------------------------------
// LatencyTable

void LatencyTable::set(const std::string& key, const Stats& stats) {
  if (key.empty()) throw InvalidArgument("latency table keys must be non-empty strings");
  const std::string problem = stats_problem(stats);
  if (!problem.empty()) throw InvalidArgument("entry " + quote(key) + ": " + problem);
  entries_[key] = stats;
}

void LatencyTable::set_many(const std::vector<std::string>& keys, const std::vector<Stats>& stats) {
  if (keys.size() != stats.size()) {
    throw InvalidArgument("set_many: " + std::to_string(keys.size()) + " keys but " + std::to_string(stats.size()) +
                          " stats rows");
  }
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (keys[i].empty()) throw InvalidArgument("set_many: key " + std::to_string(i) + " is empty");
    const std::string problem = stats_problem(stats[i]);
    if (!problem.empty()) {
      throw InvalidArgument("set_many: row " + std::to_string(i) + " (" + quote(keys[i]) + "): " + problem);
    }
  }
  for (std::size_t i = 0; i < keys.size(); ++i) entries_[keys[i]] = stats[i];
}

const Stats* LatencyTable::find(const std::string& key) const {
  const auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : &it->second;
}

const Stats& LatencyTable::get(const std::string& key) const {
  const Stats* s = find(key);
  if (!s) throw MissingKeysError("latency table lacks entries", {key});
  return *s;
}

void LatencyTable::remove(const std::string& key) {
  if (entries_.erase(key) == 0) throw MissingKeysError("latency table lacks entries", {key});
}

std::vector<std::string> LatencyTable::keys() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const auto& entry : entries_) out.push_back(entry.first);
  return out;
}

std::vector<std::string> LatencyTable::missing(const std::vector<std::string>& keys) const {
  std::vector<std::string> out;
  std::unordered_set<std::string> seen;
  for (const std::string& key : keys) {
    if (!contains(key) && seen.insert(key).second) out.push_back(key);
  }
  return out;
}

std::vector<double> LatencyTable::means(const std::vector<std::string>& keys) const {
  std::vector<double> out(keys.size());
  for (std::size_t i = 0; i < keys.size(); ++i) {
    const Stats* s = find(keys[i]);
    if (!s) throw MissingKeysError("latency table lacks entries", missing(keys));
    out[i] = s->mean;
  }
  return out;
}

void LatencyTable::merge(const LatencyTable& other, Conflict policy) {
  if (policy == Conflict::Error) {
    std::vector<std::string> conflicts;
    for (const auto& [key, stats] : other.entries_) {
      const Stats* mine = find(key);
      if (mine && !(*mine == stats)) conflicts.push_back(key);
    }
    if (!conflicts.empty()) {
      throw InvalidArgument("merge: " + std::to_string(conflicts.size()) +
                            " key(s) have different stats in the two tables (choose the keep or replace policy): " +
                            format_key_list(conflicts));
    }
  }
  for (const auto& [key, stats] : other.entries_) {
    if (policy == Conflict::Keep) {
      entries_.emplace(key, stats);
    } else {
      entries_[key] = stats;
    }
  }
}

std::string calibration_problem(const Calibration& c) {
  if (!(std::isfinite(c.scale) && c.scale > 0)) return "calibration scale must be a finite number > 0, got " + format_double(c.scale);
  for (auto [name, x] : {std::pair{"offset", c.offset}, {"per_op", c.per_op}, {"per_element", c.per_element},
                         {"per_param", c.per_param}}) {
    if (!std::isfinite(x)) return std::string("calibration ") + name + " must be a finite number, got " + format_double(x);
  }
  return "";
}

void LatencyTable::set_calibration(const Calibration& calibration) {
  const std::string problem = calibration_problem(calibration);
  if (!problem.empty()) throw InvalidArgument(problem);
  calibration_ = calibration;
}

}  // namespace hwnas
