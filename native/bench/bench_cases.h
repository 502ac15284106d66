// The cases kd_native_bench times (bench_main.cc): each loss's problem built over inputs allocated and
// filled once, with what it reads and how many exps it needs for the rooflines.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "tests/test_common.h"  // Rng and Buffer, shared with the native tests

namespace kdbench {

// The gradient cases' scratch: as the engine gives it, always, or never (--kd-scratch).
enum class ScratchMode { kAuto, kSaved, kRecompute };

// One benchmark case for one dtype: how to run it on a table, what it reads and how many exps it needs.
struct Case {
  std::string id;
  size_t elements = 0;           // student elements
  size_t bytes = 0;              // bytes read (plus the gradient written)
  double exps_per_element = 0;   // 3 for KD (student and teacher at T, student at T = 1), 0 for the maps
  bool is_double = false;
  // Runs the case once on the table and returns its result (a sum, compared across variants).
  std::function<double(const kd::KernelTable&)> run;
};

// The inputs of every case, allocated once and kept for the whole run.
struct Inputs {
  std::vector<std::shared_ptr<void>> keep;  // the buffers the cases point into
  ScratchMode scratch = ScratchMode::kAuto;  // the gradient cases' scratch (--kd-scratch)

  // A zero-filled buffer of n elements (64-byte aligned), kept for the run.
  template <typename E>
  E* zeros(size_t n) {
    auto b = std::make_shared<kdt::Buffer<E>>(n, 0);
    b->fill(0);
    keep.push_back(b);
    return b->data();
  }
  // n Normal(0, sigma) values from a fixed seed.
  template <typename E>
  E* normal(size_t n, double sigma, uint64_t seed) {
    E* p = zeros<E>(n);
    kdt::Rng g(seed);
    for (size_t i = 0; i < n; ++i) p[i] = static_cast<E>(sigma * g.normal());
    return p;
  }
};

// Distillation with class indices or one-hot targets, T = 4, the logits cross-entropy, any divergence.
template <typename T>
Case kd_case(Inputs& in, size_t rows, size_t cols, bool onehot, bool grad, kd::Divergence div = kd::Divergence::kKl);

// Distillation with a sparse teacher of k log-probabilities per row.
template <typename T>
Case sparse_case(Inputs& in, size_t rows, size_t cols, size_t k, bool grad);

Case feature_case(Inputs& in, size_t layers, size_t rows, size_t cols);
Case attention_case(Inputs& in, size_t rows, size_t cols);

}  // namespace kdbench
