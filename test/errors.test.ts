// Every validation path: bad input gets a typed KdError with a stable code and a message naming the
// argument and expected vs actual, on both backends (the raw addon: raw-addon.test.ts).
import { expect } from 'chai';
import {
  AttentionTransferLoss,
  ConfigError,
  CrossEntropyLoss,
  DistillationLoss,
  FeatureDistillationLoss,
  InputError,
  KdError,
  type Loss,
  MseLoss,
  setBackend,
  ShapeError,
} from 'kdloss';
import { forEachBackend } from './helpers/backends';

type ErrorClass = typeof ConfigError | typeof ShapeError | typeof InputError;

function expectKdError(fn: () => unknown, cls: ErrorClass, code: string, message?: RegExp | string): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught, 'expected an error').to.be.instanceOf(cls);
  expect(caught).to.be.instanceOf(KdError);
  expect((caught as KdError).code).to.equal(code);
  if (message !== undefined) {
    if (typeof message === 'string') expect((caught as Error).message).to.equal(message);
    else expect((caught as Error).message).to.match(message);
  }
}

const config = (fn: () => unknown, msg?: RegExp | string) => expectKdError(fn, ConfigError, 'ERR_KD_CONFIG', msg);
const shape = (fn: () => unknown, msg?: RegExp | string) => expectKdError(fn, ShapeError, 'ERR_KD_SHAPE', msg);
const input = (fn: () => unknown, msg?: RegExp | string) => expectKdError(fn, InputError, 'ERR_KD_INPUT', msg);

const m = (rows: number, cols: number, fill = 0.5) => ({ data: new Float64Array(rows * cols).fill(fill), rows, cols });
const m32 = (rows: number, cols: number) => ({ data: new Float32Array(rows * cols).fill(0.5), rows, cols });

describe('configuration errors (ERR_KD_CONFIG)', () => {
  it('rejects temperatures that are not finite numbers > 0, including NaN and Infinity', () => {
    for (const t of [0, -1, NaN, Infinity, -Infinity]) {
      config(() => new DistillationLoss(t, 0.5), /^temperature: expected a finite number > 0/);
    }
    config(() => new DistillationLoss('2' as unknown as number, 0.5), /^temperature: expected a number/);
  });

  it('rejects alpha NaN or outside [0, 1] and accepts both ends', () => {
    for (const a of [NaN, -0.1, 1.1, Infinity]) config(() => new DistillationLoss(2, a), /^alpha: expected a number in \[0, 1\]/);
    expect(new DistillationLoss(2, 0).alpha).to.equal(0);
    expect(new DistillationLoss(2, 1).alpha).to.equal(1);
  });

  it('rejects a hard loss without a compute function', () => {
    config(() => new DistillationLoss(2, 0.5, {} as Loss), /^hardLoss: expected an object with a compute/);
    config(() => new DistillationLoss(2, 0.5, null as unknown as Loss), /^hardLoss/);
  });

  it('rejects empty layer weights, non-finite or negative weights and norms other than 1 or 2', () => {
    config(() => new FeatureDistillationLoss([], 2), /^layerWeights: expected a non-empty array/);
    for (const w of [NaN, Infinity, -0.5]) config(() => new FeatureDistillationLoss([1, w], 2), /^layerWeights\[1\]: expected a finite number >= 0/);
    for (const p of [0, 3, 1.5, NaN]) config(() => new FeatureDistillationLoss([1], p as 1 | 2), /^pNorm: expected 1 or 2/);
  });

  it('rejects beta that is not a finite number > 0', () => {
    for (const b of [0, -2, NaN, Infinity]) config(() => new AttentionTransferLoss(b), /^beta: expected a finite number > 0/);
  });

  it('rejects cross-entropy options out of domain', () => {
    config(() => new CrossEntropyLoss({ epsilon: -1 }), /^epsilon/);
    config(() => new CrossEntropyLoss({ epsilon: 0.5 }), /^epsilon/);
    config(() => new CrossEntropyLoss({ labelSmoothing: 1.5 }), /^labelSmoothing/);
    config(() => new CrossEntropyLoss({ labelSmoothing: NaN }), /^labelSmoothing/);
    config(() => new CrossEntropyLoss({ ignoreIndex: 0.5 }), /^ignoreIndex/);
    config(() => new CrossEntropyLoss({ fromLogits: 'yes' as unknown as boolean }), /^fromLogits/);
  });

  it('rejects an unknown reduction and an unknown backend', () => {
    const kd = new DistillationLoss(2, 0.5);
    config(() => kd.forward(m(1, 2), m(1, 2), [0], { reduction: 'avg' as 'mean' }), /^reduction/);
    config(() => setBackend('gpu' as 'js'), /^backend: expected 'native' or 'js'/);
  });
});

