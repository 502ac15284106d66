// The feature and attention entries:
//   feature(params, async, rowOut, [studentFeatures, teacherFeatures, grads] per layer)
//   attention(params, async, studentAttention, teacherAttention, rowOut, grad)
// See native/addon/layout.json for the params.
#include <cmath>
#include <string>
#include <vector>

#include "../engine/engine.h"
#include "ops.h"

namespace kdaddon {

namespace {

using FS = kd_layout::FeatureSlot;
using FI = kd_layout::FeatureItemSlot;
using FB = kd_layout::FeatureBuffer;
using FIB = kd_layout::FeatureItemBuffer;
using AS = kd_layout::AttentionSlot;
using AB = kd_layout::AttentionBuffer;

template <typename T>
class FeatureWork final : public Work {
 public:
  FeatureWork(const kd::KernelSet<T>& set, std::vector<kd::FeatureLayer<T>> layers, size_t rows)
      : set_(&set), layers_(std::move(layers)), rows_(rows), sums_(layers_.size()) {}
  bool Run(const kd::RunControl& rc) override {
    return kd::run_feature<T>(*set_, layers_.data(), layers_.size(), rows_, rc, sums_.data());
  }
  void WriteResults(double* params) const override {
    for (size_t l = 0; l < sums_.size(); ++l) params[FS::kLength + l * FI::kStride + FI::kSum] = sums_[l];
  }

 private:
  const kd::KernelSet<T>* set_;
  std::vector<kd::FeatureLayer<T>> layers_;
  size_t rows_;
  std::vector<double> sums_;
};

template <typename T>
napi_value FeatureTyped(CallArgs& a, const Context& c, size_t rows, size_t layers, size_t threads) {
  napi_env env = a.env();
  const int p = a.param(FS::kP) == 1 ? 1 : a.param(FS::kP) == 2 ? 2 : 0;
  if (p == 0) Fail(env, kConfig, "pNorm: expected 1 or 2, got " + NumStr(a.param(FS::kP)));
  const int reduction = Choice(env, a.param(FS::kReduction), kd_layout::Reduction::kCount, kConfig, "reduction");
  // 'mean' and 'none' report (and differentiate) the mean over rows.
  const double row_scale = reduction == kd_layout::Reduction::kSum ? 1.0 : 1.0 / static_cast<double>(rows);
  double* row_out = Floats<double>(a, FB::kRowOut, {"rowOut"}, rows, Role::kOutput, true);
  std::vector<kd::FeatureLayer<T>> ls(layers);
  for (size_t l = 0; l < layers; ++l) {
    const size_t item = FS::kLength + l * FI::kStride;
    const size_t base = FB::kCount + l * FIB::kStride;
    kd::FeatureLayer<T>& L = ls[l];
    L.cols = Dim(env, a.param(item + FI::kCols), {"cols", l});
    const double weight = a.param(item + FI::kWeight);
    if (!(std::isfinite(weight) && weight >= 0)) {
      Fail(env, kConfig, "layerWeights[" + std::to_string(l) + "]: expected a finite number >= 0, got " + NumStr(weight));
    }
    const size_t n = Elements(env, rows, L.cols, sizeof(T));
    L.student = Floats<T>(a, base + FIB::kStudentFeatures, {"studentFeatures", l}, n, Role::kInput, false);
    L.teacher = Floats<T>(a, base + FIB::kTeacherFeatures, {"teacherFeatures", l}, n, Role::kInput, false);
    L.grad = Floats<T>(a, base + FIB::kGrads, {"grads", l}, n, Role::kOutput, true);
    a.AllowAlias(base + FIB::kGrads, base + FIB::kStudentFeatures);
    L.p = p;
    L.row_out = row_out;
    L.row_weight = weight / static_cast<double>(L.cols);
    L.grad_scale = L.row_weight * row_scale;
  }
  return Dispatch(a, c, FeatureWork<T>(SetOf<T>(*c.table), std::move(ls), rows), threads);
}

template <typename T>
class AttentionWork final : public Work {
 public:
  AttentionWork(const kd::KernelSet<T>& set, const kd::AttentionProblem<T>& p) : set_(&set), p_(p) {}
  bool Run(const kd::RunControl& rc) override { return kd::run_attention<T>(*set_, p_, rc, &sum_); }
  void WriteResults(double* params) const override { params[AS::kSum] = sum_; }

