// Sparse-teacher distillation kernel (KernelSet::sparse_kd_rows) against a long double reference
// written from the definitions (docs/sparse-teachers.md), against the dense kernel where the entries
// cover the whole row, and, for SIMD variants, against the scalar kernels of the same dtype.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>

#include "kernels/sparse.h"
#include "test_common.h"
#include "tests.h"

namespace kdt {

namespace {

using kd::HardKind;
using kd::SparseKind;
using kd::TargetKind;

struct Mode {
  SparseKind kind;
  bool tail;
  const char* name;
};
const Mode kModes[] = {{SparseKind::kLogits, false, "logits"},
                       {SparseKind::kLogprobs, false, "logprobs"},
                       {SparseKind::kLogprobs, true, "logprobs+tail"}};

// One sparse problem's inputs (in T) and its long double reference (soft term only).
template <typename T>
struct SparseData {
  size_t rows = 0, cols = 0, k = 0;
  double temperature = 1.0;
  Mode mode{};
  Buffer<T> s, values, grad;
  Buffer<int32_t> idx;
  Buffer<double> row_soft;
  std::vector<LD> ref_soft, ref_soft_mag, ref_grad, ref_grad_mag;
};

// The reference of one row, from the definitions: log q = log_softmax(s / T) over the row; p over the
// entries (renormalised, or e^v with the tail bucket 1 - sum p against the student's mass outside).
template <typename T>
void reference_row(SparseData<T>& D, size_t r, LD gs) {
  const size_t C = D.cols, K = D.k;
  const T* s = D.s.data() + r * C;
  const LD tt = D.temperature;
  LD ms = -INFINITY;
  for (size_t j = 0; j < C; ++j) ms = std::max<LD>(ms, s[j]);
  LD zs = 0;
  for (size_t j = 0; j < C; ++j) zs += std::exp((s[j] - ms) / tt);
  const LD lzs = std::log(zs);
  std::vector<LD> logq(C), q(C);
  for (size_t j = 0; j < C; ++j) {
    logq[j] = (s[j] - ms) / tt - lzs;
    q[j] = std::exp(logq[j]);
  }
  std::vector<LD> p(C, 0);
  std::vector<bool> in(C, false);
  LD vmax = -INFINITY;
  for (size_t e = 0; e < K; ++e) {
    const int32_t i = D.idx[r * K + e];
    if (i >= 0) vmax = std::max<LD>(vmax, D.values[r * K + e]);
  }
  const LD scale = D.mode.kind == SparseKind::kLogits ? 1 / tt : 1;
  LD norm = 0;
  size_t count = 0;
  for (size_t e = 0; e < K; ++e) {
    const int32_t i = D.idx[r * K + e];
    if (i < 0) continue;
    ++count;
    in[i] = true;
    p[i] = D.mode.tail ? std::exp(static_cast<LD>(D.values[r * K + e]))
                       : std::exp((D.values[r * K + e] - vmax) * scale);
    norm += p[i];
  }
  if (!D.mode.tail) {
    for (size_t j = 0; j < C; ++j) p[j] /= norm;
  }
  LD kl = 0, mag = 0, p_out = 0, q_out = 0;
  for (size_t j = 0; j < C; ++j) {
    if (!in[j] || p[j] == 0) continue;
    kl += p[j] * (std::log(p[j]) - logq[j]);
    mag += p[j] * (std::fabs(std::log(p[j])) + std::fabs(logq[j]) + std::fabs((s[j] - ms) / tt) + 1);
  }
  if (D.mode.tail && count < C) {
    p_out = std::max<LD>(0, 1 - norm);
    for (size_t j = 0; j < C; ++j) q_out += in[j] ? 0 : q[j];
    if (p_out > 0) {
      kl += p_out * (std::log(p_out) - std::log(q_out));
      // q_out is found as 1 - the entries' mass: its rounding is relative to 1, not to q_out.
      mag += p_out * (std::fabs(std::log(p_out)) + std::fabs(std::log(q_out)) + 1 / q_out);
    }
  }
  D.ref_soft[r] = kl;
  D.ref_soft_mag[r] = mag + std::fabs(lzs);
  for (size_t j = 0; j < C; ++j) {
    LD g = q[j] - (in[j] ? p[j] : 0);
    LD gm = q[j] + p[j];
    if (D.mode.tail && !in[j] && p_out > 0) {
      g = q[j] * (1 - p_out / q_out);
      gm = q[j] * (1 + p_out / q_out) * (1 + 1 / q_out);
    }
    D.ref_grad[r * C + j] = gs / tt * g;
    D.ref_grad_mag[r * C + j] = std::fabs(gs / tt) * (gm + 1e-30L);
  }
}

// Random rows: student logits of spread sigma, teacher logits drawn over the whole row, whose top-k
// (or log-probabilities at T, for logprobs) fill the slots in a shuffled order, some slots -1.
template <typename T>
void make_data(SparseData<T>& D, Rng& rng, double sigma, bool pad) {
  const size_t R = D.rows, C = D.cols, K = D.k;
  D.s.reset(R * C, rng.below(4));
  D.values.reset(R * K, rng.below(3));
  D.idx.reset(R * K, rng.below(3));
  D.row_soft.reset(R, 0);
  std::vector<double> t(C);
  std::vector<size_t> order(C);
  for (size_t r = 0; r < R; ++r) {
    for (size_t j = 0; j < C; ++j) D.s[r * C + j] = static_cast<T>(sigma * rng.normal());
    for (size_t j = 0; j < C; ++j) t[j] = sigma * rng.normal();
    double mt = *std::max_element(t.begin(), t.end()), z = 0;
    for (size_t j = 0; j < C; ++j) z += std::exp((t[j] - mt) / D.temperature);
    std::iota(order.begin(), order.end(), size_t{0});
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return t[a] > t[b]; });
    std::vector<size_t> slots(K);
    std::iota(slots.begin(), slots.end(), size_t{0});
    for (size_t e = K; e > 1; --e) std::swap(slots[e - 1], slots[rng.below(e)]);
    const size_t used = pad && K > 1 ? 1 + rng.below(K) : K;
    for (size_t e = 0; e < K; ++e) {
      const size_t slot = slots[e];
      if (e >= used) {
        D.idx[r * K + slot] = -1;
        D.values[r * K + slot] = static_cast<T>(rng.normal());  // read by nothing
        continue;
      }
      const size_t i = order[e];
      D.idx[r * K + slot] = static_cast<int32_t>(i);
      const double v = D.mode.kind == SparseKind::kLogits ? t[i] : (t[i] - mt) / D.temperature - std::log(z);
      D.values[r * K + slot] = static_cast<T>(v);
    }
  }
  D.ref_soft.assign(R, 0);
  D.ref_soft_mag.assign(R, 0);
  D.ref_grad.assign(R * C, 0);
  D.ref_grad_mag.assign(R * C, 0);
}

