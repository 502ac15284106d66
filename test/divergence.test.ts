// The divergences besides the forward KL ('reverse-kl', 'jsd', 'tvd'), temperatureScaling and the
// normalizer, on both backends: PyTorch fixtures (test/fixtures/divergence.json, written by
// test/fixtures/generator/divergence_cases.py), finite differences, the micro-batch property of the
// normalizer, the exact +Infinity of reverse KL, the stable log of JSD's mixture, the option errors,
// and the two backends against each other.
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import {
  ConfigError,
  CrossEntropyLoss,
  DistillationLoss,
  type DistillationForwardOptions,
  type DistillationOptions,
  type Divergence,
  getBackend,
  type Matrix,
  MseLoss,
  nativeLoadError,
  setBackend,
} from 'kdloss';
import { forEachBackend } from './helpers/backends';
import {
  decode,
  decodeF64,
  decodeMatrix,
  decodeTargets,
  expectAllClose,
  expectClose,
  FIXTURES_DIR,
  type KdCase,
  rowFloors,
  TOLERANCE,
} from './helpers/fixtures';
import { Rng } from './helpers/random';

type DivCase = KdCase & { divergenceOptions: DistillationOptions; options: DistillationForwardOptions };

const cases = (JSON.parse(fs.readFileSync(path.join(FIXTURES_DIR, 'divergence.json'), 'utf8')) as { cases: DivCase[] }).cases;

const DIVS: [Divergence, number | undefined][] = [
  ['kl', undefined],
  ['reverse-kl', undefined],
  ['jsd', 0.5],
  ['jsd', 0.2],
  ['tvd', undefined],
];
const divName = (d: Divergence, beta: number | undefined): string => (beta === undefined ? d : `${d} beta=${beta}`);

/** Class indices for calls without a hard term (alpha = 1: they change nothing). */
const zeros = (rows: number): Int32Array => new Int32Array(rows);

function matrix(rows: number, cols: number, data: number[] | Float64Array): Matrix {
  return { rows, cols, data: Float64Array.from(data) };
}

describe('divergence fixtures', () => {
  it('cover every divergence, both dtypes, temperatureScaling off and a normalizer', () => {
    expect(new Set(cases.map((c) => c.divergenceOptions.divergence))).to.have.all.keys('kl', 'reverse-kl', 'jsd', 'tvd');
    expect(new Set(cases.map((c) => c.dtype))).to.have.all.keys('float32', 'float64');
    expect(cases.some((c) => c.divergenceOptions.temperatureScaling === false)).to.equal(true);
    expect(cases.some((c) => c.options.normalizer !== undefined)).to.equal(true);
    expect(cases.some((c) => c.mask !== undefined)).to.equal(true);
  });
});

forEachBackend('PyTorch reference: divergences', (backend) => {
  for (const c of cases) {
    it(`matches PyTorch for ${c.title}`, () => {
      const tol = TOLERANCE[c.dtype];
      const key = (q: string) => `${c.dtype} ${backend} divergence ${q}#${c.id}`;
      const s = decodeMatrix(c.student);
      const t = decodeMatrix(c.teacher);
      const y = decodeTargets(c.targets);
      const hard = c.hardLoss.type === 'MseLoss' ? new MseLoss() : new CrossEntropyLoss(c.hardLoss.options);
      const kd = new DistillationLoss(c.temperature, c.alpha, hard, c.divergenceOptions);
      const opts: DistillationForwardOptions = { ...c.options };
      if (c.mask) opts.mask = decode(c.mask) as Uint8Array;
      const r = kd.forward(s, t, y as Matrix, opts);
      expectClose(r.loss, c.expected.loss, c.floors.loss, tol, 'loss', key('loss'));
      expectClose(r.soft, c.expected.soft, c.floors.soft, tol, 'soft', key('soft'));
      expectClose(r.hard, c.expected.hard, c.floors.hard, tol, 'hard', key('hard'));
      if (c.expected.perSample) {
        expectAllClose(r.perSample!, decodeF64(c.expected.perSample), (i) => decodeF64(c.floors.perSample!)[i], tol, 'perSample', key('perSample'));
      }
      expectAllClose(r.grad!, decodeF64(c.expected.grad!), rowFloors(decodeF64(c.floors.gradRows!), s.cols), tol, 'grad', key('grad'));
    });
  }
});

