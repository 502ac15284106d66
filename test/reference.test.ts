// Every loss against PyTorch: the fixtures in test/fixtures (test/fixtures/generate.py) hold float64
// PyTorch references (autograd gradients) for every loss, dtype, hard loss and target form, awkward
// and wide shapes, large logits and extreme temperatures, masks, ignoreIndex rows and reductions. Each
// case runs through the public API on both backends; every result must match within the dtype's
// tolerance relative to max(|ref|, floor) (see test/helpers/fixtures.ts).
//
// KDLOSS_FIXTURE_STATS=1 prints the worst normalised error per dtype, backend, loss and quantity.
import { expect } from 'chai';
import {
  AttentionTransferLoss,
  CrossEntropyLoss,
  DistillationLoss,
  type DistillationForwardOptions,
  FeatureDistillationLoss,
  type FloatArray,
  type Loss,
  type Matrix,
  MseLoss,
} from 'kdloss';
import { forEachBackend } from './helpers/backends';
import {
  decode,
  decodeF64,
  decodeMatrix,
  decodeTargets,
  type DTypeName,
  expectAllClose,
  expectClose,
  fixtures,
  type HardLossConfig,
  rowFloors,
  TOLERANCE,
  toNested,
  worstErrors,
} from './helpers/fixtures';

const kdCases = fixtures.kd();
const hardCases = fixtures.hard();
const featureCases = fixtures.feature();
const attentionCases = fixtures.attention();

function hardLoss(cfg: HardLossConfig): CrossEntropyLoss | MseLoss {
  return cfg.type === 'MseLoss' ? new MseLoss() : new CrossEntropyLoss(cfg.options);
}

function expectDType(a: FloatArray | undefined, dtype: DTypeName, what: string): void {
  expect(a, `${what}: missing`).to.be.instanceOf(dtype === 'float32' ? Float32Array : Float64Array);
}

function snapshot(m: Matrix): FloatArray {
  return m.data.slice();
}

function expectUnchanged(m: Matrix, before: FloatArray, what: string): void {
  expect(Buffer.compare(Buffer.from(m.data.buffer), Buffer.from(before.buffer)), `${what} was modified`).to.equal(0);
}

describe('PyTorch reference fixtures', () => {
  it('cover every loss, both dtypes, every reduction, target form and hard loss', () => {
    const dtypes = (cs: { dtype: string }[]) => new Set(cs.map((c) => c.dtype));
    for (const cs of [kdCases, hardCases, featureCases, attentionCases]) expect([...dtypes(cs)].sort()).to.deep.equal(['float32', 'float64']);
    expect(new Set(kdCases.map((c) => c.options.reduction ?? 'default'))).to.have.all.keys('mean', 'sum', 'none', 'default');
    expect(new Set(kdCases.map((c) => c.targets.form))).to.have.all.keys('matrix', 'int32', 'uint32', 'array');
    expect(new Set(kdCases.map((c) => c.hardLoss.type === 'MseLoss' ? 'mse' : c.hardLoss.options.fromLogits === false ? 'probs' : 'logits')))
      .to.have.all.keys('mse', 'probs', 'logits');
    expect(new Set(featureCases.map((c) => c.options.reduction))).to.have.all.keys('mean', 'sum', 'none');
    expect(new Set(attentionCases.map((c) => c.options.reduction))).to.have.all.keys('mean', 'sum', 'none');
    expect([...new Set(attentionCases.map((c) => c.beta))]).to.include.members([2, 1, 0.5, 3]);
  });
});

forEachBackend('PyTorch reference: DistillationLoss', (backend) => {
  for (const c of kdCases) {
    it(`matches PyTorch for ${c.title}`, () => {
      const tol = TOLERANCE[c.dtype];
      const key = (q: string) => `${c.dtype} ${backend} kd ${q}#${c.id}`;
      const s = decodeMatrix(c.student);
      const t = decodeMatrix(c.teacher);
      const y = decodeTargets(c.targets);
      const before = [snapshot(s), snapshot(t)];
      const nested = c.form === 'nested';
      const args = [
        nested ? toNested(s) : s,
        nested ? toNested(t) : t,
        nested && !Array.isArray(y) && !ArrayBuffer.isView(y) ? toNested(y) : y,
      ] as const;
      const kd = new DistillationLoss(c.temperature, c.alpha, hardLoss(c.hardLoss));
      const opts: DistillationForwardOptions = { ...c.options };
      if (c.mask) opts.mask = decode(c.mask) as Uint8Array;
      let gradOut: FloatArray | undefined;
      if (c.gradOut) {
        gradOut = c.dtype === 'float32' ? new Float32Array(s.rows * s.cols) : new Float64Array(s.rows * s.cols);
        gradOut.fill(Number.NaN); // every element must be written
        opts.gradOut = gradOut;
      }
      const r = kd.forward(args[0], args[1], args[2], opts);

      expectClose(r.loss, c.expected.loss, c.floors.loss, tol, 'loss', key('loss'));
      expectClose(r.soft, c.expected.soft, c.floors.soft, tol, 'soft', key('soft'));
      expectClose(r.hard, c.expected.hard, c.floors.hard, tol, 'hard', key('hard'));
      if (c.expected.perSample) {
        const ref = decodeF64(c.expected.perSample);
        const floor = decodeF64(c.floors.perSample!);
        expect(r.perSample, 'perSample').to.be.instanceOf(Float64Array);
        expectAllClose(r.perSample!, ref, (i) => floor[i], tol, 'perSample', key('perSample'));
      } else {
        expect(r.perSample, 'perSample').to.equal(undefined);
      }
      if (c.expected.grad) {
        const ref = decodeF64(c.expected.grad);
        expectDType(r.grad, c.dtype, 'grad');
        if (gradOut) expect(r.grad, 'grad is the gradOut buffer').to.equal(gradOut);
        expectAllClose(r.grad!, ref, rowFloors(decodeF64(c.floors.gradRows!), s.cols), tol, 'grad', key('grad'));
      } else {
        expect(r.grad, 'grad').to.equal(undefined);
      }
      if (!nested) {
        expectUnchanged(s, before[0], 'student');
        expectUnchanged(t, before[1], 'teacher');
      }
      if (c.options.reduction === undefined && !c.mask && !c.gradOut && !c.options.grad) {
        expect(kd.computeDistillation(args[0], args[1], args[2]), 'computeDistillation').to.equal(r.loss);
      }
    });
  }
});