template <typename T>
kd::SparseKdProblem<T> problem(SparseData<T>& D, bool grad, double gs) {
  kd::SparseKdProblem<T> p;
  p.kd.student = D.s.data();
  p.kd.rows = D.rows;
  p.kd.cols = D.cols;
  p.kd.temperature = D.temperature;
  p.kd.row_soft = D.row_soft.data();
  if (grad) {
    D.grad.reset(D.rows * D.cols, 1);
    p.kd.grad = D.grad.data();
    p.kd.grad_soft_scale = gs;
  }
  p.indices = D.idx.data();
  p.values = D.values.data();
  p.k = D.k;
  p.kind = D.mode.kind;
  p.tail = D.mode.tail;
  return p;
}

template <typename T>
void random_cases(const Variant& v) {
  Rng rng(g_opt.seed ^ 0x5ba75e);
  const size_t widths[] = {1, 2, 7, 33, 100, 257, 1000, 4099};
  const double temps[] = {0.5, 1.0, 4.0};
  const double sigmas[] = {0.5, 2.0, 6.0};
  uint64_t n = 0;
  for (size_t C : widths) {
    for (const Mode& mode : kModes) {
      for (double tt : temps) {
        for (double sigma : sigmas) {
          if (!sampled(n++)) continue;
          SparseData<T> D;
          D.cols = C;
          D.rows = 1 + rng.below(5);
          D.k = std::min<size_t>(C, 1 + rng.below(80));
          D.temperature = tt;
          D.mode = mode;
          make_data(D, rng, sigma, rng.chance(0.5));
          const double gs = 0.75;
          for (size_t r = 0; r < D.rows; ++r) reference_row(D, r, gs);
          const kd::SparseKdProblem<T> p = problem(D, true, gs);
          // With scratch (the entries' logits kept aside) or without: the same results.
          std::vector<T> scratch(D.k);
          const kd::KdPartial part =
              set_of<T>(*v.table).sparse_kd_rows(p, 0, D.rows, rng.chance(0.5) ? scratch.data() : nullptr);
          Case c(fmt("sparse %s %s %s C=%zu k=%zu T=%g sigma=%g", v.name.c_str(), dtype_name<T>(), mode.name, C,
                     D.k, tt, sigma));
          const std::string key = v.name + "/" + dtype_name<T>() + "/sparse";
          LD total = 0, total_mag = 0;
          for (size_t r = 0; r < D.rows; ++r) {
            c.near(key + "/soft", "row_soft", r, D.ref_soft[r], D.ref_soft_mag[r], D.row_soft[r], rel_tol<T>());
            total += D.ref_soft[r];
            total_mag += D.ref_soft_mag[r];
          }
          c.near(key + "/soft", "soft", 0, total, total_mag, part.soft, rel_tol<T>());
          c.exact("kept", 0, static_cast<double>(D.rows), part.kept);
          for (size_t i = 0; i < D.rows * C; ++i) {
            if (!c.near(key + "/grad", "grad", i, D.ref_grad[i], D.ref_grad_mag[i], D.grad[i], 4 * rel_tol<T>(),
                        1e-30L)) {
              break;
            }
          }
          c.expect(D.grad.check_guard() && D.s.check_guard() && D.row_soft.check_guard(), "guards intact");
        }
      }
    }
  }
}

