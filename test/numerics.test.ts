// Exact results at the edges, on both backends: NaN stays NaN, infinities follow exact arithmetic, a
// term whose factor is exactly 0 is absent (label smoothing 1 or 0, targets of 0, a gradient scale of
// 0), and the gradient scratch stays bounded.
import { expect } from 'chai';
import { CrossEntropyLoss, DistillationLoss } from 'kdloss';
import { forEachBackend } from './helpers/backends';

type Ctor = Float32ArrayConstructor | Float64ArrayConstructor;
const DTYPES: [string, Ctor][] = [
  ['float32', Float32Array],
  ['float64', Float64Array],
];

const mat = (C: Ctor, rows: number, cols: number, values: number[]) => ({ data: C.from(values), rows, cols });

/** -sum_j y'_j ln(clamp(p_j, eps, 1 - eps)) over j with y'_j != 0, y' the smoothed targets. */
function ceProbsRow(p: ArrayLike<number>, y: ArrayLike<number>, ls: number, eps = 1e-10): number {
  const C = p.length;
  let h = 0;
  for (let j = 0; j < C; j++) {
    const yj = (ls < 1 ? (1 - ls) * y[j] : 0) + ls / C;
    if (yj !== 0) h -= yj * Math.log(Math.min(Math.max(p[j], eps), 1 - eps));
  }
  return h;
}

function oneHotRow(cols: number, cls: number): number[] {
  const y = new Array<number>(cols).fill(0);
  y[cls] = 1;
  return y;
}

forEachBackend('numerics: NaN in the probability cross-entropy', () => {
  for (const [name, C] of DTYPES) {
    it(`a NaN probability at the target class gives NaN, with and without smoothing (${name})`, () => {
      for (const labelSmoothing of [0, 0.1, 1]) {
        const ce = new CrossEntropyLoss({ fromLogits: false, labelSmoothing });
        const p = mat(C, 1, 4, [0.2, NaN, 0.3, 0.5]);
        expect(ce.compute(p, Int32Array.from([1])), `ls ${labelSmoothing}`).to.be.NaN;
        expect(ce.compute(p, mat(C, 1, 4, [0, 1, 0, 0])), `ls ${labelSmoothing}, one-hot`).to.be.NaN;
        // The gradient: NaN where the NaN probability has target mass, finite elsewhere.
        const g = ce.gradient(p, Int32Array.from([1])).data;
        expect(g[1]).to.be.NaN;
        for (const j of [0, 2, 3]) expect(Number.isFinite(g[j]), `grad[${j}] at ls ${labelSmoothing}`).to.equal(true);
      }
    });

    it(`a NaN probability without target mass leaves the loss finite only without smoothing (${name})`, () => {
      const p = mat(C, 1, 4, [0.2, NaN, 0.3, 0.5]);
      const plain = new CrossEntropyLoss({ fromLogits: false });
      expect(plain.compute(p, Int32Array.from([2]))).to.be.closeTo(-Math.log(C.from([0.3])[0]), 1e-6);
      const g = plain.gradient(p, Int32Array.from([2])).data;
      expect(Array.from(g)).to.deep.equal([0, 0, -1 / C.from([0.3])[0], 0].map((v) => C.from([v])[0]));
      expect(new CrossEntropyLoss({ fromLogits: false, labelSmoothing: 0.1 }).compute(p, Int32Array.from([2]))).to.be.NaN;
    });

    it(`NaN and negative target values count as any other non-zero target (${name})`, () => {
      const pv = [0.2, 0.5, 0.3];
      for (const fromLogits of [false, true]) {
        const ce = new CrossEntropyLoss({ fromLogits });
        expect(ce.compute(mat(C, 1, 3, pv), mat(C, 1, 3, [0.5, NaN, 0.5])), `fromLogits ${fromLogits}`).to.be.NaN;
        const y = [1.5, -0.5, 0];
        const got = ce.compute(mat(C, 1, 3, pv), mat(C, 1, 3, y));
        const p = C.from(pv);
        let want: number;
        if (fromLogits) {
          const z = Math.log(Math.exp(p[0]) + Math.exp(p[1]) + Math.exp(p[2]));
          want = -(1.5 * (p[0] - z) - 0.5 * (p[1] - z));
        } else {
          want = ceProbsRow(p, y, 0);
        }
        expect(got, `fromLogits ${fromLogits}`).to.be.closeTo(want, 1e-6 * Math.abs(want));
      }
    });
  }
});

