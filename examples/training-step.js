// A training step that allocates nothing per step: the gradient of the distillation loss w.r.t. the
// student logits is written into a caller-owned buffer by one fused native pass per row.
// Run: node examples/training-step.js
'use strict';
const { DistillationLoss } = require('kdloss');

const rows = 256;
const cols = 100;
const teacherLogits = { data: new Float32Array(rows * cols), rows, cols };
const studentLogits = { data: new Float32Array(rows * cols), rows, cols };
const labels = new Int32Array(rows);
for (let r = 0; r < rows; r++) {
  labels[r] = r % cols;
  for (let c = 0; c < cols; c++) teacherLogits.data[r * cols + c] = c === labels[r] ? 6 : Math.sin(r * 7 + c);
}

const kd = new DistillationLoss(4, 0.7);
const gradOut = new Float32Array(rows * cols); // reused every step
const lr = 200; // the mean over 256 rows scales each row's gradient by 1/256
for (let step = 0; step <= 50; step++) {
  const { loss } = kd.forward(studentLogits, teacherLogits, labels, { gradOut });
  // Plain SGD directly on the logits, standing in for the backward pass of a student network.
  for (let i = 0; i < gradOut.length; i++) studentLogits.data[i] -= lr * gradOut[i];
  if (step % 10 === 0) console.log(`step ${step}: loss ${loss.toFixed(5)}`);
}