forEachBackend('PyTorch reference: CrossEntropyLoss and MseLoss', (backend) => {
  for (const c of hardCases) {
    it(`matches PyTorch for ${c.title}`, () => {
      const tol = TOLERANCE[c.dtype];
      const key = (q: string) => `${c.dtype} ${backend} ${c.hardLoss.type} ${q}#${c.id}`;
      const p = decodeMatrix(c.predictions);
      const y = decodeTargets(c.targets);
      const loss: Loss & { compute(p: Matrix, y: unknown): number } = hardLoss(c.hardLoss);
      expectClose(loss.compute(p, y as Matrix), c.expected.loss, c.floors.loss, tol, 'compute', key('loss'));
      const g = loss.gradient!(p, y as Matrix) as Matrix;
      expect([g.rows, g.cols], 'gradient shape').to.deep.equal([p.rows, p.cols]);
      expectDType(g.data, c.dtype, 'gradient');
      const floors = rowFloors(decodeF64(c.floors.gradRows), p.cols);
      expectAllClose(g.data, decodeF64(c.expected.grad), floors, tol, 'gradient', key('grad'));
    });
  }
});

forEachBackend('PyTorch reference: FeatureDistillationLoss', (backend) => {
  for (const c of featureCases) {
    it(`matches PyTorch for ${c.title}`, () => {
      const tol = TOLERANCE[c.dtype];
      const key = (q: string) => `${c.dtype} ${backend} feature ${q}#${c.id}`;
      const ss = c.students.map(decodeMatrix);
      const ts = c.teachers.map(decodeMatrix);
      const r = new FeatureDistillationLoss(c.layerWeights, c.pNorm).forward(ss, ts, c.options);
      expectClose(r.loss, c.expected.loss, c.floors.loss, tol, 'loss', key('loss'));
      expect(r.perLayer, 'perLayer').to.be.instanceOf(Float64Array);
      expectAllClose(r.perLayer, c.expected.perLayer, (l) => c.floors.perLayer[l], tol, 'perLayer', key('perLayer'));
      if (c.expected.perSample) {
        const floor = decodeF64(c.floors.perSample!);
        expectAllClose(r.perSample!, decodeF64(c.expected.perSample), (i) => floor[i], tol, 'perSample', key('perSample'));
      } else {
        expect(r.perSample, 'perSample').to.equal(undefined);
      }
      expect(r.grads, 'grads').to.have.length(ss.length);
      c.expected.grads.forEach((g, l) => {
        expectDType(r.grads![l], c.dtype, `grads[${l}]`);
        const floors = rowFloors(decodeF64(c.floors.gradRows[l]), ss[l].cols);
        expectAllClose(r.grads![l], decodeF64(g), floors, tol, `grads[${l}]`, key('grad'));
      });
    });
  }
});

forEachBackend('PyTorch reference: AttentionTransferLoss', (backend) => {
  for (const c of attentionCases) {
    it(`matches PyTorch for ${c.title}`, () => {
      const tol = TOLERANCE[c.dtype];
      const key = (q: string) => `${c.dtype} ${backend} attention ${q}#${c.id}`;
      const s = decodeMatrix(c.student);
      const t = decodeMatrix(c.teacher);
      const r = new AttentionTransferLoss(c.beta).forward(s, t, c.options);
      expectClose(r.loss, c.expected.loss, c.floors.loss, tol, 'loss', key('loss'));
      if (c.expected.perSample) {
        const floor = decodeF64(c.floors.perSample!);
        expectAllClose(r.perSample!, decodeF64(c.expected.perSample), (i) => floor[i], tol, 'perSample', key('perSample'));
      } else {
        expect(r.perSample, 'perSample').to.equal(undefined);
      }
      expectDType(r.grad, c.dtype, 'grad');
      expectAllClose(r.grad!, decodeF64(c.expected.grad), rowFloors(decodeF64(c.floors.gradRows), s.cols), tol, 'grad', key('grad'));
    });
  }
});

after(() => {
  if (!process.env.KDLOSS_FIXTURE_STATS) return;
  const rows = [...worstErrors.entries()].sort(([a], [b]) => a.localeCompare(b));
  console.log('\nWorst |got - ref| / max(|ref|, floor) per dtype, backend, loss, quantity [and plain |got - ref| / |ref|]:');
  for (const [k, v] of rows) {
    const plain = Number.isNaN(v.plain) ? '' : `  [plain ${v.plain.toExponential(2)} at ${v.plainWhere}]`;
    console.log(`  ${k.padEnd(40)} ${v.err.toExponential(2)} at ${v.where}${plain}`);
  }
});
