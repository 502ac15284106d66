// kdloss eval with a sparse teacher on bad input: every malformed file exits with code 2 and one line
// naming the file and the problem (rows, shapes, k, dtypes, tensor names, entries with their row in the
// file), and every misuse of the flags with code 2 and one line naming the flags.
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { type CliResult, expectInputError, ROOT, runCli, tempDir } from './helpers/cli';
import { INDICES, K, R, V, values, writeSparseData } from './helpers/cli-sparse';
import { toInt64, writeNpy } from './helpers/npy';
import { toF16Bits, writeSafetensors } from './helpers/safetensors';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const evalModule = require(path.join(ROOT, 'dist', 'cli', 'eval.js')) as typeof import('../dist/cli/eval');

/** A usage error: exit 2, one line matching `pattern`, nothing on stdout. */
function expectUsage(r: CliResult, pattern: RegExp): void {
  expect(r.code, r.stderr).to.equal(2);
  expect(r.stdout).to.equal('');
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  expect(lines, r.stderr).to.have.length(1);
  expect(lines[0]).to.match(/^kdloss: /);
  expect(lines[0]).to.match(pattern);
}

describe('kdloss eval with a sparse teacher: bad input (exit code 2, one line)', () => {
  const tmp = tempDir('kdloss-cli-sparse-errors-');
  const f = tmp.f;
  before(() => writeSparseData(tmp.path));
  const lpFlags = ['--teacher-kind', 'logprobs'];
  /** s32.npy with the given indices and values files. */
  const pair = (indices: string, vals: string, extra: string[] = lpFlags): string[] => ['eval', '--student', f('s32.npy'), '--teacher-indices', indices, '--teacher-values', vals, ...extra];
  const goodValues = (): string => f('v-float32-logprobs.npy');
  /** Indices [R, K] int32 with `edit` applied. */
  const indicesWith = (name: string, edit: (a: Int32Array) => void): string => {
    const a = Int32Array.from(INDICES);
    edit(a);
    writeNpy(f(name), a, [R, K]);
    return f(name);
  };
  /** float64 log-probabilities [R, K] with `edit` applied (for s64.npy). */
  const logprobsWith = (name: string, edit: (a: Float64Array) => void): string => {
    const a = values('float64', 'logprobs') as Float64Array;
    edit(a);
    writeNpy(f(name), a, [R, K]);
    return f(name);
  };
  /** The slot of row r holding a used entry, and another. */
  const slotsOf = (r: number): number[] => [...Array(K).keys()].filter((e) => INDICES[r * K + e] >= 0).map((e) => r * K + e);

  interface Case {
    what: string;
    /** The arguments, and the file the message must name. */
    make: () => [string[], string];
    pattern: RegExp;
  }
  const cases: Case[] = [
    {
      what: 'a row count other than the student\'s',
      make: () => {
        writeNpy(f('i59.npy'), INDICES.subarray(0, 59 * K), [59, K]);
        writeNpy(f('v59.npy'), (values('float32', 'logprobs') as Float32Array).subarray(0, 59 * K), [59, K]);
        return [pair(f('i59.npy'), f('v59.npy')), f('i59.npy')];
      },
      pattern: /i59\.npy: 59 rows \(shape \(59, 5\)\), but .*s32\.npy has 60 rows$/,
    },
    {
      what: 'values of another shape than the indices',
      make: () => {
        writeNpy(f('v-k4.npy'), new Float32Array(R * 4), [R, 4]);
        return [pair(f('i32.npy'), f('v-k4.npy')), f('v-k4.npy')];
      },
      pattern: /v-k4\.npy: shape \(60, 4\) does not match .*i32\.npy \(60, 5\); top-k indices and values must have one shape \(\.\.\., k\)$/,
    },
    {
      what: 'an index equal to V (row 17)',
      make: () => [pair(indicesWith('i-v.npy', (a) => (a[slotsOf(17)[1]] = V)), goodValues()), f('i-v.npy')],
      pattern: /i-v\.npy: row 17: index 33 out of range \[0, 33\) \(-1 marks an unused slot; the student has 33 classes\)$/,
    },
    {
      what: 'an index of -2 (row 0)',
      make: () => [pair(indicesWith('i-neg.npy', (a) => (a[slotsOf(0)[0]] = -2)), goodValues()), f('i-neg.npy')],
      pattern: /i-neg\.npy: row 0: index -2 out of range \[0, 33\)/,
    },
    {
      what: 'an int64 index beyond int32, in the last chunk (row 59 with chunks of 7 rows)',
      make: () => {
        const a = toInt64(INDICES);
        a[slotsOf(59)[0]] = 2n ** 40n;
        writeNpy(f('i64-big.npy'), a, [R, K]);
        return [pair(f('i64-big.npy'), goodValues(), [...lpFlags, '--chunk-rows', '7']), f('i64-big.npy')];
      },
      pattern: /i64-big\.npy: row 59: index 1099511627776 out of range \[0, 33\)/,
    },
    {
      what: 'an index repeated within a row (row 42)',
      make: () => [pair(indicesWith('i-rep.npy', (a) => (a[slotsOf(42)[1]] = a[slotsOf(42)[0]])), goodValues()), f('i-rep.npy')],
      pattern: new RegExp(`i-rep\\.npy: row 42: index ${INDICES[slotsOf(42)[0]]} appears more than once$`),
    },
    {
      what: 'k > V',
      make: () => {
        writeNpy(f('i-k34.npy'), new Int32Array(R * 34).fill(-1), [R, 34]);
        writeNpy(f('v-k34.npy'), new Float32Array(R * 34), [R, 34]);
        return [pair(f('i-k34.npy'), f('v-k34.npy')), f('i-k34.npy')];
      },
      pattern: /i-k34\.npy: k = 34 entries per row \(shape \(60, 34\)\), more than the 33 classes of .*s32\.npy$/,
    },
    {
      what: 'k = 0',
      make: () => {
        writeNpy(f('i-k0.npy'), new Int32Array(0), [R, 0]);
        writeNpy(f('v-k0.npy'), new Float32Array(0), [R, 0]);
        return [pair(f('i-k0.npy'), f('v-k0.npy')), f('i-k0.npy')];
      },
      pattern: /i-k0\.npy: no top-k slots \(shape \(60, 0\): k = 0\)$/,
    },
    {
      what: 'indices of one axis',
      make: () => {
        writeNpy(f('i-1d.npy'), INDICES, [R * K]);
        writeNpy(f('v-1d.npy'), values('float32', 'logprobs'), [R * K]);
        return [pair(f('i-1d.npy'), f('v-1d.npy')), f('i-1d.npy')];
      },
      pattern: /i-1d\.npy: expected top-k indices of 2 or more axes \(\.\.\., k\), got shape \(300,\)$/,
    },
    {
      what: 'float indices',
      make: () => {
        writeNpy(f('i-f4.npy'), Float32Array.from(INDICES), [R, K]);
        return [pair(f('i-f4.npy'), goodValues()), f('i-f4.npy')];
      },
      pattern: /i-f4\.npy: unsupported dtype '<f4' \(float32\) for top-k indices \(expected int32 or int64\)$/,
    },
    {
      what: 'int16 indices',
      make: () => {
        writeNpy(f('i-i2.npy'), Int16Array.from(INDICES), [R, K]);
        return [pair(f('i-i2.npy'), goodValues()), f('i-i2.npy')];
      },
      pattern: /i-i2\.npy: unsupported dtype '<i2' \(int16\) for top-k indices/,
    },
    {
      what: 'integer values',
      make: () => {
        writeNpy(f('v-i4.npy'), new Int32Array(R * K), [R, K]);
        return [pair(f('i32.npy'), f('v-i4.npy')), f('v-i4.npy')];
      },
      pattern: /v-i4\.npy: unsupported dtype '<i4' \(int32\) for top-k values \(expected float32 or float64, the student's dtype\)$/,
    },
    {
      what: 'float64 values with a float32 student',
      make: () => [pair(f('i32.npy'), f('v-float64-logprobs.npy')), f('v-float64-logprobs.npy')],
      pattern: /v-float64-logprobs\.npy: dtype float64 does not match .*s32\.npy \(float32\); a sparse teacher's values must have the student's dtype$/,
    },
    {
      what: 'float16 values (.npy)',
      make: () => {
        writeNpy(f('v-f2.npy'), Uint16Array.from(values('float32', 'logprobs'), toF16Bits), [R, K], { descr: '<f2' });
        return [pair(f('i32.npy'), f('v-f2.npy')), f('v-f2.npy')];
      },
      pattern: /v-f2\.npy: '<f2' \(float16\) top-k values are not supported: a sparse teacher's values are float32 or float64, the student's dtype \(widen them to float32\)$/,
    },
    {
      what: 'BF16 values (safetensors)',
      make: () => {
        writeSafetensors(f('topk-bf16.safetensors'), {
          indices: { dtype: 'I32', shape: [R, K], data: INDICES },
          values: { dtype: 'BF16', shape: [R, K], data: new Uint16Array(R * K) },
        });
        return [['eval', '--student', f('s32.npy'), '--teacher-topk', f('topk-bf16.safetensors'), ...lpFlags], f('topk-bf16.safetensors')];
      },
      pattern: /topk-bf16\.safetensors: tensor 'values': BF16 \(bfloat16\) top-k values are not supported/,
    },
    {
      what: 'a float16 student',
      make: () => {
        writeNpy(f('s-f2.npy'), new Uint16Array(R * V), [R, V], { descr: '<f2' });
        return [['eval', '--student', f('s-f2.npy'), '--teacher-indices', f('i32.npy'), '--teacher-values', goodValues(), ...lpFlags], f('s-f2.npy')];
      },
      pattern: /s-f2\.npy: float16 logits with a sparse teacher are not supported: a sparse teacher takes float32 or float64 student logits$/,
    },
    {
      what: "a --teacher-topk file without an 'indices' tensor",
      make: () => {
        writeSafetensors(f('topk-idx.safetensors'), {
          idx: { dtype: 'I32', shape: [R, K], data: INDICES },
          values: { dtype: 'F32', shape: [R, K], data: values('float32', 'logprobs') },
        });
        return [['eval', '--student', f('s32.npy'), '--teacher-topk', f('topk-idx.safetensors'), ...lpFlags], f('topk-idx.safetensors')];
      },
      pattern: /topk-idx\.safetensors: no tensor 'indices' \(the file holds 'idx', 'values'\); --teacher-topk reads tensors named 'indices' and 'values'$/,
    },
    {
      what: "a --teacher-topk file without a 'values' tensor",
      make: () => {
        writeSafetensors(f('topk-novalues.safetensors'), { indices: { dtype: 'I32', shape: [R, K], data: INDICES } });
        return [['eval', '--student', f('s32.npy'), '--teacher-topk', f('topk-novalues.safetensors'), ...lpFlags], f('topk-novalues.safetensors')];
      },
      pattern: /topk-novalues\.safetensors: no tensor 'values' \(the file holds 'indices'\)/,
    },
    {
      what: 'a .npy file as --teacher-topk',
      make: () => [['eval', '--student', f('s32.npy'), '--teacher-topk', f('i32.npy'), ...lpFlags], f('i32.npy')],
      pattern: /i32\.npy: --teacher-topk reads a safetensors file of 'indices' and 'values' tensors, not a \.npy file \(give two \.npy files with --teacher-indices and --teacher-values\)$/,
    },
    {
      what: 'a file of several tensors as --teacher-indices',
      make: () => [pair(f('topk-float32-logprobs.safetensors'), goodValues()), f('topk-float32-logprobs.safetensors')],
      pattern: /the file holds 3 tensors \('student', 'indices', 'values'\); --teacher-indices reads a file of one array \(a safetensors file of 'indices' and 'values' tensors goes to --teacher-topk\)$/,
    },
    {
      what: 'a log-probability above 0 (row 9)',
      make: () => [
        ['eval', '--student', f('s64.npy'), '--teacher-indices', f('i32.npy'), '--teacher-values', logprobsWith('v-pos.npy', (a) => (a[slotsOf(9)[0]] = 0.01)), ...lpFlags],
        f('v-pos.npy'),
      ],
      pattern: /v-pos\.npy: row 9: value 0\.01 of index \d+ is not a log-probability \(expected <= 0 with --teacher-kind logprobs\)$/,
    },
    {
      what: 'log-probabilities adding up to more than 1 (row 20)',
      make: () => [
        ['eval', '--student', f('s64.npy'), '--teacher-indices', f('i32.npy'), '--teacher-values', logprobsWith('v-sum.npy', (a) => slotsOf(20).forEach((e) => (a[e] = Math.log(0.3)))), ...lpFlags],
        f('v-sum.npy'),
      ],
      pattern: /v-sum\.npy: row 20: its probabilities \(e\^value\) add up to 1\.(5|49999\d*), more than 1 \(--teacher-kind logprobs takes log-probabilities over the whole vocabulary\)$/,
    },
  ];
  for (const c of cases) {
    it(`refuses ${c.what}`, async () => {
      const [args, file] = c.make();
      expectInputError(await runCli(args), file, c.pattern);
    });
  }

  it('accepts the same values as logits (no bound on logits), and a bad entry leaves no --per-sample output', async () => {
    const pos = logprobsWith('v-pos-logits.npy', (a) => (a[slotsOf(9)[0]] = 5));
    const ok = await runCli(['eval', '--student', f('s64.npy'), '--teacher-indices', f('i32.npy'), '--teacher-values', pos, '--teacher-kind', 'logits']);
    expect(ok.code, ok.stderr).to.equal(0);
    const bad = indicesWith('i-late.npy', (a) => (a[slotsOf(58)[0]] = V + 7));
    const r = await runCli(pair(bad, goodValues(), [...lpFlags, '--chunk-rows', '4', '--per-sample', f('ps-late.npy')]));
    expectInputError(r, bad, /row 58: index 40 out of range/);
    expect(fs.existsSync(f('ps-late.npy'))).to.equal(false);
    expect(fs.readdirSync(tmp.path).filter((n) => n.endsWith('.tmp'))).to.deep.equal([]);
  });

  it('refuses a --per-sample output that is the indices or the values file', async () => {
    const r = await runCli(pair(f('i32.npy'), goodValues(), [...lpFlags, '--per-sample', f('i32.npy')]));
    expectUsage(r, /--per-sample: .*i32\.npy is the same file as the --teacher-indices input/);
    const t = f('topk-float32-logprobs.safetensors');
    const r2 = await runCli(['eval', '--student', f('s32.npy'), '--teacher-topk', t, ...lpFlags, '--per-sample', t]);
    expectUsage(r2, /--per-sample: .*topk-float32-logprobs\.safetensors is the same file as the --teacher-topk input/);
  });

  it('names the values file and the row in it when the library refuses an entry the command line let through', () => {
    const source = { values: { array: { file: 'v.npy' } } } as unknown as Parameters<typeof evalModule.sparseEntryError>[1];
    const libError = Object.assign(new Error('teacher row 3: its probabilities sum to 1.00002, more than 1'), { code: 'ERR_KD_INPUT' });
    const mapped = evalModule.sparseEntryError(libError, source, 14) as Error;
    expect(mapped.message).to.equal('v.npy: row 17: its probabilities sum to 1.00002, more than 1');
    expect((mapped as { exitCode?: number }).exitCode).to.equal(2);
    const other = Object.assign(new Error('teacher.values: something else'), { code: 'ERR_KD_INPUT' });
    expect(evalModule.sparseEntryError(other, source, 14)).to.equal(other);
  });

  describe('flags', () => {
    const s = (): string[] => ['eval', '--student', f('s32.npy')];
    const topk = (): string[] => ['--teacher-topk', f('topk-float32-logprobs.safetensors')];
    const usage: [string, () => string[], RegExp][] = [
      ['no teacher at all', () => s(), /eval: --teacher FILE is required, or a sparse teacher: --teacher-topk FILE, or --teacher-indices and --teacher-values/],
      ['--teacher and --teacher-topk', () => [...s(), '--teacher', f('s32.npy'), ...topk(), ...lpFlags], /--teacher and --teacher-topk: give one teacher, dense logits or a sparse top-k one/],
      ['--teacher and --teacher-indices', () => [...s(), '--teacher', f('s32.npy'), '--teacher-indices', f('i32.npy'), '--teacher-values', goodValues(), ...lpFlags], /--teacher and --teacher-indices: give one teacher/],
      ['--teacher-topk and --teacher-indices', () => [...s(), ...topk(), '--teacher-indices', f('i32.npy'), ...lpFlags], /--teacher-topk and --teacher-indices: give one file of both tensors, or two files/],
      ['--teacher-indices alone', () => [...s(), '--teacher-indices', f('i32.npy'), ...lpFlags], /--teacher-indices: needs --teacher-values FILE/],
      ['--teacher-values alone', () => [...s(), '--teacher-values', goodValues(), ...lpFlags], /--teacher-values: needs --teacher-indices FILE/],
      ['a sparse teacher without --teacher-kind', () => [...s(), ...topk()], /--teacher-topk: --teacher-kind logits\|logprobs is required/],
      ['another --teacher-kind', () => [...s(), ...topk(), '--teacher-kind', 'probs'], /--teacher-kind: expected logits or logprobs, got 'probs'/],
      ['--tail with logits', () => [...s(), ...topk(), '--teacher-kind', 'logits', '--tail'], /--tail: only with --teacher-kind logprobs/],
      ['--tail and --no-tail', () => [...s(), ...topk(), ...lpFlags, '--tail', '--no-tail'], /--tail and --no-tail: give one/],
      ['--teacher-kind with a dense teacher', () => [...s(), '--teacher', f('s32.npy'), '--teacher-kind', 'logits'], /--teacher-kind: only with a sparse teacher/],
      ['--no-tail with a dense teacher', () => [...s(), '--teacher', f('s32.npy'), '--no-tail'], /--no-tail: only with a sparse teacher/],
      ['--teacher-key with a sparse teacher', () => [...s(), ...topk(), ...lpFlags, '--teacher-key', 'values'], /--teacher-key: picks a tensor of --teacher; --teacher-topk reads tensors named 'indices' and 'values'/],
      ['an empty --teacher-topk', () => [...s(), '--teacher-topk', '', ...lpFlags], /--teacher-topk: expected a file name, got ''/],
      ['--teacher-kind without a value', () => [...s(), ...topk(), '--teacher-kind'], /--teacher-kind/],
    ];
    for (const [what, args, pattern] of usage) {
      it(`refuses ${what}`, async () => expectUsage(await runCli(args()), pattern));
    }

    it('takes --no-tail with logits (its only meaning)', async () => {
      const r = await runCli([...s(), ...topk(), '--teacher-kind', 'logits', '--no-tail', '--json']);
      expect(r.code, r.stderr).to.equal(0);
      expect(JSON.parse(r.stdout).teacher).to.deep.include({ kind: 'logits', tail: false });
    });
  });
});
