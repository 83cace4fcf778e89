#include "latency_table.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <system_error>
#include <unordered_set>

namespace hwnas {

namespace {

constexpr const char* kFormat = "hwnas-latency-table";
constexpr int64_t kSchemaVersion = 1;
constexpr int64_t kMaxFileBytes = int64_t{1} << 30;
constexpr double kMaxExactInteger = 9007199254740992.0;  // 2^53

bool same(double a, double b) { return a == b || (std::isnan(a) && std::isnan(b)); }

// The integer held by a JSON number, if it is one (|x| <= 2^53).
bool as_integer(const json::Value& v, int64_t& out) {
  if (!v.is_number()) return false;
  const double x = v.as_number();
  if (x != std::trunc(x) || std::fabs(x) > kMaxExactInteger) return false;
  out = static_cast<int64_t>(x);
  return true;
}

// A value for messages: scalars as JSON text, containers by type.
std::string preview(const json::Value& v) {
  if (v.is_array() || v.is_object()) return std::string("an ") + json::type_name(v.type());
  std::string text = json::write(v);
  return text.size() > 80 ? text.substr(0, 77) + "..." : text;
}

std::string error_text(int err) { return std::error_code(err, std::generic_category()).message(); }

// ---------------------------------------------------------------------------------------------
// Validation

std::string optional_stat_problem(const char* name, double x) {
  if (std::isnan(x) || (std::isfinite(x) && x >= 0)) return "";
  return std::string(name) + " must be finite and >= 0 (or unknown), got " + format_double(x);
}

std::string calibration_problem(const json::Value& cal) {
  if (cal.is_null()) return "";
  if (!cal.is_object()) return "\"calibration\" must be an object or null, got " + preview(cal);
  const json::Value* scale = cal.find("scale");
  const json::Value* offset = cal.find("offset");
  if (!scale || !scale->is_number() || !(std::isfinite(scale->as_number()) && scale->as_number() > 0)) {
    return "\"calibration\".\"scale\" must be a finite number > 0, got " + (scale ? preview(*scale) : "nothing");
  }
  if (!offset || !offset->is_number() || !std::isfinite(offset->as_number())) {
    return "\"calibration\".\"offset\" must be a finite number, got " + (offset ? preview(*offset) : "nothing");
  }
  for (const char* name : {"per_op", "per_element", "per_param"}) {  // optional terms of the richer calibration
    const json::Value* term = cal.find(name);
    if (term && !(term->is_number() && std::isfinite(term->as_number()))) {
      return std::string("\"calibration\".\"") + name + "\" must be a finite number, got " + preview(*term);
    }
  }
  return "";
}

// ---------------------------------------------------------------------------------------------
// Reading a file into Stats

const char* const kStatFields[] = {"mean", "median", "std", "p5", "p95", "min", "n"};

bool is_stat_field(const std::string& name) {
  for (const char* field : kStatFields) {
    if (name == field) return true;
  }
  return false;
}

// Reads an optional statistic (absent or null -> NaN) into `out`; returns a problem or "".
std::string read_optional(const json::Value& entry, const char* name, double& out) {
  const json::Value* v = entry.find(name);
  out = std::nan("");
  if (!v || v->is_null()) return "";
  if (!v->is_number()) return "\"" + std::string(name) + "\" must be a number or null, got " + preview(*v);
  out = v->as_number();
  return "";
}

// Reads one entry object into `out`; returns a problem or "".
std::string read_entry(const json::Value& entry, Stats& out) {
  if (!entry.is_object()) return std::string("must be an object, got ") + preview(entry);
  std::vector<std::string> unknown;
  for (const auto& member : entry.as_object()) {
    if (!is_stat_field(member.first)) unknown.push_back(member.first);
  }
  if (!unknown.empty()) return "unknown field(s) " + format_key_list(unknown);
  const json::Value* mean = entry.find("mean");
  if (!mean) return "missing field \"mean\"";
  if (!mean->is_number()) return "\"mean\" must be a number, got " + preview(*mean);
  out.mean = mean->as_number();
  const json::Value* n = entry.find("n");
  if (!n) return "missing field \"n\"";
  if (!as_integer(*n, out.n)) return "\"n\" must be an integer >= 1, got " + preview(*n);
  for (auto [name, field] : {std::pair{"median", &out.median}, {"std", &out.std}, {"p5", &out.p5},
                             {"p95", &out.p95}, {"min", &out.min}}) {
    std::string problem = read_optional(entry, name, *field);
    if (!problem.empty()) return problem;
  }
  return stats_problem(out);
}

json::Value entry_json(const Stats& s) {
  const auto stat = [](double x) { return std::isnan(x) ? json::Value(nullptr) : json::Value(x); };
  json::Object o;
  o.set("mean", s.mean);
  o.set("median", stat(s.median));
  o.set("std", stat(s.std));
  o.set("p5", stat(s.p5));
  o.set("p95", stat(s.p95));
  o.set("min", stat(s.min));
  o.set("n", s.n);
  return o;
}

// Checks "format" and "schema_version"; returns a problem or "".
std::string header_problem(const json::Value& doc) {
  for (const auto& member : doc.as_object()) {
    const std::string& name = member.first;
    if (name != "format" && name != "schema_version" && name != "metadata" && name != "entries") {
      return "unknown top-level field " + json::quote(name);
    }
  }
  const json::Value* format = doc.find("format");
  if (!format) return "missing \"format\" field (not an hwnas latency table?)";
  if (!format->is_string() || format->as_string() != kFormat) {
    return "\"format\" is " + preview(*format) + ", expected \"" + kFormat + "\"";
  }
  const json::Value* version = doc.find("schema_version");
  if (!version) return "missing \"schema_version\" field";
  int64_t v = 0;
  if (!as_integer(*version, v)) return "\"schema_version\" must be an integer, got " + preview(*version);
  if (v > kSchemaVersion) {
    return "written by a newer hwnas: schema_version " + std::to_string(v) + ", this build reads " +
           std::to_string(kSchemaVersion);
  }
  if (v != kSchemaVersion) {
    return "unsupported schema_version " + std::to_string(v) + ", this build reads " + std::to_string(kSchemaVersion);
  }
  return "";
}

// ---------------------------------------------------------------------------------------------
// Files

// Closes a descriptor and removes a temporary file unless released.
class TempFile {
 public:
  TempFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!kept_) ::unlink(path_.c_str());
  }
  int fd() const { return fd_; }
  int close() {
    const int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }
  void keep() { kept_ = true; }

