// Gradients: central finite differences in float64 for every loss and option combination, and the
// closed form of the distillation gradient.
import { expect } from 'chai';
import {
  AttentionTransferLoss,
  CrossEntropyLoss,
  DistillationLoss,
  type DistillationForwardOptions,
  FeatureDistillationLoss,
  type Loss,
  type Matrix,
  MseLoss,
  type Reduction,
} from 'kdloss';
import { forEachBackend } from './helpers/backends';
import { oneHot, Rng } from './helpers/random';

/** Central differences of f at x (modified in place and restored), step h. */
function numericGrad(x: Float64Array, f: () => number, h = 1e-6): Float64Array {
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    x[i] = v + h;
    const up = f();
    x[i] = v - h;
    const down = f();
    x[i] = v;
    g[i] = (up - down) / (2 * h);
  }
  return g;
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number): void {
  expect(actual.length).to.equal(expected.length);
  let scale = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]));
  for (let i = 0; i < expected.length; i++) {
    expect(Math.abs(actual[i] - expected[i]), `element ${i}: ${actual[i]} vs ${expected[i]}`).to.be.at.most(tol * Math.max(scale, 1e-3));
  }
}

const REDUCTIONS: Reduction[] = ['mean', 'sum', 'none'];

type FloatArray = Float32Array | Float64Array;
/** The gradient w.r.t. the student of rows [r0, r1) of s and t, with reduction 'sum' (so each row's gradient does not depend on the other rows), into gradOut when given. */
type RowsGradient = (s: Matrix, t: Matrix, r0: number, r1: number, gradOut?: FloatArray) => FloatArray;

/**
 * Gradients larger than the caches are written with non-temporal stores from the first aligned
 * element: checks that such a gradient (4.4 MB, at gradOut offsets of 0, 1 and 3 elements) holds
 * exactly the values of the same rows computed in slices far below the threshold.
 */
function expectStreamedGradientsMatchSlices(grad: RowsGradient, rng: Rng): void {
  for (const f32 of [true, false]) {
    const Ctor = f32 ? Float32Array : Float64Array;
    const rows = f32 ? 1100 : 550;
    const cols = 1000;
    const s = { data: Ctor.from(rng.matrix(rows, cols, 3).data), rows, cols };
    const t = { data: Ctor.from(rng.matrix(rows, cols, 3).data), rows, cols };
    for (const offset of [0, 1, 3]) {
      const gradOut = new Ctor(rows * cols + offset).subarray(offset);
      grad(s, t, 0, rows, gradOut);
      for (let r0 = 0; r0 < rows; r0 += 50) {
        const part = grad(s, t, r0, r0 + 50);
        for (let i = 0; i < part.length; i++) {
          if (!Object.is(part[i], gradOut[r0 * cols + i])) expect.fail(`offset ${offset}, element ${r0 * cols + i}: ${gradOut[r0 * cols + i]} vs ${part[i]}`);
        }
      }
    }
  }
}

/** Rows [r0, r1) of m, sharing its buffer. */
function rowSlice(m: Matrix, r0: number, r1: number): Matrix {
  const data = m.data as FloatArray;
  return { data: data.subarray(r0 * m.cols, r1 * m.cols), rows: r1 - r0, cols: m.cols };
}

