// The raw addon checks everything again itself: garbage gets a coded error, never a crash, and no
// user code (getter, Proxy trap, valueOf) runs inside the binding.
import { expect } from 'chai';
import { AttentionSlot, FeatureSlot, KdSlot, TargetKindCode } from '../dist/backend/layout';
import { attentionParams, codeOf, featureParams, kdParams, rawAddon } from './helpers/addon';

const addon = rawAddon();
const f64 = (n: number) => new Float64Array(n);
const none = [null, null, null, null, null, null] as const; // hardTargets, grad, mask, argmax, rowSoft, rowHard

(addon === null ? describe.skip : describe)('raw addon', () => {
  const a = addon!;

  it('rejects missing and mistyped arguments with ERR_KD_INPUT', () => {
    expect(codeOf(() => a.kd(undefined as unknown as Float64Array, false))).to.equal('ERR_KD_INPUT');
    expect(codeOf(() => a.kd(kdParams(2, 3), 'no' as unknown as boolean, f64(6), f64(6)))).to.equal('ERR_KD_INPUT');
    expect(codeOf(() => a.kd([2, 3] as unknown as Float64Array, false, f64(6), f64(6)))).to.equal('ERR_KD_INPUT');
    expect(codeOf(() => a.kd(new Float32Array(KdSlot.Length) as unknown as Float64Array, false, f64(6), f64(6)))).to.equal('ERR_KD_INPUT');
    expect(codeOf(() => a.kd(kdParams(2, 3), false, f64(6), new Float32Array(6)))).to.equal('ERR_KD_INPUT');
    expect(codeOf(() => a.kd(kdParams(2, 3), false, f64(6), [1, 2, 3, 4, 5, 6]))).to.equal('ERR_KD_INPUT');
    expect(codeOf(() => a.kd(kdParams(2, 3), false, f64(6)))).to.equal('ERR_KD_INPUT'); // no teacher
    expect(codeOf(() => a.feature(featureParams(1, [1]), false, null, [{}], f64(1)))).to.equal('ERR_KD_INPUT');
    expect(codeOf(() => a.attention(attentionParams(1, 1), false, f64(1), 'x'))).to.equal('ERR_KD_INPUT');
    expect(codeOf(() => a.vecmath('cos', f64(1), f64(1)))).to.equal('ERR_KD_INPUT');
    expect(codeOf(() => a.vecmath('exp', f64(2), f64(1)))).to.equal('ERR_KD_SHAPE');
  });

  it('rejects params of the wrong length and thread counts outside [1, 1024]', () => {
    expect(codeOf(() => a.kd(f64(KdSlot.Length - 1), false, f64(6), f64(6)))).to.equal('ERR_KD_SHAPE');
    expect(codeOf(() => a.attention(f64(AttentionSlot.Length + 1), false, f64(1), f64(1)))).to.equal('ERR_KD_SHAPE');
    expect(codeOf(() => a.feature(featureParams(1, [1, 1]).subarray(0, FeatureSlot.Length + 3), false, null, f64(1), f64(1), null))).to.equal(
      'ERR_KD_SHAPE',
    );
    for (const threads of [0, -1, 1.5, 5000, NaN]) {
      expect(codeOf(() => a.attention(attentionParams(1, 1, { [AttentionSlot.Threads]: threads }), false, f64(1), f64(1)))).to.equal('ERR_KD_CONFIG');
      expect(codeOf(() => a.kd(kdParams(2, 3, 0, { [KdSlot.Threads]: threads }), false, f64(6), f64(6)))).to.equal('ERR_KD_CONFIG');
    }
  });

  it('takes absent optional buffers as absent and checks present ones', () => {
    expect(codeOf(() => a.kd(kdParams(2, 3), false, f64(6), f64(6), ...none))).to.equal('no error');
    expect(codeOf(() => a.kd(kdParams(2, 3), false, f64(6), f64(6), null, null, 'mask'))).to.equal('ERR_KD_INPUT');
    expect(codeOf(() => a.kd(kdParams(2, 3), false, f64(6), f64(6), null, null, new Uint8Array(3)))).to.equal('ERR_KD_SHAPE');
    expect(codeOf(() => a.kd(kdParams(2, 3), false, f64(6), f64(6), null, f64(5)))).to.equal('ERR_KD_SHAPE');
    expect(codeOf(() => a.kd(kdParams(2, 3), false, f64(6), f64(6), null, null, null, new Int32Array(2)))).to.equal('ERR_KD_SHAPE');
    expect(codeOf(() => a.kd(kdParams(2, 3), false, f64(6), f64(6), null, null, null, new Uint32Array(4)))).to.equal('ERR_KD_INPUT');
  });

  it('rejects lengths that do not match the shape it is told, including overflowing shapes', () => {
    expect(codeOf(() => a.kd(kdParams(2, 3), false, f64(5), f64(6)))).to.equal('ERR_KD_SHAPE');
    expect(codeOf(() => a.kd(kdParams(2 ** 40, 2 ** 40), false, f64(6), f64(6)))).to.equal('ERR_KD_SHAPE');
    expect(codeOf(() => a.kd(kdParams(-2, -3), false, f64(6), f64(6)))).to.equal('ERR_KD_SHAPE');
    expect(codeOf(() => a.kd(kdParams(2, 3, TargetKindCode.Matrix), false, f64(6), f64(6), f64(5)))).to.equal('ERR_KD_SHAPE');
    expect(codeOf(() => a.kd(kdParams(2, 3, TargetKindCode.Int32), false, f64(6), f64(6), new Int32Array(1)))).to.equal('ERR_KD_SHAPE');
    expect(codeOf(() => a.attention(attentionParams(2, 3), false, f64(4), f64(6)))).to.equal('ERR_KD_SHAPE');
    expect(codeOf(() => a.feature(featureParams(2, [4]), false, null, f64(6), f64(6), null))).to.equal('ERR_KD_SHAPE');
  });

  it('refuses argmax of rows wider than an Int32Array can index before looking at any buffer', () => {
    const err = (() => {
      try {
        a.kd(kdParams(1, 2 ** 31), false, f64(1), f64(1), null, null, null, new Int32Array(2));
      } catch (e) {
        return e as { code?: string; message: string };
      }
      return null;
    })();
    expect(err?.code).to.equal('ERR_KD_SHAPE');
    expect(err?.message).to.match(/^argmax: rows of 2147483648 columns/);
  });

  it('rejects out-of-range class indices before any kernel reads them', () => {
    expect(codeOf(() => a.kd(kdParams(2, 3, TargetKindCode.Int32), false, f64(6), f64(6), new Int32Array([0, 1 << 30])))).to.equal('ERR_KD_INPUT');
    expect(codeOf(() => a.kd(kdParams(2, 3, TargetKindCode.Uint32), false, f64(6), f64(6), new Uint32Array([0, 0xffffffff])))).to.equal('ERR_KD_INPUT');
    // A masked-out row's index is still checked; the ignore index is not.
    expect(codeOf(() => a.kd(kdParams(2, 3, TargetKindCode.Int32), false, f64(6), f64(6), new Int32Array([0, 3]), null, new Uint8Array([1, 0])))).to.equal(
      'ERR_KD_INPUT',
    );
    expect(codeOf(() => a.kd(kdParams(2, 3, TargetKindCode.Int32), false, f64(6), f64(6), new Int32Array([0, -100])))).to.equal('no error');
  });

  it('rejects configuration it is handed out of domain', () => {
    expect(codeOf(() => a.kd(kdParams(2, 3, TargetKindCode.Int32, { [KdSlot.Temperature]: NaN }), false, f64(6), f64(6), new Int32Array(2)))).to.equal(
      'ERR_KD_CONFIG',
    );
    expect(codeOf(() => a.kd(kdParams(2, 3, 0, { [KdSlot.Normalizer]: -1 }), false, f64(6), f64(6)))).to.equal('ERR_KD_CONFIG');
    expect(codeOf(() => a.kd(kdParams(2, 3, 0, { [KdSlot.Reduction]: 3 }), false, f64(6), f64(6)))).to.equal('ERR_KD_CONFIG');
    expect(codeOf(() => a.kd(kdParams(2, 3, 0, { [KdSlot.Dtype]: 7 }), false, f64(6), f64(6)))).to.equal('ERR_KD_INPUT');
    expect(codeOf(() => a.attention(attentionParams(2, 3, { [AttentionSlot.Beta]: -1 }), false, f64(6), f64(6)))).to.equal('ERR_KD_CONFIG');
    expect(codeOf(() => a.feature(featureParams(1, [1], { [FeatureSlot.P]: 3 }), false, null, f64(1), f64(1), null))).to.equal('ERR_KD_CONFIG');
  });

  it('computes when everything is right and writes the results into params', () => {
    const p = kdParams(2, 3, TargetKindCode.Int32);
    a.kd(p, false, f64(6), f64(6), new Int32Array([0, 2]));
    expect(p[KdSlot.Kept]).to.equal(2);
    expect(p[KdSlot.HardSum]).to.be.closeTo(2 * Math.log(3), 1e-12); // cross-entropy of uniform logits
    const fp = featureParams(2, [3]);
    a.feature(fp, false, null, new Float64Array([1, 1, 1, 1, 1, 1]), f64(6), null);
    expect(fp[FeatureSlot.Length + 2]).to.equal(6);
  });

  it('runs no user code: getters, Proxy traps and valueOf are never invoked', () => {
    let calls = 0;
    const trap = new Proxy(f64(6), {
      get(target, key) {
        calls++;
        return Reflect.get(target, key);
      },
    });
    const getter = Object.create(Float64Array.prototype, { length: { get: () => (calls++, 6) } });
    const numberish = { valueOf: () => (calls++, 2) };
    expect(codeOf(() => a.kd(kdParams(2, 3), false, trap, f64(6)))).to.equal('ERR_KD_INPUT');
    expect(codeOf(() => a.kd(kdParams(2, 3), false, f64(6), getter))).to.equal('ERR_KD_INPUT');
    expect(codeOf(() => a.kd(numberish as unknown as Float64Array, numberish as unknown as boolean, f64(6), f64(6)))).to.equal('ERR_KD_INPUT');
    expect(codeOf(() => a.feature(featureParams(2, [3]), false, null, trap, getter, null))).to.equal('ERR_KD_INPUT');
    expect(calls).to.equal(0);
  });

  it('refuses an output that overlaps another buffer, and allows the gradient over the student exactly', () => {
    const buf = new ArrayBuffer(8 * 12);
    const s = new Float64Array(buf, 0, 6);
    const t = new Float64Array(6);
    const shifted = new Float64Array(buf, 8 * 3, 6); // the student's buffer shifted by one row
    expect(codeOf(() => a.kd(kdParams(2, 3), false, s, t, null, shifted))).to.equal('ERR_KD_INPUT');
    expect(codeOf(() => a.kd(kdParams(2, 3), false, s, t, null, s))).to.equal('no error');
    // Outputs over inputs other than the student, over each other, or over params.
    expect(codeOf(() => a.kd(kdParams(2, 3), false, s, t, null, t))).to.equal('ERR_KD_INPUT');
    const rows = new Float64Array(2);
    expect(codeOf(() => a.kd(kdParams(2, 3), false, s, t, null, null, null, null, rows, rows))).to.equal('ERR_KD_INPUT');
    const p = kdParams(2, 3);
    expect(codeOf(() => a.kd(p, false, s, t, null, null, null, null, new Float64Array(p.buffer, 0, 2)))).to.equal('ERR_KD_INPUT');
    const mask = new Uint8Array(buf, 8, 2);
    expect(codeOf(() => a.kd(kdParams(2, 3), false, s, t, null, new Float64Array(buf, 0, 6), mask))).to.equal('ERR_KD_INPUT');
    // A student read twice (as teacher too) is fine while nothing writes it.
    expect(codeOf(() => a.kd(kdParams(2, 3), false, s, s))).to.equal('no error');
    expect(codeOf(() => a.kd(kdParams(2, 3), false, s, s, null, s))).to.equal('ERR_KD_INPUT');
    // vecmath: in place is fine, shifted is not.
    const x = new Float64Array(buf, 0, 4);
    expect(codeOf(() => a.vecmath('exp', x, x))).to.equal('no error');
    expect(codeOf(() => a.vecmath('exp', x, new Float64Array(buf, 8, 4)))).to.equal('ERR_KD_INPUT');
  });

  it('refuses a second setup and async calls over a resizable ArrayBuffer', async () => {
    expect(codeOf(() => a.setup({ pin: () => true }))).to.equal('ERR_KD_CONFIG');
    const AB = ArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => ArrayBuffer;
    let rab: ArrayBuffer;
    try {
      rab = new AB(48, { maxByteLength: 96 });
    } catch {
      return; // a runtime without resizable ArrayBuffers
    }
    const s = new Float64Array(rab, 0, 6);
    expect(codeOf(() => a.kd(kdParams(2, 3), true, s, f64(6)))).to.equal('ERR_KD_INPUT');
    expect(codeOf(() => a.kd(kdParams(2, 3), false, s, f64(6)))).to.equal('no error');
    const h = a.kd(kdParams(2, 3), true, f64(6), f64(6))!;
    await h.promise;
  });
});
