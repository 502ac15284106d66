#!/usr/bin/env node
// Thread scaling of every divergence through the library: DistillationLoss.forward (the synchronous
// call, so the figures are the kernels' and the engine's, not the async queue's) on one and on two
// threads, forward and forward + gradient (into a preallocated gradOut), float32, class indices,
// T = 4, alpha = 0.7. Rounds interleave the thread counts so both see the same state of a shared
// machine; the medians and their ratio are printed.
//
//   node tools/bench-divergence-threads.js [--shape 512x32000] [--rounds 15]
'use strict';
const { DistillationLoss, CrossEntropyLoss, isa } = require('..');

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : def;
};
const [rows, cols] = opt('--shape', '512x32000').split('x').map(Number);
const rounds = Number(opt('--rounds', '15'));
if (!(rows > 0 && cols > 0 && rounds > 0)) {
  console.error('usage: bench-divergence-threads.js [--shape ROWSxCOLS] [--rounds N]');
  process.exit(2);
}

// Normal(0, 3) logits from a fixed seed (Box-Muller over a 32-bit LCG).
let seed = 12345;
const uniform = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) + 0.5) / 4294967296;
const normal = () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
const logits = () => Float32Array.from({ length: rows * cols }, () => 3 * normal());
const student = { rows, cols, data: logits() };
const teacher = { rows, cols, data: logits() };
const labels = Int32Array.from({ length: rows }, (_, r) => (r * 7919) % cols);
const gradOut = new Float32Array(rows * cols);

const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const time = (f) => {
  const t = process.hrtime.bigint();
  f();
  return Number(process.hrtime.bigint() - t) / 1e6;
};

console.log(`divergence thread scaling: ${rows}x${cols} float32, class indices, variant ${isa()}, ${rounds} rounds, medians`);
console.log('divergence   grad  1 thread ms  2 threads ms  2/1 speedup  elem/s (2 threads)');
for (const [divergence, beta] of [['kl'], ['reverse-kl'], ['jsd', 0.5], ['tvd']]) {
  const kd = new DistillationLoss(4, 0.7, new CrossEntropyLoss(), { divergence, beta });
  for (const grad of [false, true]) {
    const call = (threads) => kd.forward(student, teacher, labels, grad ? { gradOut, threads } : { threads });
    call(1);
    call(2);
    const t1 = [];
    const t2 = [];
    for (let i = 0; i < rounds; i++) {
      t1.push(time(() => call(1)));
      t2.push(time(() => call(2)));
    }
    const m1 = median(t1);
    const m2 = median(t2);
    const rate = (rows * cols) / (m2 / 1e3);
    console.log(
      `${divergence.padEnd(12)} ${String(grad).padEnd(5)} ${m1.toFixed(2).padStart(11)} ${m2.toFixed(2).padStart(13)} ` +
        `${(m1 / m2).toFixed(2).padStart(11)}x ${(rate / 1e9).toFixed(2).padStart(10)} G`,
    );
  }
}
