// kdloss eval on 16-bit logits (float16 .npy, F16 and BF16 safetensors): read as their raw bits and
// handed to the library without widening. What the command line does itself (reading, checks, one-hot
// 16-bit labels, shards) is tested everywhere; the end-to-end evaluations need the library's 16-bit
// support and are skipped where the library does not have it yet (halfSupported below).
import { expect } from 'chai';
import * as path from 'path';
import { DistillationLoss } from 'kdloss';
import { COLS, expectInputError, ROOT, ROWS, runCli, runJson, S32, T32, tempDir, Y } from './helpers/cli';
import { toInt64, writeNpy } from './helpers/npy';
import { oneHot } from './helpers/random';
import { toBf16Bits, toF16Bits, toHalf, writeSafetensors } from './helpers/safetensors';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const chunks = require(path.join(ROOT, 'dist', 'cli', 'chunks.js')) as typeof import('../dist/cli/chunks');

/** Whether the library takes { data: Uint16Array, rows, cols, dtype } matrices. */
const halfSupported = ((): boolean => {
  try {
    const m = { data: new Uint16Array(2), rows: 1, cols: 2, dtype: 'bfloat16' } as never;
    new DistillationLoss(1, 1).computeDistillation(m, m, [0]);
    return true;
  } catch {
    return false;
  }
})();
const itHalf = halfSupported ? it : it.skip;

