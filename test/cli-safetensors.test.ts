// kdloss eval on safetensors files and on N-D logits: the same numbers as the 2-D .npy files of the
// same data, tensors picked by key from one file or several, the format told by content, and every
// malformed header refused with exit code 2 and one line naming the file and the problem.
import { expect } from 'chai';
import * as fs from 'fs';
import { COLS, type CliResult, evalArgs, expectInputError, ROWS, runCli, runJson, S32, S64, T32, T64, tempDir, writeSmallData, Y } from './helpers/cli';
import { toInt64, writeNpy } from './helpers/npy';
import { oneHot } from './helpers/random';
import { headerBytes, layout, type StTensor, writeSafetensors } from './helpers/safetensors';

/** The numbers of a report (what must not depend on the file format). */
function numbers(out: Record<string, any>): unknown {
  const { loss, soft, hard, agreement, studentAccuracy, teacherAccuracy, counts, tokens, perClass, klHistogram, rows, cols, dtype } = out;
  return { loss, soft, hard, agreement, studentAccuracy, teacherAccuracy, counts, tokens, perClass, klHistogram, rows, cols, dtype };
}

describe('kdloss eval: safetensors files and N-D logits', () => {
  const tmp = tempDir('kdloss-cli-st-');
  const f = tmp.f;
  const B = 5;
  const S = ROWS / B;
  const f32 = (m: { data: Float32Array }, shape = [ROWS, COLS]): StTensor => ({ dtype: 'F32', shape, data: m.data });
  const f64 = (m: { data: Float64Array }, shape = [ROWS, COLS]): StTensor => ({ dtype: 'F64', shape, data: m.data });
  let npyRef: Record<string, any>;
  before(async () => {
    writeSmallData(tmp.path);
    npyRef = await runJson(evalArgs(tmp.path, {}, ['--chunk-rows', '7']));
    writeSafetensors(f('all.safetensors'), {
      student: f32(S32),
      teacher: f32(T32),
      labels: { dtype: 'I64', shape: [ROWS], data: toInt64(Y) },
    }, { format: 'pt', note: 'kdloss test' });
    writeSafetensors(f('s.safetensors'), { logits: f32(S32) });
    writeSafetensors(f('t.safetensors'), { 'model.output.logits': f32(T32) });
    writeSafetensors(f('y32.safetensors'), { y: { dtype: 'I32', shape: [ROWS], data: Int32Array.from(Y) } });
    // N-D: [B, S, V] logits with [B, S] labels, in both formats.
    writeSafetensors(f('bsv.safetensors'), {
      s: f32(S32, [B, S, COLS]),
      t: f32(T32, [B, S, COLS]),
      y: { dtype: 'I64', shape: [B, S], data: toInt64(Y) },
    });
    writeNpy(f('s-bsv.npy'), S32.data, [B, S, COLS]);
    writeNpy(f('t-bsv.npy'), T32.data, [B, S, COLS]);
    writeNpy(f('y-bs.npy'), toInt64(Y), [B, S]);
    writeNpy(f('s-4d.npy'), S32.data, [B, 1, S, COLS]);
  });

  it('gives the .npy numbers for tensors picked by key from one file, and for one-tensor files without keys', async () => {
    const runs = await Promise.all([
      runJson(['eval', '--student', f('all.safetensors'), '--student-key', 'student', '--teacher', f('all.safetensors'), '--teacher-key', 'teacher', '--labels', f('all.safetensors'), '--labels-key', 'labels', '--chunk-rows', '7']),
      runJson(['eval', '--student', f('s.safetensors'), '--teacher', f('t.safetensors'), '--labels', f('y32.safetensors')]),
      runJson(['eval', '--student', f('s.safetensors'), '--teacher', f('t32.npy'), '--labels', f('y64.npy'), '--chunk-rows', '3']),
    ]);
    for (const out of runs) expect(numbers(out)).to.deep.equal(numbers(npyRef));
    expect(runs[0].inputs.student).to.include({ format: 'safetensors', key: 'student', dtype: 'float32' });
    expect(runs[0].inputs.student.shape).to.deep.equal([ROWS, COLS]);
    expect(runs[1].inputs.teacher.key).to.equal('model.output.logits');
    expect(runs[2].inputs.teacher).to.include({ format: 'npy', key: null });
    // One file opened once gives one fingerprint to the three inputs.
    expect(new Set(['student', 'teacher', 'labels'].map((k) => runs[0].inputs[k].fingerprint)).size).to.equal(1);
  });

  it('tells the format by content, not by the name', async () => {
    fs.copyFileSync(f('s.safetensors'), f('really-safetensors.npy'));
    fs.copyFileSync(f('t32.npy'), f('really-npy.safetensors'));
    const out = await runJson(['eval', '--student', f('really-safetensors.npy'), '--teacher', f('really-npy.safetensors'), '--labels', f('y64.npy'), '--chunk-rows', '7']);
    expect(numbers(out)).to.deep.equal(numbers(npyRef));
    expect([out.inputs.student.format, out.inputs.teacher.format]).to.deep.equal(['safetensors', 'npy']);
  });

  it('flattens [batch, sequence, vocab] logits into rows, with [batch, sequence] or flattened labels, .npy and safetensors', async () => {
    const runs = await Promise.all([
      runJson(['eval', '--student', f('bsv.safetensors'), '--student-key', 's', '--teacher', f('bsv.safetensors'), '--teacher-key', 't', '--labels', f('bsv.safetensors'), '--labels-key', 'y']),
      runJson(['eval', '--student', f('s-bsv.npy'), '--teacher', f('t-bsv.npy'), '--labels', f('y-bs.npy'), '--chunk-rows', '4']),
      runJson(['eval', '--student', f('s-bsv.npy'), '--teacher', f('t32.npy'), '--labels', f('y64.npy')]),
      runJson(['eval', '--student', f('s-4d.npy'), '--teacher', f('t-bsv.npy'), '--labels', f('y64.npy'), '--chunk-rows', '9']),
    ]);
    for (const out of runs) expect(numbers(out)).to.deep.equal(numbers(npyRef));
    expect(runs[0].inputs.student.shape).to.deep.equal([B, S, COLS]);
    const text = await runCli(['eval', '--student', f('s-bsv.npy'), '--teacher', f('t-bsv.npy'), '--labels', f('y-bs.npy')]);
    expect(text.stdout).to.match(new RegExp(`^kdloss eval: ${ROWS} rows x ${COLS} classes \\(float32, shape \\(${B}, ${S}, ${COLS}\\)\\)`));
  });

  it('reads float64 logits and every integer label dtype, and one-hot rows, from safetensors', async () => {
    const ref = await runJson(evalArgs(tmp.path, { student: f('s64.npy'), teacher: f('t64.npy') }));
    const labels: Record<string, StTensor> = {
      i8: { dtype: 'I8', shape: [ROWS], data: Int8Array.from(Y) },
      u8: { dtype: 'U8', shape: [ROWS], data: Uint8Array.from(Y) },
      i16: { dtype: 'I16', shape: [ROWS], data: Int16Array.from(Y) },
      u16: { dtype: 'U16', shape: [ROWS], data: Uint16Array.from(Y) },
      u32: { dtype: 'U32', shape: [ROWS], data: Uint32Array.from(Y) },
      u64: { dtype: 'U64', shape: [ROWS], data: BigUint64Array.from(Y, BigInt) },
      onehot: { dtype: 'F64', shape: [ROWS, COLS], data: oneHot(Y, COLS).data },
    };
    writeSafetensors(f('f64.safetensors'), { s: f64(S64), t: f64(T64), ...labels });
    const runs = await Promise.all(
      Object.keys(labels).map((k) =>
        runJson(['eval', '--student', f('f64.safetensors'), '--student-key', 's', '--teacher', f('f64.safetensors'), '--teacher-key', 't', '--labels', f('f64.safetensors'), '--labels-key', k]),
      ),
    );
    for (const out of runs) expect(numbers(out)).to.deep.equal(numbers(ref));
    expect(runs.map((o) => o.labels.dtype)).to.deep.equal(['int8', 'uint8', 'int16', 'uint16', 'uint32', 'uint64', 'float64']);
  });

  describe('refuses bad keys and bad tensors (exit code 2, one line naming the file)', () => {
    const cases: { what: string; args: () => string[]; file: () => string; pattern: RegExp }[] = [
      {
        what: 'several tensors without a key, listing them (escaped, cut, at most 10)',
        args: () => {
          const many: Record<string, StTensor> = { 'evil\nname\u001b[31m': f32(S32) };
          many['x'.repeat(300)] = f32(T32);
          for (let i = 0; i < 12; i++) many[`t${i}`] = { dtype: 'U8', shape: [1], data: new Uint8Array(1) };
          writeSafetensors(f('many.safetensors'), many);
          return ['eval', '--student', f('many.safetensors'), '--teacher', f('t32.npy')];
        },
        file: () => f('many.safetensors'),
        pattern: /the file holds 14 tensors; pick one with --student-key: 'evil\\nname\\x1b\[31m', 'x{79}…', 't0', .* and 4 more$/,
      },
      {
        what: 'a key that names no tensor',
        args: () => ['eval', '--student', f('all.safetensors'), '--student-key', 'logits', '--teacher', f('t32.npy')],
        file: () => f('all.safetensors'),
        pattern: /no tensor 'logits' \(the file holds 'student', 'teacher', 'labels'\)/,
      },
      {
        what: 'a key for a .npy file',
        args: () => ['eval', '--student', f('s32.npy'), '--student-key', 'x', '--teacher', f('t32.npy')],
        file: () => f('s32.npy'),
        pattern: /--student-key 'x': a \.npy file holds one unnamed array/,
      },
      {
        what: 'integer logits in a safetensors file, naming the tensor',
        args: () => ['eval', '--student', f('all.safetensors'), '--student-key', 'labels', '--teacher', f('t32.npy')],
        file: () => f('all.safetensors'),
        pattern: /tensor 'labels': unsupported dtype I64 \(int64\) for logits/,
      },
      {
        what: 'an unsupported float8 tensor',
        args: () => {
          writeSafetensors(f('f8.safetensors'), { s: { dtype: 'F8_E4M3', shape: [ROWS, COLS], data: new Uint8Array(ROWS * COLS) } });
          return ['eval', '--student', f('f8.safetensors'), '--teacher', f('t32.npy')];
        },
        file: () => f('f8.safetensors'),
        pattern: /tensor 's': unsupported dtype F8_E4M3 \(float8 e4m3\) for logits/,
      },
      {
        what: 'labels of another leading shape',
        args: () => {
          writeNpy(f('y-sb.npy'), toInt64(Y), [S, B]);
          return ['eval', '--student', f('s-bsv.npy'), '--teacher', f('t-bsv.npy'), '--labels', f('y-sb.npy')];
        },
        file: () => f('y-sb.npy'),
        pattern: /integer labels must be class indices of the logits' leading shape \(5, 10\) or \(50,\) flattened, got shape \(10, 5\)/,
      },
      {
        what: 'two tensors of one file that do not match, the file named first (as every message does)',
        args: () => {
          writeSafetensors(f('mismatch.safetensors'), { s: f32(S32), t: { dtype: 'F32', shape: [ROWS, COLS - 1], data: new Float32Array(ROWS * (COLS - 1)) } });
          return ['eval', '--student', f('mismatch.safetensors'), '--student-key', 's', '--teacher', f('mismatch.safetensors'), '--teacher-key', 't'];
        },
        file: () => f('mismatch.safetensors'),
        pattern: /^kdloss: \S+mismatch\.safetensors: tensor 't': 6 classes, but \S+mismatch\.safetensors \[s\] has 7 classes$/,
      },
      {
        what: 'a tensor of no classes',
        args: () => {
          writeSafetensors(f('nocols.safetensors'), { s: { dtype: 'F32', shape: [ROWS, 0], data: new Float32Array(0) } });
          return ['eval', '--student', f('nocols.safetensors'), '--teacher', f('t32.npy')];
        },
        file: () => f('nocols.safetensors'),
        pattern: /tensor 's': no classes \(shape \(50, 0\)\)/,
      },
    ];
    const results = new Map<string, CliResult>();
    before(async () => {
      for (const c of cases) results.set(c.what, await runCli(c.args(), {}, { timeoutMs: 30000 }));
    });
    for (const c of cases) it(`refuses ${c.what}`, () => expectInputError(results.get(c.what)!, c.file(), c.pattern));
  });

  describe('refuses malformed headers (exit code 2, one line naming the file and the problem)', () => {
    const good = layout({ s: f32(S32) });
    const data = good.data;
    const entry = (e: unknown): string => JSON.stringify({ s: e });
    const ok = { dtype: 'F32', shape: [ROWS, COLS], data_offsets: [0, data.length] };
    const cases: [string, () => Buffer, RegExp][] = [
      ['a file shorter than the length field', () => Buffer.from([1, 0, 0]), /truncated safetensors file: 3 bytes/],
      ['a header length beyond the file', () => Buffer.concat([headerBytes(good.json, 90000000n), data]), /header length 90000000 runs past the end of the file \(1472 bytes\)/],
      ['a header length beyond the limit', () => Buffer.concat([headerBytes(good.json, 1n << 62n), data]), /header length 4611686018427387904 is larger than the 100000000 bytes allowed/],
      ['a header of length 0', () => Buffer.concat([headerBytes('', 0n), Buffer.from('{}')]), /safetensors header length 0 is too small for a JSON object/],
      ['a header that is not JSON', () => Buffer.concat([headerBytes('{"s": {"dtype": "F32",'), data]), /not valid JSON: .* at character \d+/],
      ['a header that is not UTF-8', () => Buffer.concat([Buffer.from([8, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{"s\xff":1}', 'latin1'), data]), /not valid UTF-8/],
      ['a JSON array', () => Buffer.concat([headerBytes('[1, 2]'), data]), /does not start with '\{'/],
      ['a duplicate key', () => Buffer.concat([headerBytes(`{"s": ${JSON.stringify(ok)}, "s": ${JSON.stringify(ok)}}`), data]), /duplicate key "s"/],
      ['deep nesting', () => Buffer.concat([headerBytes(`{"s": ${'['.repeat(100000)}${']'.repeat(100000)}}`), data]), /nested more than 32 levels deep/],
      ['an entry that is not an object', () => Buffer.concat([headerBytes(entry([1])), data]), /tensor 's': expected an object \{ dtype, shape, data_offsets \}, got an array/],
      ['an unknown dtype', () => Buffer.concat([headerBytes(entry({ ...ok, dtype: 'F128' })), data]), /tensor 's': unknown dtype 'F128'/],
      ['a dtype of another type', () => Buffer.concat([headerBytes(entry({ ...ok, dtype: 32 })), data]), /dtype: expected a string, got 32/],
      ['a negative dimension', () => Buffer.concat([headerBytes(entry({ ...ok, shape: [-50, 7] })), data]), /shape\[0\]: expected a non-negative integer, got -50/],
      ['a fractional dimension', () => Buffer.concat([headerBytes(entry({ ...ok, shape: [50, 7.5] })), data]), /shape\[1\]: expected a non-negative integer, got 7\.5/],
      ['a dimension beyond exact integers', () => Buffer.concat([headerBytes(entry(ok).replace('[50,7]', '[50,70000000000000000000]')), data]), /shape\[1\]: expected a non-negative integer, got 70000000000000000000/],
      ['a shape too large', () => Buffer.concat([headerBytes(entry({ ...ok, shape: [2 ** 40, 2 ** 40] })), data]), /shape \[1099511627776, 1099511627776\] is too large/],
      ['one offset', () => Buffer.concat([headerBytes(entry({ ...ok, data_offsets: [0] })), data]), /data_offsets: expected \[begin, end\], got 1 values/],
      ['offsets out of order', () => Buffer.concat([headerBytes(entry({ ...ok, data_offsets: [data.length, 0] })), data]), /end before they begin/],
      ['offsets beyond the data', () => Buffer.concat([headerBytes(entry({ ...ok, data_offsets: [0, data.length + 4] })), data]), /run past the end of the data \(1400 bytes after the header\)/],
      ['a byte length that does not match the shape', () => Buffer.concat([headerBytes(entry({ ...ok, shape: [49, 7] })), data]), /hold 1400 bytes, but shape \[49, 7\] of F32 needs 1372/],
      ['a missing key', () => Buffer.concat([headerBytes(entry({ dtype: 'F32', shape: [ROWS, COLS] })), data]), /tensor 's': no 'data_offsets'/],
      ['an unknown key', () => Buffer.concat([headerBytes(entry({ ...ok, strides: [7, 1] })), data]), /unknown key 'strides'/],
      ['metadata that is not string to string', () => Buffer.concat([headerBytes(JSON.stringify({ __metadata__: { n: 3 }, s: ok })), data]), /__metadata__ 'n': expected a string, got 3/],
      [
        'overlapping tensors',
        () => Buffer.concat([headerBytes(JSON.stringify({ a: { dtype: 'U8', shape: [800], data_offsets: [0, 800] }, b: { dtype: 'U8', shape: [800], data_offsets: [600, 1400] } })), data]),
        /tensors 'a' \[0, 800\] and 'b' \[600, 1400\] overlap/,
      ],
      [
        'a gap between tensors',
        () => Buffer.concat([headerBytes(JSON.stringify({ a: { dtype: 'U8', shape: [600], data_offsets: [0, 600] }, b: { dtype: 'U8', shape: [700], data_offsets: [700, 1400] } })), data]),
        /bytes \[600, 700\] of the data belong to no tensor/,
      ],
      ['bytes after the last tensor', () => Buffer.concat([headerBytes(good.json), data, Buffer.alloc(8)]), /8 bytes after the last tensor's data belong to no tensor/],
      ['a truncated data region', () => Buffer.concat([headerBytes(good.json), data.subarray(0, 1000)]), /run past the end of the data \(1000 bytes after the header\): truncated file or bad offsets/],
    ];
    const results = new Map<string, CliResult>();
    before(async function () {
      this.timeout(120000);
      const queue = cases.map(([what, make], i) => ({ what, file: f(`bad-${i}.safetensors`), make }));
      const worker = async (): Promise<void> => {
        for (let c = queue.shift(); c !== undefined; c = queue.shift()) {
          fs.writeFileSync(c.file, c.make());
          results.set(c.what, await runCli(['eval', '--student', c.file, '--teacher', f('t32.npy')], {}, { timeoutMs: 30000 }));
        }
      };
      await Promise.all([worker(), worker(), worker(), worker()]);
    });
    cases.forEach(([what, , pattern], i) => {
      it(`refuses ${what}`, () => expectInputError(results.get(what)!, f(`bad-${i}.safetensors`), pattern));
    });
  });
});
