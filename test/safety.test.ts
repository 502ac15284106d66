// Hostile and unlucky use: buffers transferred, detached, resized or overlapping, calls aborted,
// Proxies and getters for arguments. Never a crash, never a write after a call has settled, always a
// typed error. Scenarios that would crash the process run in a child process (helpers/hostile.ts).
import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as path from 'path';
import {
  AttentionTransferLoss,
  CrossEntropyLoss,
  DistillationLoss,
  FeatureDistillationLoss,
  getBackend,
  InputError,
  type Loss,
  type Matrix,
} from 'kdloss';
import { forEachBackend } from './helpers/backends';
import { Rng, toF32 } from './helpers/random';

const hostile = path.join(__dirname, 'helpers', 'hostile.js');
const scenarios = spawnSync(process.execPath, [hostile, '--list'], { encoding: 'utf8' }).stdout.trim().split('\n');

describe('async calls against transfer, abort and resize (child processes)', function () {
  this.timeout(120000);
  for (const scenario of scenarios) {
    it(scenario, () => {
      const r = spawnSync(process.execPath, ['--expose-gc', hostile, scenario], { encoding: 'utf8' });
      expect(r.signal, `${scenario} died of a signal: ${r.stderr}`).to.equal(null);
      expect(r.status, r.stderr).to.equal(0);
      expect(r.stdout.trim()).to.equal('ok');
    });
  }
});

