#include "variation.h"

#include <algorithm>
#include <string>
#include <utility>

#include "errors.h"

namespace hwnas {

namespace {

uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

}  // namespace

Random::Random(uint64_t seed) {
  for (uint64_t& s : s_) s = splitmix64(seed);
}

uint64_t Random::next() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double Random::uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

int32_t Random::below(int32_t n) { return static_cast<int32_t>(uniform() * n); }

Variation::Variation(VariationConfig config, std::vector<Limit> limits, std::vector<int32_t> anchors, int runs)
    : config_(std::move(config)), limits_(std::move(limits)), anchors_(std::move(anchors)), runs_(runs) {
  if (config_.sizes.size() > kMaxGenes) {
    throw InvalidArgument("variation: " + std::to_string(config_.sizes.size()) + " genes, at most " +
                          std::to_string(kMaxGenes));
  }
  const VariationConfig& c = config_;
  const int S = this->S();
  if (c.B < 1 || c.G < 1 || S != 2 * c.B + c.G + 1) {
    throw InvalidArgument("variation: " + std::to_string(S) + " genes do not match B=" + std::to_string(c.B) +
                          ", G=" + std::to_string(c.G) + " (need 2B + G + 1)");
  }
  if (static_cast<int>(c.repair_step.size()) != S || static_cast<int>(c.block_stage.size()) != c.B ||
      static_cast<int>(c.block_position.size()) != c.B ||
      static_cast<int>(c.depth_values.size()) != c.sizes[2 * c.B] ||
      static_cast<int>(c.resolution_codes.size()) != c.sizes[S - 1]) {
    throw InvalidArgument("variation: repair_step, block_stage, block_position, depth_values or resolution_codes "
                          "have the wrong length");
  }
  for (int s = 0; s < S; ++s) {
    if (c.sizes[s] < 1) throw InvalidArgument("variation: gene " + std::to_string(s) + " has no values");
  }
  if (runs < 1 || static_cast<int64_t>(anchors_.size()) != static_cast<int64_t>(runs) * S) {
    throw InvalidArgument("variation: anchors must hold " + std::to_string(runs) + " x " + std::to_string(S) +
                          " genes, got " + std::to_string(anchors_.size()));
  }
  if (c.population < 1 || c.mutants < 0 || c.mutants > c.population || c.max_draws < 1 || c.repair_rounds < 0) {
    throw InvalidArgument("variation: population, mutants, max_draws or repair_rounds out of range");
  }
  check_genes(anchors_.data(), runs_, "anchors");
  for (const Limit& limit : limits_) {
    if (limit.cost == nullptr || limit.cost->num_codes() != S) {
      throw InvalidArgument("variation: a limit's predictor does not take " + std::to_string(S) + " codes");
    }
    if (static_cast<int>(limit.bounds.size()) != runs) {
      throw InvalidArgument("variation: every limit needs one bound per run (" + std::to_string(runs) + ")");
    }
  }
}

double Variation::evaluate(const int32_t* genes, int run, double* cost, int64_t stride) const {
  const int S = this->S();
  int32_t codes[kMaxGenes];
  std::copy(genes, genes + S, codes);
  codes[S - 1] = config_.resolution_codes[genes[S - 1]];
  double excess = 0.0;
  for (std::size_t l = 0; l < limits_.size(); ++l) {
    double value = 0.0;
    limits_[l].cost->predict(codes, 1, S, &value, 1);
    cost[static_cast<int64_t>(l) * stride] = value;
    excess += std::max(0.0, value / limits_[l].bounds[run] - 1.0);
  }
  return excess;
}

void Variation::mutate(const int32_t* parent, int32_t* child, Random& rng) const {
  const VariationConfig& c = config_;
  const int S = this->S();
  std::copy(parent, parent + S, child);
  for (int b = 0; b < c.B; ++b) {  // a block slot's kernel and expand together, as OFA
    if (rng.uniform() < c.mutate_prob) {
      child[b] = rng.below(c.sizes[b]);
      child[c.B + b] = rng.below(c.sizes[c.B + b]);
    }
  }
  for (int s = 2 * c.B; s < S; ++s) {  // depth per stage, then resolution
    if (rng.uniform() < c.mutate_prob) child[s] = rng.below(c.sizes[s]);
  }
}

void Variation::cross(const int32_t* first, const int32_t* second, int32_t* child, Random& rng) const {
  for (int s = 0; s < S(); s += 64) {
    uint64_t bits = rng.next();
    for (int t = s; t < std::min(S(), s + 64); ++t, bits >>= 1) child[t] = (bits & 1) ? first[t] : second[t];
  }
}

bool Variation::relevant(const int32_t* genes, int gene) const {
  const VariationConfig& c = config_;
  if (gene >= 2 * c.B) return true;
  const int b = gene % c.B;
  return c.block_position[b] < c.depth_values[genes[2 * c.B + c.block_stage[b]]];
}

void Variation::repair_one(int32_t* genes, int run, double excess, Random& rng, double* cost, int64_t stride) const {
  const VariationConfig& c = config_;
  const int S = this->S();
  for (int round = 0; round < c.repair_rounds && excess > 0.0; ++round) {
    const double prob = std::min(0.8, std::max(c.repair_min_step, c.repair_min_step + 3.0 * excess));
    bool movable = false;
    for (int s = 0; s < S; ++s) movable = movable || (genes[s] > 0 && relevant(genes, s));
    if (!movable) break;
    for (int s = 0; s < S; ++s) {
      if (genes[s] > 0 && relevant(genes, s) && rng.uniform() < prob) {
        genes[s] = std::max(0, genes[s] - c.repair_step[s]);
      }
    }
    excess = evaluate(genes, run, cost, stride);
  }
  if (excess > 0.0) {  // stuck at the smallest genes, or out of rounds: the run's anchor fits
    std::copy(anchors_.begin() + static_cast<int64_t>(run) * S, anchors_.begin() + static_cast<int64_t>(run + 1) * S,
              genes);
    evaluate(genes, run, cost, stride);
  }
}

void Variation::check_genes(const int32_t* genes, int64_t n, const char* what) const {
  for (int64_t i = 0; i < n; ++i) {
    for (int s = 0; s < S(); ++s) {
      const int32_t v = genes[i * S() + s];
      if (v < 0 || v >= config_.sizes[s]) {
        throw InvalidArgument(std::string("variation: ") + what + " row " + std::to_string(i) + " gene " +
                              std::to_string(s) + " = " + std::to_string(v) + " out of range [0, " +
                              std::to_string(config_.sizes[s]) + ")");
      }
    }
  }
}

int64_t Variation::children(const int32_t* parents, int n_parents, uint64_t seed, int32_t* out, double* costs) const {
  if (n_parents < 1) throw InvalidArgument("variation: no parents");
  check_genes(parents, static_cast<int64_t>(runs_) * n_parents, "parents");
  const VariationConfig& c = config_;
  const int S = this->S();
  const int64_t total = static_cast<int64_t>(runs_) * c.population;
  Random rng(seed);
  std::vector<int32_t> first(S), draw(S);
  std::vector<double> draw_cost(limits_.size());
  int64_t repaired = 0;
  for (int run = 0; run < runs_; ++run) {
    const int32_t* pool = parents + static_cast<int64_t>(run) * n_parents * S;
    for (int slot = 0; slot < c.population; ++slot) {
      const int64_t index = static_cast<int64_t>(run) * c.population + slot;
      const bool mutant = slot < c.mutants;
      const int32_t* one = pool + static_cast<int64_t>(rng.below(n_parents)) * S;
      const int32_t* two = pool + static_cast<int64_t>(rng.below(n_parents)) * S;
      int32_t* child = out + index * S;
      bool found = false;
      for (int d = 0; d < c.max_draws && !found; ++d) {
        if (mutant) {
          mutate(one, draw.data(), rng);
        } else {
          cross(one, two, draw.data(), rng);
        }
        if (d == 0) first = draw;
        if (evaluate(draw.data(), run, draw_cost.data(), 1) <= 0.0) {
          std::copy(draw.begin(), draw.end(), child);
          for (std::size_t l = 0; l < limits_.size(); ++l) costs[static_cast<int64_t>(l) * total + index] = draw_cost[l];
          found = true;
        }
      }
      if (!found) {
        std::copy(first.begin(), first.end(), child);
        const double excess = evaluate(child, run, costs + index, total);
        repair_one(child, run, excess, rng, costs + index, total);
        ++repaired;
      }
    }
  }
  return repaired;
}

int64_t Variation::repair(int32_t* genes, const int32_t* runs_of, int64_t n, uint64_t seed, double* costs) const {
  check_genes(genes, n, "repair");
  for (int64_t i = 0; i < n; ++i) {
    if (runs_of[i] < 0 || runs_of[i] >= runs_) {
      throw InvalidArgument("variation: run " + std::to_string(runs_of[i]) + " out of range [0, " +
                            std::to_string(runs_) + ")");
    }
  }
  Random rng(seed);
  int64_t repaired = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int run = runs_of[i];
    int32_t* row = genes + i * S();
    const double excess = evaluate(row, run, costs + i, n);
    if (excess > 0.0) {
      repair_one(row, run, excess, rng, costs + i, n);
      ++repaired;
    }
  }
  return repaired;
}

}  // namespace hwnas