// Entries covering the whole row (logits; logprobs without tail) against the dense kernel of the same
// variant, with every hard term, targets, masks and ignore_index: the same loss and gradient.
template <typename T>
void dense_equivalence(const Variant& v) {
  Rng rng(g_opt.seed ^ 0xde45e);
  const size_t widths[] = {3, 16, 65, 500, 3000};
  const HardKind hards[] = {HardKind::kNone, HardKind::kCrossEntropyLogits, HardKind::kCrossEntropyProbs, HardKind::kMse};
  uint64_t n = 0;
  for (size_t C : widths) {
    for (HardKind hard : hards) {
      for (int m = 0; m < 2; ++m) {
        for (double tt : {1.0, 2.5}) {
          if (!sampled(n++)) continue;
          SparseData<T> D;
          D.cols = C;
          D.rows = 2 + rng.below(6);
          D.k = C;
          D.temperature = tt;
          D.mode = kModes[m];
          make_data(D, rng, 2.0, false);
          if (hard == HardKind::kCrossEntropyProbs) {
            for (size_t i = 0; i < D.rows * C; ++i) D.s[i] = static_cast<T>(rng.uniform(0.001, 0.999));
          }
          // The dense teacher: each entry's value at its token (logprobs at T are logits at T = 1 scaled).
          Buffer<T> teacher(D.rows * C, 0);
          for (size_t r = 0; r < D.rows; ++r) {
            for (size_t e = 0; e < C; ++e) {
              const double val = D.values[r * C + e];
              teacher[r * C + D.idx[r * C + e]] = static_cast<T>(m == 0 ? val : val * tt);
            }
          }
          Buffer<int32_t> cls(D.rows, 0);
          Buffer<uint8_t> mask(D.rows, 0);
          for (size_t r = 0; r < D.rows; ++r) {
            cls[r] = rng.chance(0.2) ? -100 : static_cast<int32_t>(rng.below(C));
            mask[r] = rng.chance(0.2) ? 0 : 1;
          }
          kd::SparseKdProblem<T> sp = problem(D, true, 0.6);
          sp.kd.hard = hard;
          sp.kd.target_kind = hard == HardKind::kNone ? TargetKind::kNone : TargetKind::kInt32;
          sp.kd.target_index = cls.data();
          sp.kd.ignore_index = -100;
          sp.kd.mask = mask.data();
          sp.kd.label_smoothing = hard == HardKind::kCrossEntropyLogits ? 0.1 : 0.0;
          sp.kd.grad_hard_scale = hard == HardKind::kNone ? 0.0 : 0.4;
          Buffer<double> row_hard(D.rows, 0), dense_soft(D.rows, 0), dense_hard(D.rows, 0);
          Buffer<int32_t> arg(2 * D.rows, 0), dense_arg(2 * D.rows, 0);
          sp.kd.row_hard = row_hard.data();
          sp.kd.argmax = arg.data();
          kd::KdProblem<T> dp = sp.kd;
          dp.teacher = teacher.data();
          Buffer<T> dgrad(D.rows * C, 1);
          dp.grad = dgrad.data();
          dp.row_soft = dense_soft.data();
          dp.row_hard = dense_hard.data();
          dp.argmax = dense_arg.data();
          const kd::KernelSet<T>& set = set_of<T>(*v.table);
          const kd::KdPartial a = set.sparse_kd_rows(sp, 0, D.rows, nullptr);
          const kd::KdPartial b = set.kd_rows(dp, 0, D.rows, nullptr);
          Case c(fmt("sparse=dense %s %s %s C=%zu hard=%d T=%g", v.name.c_str(), dtype_name<T>(), D.mode.name, C,
                     static_cast<int>(hard), tt));
          const std::string key = v.name + "/" + dtype_name<T>() + "/sparse=dense";
          const double tol = 4 * rel_tol<T>();
          c.near(key + "/soft", "soft", 0, b.soft, std::fabs(b.soft) + b.kept, a.soft, tol);
          c.near(key + "/hard", "hard", 0, b.hard, 0, a.hard, tol);
          c.exact("kept", 0, b.kept, a.kept);
          for (size_t r = 0; r < D.rows; ++r) {
            c.near(key + "/soft", "row_soft", r, dense_soft[r], 1, D.row_soft[r], tol);
            // The same hard term; the dense kernel's sums of narrow rows and its logs may round differently.
            c.near(key + "/hard", "row_hard", r, dense_hard[r], 1, row_hard[r], tol);
            c.exact("argmax", r, dense_arg[r], arg[r]);
            c.exact("teacher argmax", r, dense_arg[D.rows + r], arg[D.rows + r]);
          }
          for (size_t i = 0; i < D.rows * C; ++i) {
            if (!c.near(key + "/grad", "grad", i, dgrad[i], 1.0 / C, D.grad[i], tol)) break;
          }
        }
      }
    }
  }
}