forEachBackend('shape errors (ERR_KD_SHAPE)', () => {
  const kd = new DistillationLoss(2, 0.5);

  it('names the argument and the expected vs actual shape', () => {
    shape(() => kd.computeDistillation(m(2, 3), m(2, 4), [0, 1]), 'teacher: expected shape [2, 3], got [2, 4]');
    shape(() => kd.computeDistillation(m(2, 3), m(2, 3), m(3, 3)), 'hardTargets: expected shape [2, 3], got [3, 3]');
  });

  it('rejects zero rows or columns', () => {
    shape(() => kd.computeDistillation({ data: new Float64Array(0), rows: 0, cols: 3 }, m(1, 3), [0]), /^student.rows: expected a positive integer, got 0/);
    shape(() => kd.computeDistillation({ data: new Float64Array(0), rows: 2, cols: 0 }, m(2, 1), [0, 0]), /^student.cols/);
    shape(() => kd.computeDistillation([], [], []), /^student: expected at least 1 row, got 0/);
    shape(() => kd.computeDistillation([[]], [[]], [0]), /^student: expected at least 1 column, got 0/);
  });

  it('rejects a data length that does not match rows * cols', () => {
    shape(() => kd.computeDistillation({ data: new Float64Array(5), rows: 2, cols: 3 }, m(2, 3), [0, 1]), 'student: data length 5 does not match shape [2, 3] (expected 6)');
  });

  it('rejects non-integer dimensions', () => {
    shape(() => kd.computeDistillation({ data: new Float64Array(6), rows: 1.5, cols: 4 }, m(2, 3), [0, 1]), /^student.rows/);
  });

  it('rejects class indices whose count is not the row count', () => {
    shape(() => kd.computeDistillation(m(2, 3), m(2, 3), [0]), 'hardTargets: expected 2 class indices (one per row), got 1');
    shape(() => kd.computeDistillation(m(2, 3), m(2, 3), new Int32Array(3)), /^hardTargets: expected 2 class indices/);
  });

  it('rejects a mask or gradient buffer of the wrong length', () => {
    shape(() => kd.forward(m(2, 3), m(2, 3), [0, 1], { mask: new Uint8Array(3) }), 'mask: expected length 2, got 3');
    shape(() => kd.forward(m(2, 3), m(2, 3), [0, 1], { gradOut: new Float64Array(5) }), 'gradOut: expected length 6, got 5');
  });

  it('rejects layer-count mismatches and mismatched layers', () => {
    const f = new FeatureDistillationLoss([1, 1], 2);
    shape(() => f.computeFeatureLoss([m(2, 3)], [m(2, 3)]), 'studentFeatures: expected 2 layers (one per layer weight), got 1');
    shape(() => f.computeFeatureLoss([m(2, 3), m(2, 4)], [m(2, 3)]), 'teacherFeatures: expected 2 layers like studentFeatures, got 1');
    shape(() => f.computeFeatureLoss([m(2, 3), m(2, 4)], [m(2, 3), m(2, 5)]), 'teacherFeatures[1]: expected shape [2, 4], got [2, 5]');
    shape(() => f.computeFeatureLoss([m(2, 3), m(3, 4)], [m(2, 3), m(3, 4)]), 'studentFeatures[1]: expected 2 rows like layer 0, got 3');
  });

  it('rejects attention maps of different shapes', () => {
    shape(() => new AttentionTransferLoss(2).computeAttentionLoss(m(2, 3), m(3, 2)), 'teacherAttention: expected shape [2, 3], got [3, 2]');
  });
});

