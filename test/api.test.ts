// Behaviour of the public API beyond the seed's tests: input forms, zero-copy views, the exact KL,
// hard-loss forms, reductions, masks, and backend selection.
import { expect } from 'chai';
import { execFileSync } from 'child_process';
import * as path from 'path';
import {
  AttentionTransferLoss,
  capabilities,
  CrossEntropyLoss,
  DistillationLoss,
  FeatureDistillationLoss,
  getBackend,
  isa,
  type Loss,
  MseLoss,
} from 'kdloss';
import { forEachBackend } from './helpers/backends';
import { oneHot, Rng, toF32 } from './helpers/random';

const logSoftmax = (row: number[]): number[] => {
  const m = Math.max(...row);
  const lse = m + Math.log(row.reduce((a, x) => a + Math.exp(x - m), 0));
  return row.map((x) => x - lse);
};

forEachBackend('distillation loss', () => {
  const rng = new Rng(3);

  it('gives the same result for nested arrays and typed matrices', () => {
    const s = rng.matrix(3, 5);
    const t = rng.matrix(3, 5);
    const y = rng.classes(3, 5);
    const nested = (m: { data: Float64Array; cols: number; rows: number }) =>
      Array.from({ length: m.rows }, (_, r) => Array.from(m.data.subarray(r * m.cols, (r + 1) * m.cols)));
    const kd = new DistillationLoss(3, 0.7);
    expect(kd.computeDistillation(nested(s), nested(t), Array.from(y))).to.equal(kd.computeDistillation(s, t, y));
  });

  it('reads typed arrays at any byteOffset without copying (float32 and float64)', () => {
    for (const f32 of [false, true]) {
      const s = rng.matrix(4, 7);
      const t = rng.matrix(4, 7);
      const Ctor = f32 ? Float32Array : Float64Array;
      const big = new Ctor(1 + 2 * 28);
      big.set(s.data, 1);
      big.set(t.data, 29);
      const sv = { data: big.subarray(1, 29), rows: 4, cols: 7 };
      const tv = { data: big.subarray(29), rows: 4, cols: 7 };
      const kd = new DistillationLoss(2, 0.5);
      const y = rng.classes(4, 7);
      const expected = kd.computeDistillation(
        { data: Ctor.from(sv.data), rows: 4, cols: 7 },
        { data: Ctor.from(tv.data), rows: 4, cols: 7 },
        y,
      );
      expect(kd.computeDistillation(sv, tv, y)).to.equal(expected);
    }
  });

  it('treats class indices (number[], Int32Array, Uint32Array) like one-hot rows', () => {
    const s = rng.matrix(5, 6);
    const t = rng.matrix(5, 6);
    const y = rng.classes(5, 6);
    for (const hard of [new CrossEntropyLoss(), new CrossEntropyLoss({ labelSmoothing: 0.1 }), new MseLoss()]) {
      const kd = new DistillationLoss(2, 0.5, hard);
      const ref = kd.computeDistillation(s, t, oneHot(y, 6));
      for (const form of [Array.from(y), y, Uint32Array.from(y)]) {
        expect(kd.computeDistillation(s, t, form)).to.be.closeTo(ref, 1e-14);
      }
    }
  });

  it('computes the exact KL where the seed caps a confidently wrong student near 18.4', () => {
    // Teacher certain of class 0, student certain of class 1 by a margin of 30 logits at T = 1.
    const kd = new DistillationLoss(1, 1);
    const r = kd.forward([[0, 30]], [[30, 0]], [0]);
    const exact = 30 * Math.tanh(15); // sum_j p_t (log p_t - log p_s) for this pair
    expect(r.soft).to.be.closeTo(exact, 1e-12);
    expect(r.soft).to.be.greaterThan(18.5);
  });

  it('gives exactly 0 KL for identical logits and ignores zero teacher probabilities', () => {
    const kd = new DistillationLoss(4, 1);
    expect(kd.forward([[1, 2, 3]], [[1, 2, 3]], [0]).soft).to.equal(0);
    const r = kd.forward([[0, 0, 5]], [[0, 0, -Infinity]], [0]);
    expect(Number.isFinite(r.soft)).to.equal(true);
    const ps = logSoftmax([0, 0, 1.25]);
    expect(r.soft).to.be.closeTo(0.5 * (Math.log(0.5) - ps[0]) + 0.5 * (Math.log(0.5) - ps[1]), 1e-14);
  });

  it('applies log-softmax to logits by default, like PyTorch cross_entropy', () => {
    const row = [1.0, 2.0, 0.5];
    const kd = new DistillationLoss(2, 0);
    expect(kd.computeDistillation([row], [row], [1])).to.be.closeTo(-logSoftmax(row)[1], 1e-15);
  });

  it('keeps the probability form with fromLogits: false (clamped to [epsilon, 1 - epsilon])', () => {
    const ce = new CrossEntropyLoss({ fromLogits: false, epsilon: 1e-3 });
    const p = [
      [0.2, 0.7, 0.1],
      [0.0, 0.0, 1.0],
    ];
    const y = [
      [0, 1, 0],
      [1, 0, 0],
    ];
    expect(ce.compute(p, y)).to.be.closeTo(-(Math.log(0.7) + Math.log(1e-3)) / 2, 1e-15);
    const kd = new DistillationLoss(2, 0, ce);
    expect(kd.computeDistillation(p, p, y)).to.be.closeTo(ce.compute(p, y), 1e-15);
  });

  it('handles -Infinity student logits (masked classes) like PyTorch cross_entropy', () => {
    const row = [0, -Infinity, 1];
    const ce = new CrossEntropyLoss();
    expect(ce.compute([row], [0])).to.be.closeTo(Math.log(1 + Math.E), 1e-15);
    expect(ce.compute([row], [[1, 0, 0]])).to.be.closeTo(Math.log(1 + Math.E), 1e-15);
    expect(ce.compute([row], [1])).to.equal(Infinity);
    expect(new CrossEntropyLoss({ labelSmoothing: 0.1 }).compute([row], [0])).to.equal(Infinity);
    const kd = new DistillationLoss(2, 0.5).forward([row], [[0, -Infinity, 1]], [2]);
    expect(kd.soft).to.be.closeTo(0, 1e-15);
    expect(Number.isFinite(kd.hard)).to.equal(true);
  });

  it('applies label smoothing as (1 - eps) y + eps / C', () => {
    const row = [0.3, -1.2, 2.0, 0.1];
    const eps = 0.2;
    const ls = logSoftmax(row);
    const expected = -ls.reduce((a, l, j) => a + ((1 - eps) * (j === 2 ? 1 : 0) + eps / 4) * l, 0);
    expect(new CrossEntropyLoss({ labelSmoothing: eps }).compute([row], [2])).to.be.closeTo(expected, 1e-15);
  });

  it('computes MseLoss as the mean over all elements', () => {
    expect(new MseLoss().compute([[1, 2], [3, 4]], [[0, 2], [3, 2]])).to.be.closeTo((1 + 0 + 0 + 4) / 4, 1e-15);
  });

  it('weights the soft term by alpha T^2 and the hard term by 1 - alpha', () => {
    const s = rng.matrix(3, 4);
    const t = rng.matrix(3, 4);
    const y = rng.classes(3, 4);
    const r = new DistillationLoss(3, 0.25).forward(s, t, y);
    expect(r.loss).to.be.closeTo(0.25 * 9 * r.soft + 0.75 * r.hard, 1e-14);
    expect(new DistillationLoss(3, 1).computeDistillation(s, t, y)).to.be.closeTo(9 * r.soft, 1e-13);
    expect(new DistillationLoss(3, 0).computeDistillation(s, t, y)).to.be.closeTo(r.hard, 1e-14);
  });

  it('computes a user-written hard loss in JS, with the student logits and targets as given', () => {
    const seen: unknown[] = [];
    const custom: Loss = {
      name: 'constant',
      compute(p, y) {
        seen.push(p, y);
        return 2;
      },
    };
    const s = rng.matrix(2, 3);
    const y = new Int32Array([1, 2]);
    const r = new DistillationLoss(2, 0.5, custom).forward(s, rng.matrix(2, 3), y);
    expect(r.hard).to.equal(2);
    expect((seen[0] as { data: Float64Array }).data).to.equal(s.data);
    expect(seen[1]).to.equal(y);
  });

  it("reduces with 'sum' and 'none' consistently with 'mean'", () => {
    const s = rng.matrix(6, 5);
    const t = rng.matrix(6, 5);
    const y = rng.classes(6, 5);
    const kd = new DistillationLoss(2, 0.5);
    const mean = kd.forward(s, t, y);
    const sum = kd.forward(s, t, y, { reduction: 'sum' });
    const none = kd.forward(s, t, y, { reduction: 'none' });
    expect(sum.loss).to.be.closeTo(6 * mean.loss, 1e-12);
    expect(none.perSample).to.be.instanceOf(Float64Array).with.length(6);
    expect(Array.from(none.perSample!).reduce((a, b) => a + b, 0) / 6).to.be.closeTo(mean.loss, 1e-14);
    expect(none.loss).to.equal(mean.loss);
    for (let r = 0; r < 6; r++) {
      expect(none.perSample![r]).to.be.closeTo(0.5 * 4 * none.perSampleSoft![r] + 0.5 * none.perSampleHard![r], 1e-14);
    }
    expect(Array.from(none.perSampleSoft!).reduce((a, b) => a + b, 0) / 6).to.be.closeTo(mean.soft, 1e-14);
  });

  it('leaves masked rows and ignoreIndex rows out of both terms and divides by the rows kept', () => {
    const s = rng.matrix(4, 3);
    const t = rng.matrix(4, 3);
    const kd = new DistillationLoss(2, 0.5);
    const y = [0, 1, 2, 1];
    const rowsOf = (m: { data: Float64Array }, keep: number[]) => ({
      data: Float64Array.from(keep.flatMap((r) => Array.from(m.data.subarray(r * 3, r * 3 + 3)))),
      rows: keep.length,
      cols: 3,
    });
    const kept = kd.forward(rowsOf(s, [0, 2]), rowsOf(t, [0, 2]), [0, 2]);
    const masked = kd.forward(s, t, y, { mask: Uint8Array.from([1, 0, 1, 0]) });
    expect(masked.loss).to.be.closeTo(kept.loss, 1e-14);
    expect(masked.soft).to.be.closeTo(kept.soft, 1e-14);
    const ignored = kd.forward(s, t, [0, -100, 2, -100]);
    expect(ignored.loss).to.be.closeTo(kept.loss, 1e-14);
    const custom = new DistillationLoss(2, 0.5, new CrossEntropyLoss({ ignoreIndex: 1 }));
    expect(custom.forward(s, t, [0, 1, 2, 1]).loss).to.be.closeTo(kept.loss, 1e-14);
    const none = kd.forward(s, t, y, { mask: Uint8Array.from([1, 0, 1, 0]), reduction: 'none' });
    expect(none.perSample![1]).to.equal(0);
    expect(none.perSample![3]).to.equal(0);
  });

  it('returns each row\'s top-1 class of student and teacher with argmax: true (first of ties, -1 for rows left out)', () => {
    const s = [
      [0, 3, 3, 1],
      [5, -1, 2, 2],
      [1, 1, 1, 1],
    ];
    const t = [
      [9, 0, 0, 0],
      [0, 0, 0, 7],
      [2, 4, 4, 0],
    ];
    const r = new DistillationLoss(2, 0.5).forward(s, t, [1, 0, 2], { argmax: true, mask: Uint8Array.from([1, 1, 0]) });
    expect(Array.from(r.studentArgmax!)).to.deep.equal([1, 0, -1]);
    expect(Array.from(r.teacherArgmax!)).to.deep.equal([0, 3, -1]);
    const wide = rng.matrix(5, 67);
    const all = new DistillationLoss(2, 0.5).forward(wide, wide, rng.classes(5, 67), { argmax: true });
    for (let row = 0; row < 5; row++) {
      const values = Array.from(wide.data.subarray(row * 67, (row + 1) * 67));
      expect(all.studentArgmax![row]).to.equal(values.indexOf(Math.max(...values)));
    }
  });

  it('takes argmax over the non-NaN logits of a row, in any position and at any width (-1 when all are NaN)', () => {
    // Rows wider than one vector block too, with the NaN before, inside and after the vector holding
    // the maximum; the max reduction skips NaN whatever lane or chunk it lands in.
    for (const cols of [4, 37, 1000]) {
      for (const Ctor of [Float32Array, Float64Array]) {
        const s = new Ctor(3 * cols).map((_, i) => Math.sin(i));
        const t = new Ctor(3 * cols).map((_, i) => Math.cos(i));
        const nanAt = [0, Math.floor(cols / 2), cols - 1];
        for (let r = 0; r < 3; r++) s[r * cols + nanAt[r]] = NaN;
        t.fill(NaN, 2 * cols, 3 * cols);
        const r = new DistillationLoss(2, 0.5).forward({ data: s, rows: 3, cols }, { data: t, rows: 3, cols }, new Int32Array(3), { argmax: true, reduction: 'none' });
        for (let row = 0; row < 3; row++) {
          const values = Array.from(s.subarray(row * cols, (row + 1) * cols));
          const finite = values.filter((v) => !Number.isNaN(v));
          expect(r.studentArgmax![row], `cols ${cols} row ${row}`).to.equal(values.indexOf(Math.max(...finite)));
          expect(Number.isNaN(r.perSample![row]), 'a NaN logit makes the row NaN').to.equal(true);
        }
        expect(r.teacherArgmax![2]).to.equal(-1);
      }
    }
  });

  it('computes float32 inputs to float32 accuracy', () => {
    const s = rng.matrix(8, 33, 3);
    const t = rng.matrix(8, 33, 3);
    const y = rng.classes(8, 33);
    const kd = new DistillationLoss(4, 0.5);
    const ref = kd.computeDistillation(toF32(s), toF32(t), y);
    const f64 = kd.computeDistillation(
      { data: Float64Array.from(Float32Array.from(s.data)), rows: 8, cols: 33 },
      { data: Float64Array.from(Float32Array.from(t.data)), rows: 8, cols: 33 },
      y,
    );
    expect(Math.abs(ref - f64) / f64).to.be.below(1e-5);
  });
});

