// LatencyPredictor: a LatencyTable compiled against a search space's layout into dense arrays, so
// that predicting an architecture is a few table reads and the expected latency under independent
// categorical choices (with its gradient) is exact.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "latency_table.h"

namespace hwnas {

// Where each arch's latency comes from; computed from the search space by the caller.
struct PredictorLayout {
  std::vector<int> resolutions;                   // R input sizes, in choice order
  std::vector<std::vector<std::string>> fixed_keys;  // per resolution: keys every arch pays
  std::vector<std::string> block_keys;            // [R][B][K][E] key of slot b with kernel k, expand e
  int B = 0, K = 0, E = 0, G = 0, D = 0;          // slots, kernels, expands, stages, depth choices
  std::vector<int> block_stage;                   // [B] stage of each slot
  std::vector<int> block_position;                // [B] index of the slot inside its stage
  std::vector<int> depth_values;                  // [D] depth of each depth choice
  std::vector<int> strict_resolutions;            // resolutions that must be covered (empty: auto)
  // Tensor elements at each op's boundaries (input + output), parallel to fixed_keys / block_keys;
  // used by the calibration's per_element term. Empty: all zero.
  std::vector<std::vector<double>> fixed_io;
  std::vector<double> block_io;
  // Trainable parameters of each op (its weights), likewise; used by the per_param term.
  std::vector<std::vector<double>> fixed_params;
  std::vector<double> block_params;
};

// Immutable after construction: predict() and expected() are safe to call from many threads.
//
// Codes of one arch (int32, S = 2B + G + 1): [ks code per slot, e code per slot, d code per stage,
// r code], each an index into its choice list. Slot b is active iff
// depth_values[d[block_stage[b]]] > block_position[b].
// Latency = fixed[r] + sum over active slots of block[r][b][k][e], where the dense arrays hold
// calibrated values (see Calibration in latency_table.h; the table's, default the identity) and fixed[r]
// includes the offset.
//
// Keys are looked up as key + "@r<size>" first, then key. A resolution is served when all its keys
// are found, skipped when none of its resolution-specific keys are (the table was not profiled at
// that size), and otherwise compilation fails with MissingKeysError listing what is missing.
class LatencyPredictor {
 public:
  LatencyPredictor(const LatencyTable& table, const PredictorLayout& layout);

  int R() const { return static_cast<int>(resolutions_.size()); }
  int B() const { return B_; }
  int K() const { return K_; }
  int E() const { return E_; }
  int G() const { return G_; }
  int D() const { return D_; }
  int num_codes() const { return 2 * B_ + G_ + 1; }
  const Calibration& calibration() const { return calibration_; }
  std::vector<int> served_resolutions() const;
  double fixed_term(int r) const { return fixed_[r]; }  // calibrated; NaN if r is not served
  double block_value(int r, int b, int k, int e) const { return block_[((r * B_ + b) * K_ + k) * E_ + e]; }
  const std::vector<double>& fixed_terms() const { return fixed_; }  // [R]
  const std::vector<double>& block_values() const { return block_; }  // [R][B][K][E]

  // out[i] = calibrated latency of row i (row stride `stride` int32s, >= num_codes()).
  // threads <= 0: all hardware threads. Throws InvalidArgument for the first invalid row.
  void predict(const int32_t* codes, int64_t n, int64_t stride, double* out, int threads) const;

  // Exact expected calibrated latency of n distributions, and its partial derivatives w.r.t. every
  // probability (the expression taken as a polynomial in them). pk [n][B][K], pe [n][B][E],
  // pd [n][G][D], pr [n][R]; the gradients have the same shapes. Each categorical must be finite,
  // >= 0 and sum to 1 (within 1e-6); unserved resolutions must have probability 0.
  void expected(const double* pk, const double* pe, const double* pd, const double* pr, int64_t n, double* out,
                double* gk, double* ge, double* gd, double* gr) const;

 private:
  int B_, K_, E_, G_, D_;
  std::vector<int> resolutions_, block_stage_;
  std::vector<uint8_t> served_;      // [R]
  std::vector<double> fixed_;        // [R]
  std::vector<double> block_;        // [R][B][K][E]
  std::vector<double> active_;       // [B][D] 1 if depth choice d activates slot b, else 0
  std::vector<uint32_t> limits_;     // [S] exclusive upper bound of each code
  Calibration calibration_;

  void compile(const LatencyTable& table, const PredictorLayout& layout);
  int64_t predict_rows(const int32_t* codes, int64_t begin, int64_t end, int64_t stride, double* out) const;
  [[noreturn]] void throw_bad_row(const int32_t* row, int64_t index) const;
  void validate_distribution(const double* pk, const double* pe, const double* pd, const double* pr,
                             int64_t row) const;
};

}  // namespace hwnas
