// Variation for latency-constrained evolutionary search: parents in, children that fit every limit
// out. It knows nothing of accuracy (the caller ranks the children with its own model).
//
// Genes: one int per code column (S = 2B + G + 1): kernel and expand per block slot, depth per stage,
// and a resolution gene that indexes `resolution_codes` (the resolutions every limit serves). A
// gene's value v is the index of its choice; lower is smaller.
//
// A child slot chooses its parent(s) once, as OFA does: a mutant slot mutates one parent (each block
// slot redraws kernel and expand together with probability mutate_prob, each stage its depth, the
// arch its resolution), the others take each gene from one of two parents. Variations are drawn until
// one fits every limit, at most max_draws times (OFA redraws without end); a slot with none that fits
// repairs its first draw: rounds of stepping relevant genes down (each with a probability that grows
// with the excess over the limits) until it fits, falling back to the run's anchor, an arch known to fit.
#pragma once

#include <cstdint>
#include <vector>

#include "predictor.h"

namespace hwnas {

// Small, fast, reproducible random numbers (xoshiro256**, seeded by splitmix64).
class Random {
 public:
  explicit Random(uint64_t seed);
  uint64_t next();
  double uniform();                  // [0, 1)
  int32_t below(int32_t n);          // [0, n)

 private:
  uint64_t s_[4];
};

struct Limit {
  const LatencyPredictor* cost;      // additive cost (latency in ms, MACs or params in millions)
  std::vector<double> bounds;        // [runs] upper bound per run
};

struct VariationConfig {
  int B = 0, G = 0;
  std::vector<int32_t> sizes;              // [S] number of values of each gene
  std::vector<int32_t> resolution_codes;   // resolution gene value -> predictor resolution code
  std::vector<int32_t> repair_step;        // [S] how far one repair step moves each gene
  std::vector<int> block_stage, block_position, depth_values;
  int population = 100, mutants = 50;      // child slots per run; the first `mutants` are mutants
  double mutate_prob = 0.1;
  int max_draws = 10, repair_rounds = 64;
  double repair_min_step = 0.1;
};

class Variation {
 public:
  static constexpr std::size_t kMaxGenes = 512;

  // anchors: [runs][S] genes of an arch that fits every limit of each run.
  Variation(VariationConfig config, std::vector<Limit> limits, std::vector<int32_t> anchors, int runs);

  int S() const { return static_cast<int>(config_.sizes.size()); }
  int population() const { return config_.population; }
  int runs() const { return runs_; }
  int limits() const { return static_cast<int>(limits_.size()); }

  // parents [runs][n_parents][S]; writes children [runs·population][S] and their costs
  // [limits][runs·population]. Returns how many children had to be repaired.
  int64_t children(const int32_t* parents, int n_parents, uint64_t seed, int32_t* out, double* costs) const;

  // Repairs rows [n][S] (row i belongs to run runs_of[i]) in place; writes costs [limits][n].
  // Returns how many rows needed it.
  int64_t repair(int32_t* genes, const int32_t* runs_of, int64_t n, uint64_t seed, double* costs) const;

 private:
  VariationConfig config_;
  std::vector<Limit> limits_;
  std::vector<int32_t> anchors_;
  int runs_;

  // Costs of one genome; returns the summed relative excess over run's bounds (0: fits).
  double evaluate(const int32_t* genes, int run, double* cost, int64_t stride) const;
  void mutate(const int32_t* parent, int32_t* child, Random& rng) const;
  void cross(const int32_t* first, const int32_t* second, int32_t* child, Random& rng) const;
  bool relevant(const int32_t* genes, int gene) const;
  void check_genes(const int32_t* genes, int64_t n, const char* what) const;
  void repair_one(int32_t* genes, int run, double excess, Random& rng, double* cost, int64_t stride) const;
};

}  // namespace hwnas