forEachBackend('feature and attention losses', () => {
  const rng = new Rng(5);

  it('sums w_l * mean(|s - t|^p) over layers of different widths', () => {
    const s = [rng.matrix(2, 3), rng.matrix(2, 5)];
    const t = [rng.matrix(2, 3), rng.matrix(2, 5)];
    for (const p of [1, 2] as const) {
      const f = new FeatureDistillationLoss([0.25, 2], p);
      const dist = (l: number) => s[l].data.reduce((a, x, i) => a + Math.abs(x - t[l].data[i]) ** p, 0) / s[l].data.length;
      const r = f.forward(s, t, { reduction: 'none' });
      expect(r.loss).to.be.closeTo(0.25 * dist(0) + 2 * dist(1), 1e-14);
      expect(r.perLayer[0]).to.be.closeTo(dist(0), 1e-15);
      expect((r.perSample![0] + r.perSample![1]) / 2).to.be.closeTo(r.loss, 1e-14);
    }
  });

  it('leaves attention rows whose power sum is <= 1e-8 unnormalised', () => {
    const a = new AttentionTransferLoss(2);
    const r = a.forward([[1e-5, 0]], [[0, 0]]);
    expect(r.loss).to.be.closeTo((1e-10 * 1e-10) / 2, 1e-30);
  });

  it('gives exactly 0 for identical attention maps and the direct value for nearly identical ones', () => {
    const rows = 3;
    const cols = 4099;
    const t = rng.matrix(rows, cols);
    // Reference: the direct sum of squared differences of the normalised maps in float64, and the
    // maps' mass sum(a_s^2 + a_t^2): rounding the maps themselves (|x|^2 in the input's precision) moves
    // the loss by up to about 2 u sqrt(loss * mass), which the tolerance allows, as the native tests do.
    const direct = (s: ArrayLike<number>, u: ArrayLike<number>) => {
      let total = 0;
      let mass = 0;
      for (let r = 0; r < rows; r++) {
        let ss = 0;
        let st = 0;
        for (let j = 0; j < cols; j++) {
          ss += s[r * cols + j] ** 2;
          st += u[r * cols + j] ** 2;
        }
        for (let j = 0; j < cols; j++) {
          const as = s[r * cols + j] ** 2 / ss;
          const at = u[r * cols + j] ** 2 / st;
          total += (as - at) ** 2;
          mass += as * as + at * at;
        }
      }
      return { loss: total / (rows * cols), mass: mass / (rows * cols) };
    };
    const a = new AttentionTransferLoss(2);
    for (const Ctor of [Float32Array, Float64Array]) {
      const tm = { data: Ctor.from(t.data), rows, cols };
      expect(a.computeAttentionLoss(tm, { data: Ctor.from(t.data), rows, cols })).to.equal(0);
      for (const rel of [1e-2, 1e-4, 1e-7]) {
        const sm = { data: Ctor.from(Array.from(t.data, (x) => x * (1 + rel * Math.sin(x * 1e3)))), rows, cols };
        const want = direct(sm.data, tm.data);
        const tol = (Ctor === Float32Array ? 1e-5 : 1e-12) * (want.loss + 2 * Math.sqrt(want.loss * want.mass));
        expect(a.computeAttentionLoss(sm, tm)).to.be.closeTo(want.loss, tol);
      }
    }
  });

  it("reduces attention with 'sum' over rows of row means and 'none' per row", () => {
    const s = rng.matrix(5, 4);
    const t = rng.matrix(5, 4);
    const a = new AttentionTransferLoss(1.5);
    const mean = a.forward(s, t).loss;
    expect(a.forward(s, t, { reduction: 'sum' }).loss).to.be.closeTo(5 * mean, 1e-14);
    const per = a.forward(s, t, { reduction: 'none' }).perSample!;
    expect(per.reduce((x, y) => x + y, 0) / 5).to.be.closeTo(mean, 1e-15);
  });
});