// Each SIMD variant against the scalar kernel on the same inputs, gradient included.
template <typename T>
void against_scalar(const Variant& v) {
  Rng rng(g_opt.seed ^ 0x5ca1a);
  for (size_t n = 0; n < scaled(60, 6); ++n) {
    SparseData<T> D;
    D.cols = 1 + rng.below(3000);
    D.rows = 1 + rng.below(6);
    D.k = std::min<size_t>(D.cols, 1 + rng.below(300));
    D.temperature = rng.chance(0.5) ? 1.0 : 3.0;
    D.mode = kModes[rng.below(3)];
    make_data(D, rng, 3.0, rng.chance(0.5));
    kd::SparseKdProblem<T> p = problem(D, true, 1.0);
    const kd::KdPartial a = set_of<T>(scalar_table()).sparse_kd_rows(p, 0, D.rows, nullptr);
    std::vector<T> g0(D.grad.data(), D.grad.data() + D.rows * D.cols);
    std::vector<double> s0(D.row_soft.data(), D.row_soft.data() + D.rows);
    const kd::KdPartial b = set_of<T>(*v.table).sparse_kd_rows(p, 0, D.rows, nullptr);
    // In place: the gradient written over the student, the entries' logits kept in scratch.
    std::vector<T> scratch(D.k);
    // (at the student's alignment: the sweeps' chunks, and so their rounding, follow it)
    Buffer<T> inplace(D.rows * D.cols, (reinterpret_cast<uintptr_t>(D.s.data()) % 64) / sizeof(T));
    std::copy(D.s.data(), D.s.data() + D.rows * D.cols, inplace.data());
    kd::SparseKdProblem<T> q = p;
    q.kd.student = inplace.data();
    q.kd.grad = inplace.data();
    q.kd.row_soft = nullptr;
    set_of<T>(*v.table).sparse_kd_rows(q, 0, D.rows, scratch.data());
    Case c(fmt("sparse %s %s vs scalar %s C=%zu k=%zu", v.name.c_str(), dtype_name<T>(), D.mode.name, D.cols, D.k));
    const std::string key = v.name + "/" + dtype_name<T>() + "/sparse-vs-scalar";
    c.near(key, "soft", 0, a.soft, D.rows * 2.0, b.soft, 2 * rel_tol<T>());
    for (size_t r = 0; r < D.rows; ++r) c.near(key, "row_soft", r, s0[r], 2.0, D.row_soft[r], 2 * rel_tol<T>());
    for (size_t i = 0; i < g0.size(); ++i) {
      if (!c.near(key + "/grad", "grad", i, g0[i], 1.0 / D.cols, D.grad[i], 4 * rel_tol<T>())) break;
    }
    for (size_t i = 0; i < g0.size(); ++i) {
      if (!c.exact("in-place grad", i, D.grad[i], inplace[i])) break;
    }
  }
}