forEachBackend('divergences', () => {
  const rng = new Rng(17);

  for (const [div, beta] of DIVS) {
    const name = divName(div, beta);

    it(`${name}: the gradient matches central finite differences of the loss (float64)`, () => {
      const R = 3;
      const C = 7;
      const s = rng.matrix(R, C, 2);
      const t = rng.matrix(R, C, 2);
      const y = Int32Array.from([2, 5, -100]);
      const kd = new DistillationLoss(2.5, 0.7, new CrossEntropyLoss({ labelSmoothing: 0.1 }), { divergence: div, beta });
      const g = kd.forward(s, t, y, { grad: true }).grad!;
      const h = 1e-6;
      for (let i = 0; i < R * C; i++) {
        const x = s.data[i];
        s.data[i] = x + h;
        const up = kd.forward(s, t, y).loss;
        s.data[i] = x - h;
        const down = kd.forward(s, t, y).loss;
        s.data[i] = x;
        const fd = (up - down) / (2 * h);
        expect(Math.abs(g[i] - fd), `grad[${i}] = ${g[i]}, finite difference ${fd}`).to.be.below(1e-7 * (1 + Math.abs(fd)));
      }
    });

    it(`${name}: micro-batch losses and gradients with normalizer N add up to the whole batch's`, () => {
      const R = 8;
      const C = 11;
      const s = rng.matrix(R, C, 2);
      const t = rng.matrix(R, C, 2);
      const y = Int32Array.from([1, -100, 3, 4, -100, 0, 10, 2]);
      const kd = new DistillationLoss(2, 0.6, new CrossEntropyLoss(), { divergence: div, beta });
      const full = kd.forward(s, t, y, { grad: true });
      expect(full.kept).to.equal(6);
      const split = 3;
      const part = (r0: number, r1: number) =>
        kd.forward(matrix(r1 - r0, C, s.data.subarray(r0 * C, r1 * C)), matrix(r1 - r0, C, t.data.subarray(r0 * C, r1 * C)), y.subarray(r0, r1), {
          grad: true,
          normalizer: full.kept,
        });
      const a = part(0, split);
      const b = part(split, R);
      expect(a.kept + b.kept).to.equal(full.kept);
      expect(a.loss + b.loss).to.be.closeTo(full.loss, 1e-12 * (1 + Math.abs(full.loss)));
      expect(a.soft + b.soft).to.be.closeTo(full.soft, 1e-12 * (1 + Math.abs(full.soft)));
      const g = new Float64Array(R * C);
      g.set(a.grad!, 0);
      g.set(b.grad!, split * C);
      for (let i = 0; i < R * C; i++) expect(g[i]).to.be.closeTo(full.grad![i], 1e-14 + 1e-12 * Math.abs(full.grad![i]));
    });

    it(`${name}: temperatureScaling false drops the T^2 of the soft term`, () => {
      const s = rng.matrix(2, 5, 2);
      const t = rng.matrix(2, 5, 2);
      const y = Int32Array.from([1, 4]);
      const scaled = new DistillationLoss(3, 0.4, new CrossEntropyLoss(), { divergence: div, beta }).forward(s, t, y, { grad: true });
      const plain = new DistillationLoss(3, 0.4, new CrossEntropyLoss(), { divergence: div, beta, temperatureScaling: false }).forward(s, t, y, {
        grad: true,
      });
      expect(plain.soft).to.equal(scaled.soft);
      expect(plain.loss).to.be.closeTo(0.4 * plain.soft + 0.6 * plain.hard, 1e-14);
      expect(scaled.loss).to.be.closeTo(0.4 * 9 * scaled.soft + 0.6 * scaled.hard, 1e-13);
      // alpha = 1 without scaling: the soft term itself, as TRL, Liger and torchtune report it.
      expect(new DistillationLoss(3, 1, undefined, { divergence: div, beta, temperatureScaling: false }).forward(s, t, zeros(2)).loss).to.equal(plain.soft);
    });

    it(`${name}: student = teacher gives 0 and a zero soft gradient`, () => {
      const s = rng.matrix(2, 9, 3);
      const r = new DistillationLoss(2, 1, undefined, { divergence: div, beta }).forward(s, s, zeros(s.rows), { grad: true, reduction: 'none' });
      expect(Array.from(r.perSample!).every((v) => Math.abs(v) < 1e-15)).to.equal(true);
      expect(Array.from(r.grad!).every((v) => Math.abs(v) < 1e-15)).to.equal(true);
    });
  }

  it("reverse-kl: student mass on a class of teacher probability 0 gives +Infinity; 'kl' and the others stay finite", () => {
    const s = matrix(1, 3, [0, 1, 2]);
    const t = matrix(1, 3, [0, -Infinity, 2]);
    expect(new DistillationLoss(1, 1, undefined, { divergence: 'reverse-kl' }).forward(s, t, zeros(1)).soft).to.equal(Infinity);
    for (const [div, beta] of DIVS.filter(([d]) => d !== 'reverse-kl')) {
      const r = new DistillationLoss(1, 1, undefined, { divergence: div, beta }).forward(s, t, zeros(s.rows), { grad: true });
      expect(Number.isFinite(r.soft), divName(div, beta)).to.equal(true);
      expect(Array.from(r.grad!).every(Number.isFinite), divName(div, beta)).to.equal(true);
    }
    // A student probability below the float range (a finite logit) is still positive: against the
    // teacher's exact 0 the term is +Infinity, as the forward KL's with the roles swapped.
    for (const T of [1, 2]) {
      const low = matrix(1, 3, [0, -800 * T, 2]);
      expect(new DistillationLoss(T, 1, undefined, { divergence: 'reverse-kl' }).forward(low, t, zeros(1)).soft, `T ${T}`).to.equal(Infinity);
      expect(new DistillationLoss(T, 1).forward(t, low, zeros(1)).soft, `kl, T ${T}`).to.equal(Infinity);
    }
    // The student's -inf class has q = 0: reverse KL stays finite, its gradient there exactly 0.
    const r = new DistillationLoss(1, 1, undefined, { divergence: 'reverse-kl' }).forward(t, s, zeros(t.rows), { grad: true });
    expect(Number.isFinite(r.soft)).to.equal(true);
    expect(r.grad![1]).to.equal(0);
  });

  it('jsd: probabilities that underflow (and a beta near 0) give a finite JSD and gradient, no NaN', () => {
    // Classes whose probabilities underflow in both rows at once (m = 0 in floating point): the
    // mixture's log is taken as a log-sum-exp of the logs, so the terms stay 0 * finite.
    const s = matrix(2, 4, [0, -900, -1500, 3, 0, -2000, 1, -745]);
    const t = matrix(2, 4, [0, -950, -1400, 1, 0, -1800, 2, -800]);
    for (const beta of [0.5, 1e-300, 1 - 1e-16]) {
      const r = new DistillationLoss(1, 1, undefined, { divergence: 'jsd', beta }).forward(s, t, zeros(s.rows), { grad: true, reduction: 'none' });
      expect(Array.from(r.perSample!).every(Number.isFinite), `beta ${beta}: ${Array.from(r.perSample!)}`).to.equal(true);
      expect(Array.from(r.grad!).every(Number.isFinite), `beta ${beta}: ${Array.from(r.grad!)}`).to.equal(true);
    }
    for (const dtype of [Float32Array, Float64Array]) {
      const f = (m: Matrix): Matrix => ({ rows: m.rows, cols: m.cols, data: dtype.from(m.data) });
      const r = new DistillationLoss(0.5, 1, undefined, { divergence: 'jsd', beta: 1e-30 }).forward(f(s), f(t), zeros(2), { grad: true });
      expect(Number.isFinite(r.loss), dtype.name).to.equal(true);
      expect(Array.from(r.grad!).every(Number.isFinite), dtype.name).to.equal(true);
    }
  });

  it("tvd: the subgradient is 0 where p = q, and |p - q| / 2 otherwise", () => {
    const s = matrix(1, 3, [1, 2, 3]);
    const t = matrix(1, 3, [1, 2, 3.5]);
    const r = new DistillationLoss(1, 1, undefined, { divergence: 'tvd' }).forward(s, t, zeros(s.rows), { grad: true });
    const sm = (x: number[]) => x.map((v) => Math.exp(v) / x.reduce((a, w) => a + Math.exp(w), 0));
    const p = sm([1, 2, 3.5]);
    const q = sm([1, 2, 3]);
    expect(r.soft).to.be.closeTo(0.5 * p.reduce((a, pj, j) => a + Math.abs(pj - q[j]), 0), 1e-15);
  });

  it('a NaN or +Infinity student logit makes the whole gradient row NaN for every divergence (found by the fuzzer)', () => {
    // The row's Zs is NaN, so every q is: also where the exp of a finite logit is 0 (here all of them,
    // against the +Infinity), which reverse KL and JSD used to leave at 0 in the kernels.
    for (const dtype of [Float32Array, Float64Array]) {
      for (const bad of [Infinity, Number.NaN]) {
        const s = { rows: 2, cols: 5, data: dtype.from([1, bad, 2, -Infinity, -3, 0, 1, 2, 3, 4]) };
        const t = { rows: 2, cols: 5, data: dtype.from([0, 1, 2, 3, 4, 1, 0, 1, 0, 1]) };
        for (const [div, beta] of DIVS) {
          const what = `${divName(div, beta)} ${dtype.name} ${bad}`;
          const r = new DistillationLoss(1.5, 1, undefined, { divergence: div, beta }).forward(s, t, zeros(2), { grad: true, reduction: 'none' });
          expect(r.perSample![0], what).to.be.NaN;
          expect(Array.from(r.grad!.subarray(0, 5)).every(Number.isNaN), `${what}: ${Array.from(r.grad!.subarray(0, 5))}`).to.equal(true);
          expect(Array.from(r.grad!.subarray(5)).every(Number.isFinite), what).to.equal(true);
        }
      }
    }
  });

  it('reverse-kl and jsd: a NaN teacher logit makes the gradient NaN wherever q > 0, also below the float range (found by the fuzzer)', () => {
    // Every p is NaN, so every term q (...) with q > 0 is; the student's -inf class (q = 0 exactly)
    // stays 0, its teacher NaN included. The kernels left finite values (reverse KL, whose gradient
    // does not read Zt) or 0 where es underflowed (JSD).
    for (const dtype of [Float32Array, Float64Array]) {
      for (const [div, beta] of DIVS.filter(([d]) => d === 'reverse-kl' || d === 'jsd')) {
        const s = { rows: 1, cols: 5, data: dtype.from([0, -Infinity, -1600, 1, -3]) };
        const t = { rows: 1, cols: 5, data: dtype.from([0, NaN, -2, 1, 2]) };
        const r = new DistillationLoss(2, 1, undefined, { divergence: div, beta }).forward(s, t, zeros(1), { grad: true });
        expect(r.soft, divName(div, beta)).to.be.NaN;
        expect(Array.from(r.grad!), `${divName(div, beta)} ${dtype.name}`).to.deep.equal([NaN, 0, NaN, NaN, NaN]);
      }
    }
  });

  it('reverse-kl of +Infinity: the gradient is -Infinity wherever q > 0, also below the float range (found by the fuzzer)', () => {
    // q (h - KL) with KL = +inf: -inf at every finite student logit (q > 0 in exact arithmetic, even
    // where its exp underflows to 0 or to a subnormal whose product with the scale underflows), NaN
    // where the teacher's probability is 0 too (h = +inf), 0 at the student's -inf (q = 0 exactly).
    for (const dtype of [Float32Array, Float64Array]) {
      for (const T of [1, 2]) {
        const s = { rows: 1, cols: 6, data: dtype.from([0, -1, -800 * T, -Infinity, -740 * T, -100 * T]) };
        const t = { rows: 1, cols: 6, data: dtype.from([0, -Infinity, 1, 2, 0, 0]) };
        const r = new DistillationLoss(T, 0.5, new CrossEntropyLoss(), { divergence: 'reverse-kl' }).forward(s, t, zeros(1), { grad: true });
        expect(r.soft).to.equal(Infinity);
        expect(Array.from(r.grad!), `${dtype.name} T ${T}`).to.deep.equal([-Infinity, NaN, -Infinity, 0, -Infinity, -Infinity]);
      }
    }
  });
});