 private:
  std::string path_;
  int fd_;
  bool kept_ = false;
};

[[noreturn]] void throw_format(const std::string& source, const std::string& reason) {
  throw FormatError(source + ": " + reason);
}

[[noreturn]] void throw_io(const std::string& path, const std::string& action, int err) {
  const std::string message = path + ": " + action + ": " + error_text(err);
  if (err == ENOENT) throw FileNotFound(message);
  throw IOError(message);
}

std::string read_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw_io(path, "cannot open", errno);
  TempFile guard(path, fd);
  guard.keep();  // only closes: this is not a temporary file
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw_io(path, "cannot stat", errno);
  if (S_ISDIR(st.st_mode)) throw IOError(path + ": is a directory, not a latency table file");
  if (st.st_size > kMaxFileBytes) {
    throw FormatError(path + ": file is " + std::to_string(st.st_size) +
                      " bytes; latency tables over 1 GiB are refused");
  }
  std::string text;
  text.reserve(static_cast<std::size_t>(st.st_size));
  char buf[1 << 16];
  while (true) {
    const ssize_t got = ::read(fd, buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) throw_io(path, "cannot read", errno);
    if (got == 0) break;
    text.append(buf, static_cast<std::size_t>(got));
    if (static_cast<int64_t>(text.size()) > kMaxFileBytes) {
      throw FormatError(path + ": file is over 1 GiB; latency tables that large are refused");
    }
  }
  return text;
}

void write_all(int fd, const std::string& text, const std::string& tmp) {
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t put = ::write(fd, text.data() + done, text.size() - done);
    if (put < 0 && errno == EINTR) continue;
    if (put < 0) throw_io(tmp, "cannot write", errno);
    done += static_cast<std::size_t>(put);
  }
}

