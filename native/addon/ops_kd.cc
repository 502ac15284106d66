// The distillation entry: kd(params, async, student, teacher, hardTargets, mask, rowSoft, rowHard,
// grad, argmax). See native/addon/layout.json for the params.
#include <cmath>
#include <cstdint>
#include <string>

#include "../engine/engine.h"
#include "kd_common.h"
#include "ops.h"

namespace kdaddon {

namespace {

using S = kd_layout::KdSlot;
using B = kd_layout::KdBuffer;

// Kernel enums and the layout's values are the same numbers (the kernels know nothing of the layout).
static_assert(static_cast<int>(kd::HardKind::kCrossEntropyLogits) == kd_layout::HardKind::kCrossEntropyLogits &&
                  static_cast<int>(kd::HardKind::kCrossEntropyProbs) == kd_layout::HardKind::kCrossEntropyProbs &&
                  static_cast<int>(kd::HardKind::kMse) == kd_layout::HardKind::kMse &&
                  static_cast<int>(kd::HardKind::kNone) == kd_layout::HardKind::kNone,
              "HardKind values differ between kernels.h and layout.json");
static_assert(static_cast<int>(kd::Divergence::kKl) == kd_layout::Divergence::kKl &&
                  static_cast<int>(kd::Divergence::kReverseKl) == kd_layout::Divergence::kReverseKl &&
                  static_cast<int>(kd::Divergence::kJsd) == kd_layout::Divergence::kJsd &&
                  static_cast<int>(kd::Divergence::kTvd) == kd_layout::Divergence::kTvd,
              "Divergence values differ between kernels.h and layout.json");
static_assert(static_cast<int>(kd::TargetKind::kMatrix) == kd_layout::TargetKind::kMatrix &&
                  static_cast<int>(kd::TargetKind::kInt32) == kd_layout::TargetKind::kInt32 &&
                  static_cast<int>(kd::TargetKind::kUint32) == kd_layout::TargetKind::kUint32 &&
                  static_cast<int>(kd::TargetKind::kNone) == kd_layout::TargetKind::kNone,
              "TargetKind values differ between kernels.h and layout.json");

template <typename T>
class KdWork final : public Work {
 public:
  KdWork(const kd::KernelSet<T>& set, const kd::KdProblem<T>& p, size_t kept) : set_(&set), p_(p), kept_(kept) {}
  bool Run(const kd::RunControl& rc) override { return kd::run_kd<T>(*set_, p_, rc, &sums_); }
  void WriteResults(double* params) const override {
    params[S::kSoftSum] = sums_.soft;
    params[S::kHardSum] = sums_.hard;
    params[S::kKept] = static_cast<double>(kept_);
  }

 private:
  const kd::KernelSet<T>* set_;
  kd::KdProblem<T> p_;
  size_t kept_;
  kd::KdPartial sums_;
};

template <typename T>
napi_value KdTyped(CallArgs& a, const Context& c, size_t rows, size_t cols, size_t threads) {
  napi_env env = a.env();
  kd::KdProblem<T> p;
  p.rows = rows;
  p.cols = cols;
  const size_t n = Elements(env, rows, cols, sizeof(T));
  CheckArgmaxCols<B>(a, cols);
  p.student = Floats<T>(a, B::kStudent, {"student"}, n, Role::kInput, false);
  p.teacher = Floats<T>(a, B::kTeacher, {"teacher"}, n, Role::kInput, false);

  p.temperature = Finite(env, a.param(S::kTemperature), 0, true, "temperature");
  p.divergence =
      static_cast<kd::Divergence>(Choice(env, a.param(S::kDivergence), kd_layout::Divergence::kCount, kConfig, "divergence"));
  const double beta = a.param(S::kBeta);
  if (p.divergence == kd::Divergence::kJsd) {
    if (!(beta > 0 && beta < 1)) Fail(env, kConfig, "beta: expected a number strictly between 0 and 1, got " + NumStr(beta));
    p.beta = beta;
  } else if (beta != 0) {
    Fail(env, kConfig, "beta: only the 'jsd' divergence takes a beta (0 otherwise), got " + NumStr(beta));
  }
  const KdReduction red = ReadKdCommon<S, B>(a, p, n);
  a.AllowAlias(B::kGrad, B::kStudent);

  const size_t kept = CheckAndCountRows(env, p);
  SetGradScales(p, red, kept);
  return Dispatch(a, c, KdWork<T>(SetOf<T>(*c.table), p, kept), threads);
}

}  // namespace

Name KdBufferName(size_t index) { return {index < B::kCount ? B::kNames[index] : "buffer", Name::kNoItem}; }

napi_value Kd(CallArgs& a, const Context& c) {
  napi_env env = a.env();
  a.ExpectParams(S::kLength);
  const size_t rows = Dim(env, a.param(S::kRows), {"rows"});
  const size_t cols = Dim(env, a.param(S::kCols), {"cols"});
  const size_t threads = Threads(env, a.param(S::kThreads));
  const int dtype = Choice(env, a.param(S::kDtype), kd_layout::Dtype::kCount, kInput, "dtype");
  return dtype == kd_layout::Dtype::kFloat32 ? KdTyped<float>(a, c, rows, cols, threads)
                                             : KdTyped<double>(a, c, rows, cols, threads);
}

}  // namespace kdaddon