forEachBackend('distillation gradient', () => {
  const rng = new Rng(7);
  const rows = 4;
  const cols = 5;
  const hardLosses: [string, Loss][] = [
    ['cross-entropy from logits', new CrossEntropyLoss()],
    ['cross-entropy with label smoothing', new CrossEntropyLoss({ labelSmoothing: 0.2 })],
    ['cross-entropy on probabilities', new CrossEntropyLoss({ fromLogits: false, epsilon: 1e-3 })],
    ['mse', new MseLoss()],
  ];
  for (const [hardName, hardLoss] of hardLosses) {
    for (const targetForm of ['one-hot', 'class indices'] as const) {
      for (const reduction of REDUCTIONS) {
        for (const masked of [false, true]) {
          it(`matches finite differences: ${hardName}, ${targetForm}, reduction ${reduction}${masked ? ', masked' : ''}`, () => {
            const probs = hardName.includes('probabilities');
            const s = rng.matrix(rows, cols, 2);
            // Probability inputs: keep them inside (epsilon, 1 - epsilon) so the clamp is differentiable.
            if (probs) for (let i = 0; i < s.data.length; i++) s.data[i] = 0.05 + 0.9 * rng.uniform();
            const t = rng.matrix(rows, cols, 2);
            const classes = rng.classes(rows, cols);
            const targets = targetForm === 'one-hot' ? oneHot(classes, cols) : classes;
            const mask = masked ? Uint8Array.from([1, 0, 1, 1]) : undefined;
            const kd = new DistillationLoss(2.5, 0.6, hardLoss);
            const opts: DistillationForwardOptions = { reduction, mask };
            const r = kd.forward(s, t, targets, { ...opts, grad: true });
            const num = numericGrad(s.data, () => kd.forward(s, t, targets, opts).loss);
            expectClose(r.grad!, num, 1e-6);
            if (masked) for (let j = 0; j < cols; j++) expect(r.grad![cols + j]).to.equal(0);
          });
        }
      }
    }
  }

  it('equals the closed form (1/N)[alpha T (p_s - p_t) + (1 - alpha)(softmax(s) - y)]', () => {
    const T = 3;
    const alpha = 0.3;
    const s = rng.matrix(3, 7, 3);
    const t = rng.matrix(3, 7, 3);
    const classes = rng.classes(3, 7);
    const y = oneHot(classes, 7);
    const g = new DistillationLoss(T, alpha).forward(s, t, y, { grad: true }).grad!;
    const softmax = (x: Float64Array, o: number, temp: number) => {
      const row = Array.from(x.subarray(o, o + 7), (v) => v / temp);
      const mx = Math.max(...row);
      const e = row.map((v) => Math.exp(v - mx));
      const z = e.reduce((a, b) => a + b, 0);
      return e.map((v) => v / z);
    };
    for (let r = 0; r < 3; r++) {
      const ps = softmax(s.data, r * 7, T);
      const pt = softmax(t.data, r * 7, T);
      const p1 = softmax(s.data, r * 7, 1);
      for (let j = 0; j < 7; j++) {
        const expected = (alpha * T * (ps[j] - pt[j]) + (1 - alpha) * (p1[j] - y.data[r * 7 + j])) / 3;
        expect(g[r * 7 + j]).to.be.closeTo(expected, 1e-15);
      }
    }
  });

  it('returns zero loss and an all-zero gradient, never NaN, when no row is kept', () => {
    const kd = new DistillationLoss(2, 0.5);
    const s = rng.matrix(2, 3);
    const r = kd.forward(s, rng.matrix(2, 3), [-100, -100], { grad: true });
    expect(r.loss).to.equal(0);
    expect(Array.from(r.grad!)).to.deep.equal([0, 0, 0, 0, 0, 0]);
    const masked = kd.forward(s, rng.matrix(2, 3), [0, 1], { grad: true, mask: new Uint8Array(2) });
    expect(masked.loss).to.equal(0);
    expect(Array.from(masked.grad!)).to.deep.equal([0, 0, 0, 0, 0, 0]);
  });

  it('adds a user-written hard loss gradient to the native soft gradient', () => {
    // A JS cross-entropy with the same semantics as the built-in.
    const builtin = new CrossEntropyLoss();
    const custom: Loss = {
      name: 'jsCrossEntropy',
      compute: (p, y) => builtin.compute(p, y as Matrix),
      gradient: (p, y) => builtin.gradient(p, y as Matrix),
    };
    const s = rng.matrix(3, 4);
    const t = rng.matrix(3, 4);
    const y = oneHot(rng.classes(3, 4), 4);
    for (const reduction of ['mean', 'sum'] as const) {
      const a = new DistillationLoss(2, 0.4, custom).forward(s, t, y, { grad: true, reduction });
      const b = new DistillationLoss(2, 0.4).forward(s, t, y, { grad: true, reduction });
      expect(a.loss).to.be.closeTo(b.loss, 1e-14);
      expectClose(a.grad!, b.grad!, 1e-14);
    }
  });

  it('writes gradients larger than the caches (streamed stores, any alignment) with the same values as small calls', () => {
    const kd = new DistillationLoss(3, 0.6);
    const y = rng.classes(1100, 1000);
    expectStreamedGradientsMatchSlices((s, t, r0, r1, gradOut) => {
      const r = kd.forward(rowSlice(s, r0, r1), rowSlice(t, r0, r1), y.subarray(r0, r1), { grad: true, gradOut, reduction: 'sum' });
      return r.grad as FloatArray;
    }, rng);
  });

  it('writes into the caller-supplied gradOut and returns that same buffer', () => {
    const s = rng.matrix(2, 3);
    const gradOut = new Float64Array(6).fill(NaN);
    const r = new DistillationLoss(2, 0.5).forward(s, rng.matrix(2, 3), [0, 2], { gradOut });
    expect(r.grad).to.equal(gradOut);
    expect(gradOut.every(Number.isFinite)).to.equal(true);
  });
});

