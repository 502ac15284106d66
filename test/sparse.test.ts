// Sparse (top-k) teachers: the PyTorch fixtures (test/fixtures/sparse.json), equality with the dense
// teacher where the entries cover the row, finite differences of the tail mode, options, async, errors,
// and the raw entry under hostile arguments.
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { ConfigError, DistillationLoss, type DistillationForwardOptions, InputError, ShapeError, type SparseTeacher } from 'kdloss';
import { SparseKdSlot } from '../dist/backend/layout';
import { codeOf, rawAddon } from './helpers/addon';
import { forEachBackend } from './helpers/backends';
import { decode, decodeF64, decodeFloat, type EncodedArray } from './helpers/fixtures';
import { Rng } from './helpers/random';

interface SparseCase {
  title: string;
  dtype: 'float32' | 'float64';
  rows: number;
  cols: number;
  k: number;
  kind: 'logits' | 'logprobs';
  tail: boolean;
  temperature: number;
  alpha: number;
  student: EncodedArray;
  indices: EncodedArray;
  values: EncodedArray;
  targets: EncodedArray;
  expected: { loss: number; soft: number; hard: number; perSampleSoft: EncodedArray; grad: EncodedArray };
}

const fixtures = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'test', 'fixtures', 'sparse.json'), 'utf8')) as { cases: SparseCase[] };

function near(got: number, ref: number, scale: number, tol: number, what: string): void {
  expect(Math.abs(got - ref), `${what}: got ${got}, want ${ref}`).to.be.at.most(tol * (Math.abs(ref) + scale));
}

/** A random problem: student rows x V, the teacher's top-k of random logits (shuffled slots, some -1). */
function problem(rng: Rng, R: number, V: number, k: number, kind: 'logits' | 'logprobs', T: number, pad: boolean) {
  const s = new Float64Array(R * V).map(() => 2 * rng.normal());
  const t = new Float64Array(R * V).map(() => 2 * rng.normal());
  const indices = new Int32Array(R * k).fill(-1);
  const values = new Float64Array(R * k);
  for (let r = 0; r < R; r++) {
    const row = Array.from(t.subarray(r * V, (r + 1) * V));
    const m = Math.max(...row);
    const lse = m / T + Math.log(row.reduce((a, x) => a + Math.exp(x / T - m / T), 0));
    const order = row.map((_, j) => j).sort((a, b) => row[b] - row[a]);
    const used = pad ? 1 + Math.floor(rng.uniform() * k) : k;
    const slots = Array.from({ length: k }, (_, e) => e).sort(() => rng.uniform() - 0.5);
    for (let e = 0; e < used; e++) {
      indices[r * k + slots[e]] = order[e];
      values[r * k + slots[e]] = kind === 'logits' ? row[order[e]] : row[order[e]] / T - lse;
    }
  }
  return { s, t, indices, values };
}

