// The test suites of the native test program (see test_main.cc).
#pragma once

namespace kdt {

void suite_kd();       // test_kd.cc: KernelSet::kd_rows
void suite_divergence();  // test_divergence.cc: kd_rows with reverse KL, JSD and TVD
void suite_maps();     // test_maps.cc: KernelSet::feature_rows, ::attention_rows, ::sum
void suite_vecmath();  // test_vecmath.cc: KernelSet::exp, ::log in ULP
void suite_engine();   // test_engine.cc: run_kd from concurrent callers on every thread count
void suite_sparse();   // test_sparse.cc: KernelSet::sparse_kd_rows

}  // namespace kdt
