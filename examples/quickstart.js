// Quick start: the seed's example batch, computed with every loss. Run: node examples/quickstart.js
'use strict';
const { DistillationLoss, FeatureDistillationLoss, AttentionTransferLoss, CrossEntropyLoss, isa, getBackend } = require('kdloss');

const student = { data: new Float32Array([1.0, 2.0, 0.5, 0.5, 1.0, 2.0]), rows: 2, cols: 3 };
const teacher = { data: new Float32Array([1.2, 1.8, 0.6, 0.6, 1.1, 1.9]), rows: 2, cols: 3 };
const labels = new Int32Array([1, 2]);

const kd = new DistillationLoss(2.0, 0.5, new CrossEntropyLoss());
const r = kd.forward(student, teacher, labels, { reduction: 'none' });
console.log(`backend ${getBackend()}, kernels ${isa()}`);
console.log(`KD loss ${r.loss.toFixed(6)} (soft KL ${r.soft.toExponential(4)}, hard CE ${r.hard.toFixed(6)})`);
console.log(`per sample ${Array.from(r.perSample, (v) => v.toFixed(6)).join(' ')}`);

const feat = new FeatureDistillationLoss([0.5, 0.5], 2);
console.log(`feature loss ${feat.computeFeatureLoss([student, student], [teacher, teacher]).toFixed(6)}`);
console.log(`attention loss ${new AttentionTransferLoss(2).computeAttentionLoss(student, teacher).toExponential(6)}`);