forEachBackend('numerics: label smoothing 1 and -Infinity logits', () => {
  for (const [name, C] of DTYPES) {
    it(`labelSmoothing 1 with a -Infinity logit gives +Infinity for every target form (${name})`, () => {
      const ce = new CrossEntropyLoss({ labelSmoothing: 1 });
      const s = mat(C, 1, 3, [0.2, -Infinity, 0.3]);
      expect(ce.compute(s, Int32Array.from([1]))).to.equal(Infinity);
      expect(ce.compute(s, Uint32Array.from([0]))).to.equal(Infinity);
      expect(ce.compute(s, mat(C, 1, 3, [0, 1, 0]))).to.equal(Infinity);
      expect(ce.compute(s, mat(C, 1, 3, [0.5, 0.25, 0.25]))).to.equal(Infinity);
      // ls = 1 leaves the targets out altogether: a NaN target changes nothing.
      expect(ce.compute(s, mat(C, 1, 3, [NaN, 0, 0]))).to.equal(Infinity);
      const g = ce.gradient(s, Int32Array.from([1])).data;
      for (let j = 0; j < 3; j++) expect(Number.isFinite(g[j]), `grad[${j}]`).to.equal(true);
      // Fused into the distillation loss, at T = 1 and T = 4.
      for (const T of [1, 4]) {
        const kd = new DistillationLoss(T, 0.5, ce);
        const r = kd.forward(s, mat(C, 1, 3, [0.1, 0.2, 0.3]), Int32Array.from([1]), { reduction: 'none' });
        expect(r.perSampleHard![0], `T ${T}`).to.equal(Infinity);
      }
    });

    it(`labelSmoothing 1 of probabilities clamps a -Infinity probability (${name})`, () => {
      const ce = new CrossEntropyLoss({ labelSmoothing: 1, fromLogits: false });
      const p = C.from([0.2, -Infinity, 0.3]);
      expect(ce.compute({ data: p, rows: 1, cols: 3 }, Int32Array.from([1]))).to.be.closeTo(ceProbsRow(p, [0, 1, 0], 1), 1e-5);
    });

    it(`a -Infinity logit without target mass keeps the loss finite (${name})`, () => {
      const s = mat(C, 1, 3, [0.2, -Infinity, 0.3]);
      const want = Math.log(1 + Math.exp(C.from([0.3])[0] - C.from([0.2])[0]));
      expect(new CrossEntropyLoss().compute(s, Int32Array.from([0]))).to.be.closeTo(want, 1e-6);
      expect(new CrossEntropyLoss().compute(s, mat(C, 1, 3, [1, 0, 0]))).to.be.closeTo(want, 1e-6);
    });
  }
});

forEachBackend('numerics: the gradient scratch is bounded', () => {
  it('large gradient calls on 2 threads leave no per-thread scratch of their rows behind', async function () {
    if (typeof global.gc !== 'function') this.skip();
    const gc = global.gc as () => void;
    // V8 frees ArrayBuffer memory after a collection, on its own schedule: collect until RSS settles.
    const settledRss = async () => {
      let rss = Infinity;
      for (let k = 0; k < 10; k++) {
        gc();
        await new Promise((resolve) => setTimeout(resolve, 20));
        const now = process.memoryUsage().rss;
        if (now >= rss - 2 ** 20) return Math.min(now, rss);
        rss = now;
      }
      return rss;
    };
    // Two rows of 2^23 floats: 32 MiB a row; three rows of scratch per thread would keep 96 MiB on
    // each of the two threads after the call.
    const rows = 2;
    const cols = 1 << 23;
    const run = () => {
      const s = new Float32Array(rows * cols);
      const t = new Float32Array(rows * cols);
      for (let i = 0; i < s.length; i += 97) {
        s[i] = (i % 13) / 3;
        t[i] = (i % 7) / 2;
      }
      const kd = new DistillationLoss(2, 0.5);
      const r = kd.forward({ data: s, rows, cols }, { data: t, rows, cols }, Int32Array.from([3, 5]), { grad: true, threads: 2 });
      expect(Number.isFinite(r.loss)).to.equal(true);
    };
    const before = await settledRss();
    for (let k = 0; k < 2; k++) run();
    const grown = (await settledRss()) - before;
    expect(grown, `RSS grew by ${(grown / 2 ** 20).toFixed(1)} MiB`).to.be.lessThan(48 * 2 ** 20);
  });
});