describe('backends and kernels', () => {
  it('uses the native backend by default (unless KDLOSS_BACKEND says otherwise) and reports the kernel variant', () => {
    expect(getBackend()).to.equal(process.env.KDLOSS_BACKEND === 'js' ? 'js' : 'native');
    const caps = capabilities()!;
    expect(caps.compiled).to.include('scalar');
    expect(caps.compiled).to.include(isa());
  });

  it('honours KDLOSS_BACKEND=js and rejects an unknown KDLOSS_ISA at load with a clear error', () => {
    const root = path.dirname(require.resolve('kdloss/package.json'));
    const run = (env: Record<string, string>) =>
      execFileSync(process.execPath, ['-e', "const k=require('kdloss');console.log(k.getBackend(), k.isa())"], {
        cwd: root,
        env: { ...process.env, ...env },
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      }).trim();
    expect(run({ KDLOSS_BACKEND: 'js' })).to.match(/^js /);
    expect(run({ KDLOSS_ISA: 'scalar' })).to.equal('native scalar');
    let stderr = '';
    try {
      run({ KDLOSS_ISA: 'sse9' });
    } catch (err) {
      stderr = String((err as { stderr: string }).stderr);
    }
    expect(stderr).to.match(/KDLOSS_ISA=sse9: not a variant of this build/);
  });
});