forEachBackend('feature gradient', () => {
  const rng = new Rng(11);
  for (const p of [1, 2] as const) {
    for (const reduction of REDUCTIONS) {
      it(`matches finite differences for p = ${p}, reduction ${reduction}, layers of different widths`, () => {
        const f = new FeatureDistillationLoss([0.5, 2, 1], p);
        const students = [rng.matrix(3, 4), rng.matrix(3, 1), rng.matrix(3, 9)];
        const teachers = [rng.matrix(3, 4), rng.matrix(3, 1), rng.matrix(3, 9)];
        const r = f.forward(students, teachers, { grad: true, reduction });
        for (let l = 0; l < 3; l++) {
          const num = numericGrad(students[l].data, () => f.forward(students, teachers, { reduction }).loss);
          expectClose(r.grads![l], num, 1e-6);
        }
      });
    }
  }
});

forEachBackend('attention gradient', () => {
  const rng = new Rng(13);
  for (const beta of [2, 1, 0.5, 3]) {
    for (const reduction of REDUCTIONS) {
      it(`matches finite differences for beta = ${beta}, reduction ${reduction}`, () => {
        const a = new AttentionTransferLoss(beta);
        const s = rng.matrix(3, 6);
        // Keep |x| >= 0.2: near 0, |x|^beta with beta < 1 is too curved for finite differences.
        for (let i = 0; i < s.data.length; i++) s.data[i] = Math.sign(s.data[i]) * (0.2 + Math.abs(s.data[i]));
        const t = rng.matrix(3, 6);
        const r = a.forward(s, t, { grad: true, reduction });
        const num = numericGrad(s.data, () => a.forward(s, t, { reduction }).loss);
        expectClose(r.grad!, num, 1e-6);
      });
    }
  }

  it('is 0 at exact zeros and for rows below the normalisation threshold', () => {
    const a = new AttentionTransferLoss(0.5);
    const s = { data: new Float64Array([0, 0.5, -0.25, 0, 0, 0]), rows: 2, cols: 3 };
    const t = { data: new Float64Array([0.1, 0.2, 0.3, 0.1, 0.2, 0.3]), rows: 2, cols: 3 };
    const g = a.forward(s, t, { grad: true }).grad!;
    expect(g[0]).to.equal(0);
    expect(g.subarray(3).every((v) => v === 0)).to.equal(true);
    expect(g.every(Number.isFinite)).to.equal(true);
  });

  it('writes gradients larger than the caches (streamed stores, any alignment) with the same values as small calls', () => {
    const a = new AttentionTransferLoss(2);
    expectStreamedGradientsMatchSlices((s, t, r0, r1, gradOut) => {
      return a.forward(rowSlice(s, r0, r1), rowSlice(t, r0, r1), { grad: true, gradOut, reduction: 'sum' }).grad as FloatArray;
    }, rng);
  });
});
