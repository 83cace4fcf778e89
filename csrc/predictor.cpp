#include "predictor.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <system_error>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

namespace hwnas {

namespace {

constexpr int kMaxDim = 1 << 16;
constexpr int64_t kMaxDenseSize = int64_t{1} << 28;
constexpr int64_t kMinRowsPerExtraThread = 50000;
constexpr double kSumTolerance = 1e-6;
const double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string join_ints(const std::vector<int>& values) {
  std::string out;
  for (std::size_t i = 0; i < values.size(); ++i) out += (i ? ", " : "") + std::to_string(values[i]);
  return out;
}

void check_dim(const char* name, int value) {
  if (value < 1 || value > kMaxDim) {
    throw InvalidArgument(std::string(name) + " must be in [1, " + std::to_string(kMaxDim) + "], got " +
                          std::to_string(value));
  }
}

void check_size(const char* name, std::size_t size, int64_t expected) {
  if (static_cast<int64_t>(size) != expected) {
    throw InvalidArgument(std::string(name) + " has " + std::to_string(size) + " elements, expected " +
                          std::to_string(expected));
  }
}

void check_each_in(const char* name, const std::vector<int>& values, int lo, int hi) {
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (values[i] < lo || values[i] >= hi) {
      throw InvalidArgument(std::string(name) + "[" + std::to_string(i) + "] = " + std::to_string(values[i]) +
                            " out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + ")");
    }
  }
}

void validate_layout(const PredictorLayout& l) {
  const int R = static_cast<int>(l.resolutions.size());
  if (R < 1) throw InvalidArgument("resolutions must not be empty");
  check_each_in("resolutions", l.resolutions, 1, std::numeric_limits<int>::max());
  for (std::size_t i = 1; i < l.resolutions.size(); ++i) {
    if (std::find(l.resolutions.begin(), l.resolutions.begin() + i, l.resolutions[i]) != l.resolutions.begin() + i) {
      throw InvalidArgument("resolutions: " + std::to_string(l.resolutions[i]) + " appears twice");
    }
  }
  check_dim("B", l.B);
  check_dim("K", l.K);
  check_dim("E", l.E);
  check_dim("G", l.G);
  check_dim("D", l.D);
  const int64_t dense = int64_t{R} * l.B * l.K * l.E;
  if (dense > kMaxDenseSize) throw InvalidArgument("layout too large: R*B*K*E = " + std::to_string(dense));
  check_size("fixed_keys", l.fixed_keys.size(), R);
  check_size("block_keys", l.block_keys.size(), dense);
  check_size("block_stage", l.block_stage.size(), l.B);
  check_size("block_position", l.block_position.size(), l.B);
  check_size("depth_values", l.depth_values.size(), l.D);
  if (!l.block_io.empty()) check_size("block_io", l.block_io.size(), dense);
  if (!l.block_params.empty()) check_size("block_params", l.block_params.size(), dense);
  for (const auto* fixed : {&l.fixed_io, &l.fixed_params}) {
    if (fixed->empty()) continue;
    check_size(fixed == &l.fixed_io ? "fixed_io" : "fixed_params", fixed->size(), R);
    for (int r = 0; r < R; ++r) check_size("fixed features[r]", (*fixed)[r].size(), l.fixed_keys[r].size());
  }
  check_each_in("block_stage", l.block_stage, 0, l.G);
  check_each_in("block_position", l.block_position, 0, kMaxDim);
  check_each_in("depth_values", l.depth_values, 0, kMaxDim);
  for (int res : l.strict_resolutions) {
    if (std::find(l.resolutions.begin(), l.resolutions.end(), res) == l.resolutions.end()) {
      throw InvalidArgument("strict_resolutions: " + std::to_string(res) + " is not one of the space's resolutions [" +
                            join_ints(l.resolutions) + "]");
    }
  }
}

// The entry for `key` at input size `res`: a resolution-scoped entry overrides the plain one.
const Stats* lookup(const LatencyTable& table, const std::string& key, int res) {
  const Stats* scoped = table.find(key + "@r" + std::to_string(res));
  return scoped ? scoped : table.find(key);
}

// The distinct keys each resolution needs, in first-use order.
std::vector<std::vector<std::string>> keys_per_resolution(const PredictorLayout& l) {
  const std::size_t per_r = l.block_keys.size() / l.resolutions.size();
  std::vector<std::vector<std::string>> out(l.resolutions.size());
  for (std::size_t r = 0; r < out.size(); ++r) {
    std::unordered_set<std::string> seen;
    const auto add = [&](const std::string& key) {
      if (seen.insert(key).second) out[r].push_back(key);
    };
    for (const std::string& key : l.fixed_keys[r]) add(key);
    for (std::size_t i = r * per_r; i < (r + 1) * per_r; ++i) add(l.block_keys[i]);
  }
  return out;
}

// Which resolutions the table serves; throws MissingKeysError for partial or demanded coverage.
std::vector<uint8_t> coverage(const LatencyTable& table, const PredictorLayout& l) {
  const auto keys = keys_per_resolution(l);
  std::unordered_map<std::string, int> resolutions_using;
  for (const auto& ks : keys) {
    for (const std::string& key : ks) ++resolutions_using[key];
  }
  std::vector<uint8_t> served(keys.size(), 0);
  std::vector<std::string> first_missing;
  for (std::size_t r = 0; r < keys.size(); ++r) {
    const int res = l.resolutions[r];
    std::vector<std::string> missing;
    bool has_specific = false, specific_found = false;
    for (const std::string& key : keys[r]) {
      const bool found = lookup(table, key, res) != nullptr;
      if (!found) missing.push_back(key);
      if (resolutions_using[key] == 1) {
        has_specific = true;
        specific_found |= found;
      }
    }
    const bool strict = std::count(l.strict_resolutions.begin(), l.strict_resolutions.end(), res) > 0;
    if (!missing.empty() && strict) {
      throw MissingKeysError("latency table does not cover required resolution " + std::to_string(res), missing);
    }
    if (!missing.empty() && !(has_specific && !specific_found)) {
      throw MissingKeysError("latency table is incomplete for resolution " + std::to_string(res), missing);
    }
    served[r] = missing.empty();
    if (r == 0) first_missing = std::move(missing);
  }
  if (std::count(served.begin(), served.end(), 1) == 0) {
    throw MissingKeysError("table covers none of the space's resolutions [" + join_ints(l.resolutions) + "]",
                           first_missing);
  }
  return served;
}

// Name of code column s: "ks[b]", "e[b]", "d[g]" or "r".
std::string code_name(int s, int B, int G) {
  if (s < B) return "ks[" + std::to_string(s) + "]";
  if (s < 2 * B) return "e[" + std::to_string(s - B) + "]";
  if (s < 2 * B + G) return "d[" + std::to_string(s - 2 * B) + "]";
  return "r";
}

// Throws unless p[0..n) is a probability vector.
void check_categorical(const double* p, int n, int64_t row, const std::string& group) {
  double sum = 0;
  for (int j = 0; j < n; ++j) {
    if (!(std::isfinite(p[j]) && p[j] >= 0)) {
      throw InvalidArgument("distribution row " + std::to_string(row) + ": " + group +
                            " probabilities must be finite and >= 0, got " + format_double(p[j]) + " at index " +
                            std::to_string(j));
    }
    sum += p[j];
  }
  if (!(std::fabs(sum - 1.0) <= kSumTolerance)) {
    throw InvalidArgument("distribution row " + std::to_string(row) + ": " + group + " probabilities sum to " +
                          format_double(sum) + ", expected 1 (tolerance 1e-6)");
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Compilation

LatencyPredictor::LatencyPredictor(const LatencyTable& table, const PredictorLayout& layout) {
  validate_layout(layout);
  compile(table, layout);
}

void LatencyPredictor::compile(const LatencyTable& table, const PredictorLayout& l) {
  B_ = l.B, K_ = l.K, E_ = l.E, G_ = l.G, D_ = l.D;
  resolutions_ = l.resolutions;
  block_stage_ = l.block_stage;
  served_ = coverage(table, l);
  calibration_ = table.calibration();
  const Calibration& c = calibration_;
  const auto calibrated = [&c](double mean, double io, double params) {
    return c.scale * mean + c.per_op + c.per_element * io + c.per_param * params;
  };
  const auto feature = [](const std::vector<double>& values, std::size_t i) { return values.empty() ? 0.0 : values[i]; };

  const int R = this->R();
  const int per_r = B_ * K_ * E_;
  fixed_.assign(R, kNaN);
  block_.assign(static_cast<std::size_t>(R) * per_r, kNaN);
  for (int r = 0; r < R; ++r) {
    if (!served_[r]) continue;
    const int res = resolutions_[r];
    double sum = c.offset;
    for (std::size_t j = 0; j < l.fixed_keys[r].size(); ++j) {
      const double io = l.fixed_io.empty() ? 0.0 : l.fixed_io[r][j];
      const double params = l.fixed_params.empty() ? 0.0 : l.fixed_params[r][j];
      sum += calibrated(lookup(table, l.fixed_keys[r][j], res)->mean, io, params);
    }
    fixed_[r] = sum;
    for (int i = r * per_r; i < (r + 1) * per_r; ++i) {
      block_[i] = calibrated(lookup(table, l.block_keys[i], res)->mean, feature(l.block_io, i),
                             feature(l.block_params, i));
    }
  }

  active_.assign(static_cast<std::size_t>(B_) * D_, 0.0);
  for (int b = 0; b < B_; ++b) {
    for (int d = 0; d < D_; ++d) active_[b * D_ + d] = l.depth_values[d] > l.block_position[b] ? 1.0 : 0.0;
  }
  limits_.clear();
  limits_.insert(limits_.end(), B_, static_cast<uint32_t>(K_));
  limits_.insert(limits_.end(), B_, static_cast<uint32_t>(E_));
  limits_.insert(limits_.end(), G_, static_cast<uint32_t>(D_));
  limits_.push_back(static_cast<uint32_t>(R));
}

std::vector<int> LatencyPredictor::served_resolutions() const {
  std::vector<int> out;
  for (int r = 0; r < R(); ++r) {
    if (served_[r]) out.push_back(resolutions_[r]);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// predict

// Predicts rows [begin, end); returns the first invalid row, or -1.
int64_t LatencyPredictor::predict_rows(const int32_t* codes, int64_t begin, int64_t end, int64_t stride,
                                       double* out) const {
  const int S = num_codes(), B = B_, E = E_, D = D_, KE = K_ * E_;
  const uint32_t* limits = limits_.data();
  const int* stage = block_stage_.data();
  const double* active = active_.data();
  const std::size_t per_r = static_cast<std::size_t>(B) * KE;
  for (int64_t i = begin; i < end; ++i) {
    const int32_t* row = codes + i * stride;
    // One flag per row: any code outside [0, limit) (negative codes wrap to huge unsigned values).
    uint32_t bad = 0;
    for (int s = 0; s < S; ++s) bad |= static_cast<uint32_t>(static_cast<uint32_t>(row[s]) >= limits[s]);
    if (bad) return i;
    const int r = row[S - 1];
    if (!served_[r]) return i;
    const double* blk = block_.data() + r * per_r;
    const int32_t* ks = row;
    const int32_t* es = row + B;
    const int32_t* ds = row + 2 * B;
    double sum = fixed_[r];
    for (int b = 0; b < B; ++b) {
      sum += blk[b * KE + ks[b] * E + es[b]] * active[b * D + ds[stage[b]]];
    }
    out[i] = sum;
  }
  return -1;
}

void LatencyPredictor::throw_bad_row(const int32_t* row, int64_t index) const {
  const std::string where = "arch row " + std::to_string(index) + ": ";
  const int S = num_codes();
  for (int s = 0; s < S; ++s) {
    if (static_cast<uint32_t>(row[s]) >= limits_[s]) {
      throw InvalidArgument(where + code_name(s, B_, G_) + " code " + std::to_string(row[s]) + " out of range [0, " +
                            std::to_string(limits_[s]) + ")");
    }
  }
  throw InvalidArgument(where + "resolution " + std::to_string(resolutions_[row[S - 1]]) +
                        " is not covered by this latency table (served: " + join_ints(served_resolutions()) + ")");
}

void LatencyPredictor::predict(const int32_t* codes, int64_t n, int64_t stride, double* out, int threads) const {
  if (stride < num_codes()) throw InvalidArgument("predict: row stride " + std::to_string(stride) + " < " +
                                                  std::to_string(num_codes()) + " codes per arch");
  if (n <= 0) return;
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(threads, 1 + n / kMinRowsPerExtraThread));
  std::vector<int64_t> first_bad(chunks, -1);
  const auto run = [&](int64_t c) {
    first_bad[c] = predict_rows(codes, n * c / chunks, n * (c + 1) / chunks, stride, out);
  };
  std::vector<std::thread> workers;
  for (int64_t c = 1; c < chunks; ++c) {
    try {
      workers.emplace_back(run, c);
    } catch (const std::system_error&) {
      run(c);  // no thread available: do this chunk here
    }
  }
  run(0);
  for (std::thread& w : workers) w.join();
  for (int64_t bad : first_bad) {
    if (bad >= 0) throw_bad_row(codes + bad * stride, bad);  // chunks are in row order
  }
}

// ---------------------------------------------------------------------------------------------
// expected

void LatencyPredictor::validate_distribution(const double* pk, const double* pe, const double* pd, const double* pr,
                                             int64_t row) const {
  for (int b = 0; b < B_; ++b) check_categorical(pk + b * K_, K_, row, "ks[" + std::to_string(b) + "]");
  for (int b = 0; b < B_; ++b) check_categorical(pe + b * E_, E_, row, "e[" + std::to_string(b) + "]");
  for (int g = 0; g < G_; ++g) check_categorical(pd + g * D_, D_, row, "d[" + std::to_string(g) + "]");
  check_categorical(pr, R(), row, "r");
  for (int r = 0; r < R(); ++r) {
    if (!served_[r] && pr[r] != 0) {
      throw InvalidArgument("distribution row " + std::to_string(row) + ": probability " + format_double(pr[r]) +
                            " on resolution " + std::to_string(resolutions_[r]) +
                            ", which this table does not cover");
    }
  }
}

// With A_b = P(slot b active), W_b[k][e] = sum_r pr_r block[r][b][k][e] and
// M_b = sum_ke pk_bk pe_be W_b[k][e] (calibrated values; fixed_r holds the offset), the expectation is
//   sum_r pr_r fixed_r + sum_b A_b M_b,
// which is linear in each probability, so every partial derivative is a coefficient below.
void LatencyPredictor::expected(const double* pk, const double* pe, const double* pd, const double* pr, int64_t n,
                                double* out, double* gk, double* ge, double* gd, double* gr) const {
  const int R = this->R(), B = B_, K = K_, E = E_, G = G_, D = D_, KE = K_ * E_;
  std::vector<double> A(B), W(static_cast<std::size_t>(B) * KE), M(B);
  for (int64_t i = 0; i < n; ++i) {
    const double* pk_i = pk + i * B * K;
    const double* pe_i = pe + i * B * E;
    const double* pd_i = pd + i * G * D;
    const double* pr_i = pr + i * R;
    double* gk_i = gk + i * B * K;
    double* ge_i = ge + i * B * E;
    double* gd_i = gd + i * G * D;
    double* gr_i = gr + i * R;
    validate_distribution(pk_i, pe_i, pd_i, pr_i, i);

    double fixed_part = 0;
    std::fill(W.begin(), W.end(), 0.0);
    for (int r = 0; r < R; ++r) {
      if (!served_[r] || pr_i[r] == 0) continue;  // unserved entries are NaN and have pr == 0
      fixed_part += pr_i[r] * fixed_[r];
      const double* blk = block_.data() + static_cast<std::size_t>(r) * B * KE;
      for (int j = 0; j < B * KE; ++j) W[j] += pr_i[r] * blk[j];
    }

    double blocks_part = 0;
    for (int b = 0; b < B; ++b) {
      A[b] = 0;
      for (int d = 0; d < D; ++d) A[b] += pd_i[block_stage_[b] * D + d] * active_[b * D + d];
      const double* w = W.data() + b * KE;
      const double* pkb = pk_i + b * K;
      const double* peb = pe_i + b * E;
      M[b] = 0;
      for (int k = 0; k < K; ++k) {
        double along_e = 0;  // sum_e pe W[k][e]
        for (int e = 0; e < E; ++e) along_e += peb[e] * w[k * E + e];
        gk_i[b * K + k] = A[b] * along_e;
        M[b] += pkb[k] * along_e;
      }
      for (int e = 0; e < E; ++e) {
        double along_k = 0;  // sum_k pk W[k][e]
        for (int k = 0; k < K; ++k) along_k += pkb[k] * w[k * E + e];
        ge_i[b * E + e] = A[b] * along_k;
      }
      blocks_part += A[b] * M[b];
    }
    out[i] = fixed_part + blocks_part;

    std::fill(gd_i, gd_i + G * D, 0.0);
    for (int b = 0; b < B; ++b) {
      for (int d = 0; d < D; ++d) gd_i[block_stage_[b] * D + d] += active_[b * D + d] * M[b];
    }

    for (int r = 0; r < R; ++r) {
      if (!served_[r]) {
        gr_i[r] = 0;
        continue;
      }
      const double* blk = block_.data() + static_cast<std::size_t>(r) * B * KE;
      double total = fixed_[r];
      for (int b = 0; b < B; ++b) {
        double m = 0;
        for (int k = 0; k < K; ++k) {
          for (int e = 0; e < E; ++e) m += pk_i[b * K + k] * pe_i[b * E + e] * blk[b * KE + k * E + e];
        }
        total += A[b] * m;
      }
      gr_i[r] = total;
    }
  }
}

}  // namespace hwnas
