// Exact results at the edges, on both backends: NaN stays NaN, infinities follow exact arithmetic, a
// term whose factor is exactly 0 is absent (label smoothing 1 or 0, targets of 0, a gradient scale of
// 0), float32 intermediates that leave the float range do not change a finite loss, float64 attention
// of nearly identical maps within its stated bound, and the gradient scratch stays bounded.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { AttentionTransferLoss, CrossEntropyLoss, DistillationLoss, FeatureDistillationLoss, getBackend } from 'kdloss';
import { forEachBackend } from './helpers/backends';
import { FIXTURES_DIR } from './helpers/fixtures';

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

    it(`epsilon 0: a probability of 0 without target mass has gradient 0, with it -Infinity (${name})`, () => {
      const ce = new CrossEntropyLoss({ fromLogits: false, epsilon: 0 });
      const p = mat(C, 1, 4, [0.5, 0, 0.25, 0.25]);
      const g = ce.gradient(p, Int32Array.from([0])).data;
      expect(g[1]).to.equal(0);
      expect(g[0]).to.be.closeTo(-2, 1e-6);
      expect(ce.gradient(p, Int32Array.from([1])).data[1]).to.equal(-Infinity);
    });

    it(`a subnormal probability: the hard gradient (1 - alpha) y' / p stays finite where y' / p overflows (${name})`, () => {
      // y' = ls / C at the non-target class 0; y' / p is past the float range, (1 - alpha) y' / p is not.
      const [x, ls, alpha] = C === Float32Array ? [1.4e-45, 4e-3, 0.99999] : [5e-324, 4e-10, 0.999999];
      const want = (-(1 - alpha) * (ls / 4)) / C.from([x])[0];
      expect(Number.isFinite(want)).to.equal(true);
      const kd = new DistillationLoss(1, alpha, new CrossEntropyLoss({ fromLogits: false, epsilon: 0, labelSmoothing: ls }));
      const r = kd.forward(mat(C, 1, 4, [x, 0.5, 0.25, 0.25]), mat(C, 1, 4, [0, 0, 0, 0]), Int32Array.from([1]), { reduction: 'sum', grad: true });
      expect(r.grad![0]).to.be.closeTo(want, Math.abs(want) * 1e-4);
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

    it(`a -Infinity student logit against a teacher probability below the float range gives +Infinity (${name})`, () => {
      // exp(-800) is 0 in float32 and float64, but the teacher's probability there is positive: the
      // soft term p (log p - log 0) is +Infinity in exact arithmetic. A teacher logit of -Infinity
      // (probability exactly 0) leaves the term out.
      for (const T of [1, 2]) {
        const kd = new DistillationLoss(T, 1);
        const s = mat(C, 2, 3, [0, -Infinity, 0, 0, -Infinity, 0]);
        const t = mat(C, 2, 3, [0, -800 * T, 0, 0, -Infinity, 0]);
        const r = kd.forward(s, t, Int32Array.from([0, 0]), { reduction: 'none', grad: true });
        expect(r.perSampleSoft![0], `T ${T}`).to.equal(Infinity);
        expect(r.perSampleSoft![1], `T ${T}`).to.equal(0);
        for (const v of r.grad!) expect(Number.isFinite(v), `T ${T}: the gradient stays finite`).to.equal(true);
      }
    });

    it(`a -Infinity logit without target mass keeps the loss finite (${name})`, () => {
      const s = mat(C, 1, 3, [0.2, -Infinity, 0.3]);
      const want = Math.log(1 + Math.exp(C.from([0.3])[0] - C.from([0.2])[0]));
      expect(new CrossEntropyLoss().compute(s, Int32Array.from([0]))).to.be.closeTo(want, 1e-6);
      expect(new CrossEntropyLoss().compute(s, mat(C, 1, 3, [1, 0, 0]))).to.be.closeTo(want, 1e-6);
    });
  }
});

