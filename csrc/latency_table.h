// LatencyTable: measured latency statistics per op key, plus metadata, with a versioned JSON file.
//
// On-disk format (UTF-8 JSON, written with sorted keys, atomically via temp file + rename):
//
//   {
//     "format": "hwnas-latency-table",
//     "schema_version": 1,
//     "metadata": { ... },
//     "entries": {
//       "<op key>": {"mean": 0.123, "median": 0.12, "min": 0.105, "n": 200, "p5": 0.11, "p95": 0.14, "std": 0.01},
//       ...
//     }
//   }
//
// - No other top-level fields. A schema_version above 1 means a newer hwnas wrote the file.
// - entries: "mean" (milliseconds, the additive value: finite, >= 0) and "n" (integer >= 1, the
//   number of timed runs) are required. "median", "std", "p5", "p95", "min" are finite numbers
//   >= 0, or null (or absent) when unknown. Any other field is an error.
//   Keys are non-empty; a key ending in "@r<size>" (e.g. "Conv_1-...@r160") holds the value for
//   that input resolution only and overrides the plain key there.
// - metadata is a free-form object (device, runtime, precision, protocol, space hash, ...);
//   these keys are checked when present:
//     "units":       must be "ms"
//     "batch":       integer >= 1
//     "calibration": null, or an object with finite "scale" > 0 and finite "offset"
//                    (calibrated latency = scale * block sum + offset); other fields such as
//                    "validation" are free-form.
// - Files over 1 GiB are refused.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "json.h"

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

// What merge() does with a key present in both tables with different stats.
enum class Conflict { Error, Keep, Replace };

class LatencyTable {
 public:
  LatencyTable();

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
  // Keys absent from the table, in input order, without duplicates.
  std::vector<std::string> missing(const std::vector<std::string>& keys) const;
  // Means of the given keys; MissingKeysError listing every absent key.
  std::vector<double> means(const std::vector<std::string>& keys) const;
  // Adds other's entries; this table's metadata is kept. With Conflict::Error nothing changes
  // when a shared key has different stats (identical duplicates are fine).
  void merge(const LatencyTable& other, Conflict policy);

  const json::Value& metadata() const { return metadata_; }
  void set_metadata(json::Value metadata);  // InvalidArgument if it breaks the rules above

  // Files. Errors: FormatError "<source>: <reason>", FileNotFound, IOError.
  static LatencyTable load(const std::string& path);
  static LatencyTable parse(std::string_view text, const std::string& source_name);
  std::string dump() const;
  void save(const std::string& path) const;

 private:
  std::map<std::string, Stats> entries_;
  json::Value metadata_;
};

// Why `stats` is not a valid entry ("" if it is).
std::string stats_problem(const Stats& stats);

// Why `metadata` breaks the metadata rules ("" if it does not).
std::string metadata_problem(const json::Value& metadata);

}  // namespace hwnas