forEachBackend('input errors (ERR_KD_INPUT)', () => {
  const kd = new DistillationLoss(2, 0.5);

  it('rejects wrong types', () => {
    input(() => kd.computeDistillation('x' as never, m(1, 2), [0]), /^student: expected \{ data/);
    input(() => kd.computeDistillation({ data: new Int32Array(2), rows: 1, cols: 2 } as never, m(1, 2), [0]), /^student.data: expected a Float32Array or Float64Array/);
    input(() => kd.computeDistillation([[1, 'a']] as never, [[1, 2]], [0]), /^student\[0\]\[1\]: expected a number/);
    input(() => kd.computeDistillation({ data: new Float64Array(2), rows: '1', cols: 2 } as never, m(1, 2), [0]), /^student.rows: expected a number/);
  });

  it('rejects mixed float dtypes in one call', () => {
    input(() => kd.computeDistillation(m32(1, 2), m(1, 2), [0]), 'teacher: expected float32 like the other inputs of this call, got float64');
    const f = new FeatureDistillationLoss([1, 1], 2);
    input(() => f.computeFeatureLoss([m(1, 2), m32(1, 2)], [m(1, 2), m(1, 2)]), /^studentFeatures\[1\]: expected float64/);
  });

  it('rejects ragged nested arrays', () => {
    input(() => kd.computeDistillation([[1, 2], [3]], [[1, 2], [3, 4]], [0, 1]), 'student: ragged rows: row 0 has 2 columns, row 1 has 1');
  });

  it('rejects class indices out of range or not integers', () => {
    input(() => kd.computeDistillation(m(2, 3), m(2, 3), [0, 3]), 'hardTargets[1]: class index 3 out of range [0, 3)');
    input(() => kd.computeDistillation(m(2, 3), m(2, 3), [0, -1]), /^hardTargets\[1\]: class index -1 out of range/);
    input(() => kd.computeDistillation(m(2, 3), m(2, 3), [0, 1.5]), 'hardTargets[1]: expected an integer class index, got 1.5');
    input(() => kd.computeDistillation(m(2, 3), m(2, 3), new Uint32Array([0, 7])), /^hardTargets\[1\]: class index 7/);
    // -100 is CrossEntropyLoss's ignoreIndex, but not a class for MseLoss.
    input(() => new DistillationLoss(2, 0.5, new MseLoss()).computeDistillation(m(2, 3), m(2, 3), [0, -100]), /out of range/);
  });

  it('rejects a mask that is not a Uint8Array and a gradient buffer of another dtype', () => {
    input(() => kd.forward(m(2, 3), m(2, 3), [0, 1], { mask: [1, 1] as never }), /^mask: expected a Uint8Array/);
    input(() => kd.forward(m(2, 3), m(2, 3), [0, 1], { gradOut: new Float32Array(6) }), 'gradOut: expected float64 like the inputs, got float32');
  });

  it('rejects a gradient request when the user-written hard loss has no gradient, and per-row options it cannot serve', () => {
    const custom: Loss = { name: 'custom', compute: () => 1 };
    const k = new DistillationLoss(2, 0.5, custom);
    input(() => k.forward(m(1, 2), m(1, 2), [0], { grad: true }), /^grad: hardLoss custom has no gradient/);
    input(() => k.forward(m(1, 2), m(1, 2), [0], { reduction: 'none' }), /reduction 'none' needs a built-in hard loss/);
    input(() => k.forward(m(1, 2), m(1, 2), [0], { mask: new Uint8Array(1) }), /mask needs a built-in hard loss/);
  });

  it('rejects a detached buffer', () => {
    const data = new Float64Array(6);
    structuredClone(data.buffer, { transfer: [data.buffer] });
    input(() => kd.computeDistillation({ data, rows: 2, cols: 3 }, m(2, 3), [0, 1]), /^student.data: its ArrayBuffer is detached/);
  });
});