describe('divergence options', () => {
  it('refuse beta without jsd, beta at 0 and 1 (naming kl and reverse-kl), beta outside (0, 1), unknown divergences', () => {
    const err = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        expect(e).to.be.instanceOf(ConfigError);
        return (e as Error).message;
      }
      throw new Error('no error');
    };
    expect(err(() => new DistillationLoss(2, 0.5, undefined, { divergence: 'kl', beta: 0.5 }))).to.match(/only the 'jsd' divergence/);
    expect(err(() => new DistillationLoss(2, 0.5, undefined, { divergence: 'tvd', beta: 0.5 }))).to.match(/beta/);
    expect(err(() => new DistillationLoss(2, 0.5, undefined, { divergence: 'jsd', beta: 0 }))).to.match(/'kl'/);
    expect(err(() => new DistillationLoss(2, 0.5, undefined, { divergence: 'jsd', beta: 1 }))).to.match(/'reverse-kl'/);
    for (const b of [-0.1, 1.5, Number.NaN, Infinity]) {
      expect(err(() => new DistillationLoss(2, 0.5, undefined, { divergence: 'jsd', beta: b }))).to.match(/beta/);
    }
    expect(err(() => new DistillationLoss(2, 0.5, undefined, { divergence: 'js' as Divergence }))).to.match(/divergence/);
    expect(err(() => new DistillationLoss(2, 0.5, undefined, { temperatureScaling: 1 as unknown as boolean }))).to.match(/temperatureScaling/);
    const kd = new DistillationLoss(2, 1, undefined, { divergence: 'tvd' });
    const s = matrix(1, 2, [0, 1]);
    for (const n of [0, -1, Number.NaN, Infinity]) expect(err(() => kd.forward(s, s, zeros(s.rows), { normalizer: n }))).to.match(/normalizer/);
    expect(err(() => kd.forward(s, s, zeros(s.rows), { normalizer: 2, reduction: 'sum' }))).to.match(/normalizer/);
  });
});

