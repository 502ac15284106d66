// The distillation entry with a sparse top-k teacher: sparseKd(params, async, student, indices, values,
// hardTargets, grad, mask, argmax, rowSoft, rowHard). See native/addon/layout.json for the params and
// native/kernels/sparse.h for the problem.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "../engine/engine.h"
#include "../kernels/sparse.h"
#include "kd_common.h"
#include "ops.h"

namespace kdaddon {

namespace {

using S = kd_layout::SparseKdSlot;
using B = kd_layout::SparseKdBuffer;

static_assert(static_cast<int>(kd::SparseKind::kLogits) == kd_layout::SparseKind::kLogits &&
                  static_cast<int>(kd::SparseKind::kLogprobs) == kd_layout::SparseKind::kLogprobs,
              "SparseKind values differ between sparse.h and layout.json");

// How far above 0 a log-probability, and above 1 a row's probability sum, may be (rounding of
// log-probabilities computed in float32); lib/sparse.ts and the js backend use the same bound.
constexpr double kLogprobSlack = 1e-5;

template <typename T>
class SparseWork final : public Work {
 public:
  SparseWork(const kd::KernelSet<T>& set, const kd::SparseKdProblem<T>& p, size_t kept)
      : set_(&set), p_(p), kept_(kept) {}
  bool Run(const kd::RunControl& rc) override { return kd::run_sparse_kd<T>(*set_, p_, rc, &sums_); }
  void WriteResults(double* params) const override {
    params[S::kSoftSum] = sums_.soft;
    params[S::kHardSum] = sums_.hard;
    params[S::kKept] = static_cast<double>(kept_);
  }

 private:
  const kd::KernelSet<T>* set_;
  kd::SparseKdProblem<T> p_;
  size_t kept_;
  kd::KdPartial sums_;
};

std::string RowName(size_t r) { return "teacher row " + std::to_string(r); }

// The one pass over the teacher's entries before the kernels run: every index is -1 or in [0, cols)
// and appears once in its row (the kernels index the student and the gradient by it), and log
// probabilities are at most 0 with row sums at most 1 (beyond rounding). Every row, kept or not.
template <typename T>
void CheckEntries(napi_env env, const kd::SparseKdProblem<T>& p) {
  const size_t rows = p.kd.rows, cols = p.kd.cols, k = p.k;
  std::vector<uint64_t> seen(k > 1 ? (cols + 63) / 64 : 0);
  for (size_t r = 0; r < rows; ++r) {
    const int32_t* idx = p.indices + r * k;
    const T* val = p.values + r * k;
    double sum = 0.0;
    for (size_t e = 0; e < k; ++e) {
      const int32_t i = idx[e];
      if (i == -1) continue;
      if (i < 0 || static_cast<size_t>(i) >= cols) {
        Fail(env, kInput, RowName(r) + ": indices[" + std::to_string(e) + "] = " + std::to_string(i) +
                              " out of range [0, " + std::to_string(cols) + ") (-1 marks an unused slot)");
      }
      if (!seen.empty()) {
        uint64_t& word = seen[static_cast<size_t>(i) / 64];
        const uint64_t bit = uint64_t{1} << (static_cast<size_t>(i) % 64);
        if (word & bit) Fail(env, kInput, RowName(r) + ": index " + std::to_string(i) + " appears more than once");
        word |= bit;
      }
      if (p.kind == kd::SparseKind::kLogprobs) {
        const double v = static_cast<double>(val[e]);
        if (v > kLogprobSlack) {
          Fail(env, kInput, RowName(r) + ": values[" + std::to_string(e) + "] = " + NumStr(v) +
                                " is not a log-probability (expected <= 0)");
        }
        sum += std::exp(v);
      }
    }
    if (sum > 1.0 + kLogprobSlack) {
      Fail(env, kInput, RowName(r) + ": its probabilities sum to " + NumStr(sum) + ", more than 1");
    }
    for (size_t e = 0; e < k && !seen.empty(); ++e) {
      if (idx[e] >= 0) seen[static_cast<size_t>(idx[e]) / 64] = 0;
    }
  }
}

template <typename T>
napi_value SparseTyped(CallArgs& a, const Context& c, size_t rows, size_t cols, size_t k, size_t threads) {
  napi_env env = a.env();
  kd::SparseKdProblem<T> sp;
  kd::KdProblem<T>& p = sp.kd;
  p.rows = rows;
  p.cols = cols;
  sp.k = k;
  if (k > cols) Fail(env, kShape, "teacher: k = " + std::to_string(k) + " entries per row, more than the " + std::to_string(cols) + " columns");
  const size_t n = Elements(env, rows, cols, sizeof(T));
  const size_t nk = Elements(env, rows, k, sizeof(T));
  CheckArgmaxCols<B>(a, cols);
  p.student = Floats<T>(a, B::kStudent, {"student"}, n, Role::kInput, false);
  sp.indices = static_cast<const int32_t*>(
      a.Typed(B::kIndices, {"indices"}, napi_int32_array, "Int32Array", nk, Role::kInput, false));
  sp.values = Floats<T>(a, B::kValues, {"values"}, nk, Role::kInput, false);

  p.temperature = Finite(env, a.param(S::kTemperature), 0, true, "temperature");
  const int divergence = Choice(env, a.param(S::kDivergence), kd_layout::Divergence::kCount, kConfig, "divergence");
  if (divergence != kd_layout::Divergence::kKl) {
    Fail(env, kConfig, "divergence: a sparse teacher takes only 'kl' (reverse KL and JSD need the teacher's mass "
                       "everywhere the student has some)");
  }
  sp.kind = static_cast<kd::SparseKind>(Choice(env, a.param(S::kSparseKind), kd_layout::SparseKind::kCount, kConfig, "sparseKind"));
  const int tail = Choice(env, a.param(S::kTail), 2, kConfig, "tail");
  if (tail == 1 && sp.kind != kd::SparseKind::kLogprobs) Fail(env, kConfig, "tail: only log-probabilities have a tail bucket");
  sp.tail = tail == 1;
  const KdReduction red = ReadKdCommon<S, B>(a, p, n);
  // In place over the student where the kernel can keep the entries' logits aside (see run_sparse_kd).
  if (kd::sparse_grad_scratch_bytes(k, sizeof(T)) > 0) a.AllowAlias(B::kGrad, B::kStudent);

  CheckEntries(env, sp);
  const size_t kept = CheckAndCountRows(env, p);
  SetGradScales(p, red, kept);
  return Dispatch(a, c, SparseWork<T>(SetOf<T>(*c.table), sp, kept), threads);
}

}  // namespace

Name SparseKdBufferName(size_t index) { return {index < B::kCount ? B::kNames[index] : "buffer", Name::kNoItem}; }

napi_value SparseKd(CallArgs& a, const Context& c) {
  napi_env env = a.env();
  a.ExpectParams(S::kLength);
  const size_t rows = Dim(env, a.param(S::kRows), {"rows"});
  const size_t cols = Dim(env, a.param(S::kCols), {"cols"});
  const size_t k = Dim(env, a.param(S::kK), {"k"});
  const size_t threads = Threads(env, a.param(S::kThreads));
  const int dtype = Choice(env, a.param(S::kDtype), kd_layout::Dtype::kCount, kInput, "dtype");
  return dtype == kd_layout::Dtype::kFloat32 ? SparseTyped<float>(a, c, rows, cols, k, threads)
                                             : SparseTyped<double>(a, c, rows, cols, k, threads);
}

}  // namespace kdaddon