// Best effort: makes the rename itself durable.
void sync_parent_dir(const std::string& path) {
  const std::size_t slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  const int fd = ::open(dir.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

void write_file_atomically(const std::string& path, const std::string& text) {
  static std::atomic<unsigned> counter{0};
  const std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) throw_io(path, "cannot create temporary file " + json::quote(tmp), errno);
  TempFile file(tmp, fd);
  write_all(file.fd(), text, tmp);
  if (::fsync(file.fd()) != 0) throw_io(tmp, "cannot fsync", errno);
  if (file.close() != 0) throw_io(tmp, "cannot close", errno);
  if (::rename(tmp.c_str(), path.c_str()) != 0) throw_io(path, "cannot replace with " + json::quote(tmp), errno);
  file.keep();
  sync_parent_dir(path);
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

std::string metadata_problem(const json::Value& m) {
  if (!m.is_object()) return std::string("must be a JSON object, got ") + preview(m);
  if (const json::Value* units = m.find("units"); units && !(units->is_string() && units->as_string() == "ms")) {
    return "\"units\" must be \"ms\", got " + preview(*units);
  }
  if (const json::Value* cal = m.find("calibration")) {
    std::string problem = calibration_problem(*cal);
    if (!problem.empty()) return problem;
  }
  int64_t batch = 0;
  if (const json::Value* b = m.find("batch"); b && !(as_integer(*b, batch) && batch >= 1)) {
    return "\"batch\" must be an integer >= 1, got " + preview(*b);
  }
  return "";
}

// ---------------------------------------------------------------------------------------------
// LatencyTable

LatencyTable::LatencyTable() : metadata_(json::Object{}) {}

void LatencyTable::set(const std::string& key, const Stats& stats) {
  if (key.empty()) throw InvalidArgument("latency table keys must be non-empty strings");
  const std::string problem = stats_problem(stats);
  if (!problem.empty()) throw InvalidArgument("entry " + json::quote(key) + ": " + problem);
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
      throw InvalidArgument("set_many: row " + std::to_string(i) + " (" + json::quote(keys[i]) + "): " + problem);
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

void LatencyTable::set_metadata(json::Value metadata) {
  const std::string problem = metadata_problem(metadata);
  if (!problem.empty()) throw InvalidArgument("metadata: " + problem);
  metadata_ = std::move(metadata);
}

LatencyTable LatencyTable::load(const std::string& path) { return parse(read_file(path), path); }

LatencyTable LatencyTable::parse(std::string_view text, const std::string& source_name) {
  const auto fail = [&](const std::string& reason) { throw_format(source_name, reason); };
  if (text.empty()) fail("file is empty");
  json::Value doc;
  try {
    doc = json::parse(text);
  } catch (const FormatError& e) {
    fail(e.what());
  }
  if (!doc.is_object()) fail(std::string("top level is ") + preview(doc) + ", expected an object");
  if (std::string problem = header_problem(doc); !problem.empty()) fail(problem);

  LatencyTable table;
  const json::Value* metadata = doc.find("metadata");
  if (!metadata) fail("missing \"metadata\" field");
  if (std::string problem = metadata_problem(*metadata); !problem.empty()) fail("metadata: " + problem);
  table.metadata_ = *metadata;

  const json::Value* entries = doc.find("entries");
  if (!entries) fail("missing \"entries\" field");
  if (!entries->is_object()) fail("\"entries\" must be an object, got " + preview(*entries));
  for (const auto& [key, value] : entries->as_object()) {
    Stats stats{};
    std::string problem = key.empty() ? "keys must be non-empty" : read_entry(value, stats);
    if (!problem.empty()) fail("entry " + json::quote(key) + ": " + problem);
    table.entries_.emplace_hint(table.entries_.end(), key, stats);
  }
  return table;
}

std::string LatencyTable::dump() const {
  json::Object entries;
  for (const auto& [key, stats] : entries_) entries.set(key, entry_json(stats));
  json::Object root;
  root.set("format", kFormat);
  root.set("schema_version", kSchemaVersion);
  root.set("metadata", metadata_);
  root.set("entries", std::move(entries));
  return json::write(root, 2) + "\n";
}

void LatencyTable::save(const std::string& path) const { write_file_atomically(path, dump()); }

}  // namespace hwnas
