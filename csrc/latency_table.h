// LatencyTable: measured latency statistics per op key, and the end-to-end calibration predictors apply.
//
// The table's file (versioned JSON, see docs/lut_format.md) and its free-form metadata are read,
// validated and written in Python with the standard json module (hwnas/latency/lut_file.py); the core
// holds what prediction needs: the entries and the calibration.
//
// - entries: "mean" (milliseconds, the additive value: finite, >= 0) and "n" (integer >= 1, the
//   number of timed runs) are required; "median", "std", "p5", "p95", "min" are finite numbers
//   >= 0, or NaN when unknown. Keys are non-empty; a key ending in "@r<size>" (e.g.
//   "Conv_1-...@r160") holds the value for that input resolution only and overrides the plain key there.
// - calibration: calibrated latency = Σ ops (scale·mean + per_op + per_element·io + per_param·params) + offset;
//   the identity unless set.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "errors.h"

namespace hwnas {

// Summary of one entry's timings in milliseconds. NaN marks an unknown statistic (not mean).
struct Stats {
  double mean;
  double median;
  double std;
  double p5;
  double p95;
  double min;
  int64_t n;

  bool operator==(const Stats& other) const;  // NaN equals NaN here
};

// latency ≈ Σ over the arch's ops of (scale·mean + per_op + per_element·io + per_param·params) + offset.
// scale/offset absorb what whole networks pay differently from standalone ops; per_op and
// per_element model fixed and border-size costs a standalone op pays; per_param models weights that
// are hot in cache when an op is timed alone but cold inside a whole network.
struct Calibration {
  double scale = 1.0, offset = 0.0, per_op = 0.0, per_element = 0.0, per_param = 0.0;
};

// What merge() does with a key present in both tables with different stats.
enum class Conflict { Error, Keep, Replace };

class LatencyTable {
 public:
  // Entries. set() validates and throws InvalidArgument naming the key and field.
  void set(const std::string& key, const Stats& stats);
  // All-or-nothing bulk set: validates every entry before inserting any.
  void set_many(const std::vector<std::string>& keys, const std::vector<Stats>& stats);
  const Stats& get(const std::string& key) const;  // MissingKeysError if absent
  const Stats* find(const std::string& key) const;  // nullptr if absent
  bool contains(const std::string& key) const { return entries_.count(key) != 0; }
  std::size_t size() const { return entries_.size(); }
  void remove(const std::string& key);  // MissingKeysError if absent
  std::vector<std::string> keys() const;  // sorted
  const std::map<std::string, Stats>& entries() const { return entries_; }
  // Keys absent from the table, in input order, without duplicates.
  std::vector<std::string> missing(const std::vector<std::string>& keys) const;
  // Means of the given keys; MissingKeysError listing every absent key.
  std::vector<double> means(const std::vector<std::string>& keys) const;
  // Adds other's entries; this table's calibration is kept. With Conflict::Error nothing changes
  // when a shared key has different stats (identical duplicates are fine).
  void merge(const LatencyTable& other, Conflict policy);

  const Calibration& calibration() const { return calibration_; }
  void set_calibration(const Calibration& calibration);  // InvalidArgument naming the bad term
  void clear_calibration() { calibration_ = Calibration{}; }

 private:
  std::map<std::string, Stats> entries_;
  Calibration calibration_;
};

// Why `stats` is not a valid entry ("" if it is).
std::string stats_problem(const Stats& stats);

// Why `calibration` is not usable ("" if it is): scale finite > 0, the other terms finite.
std::string calibration_problem(const Calibration& calibration);

}  // namespace hwnas