forEachBackend('hostile arguments', () => {
  const rng = new Rng(77);
  const m = (rows: number, cols: number) => toF32(rng.matrix(rows, cols));
  const inputError = (fn: () => unknown, pattern: RegExp) => {
    let err: unknown = null;
    try {
      fn();
    } catch (e) {
      err = e;
    }
    expect(err, 'expected an InputError').to.be.instanceOf(InputError);
    expect((err as Error).message).to.match(pattern);
  };

  it('refuses a gradOut that overlaps an input, and computes in place over the student exactly', () => {
    const kd = new DistillationLoss(2, 0.5);
    const rows = 4;
    const cols = 5;
    const buf = new Float32Array((rows + 1) * cols);
    const s = buf.subarray(0, rows * cols);
    s.set(m(rows, cols).data);
    const t = m(rows, cols);
    const y = new Int32Array([0, 1, 2, 3]);
    const shifted = buf.subarray(cols);
    inputError(() => kd.forward({ data: s, rows, cols }, t, y, { gradOut: shifted }), /^gradOut: overlaps the memory of student/);
    inputError(() => kd.forward({ data: s, rows, cols }, t, y, { gradOut: t.data }), /^gradOut: overlaps the memory of teacher/);
    const mask = new Uint8Array(s.buffer, s.byteOffset, rows);
    inputError(() => kd.forward({ data: s, rows, cols }, t, y, { gradOut: new Float32Array(s.buffer, 0, rows * cols), mask }), /overlaps the memory of mask/);
    const expected = kd.forward({ data: s.slice(), rows, cols }, t, y, { grad: true });
    const inPlace = kd.forward({ data: s, rows, cols }, t, y, { gradOut: s });
    expect(inPlace.loss).to.equal(expected.loss);
    expect(Array.from(s)).to.deep.equal(Array.from(expected.grad!));
    // A user-written hard loss reads the student after the kernel: not in place.
    const custom: Loss = { name: 'zero', compute: () => 0, gradient: (p) => new Float32Array(p.rows * p.cols) };
    inputError(() => new DistillationLoss(2, 0.5, custom).forward({ data: s, rows, cols }, t, y, { gradOut: s }), /overlaps the memory of student/);
    const f = new FeatureDistillationLoss([1, 1], 2);
    const big = new Float32Array(12);
    big.set(m(2, 3).data);
    const a = { data: big.subarray(0, 6), rows: 2, cols: 3 };
    const b = m(2, 3);
    inputError(() => f.forward([a, b], [b, a], { gradOut: [big.subarray(3, 9), new Float32Array(6)] }), /^gradOut\[0\]: overlaps the memory of studentFeatures\[0\]/);
    const at = new AttentionTransferLoss(2);
    inputError(() => at.forward(a, b, { gradOut: b.data }), /^gradOut: overlaps the memory of teacherAttention/);
  });

  it('gives InputErrors for Proxies, prototype impostors and a gradient without data', () => {
    const kd = new DistillationLoss(2, 0.5);
    const s = m(2, 3);
    const t = m(2, 3);
    const proxy = new Proxy(s.data, {});
    inputError(() => kd.forward({ data: proxy, rows: 2, cols: 3 }, t, [0, 1]), /^student.data: expected a Float32Array or Float64Array/);
    const impostor = Object.create(Float32Array.prototype) as Float32Array;
    inputError(() => kd.forward({ data: impostor, rows: 2, cols: 3 }, t, [0, 1]), /^student.data: expected a Float32Array or Float64Array/);
    inputError(() => kd.forward(s, t, new Proxy(new Int32Array(2), {}) as unknown as Int32Array), /hardTargets/);
    inputError(() => kd.forward(s, t, [0, 1], { mask: new Proxy(new Uint8Array(2), {}) }), /^mask: expected a Uint8Array/);
    inputError(() => kd.forward(s, t, [0, 1], { gradOut: new Proxy(new Float32Array(6), {}) }), /^gradOut: expected a Float32Array or Float64Array/);
    const nullData: Loss = { name: 'nullData', compute: () => 0, gradient: () => ({ data: null }) as unknown as Matrix };
    inputError(() => new DistillationLoss(2, 0.5, nullData).forward(s, t, [0, 1], { grad: true }), /^hardLoss nullData: gradient: expected a matrix whose data/);
    // A user's own exception from a getter passes through unchanged.
    const boom = new Error('boom');
    const throwing = {
      get data(): Float32Array {
        throw boom;
      },
      rows: 2,
      cols: 3,
    };
    expect(() => kd.forward(throwing, t, [0, 1])).to.throw(boom);
  });

  it('reads each argument once: a data getter that changes its answer cannot mix dtypes', () => {
    const kd = new DistillationLoss(2, 0.5);
    let reads = 0;
    const f32 = m(2, 3).data;
    const shifty = {
      get data(): Float32Array | Float64Array {
        reads++;
        return reads === 1 ? f32 : Float64Array.from(f32);
      },
      rows: 2,
      cols: 3,
    };
    const r = kd.forward(shifty, { data: f32, rows: 2, cols: 3 }, [0, 1]);
    expect(reads).to.equal(1);
    expect(r.loss).to.equal(kd.forward({ data: f32, rows: 2, cols: 3 }, { data: f32, rows: 2, cols: 3 }, [0, 1]).loss);
    let optionReads = 0;
    const options = {
      get gradOut(): Float32Array {
        optionReads++;
        return new Float32Array(6);
      },
    };
    kd.forward({ data: f32, rows: 2, cols: 3 }, { data: f32, rows: 2, cols: 3 }, [0, 1], options);
    expect(optionReads).to.equal(1);
  });

  it('reads a layer array once: a getter that detaches an earlier layer gets an InputError', () => {
    const f = new FeatureDistillationLoss([1, 1], 2);
    const l0 = m(2, 3);
    const l1 = m(2, 3);
    const layers = [l0, l1];
    let detached = false;
    const hostileLayers = new Proxy(layers, {
      get(target, key, receiver) {
        if (key === '1' && !detached) {
          detached = true;
          structuredClone(l0.data.buffer, { transfer: [l0.data.buffer as ArrayBuffer] });
        }
        return Reflect.get(target, key, receiver);
      },
    });
    inputError(() => f.forward(hostileLayers, [m(2, 3), m(2, 3)]), /^studentFeatures\[0\]\.data: its ArrayBuffer is detached/);
  });

  it('checks class indices where they are read: out of range is an InputError', () => {
    const ce = new CrossEntropyLoss();
    inputError(() => ce.compute(m(2, 3), new Int32Array([0, 3])), /class index 3 out of range \[0, 3\)/);
    expect(getBackend()).to.be.oneOf(['native', 'js']);
  });
});