 private:
  const kd::KernelSet<T>* set_;
  kd::AttentionProblem<T> p_;
  double sum_ = 0.0;
};

template <typename T>
napi_value AttentionTyped(CallArgs& a, const Context& c, size_t rows, size_t cols, size_t threads) {
  napi_env env = a.env();
  kd::AttentionProblem<T> p;
  p.rows = rows;
  p.cols = cols;
  const size_t n = Elements(env, rows, cols, sizeof(T));
  p.student = Floats<T>(a, AB::kStudentAttention, {"studentAttention"}, n, Role::kInput, false);
  p.teacher = Floats<T>(a, AB::kTeacherAttention, {"teacherAttention"}, n, Role::kInput, false);
  p.beta = Finite(env, a.param(AS::kBeta), 0, true, "beta");
  const int reduction = Choice(env, a.param(AS::kReduction), kd_layout::Reduction::kCount, kConfig, "reduction");
  p.row_out = Floats<double>(a, AB::kRowOut, {"rowOut"}, rows, Role::kOutput, true);
  p.grad = Floats<T>(a, AB::kGrad, {"grad"}, n, Role::kOutput, true);
  a.AllowAlias(AB::kGrad, AB::kStudentAttention);
  // 'sum' sums row means; 'mean' and 'none' take the mean over all elements.
  p.grad_scale = reduction == kd_layout::Reduction::kSum ? 1.0 / static_cast<double>(cols) : 1.0 / static_cast<double>(n);
  return Dispatch(a, c, AttentionWork<T>(SetOf<T>(*c.table), p), threads);
}

}  // namespace

Name FeatureBufferName(size_t index) {
  if (index < FB::kCount) return {FB::kNames[index], Name::kNoItem};
  const size_t i = index - FB::kCount;
  return {FIB::kNames[i % FIB::kStride], i / FIB::kStride};
}

Name AttentionBufferName(size_t index) { return {index < AB::kCount ? AB::kNames[index] : "buffer", Name::kNoItem}; }

napi_value Feature(CallArgs& a, const Context& c) {
  napi_env env = a.env();
  if (a.params_length() < FS::kLength) a.ExpectParams(FS::kLength);
  const size_t rows = Dim(env, a.param(FS::kRows), {"rows"});
  const size_t layers = Dim(env, a.param(FS::kLayers), {"layers"});
  if (layers > (a.params_length() - FS::kLength) / FI::kStride) a.ExpectParams(FS::kLength + layers * FI::kStride);
  a.ExpectParams(FS::kLength + layers * FI::kStride);
  const size_t threads = Threads(env, a.param(FS::kThreads));
  const int dtype = Choice(env, a.param(FS::kDtype), kd_layout::Dtype::kCount, kInput, "dtype");
  return dtype == kd_layout::Dtype::kFloat32 ? FeatureTyped<float>(a, c, rows, layers, threads)
                                             : FeatureTyped<double>(a, c, rows, layers, threads);
}

napi_value Attention(CallArgs& a, const Context& c) {
  napi_env env = a.env();
  a.ExpectParams(AS::kLength);
  const size_t rows = Dim(env, a.param(AS::kRows), {"rows"});
  const size_t cols = Dim(env, a.param(AS::kCols), {"cols"});
  const size_t threads = Threads(env, a.param(AS::kThreads));
  const int dtype = Choice(env, a.param(AS::kDtype), kd_layout::Dtype::kCount, kInput, "dtype");
  return dtype == kd_layout::Dtype::kFloat32 ? AttentionTyped<float>(a, c, rows, cols, threads)
                                             : AttentionTyped<double>(a, c, rows, cols, threads);
}

}  // namespace kdaddon