forEachBackend('sparse teachers', (backend) => {
  describe('PyTorch float64 fixtures', () => {
    for (const c of fixtures.cases) {
      it(c.title, () => {
        const s = decodeFloat(c.student);
        const teacher: SparseTeacher = { indices: decode(c.indices as EncodedArray & { dtype: 'int32' }), values: decodeFloat(c.values), rows: c.rows, k: c.k, kind: c.kind, tail: c.tail };
        const y = decode(c.targets as EncodedArray & { dtype: 'int32' });
        const L = new DistillationLoss(c.temperature, c.alpha);
        const tol = c.dtype === 'float64' ? 1e-9 : 2e-4;
        const res = L.forward({ data: s, rows: c.rows, cols: c.cols }, teacher, y, { grad: true });
        near(res.loss, c.expected.loss, 1, tol, 'loss');
        near(res.soft, c.expected.soft, 1, tol, 'soft');
        near(res.hard, c.expected.hard, 1, tol, 'hard');
        const g = decodeF64(c.expected.grad);
        const gmax = g.reduce((a, x) => Math.max(a, Math.abs(x)), 0);
        for (let i = 0; i < g.length; i++) near(res.grad![i], g[i], gmax, tol, `grad[${i}]`);
        const per = L.forward({ data: s, rows: c.rows, cols: c.cols }, teacher, y, { reduction: 'none' }).perSampleSoft!;
        const want = decodeF64(c.expected.perSampleSoft);
        for (let r = 0; r < c.rows; r++) near(per[r], want[r], 1, tol, `perSampleSoft[${r}]`);
      });
    }
  });

  describe('equal to the dense teacher where the entries cover the row', () => {
    const cases: [string, DistillationForwardOptions, number][] = [
      ['mean, grad, argmax', { grad: true, argmax: true }, 0.7],
      ['sum', { reduction: 'sum', grad: true }, 0.4],
      ['none', { reduction: 'none', grad: true }, 1],
      ['normalizer', { normalizer: 11, grad: true }, 0.6],
      ['mask', { mask: new Uint8Array([1, 0, 1, 1, 0]), grad: true }, 0.5],
    ];
    for (const kind of ['logits', 'logprobs'] as const) {
      for (const [name, opts, alpha] of cases) {
        it(`${kind}, ${name}`, () => {
          const rng = new Rng(7);
          const R = 5;
          const V = 13;
          const T = 2.5;
          const { s, indices, values } = problem(rng, R, V, V, kind, T, false);
          // The dense teacher: logits; logprobs at T are logits at T times T.
          const dense = new Float64Array(R * V);
          for (let e = 0; e < R * V; e++) dense[Math.floor(e / V) * V + indices[e]] = kind === 'logits' ? values[e] : values[e] * T;
          const y = new Int32Array([3, -100, 0, 12, 5]);
          const L = new DistillationLoss(T, alpha, undefined, { temperatureScaling: name !== 'sum' });
          const a = L.forward({ data: s, rows: R, cols: V }, { data: dense, rows: R, cols: V }, y, opts);
          const b = L.forward({ data: s, rows: R, cols: V }, { indices, values, rows: R, k: V, kind, tail: false }, y, opts);
          near(b.loss, a.loss, 1e-12, 1e-12, 'loss');
          expect(b.kept).to.equal(a.kept);
          for (let i = 0; i < R * V; i++) near(b.grad![i], a.grad![i], 1e-12, 1e-10, `grad[${i}]`);
          if (a.perSample) for (let r = 0; r < R; r++) near(b.perSample![r], a.perSample[r], 1e-12, 1e-10, `perSample[${r}]`);
          if (a.teacherArgmax) {
            expect(Array.from(b.teacherArgmax!)).to.deep.equal(Array.from(a.teacherArgmax));
            expect(Array.from(b.studentArgmax!)).to.deep.equal(Array.from(a.studentArgmax!));
          }
        });
      }
    }
  });

  it('the tail mode gradient matches central differences, -1 padding included', () => {
    const rng = new Rng(11);
    const R = 3;
    const V = 17;
    const k = 5;
    const T = 1.5;
    const { s, indices, values } = problem(rng, R, V, k, 'logprobs', T, true);
    const teacher: SparseTeacher = { indices, values, rows: R, k, kind: 'logprobs' };
    const L = new DistillationLoss(T, 0.8);
    const y = new Int32Array([1, 2, 3]);
    const f = () => L.forward({ data: s, rows: R, cols: V }, teacher, y).loss;
    const g = L.forward({ data: s, rows: R, cols: V }, teacher, y, { grad: true }).grad!;
    const h = 1e-6;
    for (let i = 0; i < R * V; i++) {
      const v = s[i];
      s[i] = v + h;
      const up = f();
      s[i] = v - h;
      const down = f();
      s[i] = v;
      near(g[i], (up - down) / (2 * h), 1e-3, 1e-5, `grad[${i}]`);
    }
  });

  it('the tail bucket is KL over the entries plus p_out log(p_out / q_out), directly', () => {
    // One row of 4 tokens, entries at tokens 0 and 2.
    const s = new Float64Array([0.5, -1, 2, 0]);
    const lp = [Math.log(0.5), Math.log(0.2)];
    const T = 1;
    const z = s.reduce((a, x) => a + Math.exp(x), 0);
    const q = Array.from(s, (x) => Math.exp(x) / z);
    const pOut = 1 - 0.5 - 0.2;
    const qOut = q[1] + q[3];
    const want = 0.5 * Math.log(0.5 / q[0]) + 0.2 * Math.log(0.2 / q[2]) + pOut * Math.log(pOut / qOut);
    const L = new DistillationLoss(T, 1);
    const r = L.forward({ data: s, rows: 1, cols: 4 }, { indices: new Int32Array([0, 2]), values: new Float64Array(lp), rows: 1, k: 2, kind: 'logprobs' }, [0]);
    near(r.soft, want, 0, 1e-13, 'soft');
    const renorm = 0.5 / 0.7 * Math.log(0.5 / 0.7 / q[0]) + 0.2 / 0.7 * Math.log(0.2 / 0.7 / q[2]);
    const r2 = L.forward({ data: s, rows: 1, cols: 4 }, { indices: new Int32Array([2, 0]), values: new Float64Array([lp[1], lp[0]]), rows: 1, k: 2, kind: 'logprobs', tail: false }, [0]);
    near(r2.soft, renorm, 0, 1e-13, 'renormalised soft');
  });

  it('writes the gradient in place over the student, and async equals sync', async () => {
    const rng = new Rng(3);
    const R = 40;
    const V = 600;
    const { s, indices, values } = problem(rng, R, V, 20, 'logprobs', 2, true);
    const teacher: SparseTeacher = { indices, values, rows: R, k: 20, kind: 'logprobs' };
    const L = new DistillationLoss(2, 0.5);
    const y = new Int32Array(R).map((_, r) => (r * 7) % V);
    const a = L.forward({ data: s, rows: R, cols: V }, teacher, y, { grad: true });
    const b = await L.forwardAsync({ data: s, rows: R, cols: V }, teacher, y, { grad: true, threads: 2 });
    expect(b.loss).to.equal(a.loss);
    expect(Array.from(b.grad!)).to.deep.equal(Array.from(a.grad!));
    // The native backend pins the teacher's buffers while an async call runs: a transfer cannot free
    // them under it. The js backend computes on the main thread later, and finds them detached.
    const values2 = values.slice();
    const pending = L.forwardAsync({ data: s, rows: R, cols: V }, { ...teacher, values: values2 }, y, { grad: true, threads: 2 });
    try {
      structuredClone(values2.buffer, { transfer: [values2.buffer as ArrayBuffer] });
    } catch {
      // DataCloneError where the runtime refuses to transfer an untransferable buffer
    }
    if (backend === 'native') {
      expect(values2.length).to.equal(R * 20);
      expect((await pending).loss).to.equal(a.loss);
    } else {
      let err: unknown = null;
      await pending.catch((e: unknown) => (err = e));
      expect(err).to.be.instanceOf(InputError);
    }
    const copy = s.slice();
    const c = L.forward({ data: copy, rows: R, cols: V }, teacher, y, { gradOut: copy });
    // (The copy may sit at another alignment, which moves the SIMD sums' rounding.)
    near(c.loss, a.loss, 0, 1e-14, 'in-place loss');
    for (let i = 0; i < R * V; i++) near(copy[i], a.grad![i], 1e-12, 1e-12, `in-place grad[${i}]`);
  });

  describe('errors', () => {
    const s = { data: new Float64Array(2 * 4), rows: 2, cols: 4 };
    const sp = (over: Partial<Record<keyof SparseTeacher, unknown>>) =>
      ({ indices: new Int32Array([0, 1, 2, -1]), values: new Float64Array([-1, -2, -3, 0]), rows: 2, k: 2, kind: 'logprobs', ...over }) as SparseTeacher;
    const run = (t: SparseTeacher, L = new DistillationLoss(2, 0.5)) => () => L.forward(s, t, [0, 1]);
    it('divergences other than kl are a ConfigError saying why', () => {
      for (const divergence of ['reverse-kl', 'jsd', 'tvd'] as const) {
        expect(run(sp({}), new DistillationLoss(2, 0.5, undefined, { divergence }))).to.throw(ConfigError, /everywhere the student has some/);
      }
    });
    it('tail with logits, bad kinds and tails are ConfigErrors', () => {
      expect(run(sp({ kind: 'logits', tail: true }))).to.throw(ConfigError, /tail/);
      expect(run(sp({ kind: 'probs' }))).to.throw(ConfigError, /kind/);
      expect(run(sp({ tail: 1 }))).to.throw(ConfigError, /tail/);
    });
    it('shapes: k > V, rows, lengths', () => {
      expect(run(sp({ k: 5, indices: new Int32Array(10), values: new Float64Array(10) }))).to.throw(ShapeError, /k: 5/);
      expect(run(sp({ rows: 3 }))).to.throw(ShapeError, /rows/);
      expect(run(sp({ values: new Float64Array(3) }))).to.throw(ShapeError, /values/);
      expect(run(sp({ k: 0 }))).to.throw(ShapeError, /k/);
    });
    it('types: indices not Int32Array, values of another dtype', () => {
      expect(run(sp({ indices: new Uint32Array(4) }))).to.throw(InputError, /indices/);
      expect(run(sp({ values: new Float32Array(4) }))).to.throw(InputError, /values/);
    });
    it('entries: out of range, repeated, logprobs above 0 or summing above 1, naming the row', () => {
      expect(run(sp({ indices: new Int32Array([0, 1, 2, 4]) }))).to.throw(InputError, /teacher row 1: indices\[1\] = 4 out of range/);
      expect(run(sp({ indices: new Int32Array([0, 1, -2, 1]) }))).to.throw(InputError, /teacher row 1: .* -2 out of range/);
      expect(run(sp({ indices: new Int32Array([3, 3, 0, 1]) }))).to.throw(InputError, /teacher row 0: index 3 appears more than once/);
      expect(run(sp({ values: new Float64Array([-1, -2, 0.01, -3]) }))).to.throw(InputError, /teacher row 1: values\[0\] = 0.01/);
      expect(run(sp({ values: new Float64Array([-0.1, -0.5, -3, 0]) }))).to.throw(InputError, /teacher row 0: its probabilities sum to/);
      // Rounding is allowed; logits have no bounds.
      expect(run(sp({ values: new Float64Array([1e-7, -30, -3, 0]) }))).not.to.throw();
      expect(run(sp({ kind: 'logits', values: new Float64Array([5, 7, 9, 0]) }))).not.to.throw();
    });
    it('reads the teacher once: a getter that detaches the indices gets an InputError, not a read of freed memory', () => {
      const indices = new Int32Array([0, 1, 2, -1]);
      let reads = 0;
      const hostile = {
        indices,
        get values() {
          reads++;
          structuredClone(indices.buffer, { transfer: [indices.buffer as ArrayBuffer] });
          return new Float64Array([-1, -2, -3, 0]);
        },
        rows: 2,
        k: 2,
        kind: 'logprobs',
      } as unknown as SparseTeacher;
      expect(run(hostile)).to.throw(InputError, /teacher.indices: its ArrayBuffer is detached/);
      expect(reads).to.equal(1);
    });
    it('gradOut may not overlap the teacher', () => {
      const buf = new Float64Array(8);
      const t = sp({ values: buf.subarray(0, 4) });
      expect(() => new DistillationLoss(2, 0.5).forward(s, t, [0, 1], { gradOut: buf })).to.throw(InputError, /teacher.values/);
    });
  });
});