describe('divergences: native and js backends agree', () => {
  const native = nativeLoadError() === null;
  // JSD and TVD read their second pass's exps back from scratch; rows too wide for the engine's 4 MiB
  // cache (float64 beyond 174,000 columns) get a scratch per thread for the call only.
  it('jsd and tvd on rows wider than the scratch cache, on one and two threads, sync and async', async function () {
    if (!native) this.skip();
    this.timeout(60000);
    const before = getBackend();
    const rng = new Rng(2929);
    const R = 3;
    const C = 180_001;
    const s = { rows: R, cols: C, data: Float64Array.from(rng.matrix(R, C, 4).data) };
    const t = { rows: R, cols: C, data: Float64Array.from(rng.matrix(R, C, 4).data) };
    const y = Int32Array.from([5, -100, C - 1]);
    try {
      for (const [div, beta] of [['jsd', 0.3], ['tvd', undefined]] as [Divergence, number | undefined][]) {
        const kd = new DistillationLoss(2, 0.7, new CrossEntropyLoss(), { divergence: div, beta });
        setBackend('js');
        const want = kd.forward(s, t, y, { grad: true, reduction: 'none' });
        setBackend('native');
        let gmax = 0;
        for (const v of want.grad!) gmax = Math.max(gmax, Math.abs(v));
        for (const threads of [1, 2]) {
          for (const grad of [false, true]) {
            const sync = kd.forward(s, t, y, { grad, reduction: 'none', threads });
            const got = [sync, await kd.forwardAsync(s, t, y, { grad, reduction: 'none', threads })];
            for (const g of got) {
              const what = `${divName(div, beta)} threads=${threads} grad=${grad}`;
              for (let r = 0; r < R; r++) expect(g.perSample![r], `${what} perSample[${r}]`).to.be.closeTo(want.perSample![r], 1e-12 * (1 + Math.abs(want.perSample![r])));
              if (grad) for (let i = 0; i < R * C; i += 997) expect(g.grad![i], `${what} grad[${i}]`).to.be.closeTo(want.grad![i], 1e-12 * (1e-3 + gmax));
            }
            expect(Array.from(got[1].perSample!)).to.deep.equal(Array.from(sync.perSample!));
          }
        }
      }
    } finally {
      setBackend(before);
    }
  });

  it('on random rows with masks, ignored rows, every hard loss, both dtypes', function () {
    if (!native) this.skip();
    const before = getBackend();
    const rng = new Rng(1717);
    try {
      for (const [div, beta] of DIVS) {
        for (const dtype of [Float32Array, Float64Array]) {
          for (const hard of [new CrossEntropyLoss({ labelSmoothing: 0.1 }), new CrossEntropyLoss({ fromLogits: false }), new MseLoss()]) {
            const R = 6;
            const C = 37;
            const s = { rows: R, cols: C, data: dtype.from(rng.matrix(R, C, 3).data) };
            if (hard instanceof CrossEntropyLoss && !hard.fromLogits) s.data.forEach((v, i) => (s.data[i] = 1 / (1 + Math.exp(-v))));
            const t = { rows: R, cols: C, data: dtype.from(rng.matrix(R, C, 3).data) };
            // MseLoss has no ignore index: -100 only where the hard loss is a cross-entropy.
            const y = Int32Array.from({ length: R }, (_, r) => (r === 2 && hard instanceof CrossEntropyLoss ? -100 : (r * 7) % C));
            const mask = Uint8Array.from([1, 1, 1, 0, 1, 1]);
            const kd = new DistillationLoss(1.5, 0.6, hard, { divergence: div, beta });
            const run = (b: 'native' | 'js') => {
              setBackend(b);
              return kd.forward(s, t, y, { grad: true, reduction: 'none', mask });
            };
            const a = run('native');
            const b = run('js');
            const tol = dtype === Float32Array ? 2e-5 : 1e-12;
            const what = `${divName(div, beta)} ${dtype.name} ${hard.name}`;
            expect(a.kept, what).to.equal(b.kept);
            for (let r = 0; r < R; r++) expect(a.perSample![r], `${what} perSample[${r}]`).to.be.closeTo(b.perSample![r], tol * (1 + Math.abs(b.perSample![r])));
            const gmax = Math.max(...Array.from(b.grad!, Math.abs));
            for (let i = 0; i < R * C; i++) expect(a.grad![i], `${what} grad[${i}]`).to.be.closeTo(b.grad![i], tol * (1e-3 + gmax));
          }
        }
      }
    } finally {
      setBackend(before);
    }
  });
});