describe('kdloss eval: 16-bit logits', () => {
  const tmp = tempDir('kdloss-cli-half-');
  const f = tmp.f;
  const half = {
    float16: { s: toHalf(S32.data, 'float16'), t: toHalf(T32.data, 'float16') },
    bfloat16: { s: toHalf(S32.data, 'bfloat16'), t: toHalf(T32.data, 'bfloat16') },
  };
  before(() => {
    writeNpy(f('y.npy'), toInt64(Y), [ROWS]);
    for (const dt of ['float16', 'bfloat16'] as const) {
      const { s, t } = half[dt];
      const st = dt === 'float16' ? 'F16' : 'BF16';
      writeSafetensors(f(`${dt}.safetensors`), {
        student: { dtype: st, shape: [ROWS, COLS], data: s.bits },
        teacher: { dtype: st, shape: [5, ROWS / 5, COLS], data: t.bits },
        onehot: { dtype: st, shape: [ROWS, COLS], data: Uint16Array.from(oneHot(Y, COLS).data, (v, i) => (v === 1 ? (dt === 'float16' ? 0x3c00 : 0x3f80) : i % 2 ? 0x8000 : 0)) },
      });
      // The exactly widened values, in float32: what the 16-bit results must equal.
      writeNpy(f(`${dt}-widened-s.npy`), s.widened, [ROWS, COLS]);
      writeNpy(f(`${dt}-widened-t.npy`), t.widened, [ROWS, COLS]);
    }
    writeNpy(f('f16-s.npy'), half.float16.s.bits, [ROWS, COLS], { descr: '<f2' });
    writeNpy(f('f16-t.npy'), half.float16.t.bits, [ROWS, COLS], { descr: '<f2' });
  });

  it('rounds and widens the test data as IEEE does (helpers)', () => {
    expect([toF16Bits(1), toF16Bits(-2), toF16Bits(65504), toF16Bits(65520), toF16Bits(2 ** -24), toF16Bits(2 ** -25), toF16Bits(3 * 2 ** -25)]).to.deep.equal([
      0x3c00, 0xc000, 0x7bff, 0x7c00, 0x0001, 0x0000, 0x0002,
    ]);
    expect([toBf16Bits(1), toBf16Bits(1 + 2 ** -8), toBf16Bits(1 + 3 * 2 ** -8), toBf16Bits(-Infinity)]).to.deep.equal([0x3f80, 0x3f80, 0x3f82, 0xff80]);
  });

  it('reads float16 .npy and F16/BF16 safetensors as their raw bits, in any row range, one-hot 16-bit labels as classes', async () => {
    const cases = [
      { spec: { student: f('f16-s.npy'), teacher: f('f16-t.npy') }, dt: 'float16' as const },
      ...(['float16', 'bfloat16'] as const).map((dt) => ({
        spec: { student: f(`${dt}.safetensors`), studentKey: 'student', teacher: f(`${dt}.safetensors`), teacherKey: 'teacher', labels: f(`${dt}.safetensors`), labelsKey: 'onehot' },
        dt,
      })),
    ];
    for (const { spec, dt } of cases) {
      const inputs = await chunks.openInputs(spec);
      try {
        expect([inputs.rows, inputs.cols, inputs.dtype]).to.deep.equal([ROWS, COLS, dt]);
        let seen = 0;
        for await (const c of new chunks.ChunkReader(inputs, 4, { start: 13, end: 38 }).chunks()) {
          expect(c.student).to.be.instanceOf(Uint16Array);
          expect(Array.from(c.student)).to.deep.equal(Array.from(half[dt].s.bits.subarray(c.row * COLS, (c.row + c.rows) * COLS)));
          expect(Array.from(c.teacher!)).to.deep.equal(Array.from(half[dt].t.bits.subarray(c.row * COLS, (c.row + c.rows) * COLS)));
          if (c.labels) expect(Array.from(c.labels)).to.deep.equal(Array.from(Y.subarray(c.row, c.row + c.rows)));
          seen += c.rows;
        }
        expect(seen).to.equal(25);
      } finally {
        await chunks.closeInputs(inputs);
      }
    }
  });

  it('refuses 16-bit logits of two formats, and 16-bit labels that are not one-hot', async () => {
    const r = await runCli(['eval', '--student', f('float16.safetensors'), '--student-key', 'student', '--teacher', f('bfloat16.safetensors'), '--teacher-key', 'teacher']);
    expectInputError(r, f('bfloat16.safetensors'), /tensor 'teacher': dtype bfloat16 does not match .*float16\.safetensors \[student\] \(float16\)/);
    const bad = Uint16Array.from(oneHot(Y, COLS).data, (v) => (v === 1 ? 0x3c00 : 0));
    bad[9 * COLS] = 0x0001; // the smallest float16 subnormal: not zero
    writeSafetensors(f('bad-onehot.safetensors'), { y: { dtype: 'F16', shape: [ROWS, COLS], data: bad } });
    const r2 = await runCli(['eval', '--student', f('f16-s.npy'), '--teacher', f('f16-t.npy'), '--labels', f('bad-onehot.safetensors')]);
    expectInputError(r2, f('bad-onehot.safetensors'), /tensor 'y': row 9 is not one-hot/);
  });

  for (const dt of ['float16', 'bfloat16'] as const) {
    itHalf(`${dt}: equals the evaluation of the exactly widened float32 values (float32 tolerance), shards merged bit for bit`, async () => {
      const widened = await runJson(['eval', '--student', f(`${dt}-widened-s.npy`), '--teacher', f(`${dt}-widened-t.npy`), '--labels', f('y.npy')]);
      const file = f(`${dt}.safetensors`);
      const args = ['eval', '--student', file, '--student-key', 'student', '--teacher', file, '--teacher-key', 'teacher', '--labels', f('y.npy')];
      const runs = [await runJson(args)];
      if (dt === 'float16') runs.push(await runJson(['eval', '--student', f('f16-s.npy'), '--teacher', f('f16-t.npy'), '--labels', f('y.npy')]));
      for (const out of runs) {
        expect(out.dtype).to.equal(dt);
        for (const k of ['loss', 'soft', 'hard']) expect(Math.abs(out[k] - widened[k]), k).to.be.at.most(1e-6 * Math.abs(widened[k]));
        expect(out.counts).to.deep.equal(widened.counts);
        expect(out.perClass.map((c: any) => c.support)).to.deep.equal(widened.perClass.map((c: any) => c.support));
      }
      const parts = await Promise.all([1, 2, 3].map((i) => runJson([...args, '--shard', `${i}/3`])));
      parts.forEach((p, i) => require('fs').writeFileSync(f(`${dt}-part${i}.json`), JSON.stringify(p)));
      const merged = await runJson(['merge', f(`${dt}-part2.json`), f(`${dt}-part0.json`), f(`${dt}-part1.json`)]);
      for (const k of ['loss', 'soft', 'hard', 'counts', 'perClass', 'klHistogram', 'tokens']) expect(merged[k], k).to.deep.equal(runs[0][k]);
    });
  }
});