const addon = rawAddon() as unknown as { sparseKd: (p: Float64Array, async: boolean, ...b: unknown[]) => unknown } | null;

(addon === null ? describe.skip : describe)('raw sparseKd entry', () => {
  const params = (rows: number, cols: number, k: number) => {
    const p = new Float64Array(SparseKdSlot.Length);
    p[SparseKdSlot.Rows] = rows;
    p[SparseKdSlot.Cols] = cols;
    p[SparseKdSlot.K] = k;
    p[SparseKdSlot.Threads] = 1;
    p[SparseKdSlot.Dtype] = 1;
    p[SparseKdSlot.Temperature] = 2;
    p[SparseKdSlot.IgnoreIndex] = -100;
    p[SparseKdSlot.SoftWeight] = 1;
    return p;
  };
  it('refuses hostile indices before any kernel reads them, never crashing', () => {
    const a = addon!;
    const s = new Float64Array(6);
    const g = new Float64Array(6);
    for (const bad of [3, -2, 2147483647, -2147483648, 1 << 30]) {
      expect(codeOf(() => a.sparseKd(params(2, 3, 2), false, s, new Int32Array([0, bad, 1, 2]), new Float64Array(4), null, g))).to.equal('ERR_KD_INPUT');
    }
    expect(codeOf(() => a.sparseKd(params(2, 3, 2), false, s, new Int32Array([1, 1, 1, 2]), new Float64Array(4)))).to.equal('ERR_KD_INPUT');
    expect(codeOf(() => a.sparseKd(params(2, 3, 4), false, s, new Int32Array(8), new Float64Array(8)))).to.equal('ERR_KD_SHAPE');
    expect(codeOf(() => a.sparseKd(params(2, 3, 2), false, s, new Int32Array(3), new Float64Array(4)))).to.equal('ERR_KD_SHAPE');
    expect(codeOf(() => a.sparseKd(params(2, 3, 2), false, s, new Float64Array(4), new Float64Array(4)))).to.equal('ERR_KD_INPUT');
    const p = params(2, 3, 2);
    p[SparseKdSlot.Divergence] = 1;
    expect(codeOf(() => a.sparseKd(p, false, s, new Int32Array([0, 1, 1, 2]), new Float64Array(4)))).to.equal('ERR_KD_CONFIG');
    const q = params(2, 3, 2);
    q[SparseKdSlot.Tail] = 1; // tail with logits
    expect(codeOf(() => a.sparseKd(q, false, s, new Int32Array([0, 1, 1, 2]), new Float64Array(4)))).to.equal('ERR_KD_CONFIG');
    // The gradient may not overlap the teacher's arrays.
    const shared = new Float64Array(10);
    expect(codeOf(() => a.sparseKd(params(2, 3, 2), false, s, new Int32Array([0, 1, 1, 2]), shared.subarray(0, 4), null, shared.subarray(3, 9)))).to.equal('ERR_KD_INPUT');
    // And a valid call computes.
    const ok = params(2, 3, 2);
    a.sparseKd(ok, false, s, new Int32Array([0, -1, 1, 2]), new Float64Array([1, 0, 2, 3]), null, g);
    expect(Number.isFinite(ok[SparseKdSlot.SoftSum])).to.equal(true);
  });
});