// Exact cases: infinities and NaN as exact arithmetic has them, and slots the kernel must not read.
template <typename T>
void special_cases(const Variant& v) {
  const T inf = static_cast<T>(INFINITY), nan = static_cast<T>(NAN);
  const size_t C = 40, K = 4;
  struct Special {
    const char* what;
    Mode mode;
    T s3;         // the student's logit at token 3 (an entry)
    T s20;        // at token 20 (outside the entries)
    T v0;         // the value of the entry at token 3
    int32_t bad;  // the index in the last slot (an out-of-range index the kernel must skip)
    double soft;  // expected row soft term: NaN, +inf, or 1 for "finite"
  };
  const Mode lg = kModes[0], lp = kModes[2];
  const Special cases[] = {
      {"-inf student logit at an entry with mass", lg, -inf, 0, 1, -1, INFINITY},
      {"-inf student logit outside the entries", lg, 0, -inf, 1, -1, 1},
      {"-inf logprob: the entry has no mass", lp, -inf, 0, -inf, -1, 1},
      {"NaN student logit", lg, 0, nan, 1, -1, NAN},
      {"NaN teacher value", lg, 0, 0, nan, -1, NAN},
      {"NaN teacher logprob with tail", lp, 0, 0, nan, -1, NAN},
      {"index past the row is skipped", lg, 0, 0, 1, static_cast<int32_t>(C), 1},
      {"index below -1 is skipped", lp, 0, 0, -1, -7, 1},
      {"INT32_MIN index is skipped", lg, 0, 0, 1, INT32_MIN, 1},
  };
  for (const Special& sc : cases) {
    Buffer<T> s(C, 0), vals(K, 0), grad(C, 0);
    Buffer<int32_t> idx(K, 0);
    Buffer<double> row(1, 0);
    for (size_t j = 0; j < C; ++j) s[j] = static_cast<T>(0.1 * static_cast<double>(j % 7));
    s[3] = sc.s3;
    s[20] = sc.s20;
    const int32_t tokens[K] = {3, 5, 9, sc.bad};
    for (size_t e = 0; e < K; ++e) idx[e] = tokens[e];
    vals[0] = sc.v0;
    vals[1] = static_cast<T>(sc.mode.kind == SparseKind::kLogits ? 0.5 : -2.0);
    vals[2] = static_cast<T>(sc.mode.kind == SparseKind::kLogits ? -1.0 : -3.0);
    vals[3] = static_cast<T>(-1.5);
    kd::SparseKdProblem<T> p;
    p.kd.student = s.data();
    p.kd.rows = 1;
    p.kd.cols = C;
    p.kd.row_soft = row.data();
    p.kd.grad = grad.data();
    p.kd.grad_soft_scale = 1.0;
    p.indices = idx.data();
    p.values = vals.data();
    p.k = K;
    p.kind = sc.mode.kind;
    p.tail = sc.mode.tail;
    set_of<T>(*v.table).sparse_kd_rows(p, 0, 1, nullptr);
    Case c(fmt("sparse special %s %s: %s", v.name.c_str(), dtype_name<T>(), sc.what));
    if (std::isnan(sc.soft)) {
      c.expect(std::isnan(row[0]), fmt("soft NaN, got %g", row[0]));
    } else if (std::isinf(sc.soft)) {
      c.expect(row[0] == sc.soft, fmt("soft %g, got %g", sc.soft, row[0]));
    } else {
      c.expect(std::isfinite(row[0]) && row[0] >= 0, fmt("soft finite and >= 0, got %g", row[0]));
      bool finite = true;
      for (size_t j = 0; j < C; ++j) finite = finite && std::isfinite(static_cast<double>(grad[j]));
      c.expect(finite, "finite gradient");
    }
    c.expect(grad.check_guard() && s.check_guard(), "guards intact");
  }
}

template <typename T>
void run_variant(const Variant& v) {
  random_cases<T>(v);
  dense_equivalence<T>(v);
  special_cases<T>(v);
  if (v.table != &scalar_table()) against_scalar<T>(v);
}

}  // namespace

void suite_sparse() {
  for (const Variant& v : all_variants()) {
    run_variant<float>(v);
    run_variant<double>(v);
  }
}

}  // namespace kdt
