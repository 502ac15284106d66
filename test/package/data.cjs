// Deterministic inputs for the package tests (test/package*.test.ts), shared by the test process and
// the probes it runs inside installed copies of the package, so both compute the same losses.
'use strict';

/** rows x cols logits from a fixed linear congruential sequence, in [-4, 4). */
function logits(rows, cols, seed) {
  const data = new Float64Array(rows * cols);
  let s = seed >>> 0;
  for (let i = 0; i < data.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    data[i] = (s / 2 ** 32) * 8 - 4;
  }
  return { data, rows, cols };
}

const ROWS = 33;
const COLS = 257;

/** The cases every probe computes: one float64 and one float32 distillation call. */
function cases() {
  const student = logits(ROWS, COLS, 1);
  const teacher = logits(ROWS, COLS, 2);
  const labels = Int32Array.from({ length: ROWS }, (_, r) => (r * 37) % COLS);
  const f32 = (m) => ({ data: Float32Array.from(m.data), rows: m.rows, cols: m.cols });
  return [
    { name: 'float64', student, teacher, labels },
    { name: 'float32', student: f32(student), teacher: f32(teacher), labels },
  ];
}

/** Loss, soft and hard terms and the gradient's sum for each case, with kdloss module `kd`. */
function losses(kd) {
  const loss = new kd.DistillationLoss(2, 0.5);
  const out = {};
  for (const c of cases()) {
    const r = loss.forward(c.student, c.teacher, c.labels, { grad: true });
    out[c.name] = { loss: r.loss, soft: r.soft, hard: r.hard, gradAbsSum: r.grad.reduce((a, b) => a + Math.abs(b), 0) };
  }
  return out;
}

module.exports = { cases, losses };