forEachBackend('numerics: NaN and infinities in feature and attention maps', () => {
  for (const [name, C] of DTYPES) {
    for (const beta of [0.1, 0.57, 1, 2, 8.1]) {
      it(`attention with beta ${beta} and a NaN in either map gives NaN (${name})`, () => {
        const a = new AttentionTransferLoss(beta);
        const ok = mat(C, 1, 4, [0.1, 0.5, 0.3, 1]);
        const bad = mat(C, 1, 4, [0.2, NaN, 0.3, 1]);
        const r = a.forward(bad, ok, { grad: true });
        expect(r.loss).to.be.NaN;
        expect(r.grad![1]).to.be.NaN;
        expect(a.forward(ok, bad, { grad: true }).loss).to.be.NaN;
        expect(a.forward(mat(C, 1, 4, [0.2, 0, 0.3, 1]), ok).loss, 'a zero stays 0^beta = 0').to.be.finite;
      });
    }

    for (const beta of [0.57, 1, 1.5, 2]) {
      it(`attention with beta ${beta}: the gradient at x = 0 is 0 in a finite row, NaN in a NaN row (${name})`, () => {
        const a = new AttentionTransferLoss(beta);
        const t = mat(C, 1, 4, [0.1, 0.5, 0.3, 1]);
        const finite = a.forward(mat(C, 1, 4, [0, 0.5, 0.2, 1]), t, { grad: true });
        expect(finite.grad![0]).to.equal(0);
        for (const bad of [NaN, Infinity]) {
          const r = a.forward(mat(C, 1, 4, [0, 0.5, bad, 1]), t, { grad: true });
          expect(r.loss, `${bad}`).to.be.NaN;
          expect(r.grad![0], `${bad}`).to.be.NaN;
          expect(a.forward(mat(C, 1, 4, [0, 0.5, 0.2, 1]), mat(C, 1, 4, [0.1, bad, 0.3, 1]), { grad: true }).grad![0], `teacher ${bad}`).to.be.NaN;
        }
      });
    }

    it(`attention gradients where |x|^beta is below the normal range keep their value (${name})`, () => {
      // g_k is proportional to beta |x_k|^(beta-1) sign(x_k) (2 (a_s,k - a_t,k) - 2 sum_i (a_s,i - a_t,i) a_s,i):
      // the ratio g_0 / g_1 from that formula in float64, with x_0 = 1e-37 (|x_0|^beta underflows in
      // float32 for beta >= 1.2, and x_0 * x_0 for beta 2) and x_0 = 1e-300 (in float64), with betas
      // for which |x_0|^(beta-1) itself is in range.
      const tiny = C === Float32Array ? 1e-37 : 1e-300;
      for (const beta of [1.2, 1.5, 2]) {
        const s = C.from([tiny, 0.5, 0.2, 1]);
        const t = C.from([0.1, 0.5, 0.3, 1]);
        const pw = (x: number) => Math.abs(x) ** beta;
        const Ss = Array.from(s).reduce((acc, x) => acc + pw(x), 0);
        const St = Array.from(t).reduce((acc, x) => acc + pw(x), 0);
        const as = Array.from(s, (x) => pw(x) / Ss);
        const d = as.map((v, k) => v - pw(t[k]) / St);
        const sub = 2 * d.reduce((acc, v, k) => acc + v * as[k], 0);
        const gk = (k: number) => Math.sign(s[k]) * Math.abs(s[k]) ** (beta - 1) * (2 * d[k] - sub);
        const g = new AttentionTransferLoss(beta).forward({ data: s, rows: 1, cols: 4 }, { data: t, rows: 1, cols: 4 }, { grad: true }).grad!;
        expect(g[0], `beta ${beta}`).to.not.equal(0);
        expect(g[0] / g[1], `beta ${beta}`).to.be.closeTo(gk(0) / gk(1), (Math.abs(gk(0) / gk(1)) * (C === Float32Array ? 1e-4 : 1e-12)));
      }
    });

    it(`feature p = 1 and 2: inf - inf is NaN, in the loss and the gradient (${name})`, () => {
      for (const p of [1, 2] as const) {
        const f = new FeatureDistillationLoss([1], p);
        const r = f.forward([mat(C, 1, 3, [1, Infinity, 2])], [mat(C, 1, 3, [0, Infinity, 2])], { grad: true });
        expect(r.loss, `p ${p}`).to.be.NaN;
        const g = r.grads![0];
        expect(g[1], `p ${p}`).to.be.NaN;
        expect(g[0], `p ${p}`).to.be.greaterThan(0);
        expect(g[2], `p ${p}`).to.equal(0);
        expect(f.forward([mat(C, 1, 2, [-Infinity, 0])], [mat(C, 1, 2, [0, 0])]).loss, `p ${p}, inf`).to.equal(Infinity);
      }
    });

    it(`float intermediates past the float range leave a finite loss finite (${name})`, () => {
      const f2 = new FeatureDistillationLoss([1], 2);
      expect(f2.forward([mat(C, 1, 2, [1e20, 0])], [mat(C, 1, 2, [0, 0])]).loss).to.be.closeTo(C.from([1e20])[0] ** 2 / 2, 1e27);
      const f1 = new FeatureDistillationLoss([1], 1);
      const x = C.from([3e38])[0];
      expect(f1.forward([mat(C, 1, 2, [3e38, 0])], [mat(C, 1, 2, [-3e38, 0])]).loss).to.be.closeTo(x, x * 1e-15);
      expect(new AttentionTransferLoss(2).forward(mat(C, 1, 2, [1e20, 1]), mat(C, 1, 2, [1, 1])).loss).to.be.closeTo(0.25, 1e-12);
      expect(new AttentionTransferLoss(8.1).forward(mat(C, 1, 2, [1e5, 1]), mat(C, 1, 2, [1, 1])).loss).to.be.closeTo(0.25, 1e-12);
    });
  }
});

interface NearRow {
  beta: number;
  sigma: number;
  rel: number;
  s: number[];
  t: number[];
  loss: string;
  mass: string;
}

forEachBackend('numerics: float64 attention of nearly identical maps', () => {
  const fixture = JSON.parse(readFileSync(join(FIXTURES_DIR, 'numerics', 'attention_near.json'), 'utf8')) as {
    cols: number;
    rows: NearRow[];
  };
  it('each row is within 1e-12 relative where loss >= 1e-6 * mass, and within 1e-15 * sqrt(loss * mass) everywhere', () => {
    const cols = fixture.cols;
    let worst = 0;
    for (const row of fixture.rows) {
      const a = new AttentionTransferLoss(row.beta);
      const r = a.forward(mat(Float64Array, 1, cols, row.s), mat(Float64Array, 1, cols, row.t), { reduction: 'none' });
      const got = r.perSample![0] * cols;
      const L = Number(row.loss);
      const M = Number(row.mass);
      const err = Math.abs(got - L);
      const what = `beta ${row.beta} sigma ${row.sigma} rel ${row.rel} (${getBackend()}): ${got} vs ${L}`;
      expect(err, what).to.be.at.most(1e-15 * Math.sqrt(L * M));
      if (L >= 1e-6 * M) expect(err, what).to.be.at.most(1e-12 * L);
      worst = Math.max(worst, err / Math.sqrt(L * M));
    }
    expect(worst).to.be.lessThan(1e-15);
  });
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
