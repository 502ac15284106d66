// The `kdloss` command line: runs the real binary (node bin/kdloss.js) on .npy files generated in a
// temp dir and checks its numbers against the library API, its output files, its report, its memory
// bound when streaming a large file, Ctrl-C, the golden output on the embedded sample, and every bad
// input (exit code 2, one line on stderr naming the file, no stack trace).
import { expect } from 'chai';
import { execFile, spawn } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { DistillationLoss, getBackend, type Matrix, setBackend } from 'kdloss';
import { forEachBackend } from './helpers/backends';
import { npyHeader, readNpy, toInt64, writeMatrix, writeNpy, writeRepeated } from './helpers/npy';
import { oneHot, Rng, toF32 } from './helpers/random';

const ROOT = path.resolve(__dirname, '..', '..');
const BIN = path.join(ROOT, 'bin', 'kdloss.js');
const SAMPLE = path.join(ROOT, 'examples', 'sample');
const GOLDEN = path.join(ROOT, 'test', 'fixtures', 'sample-golden.json');

interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `node bin/kdloss.js ...args` (backend from `env`, default native). */
function runCli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { env: { ...process.env, KDLOSS_BACKEND: 'native', ...env }, maxBuffer: 64 << 20, cwd: ROOT },
      (err, stdout, stderr) => {
        const e = err as (Error & { code?: number | string; signal?: NodeJS.Signals }) | null;
        resolve({
          code: e === null ? 0 : typeof e.code === 'number' ? e.code : null,
          signal: e?.signal ?? null,
          stdout: String(stdout),
          stderr: String(stderr),
        });
      },
    );
  });
}

/** Runs and parses `--json` output, failing with the CLI's stderr when it did not exit with 0. */
async function runJson(args: string[], env: Record<string, string> = {}): Promise<Record<string, any>> {
  const r = await runCli([...args, '--json'], env);
  expect(r.code, `exit code; stderr: ${r.stderr}`).to.equal(0);
  return JSON.parse(r.stdout);
}

function expectRel(actual: number, expected: number, rel: number, what: string): void {
  const tol = rel * Math.max(Math.abs(expected), 1e-300);
  expect(Math.abs(actual - expected), `${what}: ${actual} vs ${expected}`).to.be.at.most(tol);
}

interface Reference {
  loss: number;
  soft: number;
  hard: number | null;
  agreement: number;
  studentAccuracy: number | null;
  teacherAccuracy: number | null;
  perSample: Float64Array;
  perClass: { class: number; support: number; studentAccuracy: number; teacherAccuracy: number; meanKl: number }[] | null;
}

/** What the CLI should report, from DistillationLoss.forward over the whole data on the current backend. */
function reference(s: Matrix, t: Matrix, y: Int32Array | null, T: number, alpha: number): Reference {
  const rows = s.rows;
  const kd = new DistillationLoss(T, y ? alpha : 1);
  const r = kd.forward(s, t, y ?? new Int32Array(rows), { reduction: 'none', argmax: true });
  const sa = r.studentArgmax!;
  const ta = r.teacherArgmax!;
  let agree = 0;
  for (let i = 0; i < rows; i++) if (sa[i] === ta[i]) agree++;
  const base: Reference = {
    loss: y ? r.loss : T * T * r.soft,
    soft: r.soft,
    hard: y ? r.hard : null,
    agreement: agree / rows,
    studentAccuracy: null,
    teacherAccuracy: null,
    perSample: y ? r.perSample! : r.perSampleSoft!.map((v) => T * T * v),
    perClass: null,
  };
  if (!y) return base;
  const support = new Map<number, { n: number; s: number; t: number; kl: number }>();
  let sc = 0;
  let tc = 0;
  for (let i = 0; i < rows; i++) {
    const c = y[i];
    const e = support.get(c) ?? { n: 0, s: 0, t: 0, kl: 0 };
    e.n++;
    e.kl += r.perSampleSoft![i];
    if (sa[i] === c) (e.s++, sc++);
    if (ta[i] === c) (e.t++, tc++);
    support.set(c, e);
  }
  base.studentAccuracy = sc / rows;
  base.teacherAccuracy = tc / rows;
  base.perClass = [...support.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([c, e]) => ({ class: c, support: e.n, studentAccuracy: e.s / e.n, teacherAccuracy: e.t / e.n, meanKl: e.kl / e.n }));
  return base;
}

/** Checks the CLI's JSON against a reference: float sums to `rel`, counts exactly. */
function expectMatches(out: Record<string, any>, ref: Reference, rel: number): void {
  expectRel(out.loss, ref.loss, rel, 'loss');
  expectRel(out.soft, ref.soft, rel, 'soft');
  if (ref.hard === null) expect(out.hard).to.equal(null);
  else expectRel(out.hard, ref.hard, rel, 'hard');
  expect(out.agreement).to.equal(ref.agreement);
  expect(out.studentAccuracy).to.equal(ref.studentAccuracy);
  expect(out.teacherAccuracy).to.equal(ref.teacherAccuracy);
  if (ref.perClass === null) {
    expect(out.perClass).to.equal(null);
    return;
  }
  expect(out.perClass.map((c: any) => c.class)).to.deep.equal(ref.perClass.map((c) => c.class));
  ref.perClass.forEach((c, i) => {
    const o = out.perClass[i];
    expect(o.support).to.equal(c.support);
    expect(o.studentAccuracy).to.equal(c.studentAccuracy);
    expect(o.teacherAccuracy).to.equal(c.teacherAccuracy);
    expectRel(o.meanKl, c.meanKl, rel, `class ${c.class} meanKl`);
  });
}

/** Asserts the shape of a bad-input failure: exit 2, one line on stderr naming `file`, no stack. */
function expectInputError(r: CliResult, file: string, pattern: RegExp): void {
  expect(r.code, `exit code; stderr: ${r.stderr}`).to.equal(2);
  expect(r.stdout).to.equal('');
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  expect(lines, r.stderr).to.have.length(1);
  expect(lines[0]).to.match(/^kdloss: /);
  expect(lines[0]).to.include(file);
  expect(lines[0]).to.match(pattern);
  expect(r.stderr).to.not.match(/\n\s+at /);
}

describe('kdloss CLI', () => {
  let tmp = '';
  const f = (name: string): string => path.join(tmp, name);

  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kdloss-cli-'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  // Small data sets: 50 rows x 7 classes in both dtypes; labels covering classes 0..5 (class 6 absent).
  const rng = new Rng(2024);
  const ROWS = 50;
  const COLS = 7;
  const S64 = rng.matrix(ROWS, COLS, 2);
  const T64 = { data: S64.data.map((v) => 1.5 * v + rng.normal(1)), rows: ROWS, cols: COLS };
  const S32 = toF32(S64);
  const T32 = toF32(T64);
  const Y = rng.classes(ROWS, COLS - 1);

  before(() => {
    writeMatrix(f('s64.npy'), S64);
    writeMatrix(f('t64.npy'), T64);
    writeMatrix(f('s32.npy'), S32);
    writeMatrix(f('t32.npy'), T32);
    writeMatrix(f('s32v2.npy'), S32, { version: 2 });
    writeMatrix(f('t32v3.npy'), T32, { version: 3, extra: "'note': 'ünïcode', " });
    writeNpy(f('y64.npy'), toInt64(Y), [ROWS]);
    writeNpy(f('y32.npy'), Int32Array.from(Y), [ROWS], { version: 2 });
    writeNpy(f('yu8.npy'), Uint8Array.from(Y), [ROWS]);
    writeMatrix(f('onehot64.npy'), oneHot(Y, COLS));
    writeMatrix(f('onehot32.npy'), toF32(oneHot(Y, COLS)));
  });

  describe('kdloss CLI: usage', () => {
    it('prints help for kdloss --help and kdloss eval --help (exit 0)', async () => {
      const top = await runCli(['--help']);
      expect(top.code).to.equal(0);
      expect(top.stdout).to.match(/^Usage: kdloss <command>/);
      expect(top.stdout).to.include('eval');
      const ev = await runCli(['eval', '--help']);
      expect(ev.code).to.equal(0);
      for (const flag of ['--student', '--teacher', '--labels', '--temperature', '--alpha', '--per-sample', '--json', '--threads', '--chunk-rows']) {
        expect(ev.stdout).to.include(flag);
      }
      const v = await runCli(['--version']);
      expect(v.stdout).to.match(/^kdloss \d+\.\d+\.\d+/);
    });

    it('prints the usage on stderr with exit code 2 without a command', async () => {
      const r = await runCli([]);
      expect(r.code).to.equal(2);
      expect(r.stdout).to.equal('');
      expect(r.stderr).to.match(/^Usage: kdloss/);
    });

    const usageCases: [string, string[], RegExp][] = [
      ['an unknown command', ['frobnicate'], /unknown command 'frobnicate'/],
      ['an unknown option', ['eval', '--studnt', 'x.npy'], /Unknown option '--studnt'/],
      ['a missing --teacher', ['eval', '--student', 'x.npy'], /--teacher FILE is required/],
      ['a positional argument', ['eval', 'x.npy'], /positional/i],
      ['--temperature 0', ['eval', '--student', 'a', '--teacher', 'b', '--temperature', '0'], /--temperature: expected a finite number > 0, got '0'/],
      ['--temperature abc', ['eval', '--student', 'a', '--teacher', 'b', '--temperature', 'abc'], /--temperature: .* got 'abc'/],
      ['--alpha 1.5', ['eval', '--student', 'a', '--teacher', 'b', '--alpha', '1.5'], /--alpha: expected a number in \[0, 1\], got '1.5'/],
      ['--threads 0', ['eval', '--student', 'a', '--teacher', 'b', '--threads', '0'], /--threads: expected an integer/],
      ['--chunk-rows 2.5', ['eval', '--student', 'a', '--teacher', 'b', '--chunk-rows', '2.5'], /--chunk-rows: expected an integer/],
      ['a missing option value', ['eval', '--student'], /--student/],
    ];
    const usageResults = new Map<string, Promise<CliResult>>();
    before(() => {
      // Independent runs: start them together, check each in its own test.
      for (const [what, args] of usageCases) usageResults.set(what, runCli(args));
    });
    for (const [what, , pattern] of usageCases) {
      it(`rejects ${what} with one line and exit code 2`, async () => {
        const r = await usageResults.get(what)!;
        expect(r.code, r.stderr).to.equal(2);
        const lines = r.stderr.split('\n').filter((l) => l !== '');
        expect(lines, r.stderr).to.have.length(1);
        expect(lines[0]).to.match(/^kdloss: /);
        expect(lines[0]).to.match(pattern);
      });
    }
  });

  forEachBackend('kdloss eval matches DistillationLoss.forward', (backend) => {
    const env = { KDLOSS_BACKEND: backend };
    const T = 3;
    const alpha = 0.6;
    const args = (s: string, t: string, y?: string, extra: string[] = []) => [
      'eval',
      '--student',
      f(s),
      '--teacher',
      f(t),
      ...(y ? ['--labels', f(y)] : []),
      '--temperature',
      String(T),
      '--alpha',
      String(alpha),
      ...extra,
    ];

    it('float64 logits, int64 labels, uneven chunks (7 rows) and one chunk give the library values', async () => {
      const ref = reference(S64, T64, Y, T, alpha);
      const runs = [['--chunk-rows', '7'], []].map((extra) => runJson(args('s64.npy', 't64.npy', 'y64.npy', extra), env));
      for (const out of await Promise.all(runs)) {
        expect(out.rows).to.equal(ROWS);
        expect(out.cols).to.equal(COLS);
        expect(out.dtype).to.equal('float64');
        expect(out.backend).to.equal(backend);
        expect(out.alpha).to.equal(alpha);
        expect(out.temperature).to.equal(T);
        expect(out.seconds).to.be.a('number');
        expectMatches(out, ref, 1e-12);
      }
    });

    it('float32 logits with int32 (v2 header), uint8 and one-hot float64/float32 labels (v2/v3 logits headers)', async () => {
      const ref = reference(S32, T32, Y, T, alpha);
      const runs = [
        ['s32.npy', 't32.npy', 'y32.npy'],
        ['s32v2.npy', 't32v3.npy', 'yu8.npy'],
        ['s32.npy', 't32.npy', 'onehot64.npy'],
        ['s32v2.npy', 't32.npy', 'onehot32.npy'],
      ].map(([s, t, y]) => runJson(args(s, t, y, ['--chunk-rows', '16']), env));
      for (const out of await Promise.all(runs)) {
        expect(out.dtype).to.equal('float32');
        expectMatches(out, ref, 1e-12);
      }
    });

    it('without labels reports the soft term only: alpha taken as 1, hard and accuracies null', async () => {
      const ref = reference(S32, T32, null, T, alpha);
      const out = await runJson(args('s32.npy', 't32.npy', undefined, ['--chunk-rows', '9']), env);
      expectMatches(out, ref, 1e-12);
      expect(out.alpha).to.equal(1);
      expect(out.requestedAlpha).to.equal(alpha);
      expectRel(out.loss, T * T * out.soft, 1e-15, 'loss = T^2 soft');
      expect(out.note).to.match(/no labels/);
    });

    it('writes --per-sample as a float64 .npy equal to the library perSample (with and without labels)', async () => {
      const file = (y: string | undefined): string => f(`per-sample-${backend}-${y ?? 'none'}.npy`);
      const labels = ['y64.npy', undefined];
      const runs = await Promise.all(labels.map((y) => runJson(args('s32.npy', 't32.npy', y, ['--chunk-rows', '8', '--per-sample', file(y)]), env)));
      for (const [i, y] of labels.entries()) {
        const out = runs[i];
        expect(out.files.perSample).to.equal(file(y));
        const ref = reference(S32, T32, y ? Y : null, T, alpha);
        const written = readNpy(file(y));
        expect(written.descr).to.equal('<f8');
        expect(written.shape).to.deep.equal([ROWS]);
        expect(written.data).to.be.instanceOf(Float64Array);
        for (let i = 0; i < ROWS; i++) expectRel(written.data[i] as number, ref.perSample[i], 1e-15, `perSample[${i}]`);
      }
    });

    it('gives the same numbers for every thread count and chunk size', async () => {
      const [a, b, c] = await Promise.all(
        [
          ['--threads', '1', '--chunk-rows', '50'],
          ['--threads', '3', '--chunk-rows', '50'],
          ['--threads', '2', '--chunk-rows', '1'],
        ].map((extra) => runJson(args('s64.npy', 't64.npy', 'y64.npy', extra), env)),
      );
      for (const k of ['loss', 'soft', 'hard', 'agreement', 'studentAccuracy', 'teacherAccuracy']) {
        expect(b[k], k).to.equal(a[k]);
        expectRel(c[k], a[k], 1e-13, k);
      }
      expect(b.perClass).to.deep.equal(a.perClass);
    });
  });

  describe('kdloss eval: text report', () => {
    it('prints the loss, its terms, top-1 figures, the per-class table, a histogram and the throughput', async () => {
      const cmd = ['eval', '--student', f('s32.npy'), '--teacher', f('t32.npy'), '--labels', f('y64.npy'), '--temperature', '2', '--alpha', '0.5'];
      const [r, j] = await Promise.all([runCli(cmd), runJson(cmd)]);
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stderr).to.equal(''); // no progress bar when stderr is not a terminal
      const out = r.stdout;
      expect(out).to.match(new RegExp(`^kdloss eval: ${ROWS} rows x ${COLS} classes \\(float32\\)`));
      expect(out).to.match(/labels\s+.*y64\.npy \(int64 class indices\)/);
      expect(out).to.match(new RegExp(`KD loss\\s+${j.loss.toFixed(6)}\\s+= 0\\.5 \\* 2\\^2 \\* soft \\+ 0\\.5 \\* hard`));
      expect(out).to.match(new RegExp(`soft \\(KL at T=2\\)\\s+${j.soft.toFixed(6)}`));
      expect(out).to.match(new RegExp(`hard \\(CE\\)\\s+${j.hard.toFixed(6)}`));
      expect(out).to.match(new RegExp(`teacher/student agreement\\s+${(100 * j.agreement).toFixed(2)}%\\s+\\(${j.counts.agreement} / ${ROWS}\\)`));
      expect(out).to.match(new RegExp(`student accuracy\\s+${(100 * j.studentAccuracy).toFixed(2)}%`));
      expect(out).to.match(new RegExp(`teacher accuracy\\s+${(100 * j.teacherAccuracy).toFixed(2)}%`));
      // Per-class table: header and one line per class present (6 of 7).
      expect(out).to.match(/Per class \(6 of 7 classes present in the labels\)/);
      expect(out).to.match(/class\s+support\s+student acc\s+teacher acc\s+mean KL/);
      for (const c of j.perClass) {
        expect(out).to.match(new RegExp(`\\n\\s+${c.class}\\s+${c.support}\\s+${(100 * c.studentAccuracy).toFixed(2)}%\\s+${(100 * c.teacherAccuracy).toFixed(2)}%\\s+${c.meanKl.toFixed(6)}\\n`));
      }
      // Histogram: a line per bin with its range, count and a bar; the counts add up to the rows.
      expect(out).to.match(/Per-sample KL at T=2 \(log-spaced bins, min \S+, max \S+\)/);
      const bins = [...out.matchAll(/^ {2}\[(\S+), (\S+)\)\s+(\d+)\s*(#*)$/gm)];
      expect(bins.length).to.be.within(2, 20);
      expect(bins.reduce((a, m) => a + Number(m[3]), 0)).to.equal(ROWS);
      expect(bins.some((m) => m[4].length > 10)).to.equal(true);
      expect(out).to.match(new RegExp(`\\n${ROWS} rows in \\d+\\.\\d+ s \\([\\d,]+ rows/s\\)\\n$`));
    });

    it('says that alpha is taken as 1 and leaves out accuracies and the table without labels', async () => {
      const r = await runCli(['eval', '--student', f('s64.npy'), '--teacher', f('t64.npy')]);
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stdout).to.match(/alpha = 1 \(requested 0\.7\)/);
      expect(r.stdout).to.match(/no labels: .*alpha is taken as 1/);
      expect(r.stdout).to.match(/KD loss\s+\S+\s+= 4\^2 \* soft/);
      expect(r.stdout).to.match(/hard \(CE\)\s+n\/a/);
      expect(r.stdout).to.match(/student accuracy\s+n\/a/);
      expect(r.stdout).to.not.match(/Per class/);
    });
  });

  describe('kdloss eval: bad input (exit code 2, one line naming the file)', () => {
    const good = (over: Partial<Record<'student' | 'teacher' | 'labels', string>> = {}, extra: string[] = []): string[] => {
      const files = { student: f('s32.npy'), teacher: f('t32.npy'), labels: f('y64.npy'), ...over };
      return ['eval', '--student', files.student, '--teacher', files.teacher, ...(files.labels ? ['--labels', files.labels] : []), ...extra];
    };
    const raw = (name: string, bytes: Buffer): string => {
      fs.writeFileSync(f(name), bytes);
      return f(name);
    };
    const f32 = new Float32Array(ROWS * COLS);

    interface Case {
      what: string;
      args: () => string[];
      file: () => string;
      pattern: RegExp;
      after?: () => void;
    }
    const cases: Case[] = [
      { what: 'a missing file', args: () => good({ teacher: f('nope.npy') }), file: () => f('nope.npy'), pattern: /no such file/ },
      { what: 'a directory', args: () => good({ student: tmp }), file: () => tmp, pattern: /is a directory/ },
      { what: 'an empty file', args: () => good({ student: raw('empty.npy', Buffer.alloc(0)) }), file: () => f('empty.npy'), pattern: /empty file/ },
      {
        what: 'a bad magic',
        args: () => good({ student: raw('magic.npy', Buffer.from('PK\x03\x04 this is a zip, not npy')) }),
        file: () => f('magic.npy'),
        pattern: /not a NumPy \.npy file \(bad magic\)/,
      },
      {
        what: 'an unsupported format version',
        args: () => {
          const h = npyHeader('<f4', [ROWS, COLS]);
          h[6] = 4;
          return good({ student: raw('v4.npy', Buffer.concat([h, Buffer.from(f32.buffer)])) });
        },
        file: () => f('v4.npy'),
        pattern: /unsupported \.npy format version 4\.0/,
      },
      {
        what: 'a truncated header',
        args: () => good({ student: raw('trunc-header.npy', npyHeader('<f4', [ROWS, COLS]).subarray(0, 40)) }),
        file: () => f('trunc-header.npy'),
        pattern: /truncated \.npy header/,
      },
      {
        what: 'a malformed header',
        args: () => {
          writeNpy(f('malformed.npy'), f32, [ROWS, COLS], { dict: "{'descr': '<f4', 'fortran_order': False, 'shape': (50, 7" });
          return good({ student: f('malformed.npy') });
        },
        file: () => f('malformed.npy'),
        pattern: /malformed \.npy header/,
      },
      {
        what: 'an unsupported dtype (float16)',
        args: () => {
          writeNpy(f('f16.npy'), new Uint16Array(ROWS * COLS), [ROWS, COLS], { descr: '<f2' });
          return good({ teacher: f('f16.npy') });
        },
        file: () => f('f16.npy'),
        pattern: /unsupported dtype '<f2' \(float16\)/,
      },
      {
        what: 'an unsupported dtype (complex64)',
        args: () => {
          writeNpy(f('c8.npy'), new Float32Array(2 * ROWS * COLS), [ROWS, COLS], { descr: '<c8' });
          return good({ student: f('c8.npy') });
        },
        file: () => f('c8.npy'),
        pattern: /unsupported dtype '<c8' \(complex64\)/,
      },
      {
        what: 'integer logits',
        args: () => {
          writeNpy(f('int-logits.npy'), new Int32Array(ROWS * COLS), [ROWS, COLS]);
          return good({ student: f('int-logits.npy') });
        },
        file: () => f('int-logits.npy'),
        pattern: /unsupported dtype '<i4' \(int32\) for logits \(expected float32 or float64\)/,
      },
      {
        what: 'a big-endian byte order',
        args: () => {
          writeNpy(f('be.npy'), f32, [ROWS, COLS], { descr: '>f4' });
          return good({ teacher: f('be.npy') });
        },
        file: () => f('be.npy'),
        pattern: /unsupported byte order: big-endian '>f4'/,
      },
      {
        what: 'a big-endian label file',
        args: () => {
          writeNpy(f('be-labels.npy'), toInt64(Y), [ROWS], { descr: '>i8' });
          return good({ labels: f('be-labels.npy') });
        },
        file: () => f('be-labels.npy'),
        pattern: /unsupported byte order: big-endian '>i8'/,
      },
      {
        what: 'Fortran order',
        args: () => {
          writeNpy(f('fortran.npy'), f32, [ROWS, COLS], { fortranOrder: true });
          return good({ student: f('fortran.npy') });
        },
        file: () => f('fortran.npy'),
        pattern: /Fortran \(column-major\) order is not supported/,
      },
      {
        what: 'truncated data',
        args: () => {
          writeNpy(f('trunc.npy'), f32, [ROWS, COLS], { truncateBy: 10 });
          return good({ teacher: f('trunc.npy') });
        },
        file: () => f('trunc.npy'),
        pattern: /truncated data: shape \(50, 7\) float32 needs 1400 bytes after the header, the file has 1390/,
      },
      {
        what: 'trailing bytes after the data',
        args: () => good({ student: raw('trailing.npy', Buffer.concat([npyHeader('<f4', [ROWS, COLS]), Buffer.from(f32.buffer), Buffer.alloc(3)])) }),
        file: () => f('trailing.npy'),
        pattern: /3 unexpected bytes after the data/,
      },
      {
        what: '1-D logits',
        args: () => {
          writeNpy(f('flat.npy'), f32, [ROWS * COLS]);
          return good({ student: f('flat.npy') });
        },
        file: () => f('flat.npy'),
        pattern: /expected a 2-D array of logits \(rows, classes\), got shape \(350,\)/,
      },
      {
        what: 'logits without rows',
        args: () => {
          writeNpy(f('norows.npy'), new Float32Array(0), [0, COLS]);
          return good({ student: f('norows.npy') });
        },
        file: () => f('norows.npy'),
        pattern: /no rows/,
      },
      {
        what: 'a student/teacher dtype mismatch',
        args: () => good({ teacher: f('t64.npy') }),
        file: () => f('t64.npy'),
        pattern: /dtype float64 does not match .*s32\.npy \(float32\)/,
      },
      {
        what: 'a student/teacher row mismatch',
        args: () => {
          writeMatrix(f('t-rows.npy'), { data: T32.data.subarray(0, (ROWS - 1) * COLS), rows: ROWS - 1, cols: COLS });
          return good({ teacher: f('t-rows.npy') });
        },
        file: () => f('t-rows.npy'),
        pattern: /49 rows, but .*s32\.npy has 50 rows/,
      },
      {
        what: 'a student/teacher class mismatch',
        args: () => {
          writeMatrix(f('t-cols.npy'), { data: new Float32Array(ROWS * 6), rows: ROWS, cols: 6 });
          return good({ teacher: f('t-cols.npy') });
        },
        file: () => f('t-cols.npy'),
        pattern: /6 classes, but .*s32\.npy has 7 classes/,
      },
      {
        what: 'a label count mismatch',
        args: () => {
          writeNpy(f('y-short.npy'), toInt64(Y.subarray(1)), [ROWS - 1]);
          return good({ labels: f('y-short.npy') });
        },
        file: () => f('y-short.npy'),
        pattern: /49 labels, but .*s32\.npy has 50 rows/,
      },
      {
        what: 'a one-hot class mismatch',
        args: () => {
          writeMatrix(f('onehot-cols.npy'), oneHot(Y, COLS - 1));
          return good({ labels: f('onehot-cols.npy') });
        },
        file: () => f('onehot-cols.npy'),
        pattern: /6 classes, but .*s32\.npy has 7 classes/,
      },
      {
        what: '2-D integer labels',
        args: () => {
          writeNpy(f('y-2d.npy'), Int32Array.from(Y), [ROWS, 1]);
          return good({ labels: f('y-2d.npy') });
        },
        file: () => f('y-2d.npy'),
        pattern: /integer labels must be 1-D class indices, got shape \(50, 1\)/,
      },
      {
        what: 'float labels that are not one-hot',
        args: () => {
          const m = oneHot(Y, COLS);
          m.data[12 * COLS] = 0.5;
          writeMatrix(f('soft-labels.npy'), m);
          return good({ labels: f('soft-labels.npy') });
        },
        file: () => f('soft-labels.npy'),
        pattern: /row 12 is not one-hot/,
      },
      {
        what: 'an int32 label >= classes',
        args: () => {
          const y = Int32Array.from(Y);
          y[17] = COLS;
          writeNpy(f('y-big.npy'), y, [ROWS]);
          return good({ labels: f('y-big.npy') });
        },
        file: () => f('y-big.npy'),
        pattern: /row 17: class index 7 out of range \[0, 7\)/,
      },
      {
        what: 'a negative int32 label (-100 too: kdloss eval has no ignore index)',
        args: () => {
          const y = Int32Array.from(Y);
          y[0] = -100;
          writeNpy(f('y-neg.npy'), y, [ROWS]);
          return good({ labels: f('y-neg.npy') });
        },
        file: () => f('y-neg.npy'),
        pattern: /row 0: class index -100 out of range \[0, 7\)/,
      },
      {
        what: 'an int64 label beyond 32 bits',
        args: () => {
          const y = toInt64(Y);
          y[3] = 1n << 40n;
          writeNpy(f('y-huge.npy'), y, [ROWS]);
          return good({ labels: f('y-huge.npy') });
        },
        file: () => f('y-huge.npy'),
        pattern: /row 3: class index 1099511627776 out of range/,
      },
      {
        what: 'a negative int64 label in a later chunk (absolute row), removing the partial --per-sample file',
        args: () => {
          const y = toInt64(Y);
          y[33] = -1n;
          writeNpy(f('y-late.npy'), y, [ROWS]);
          return good({ labels: f('y-late.npy') }, ['--chunk-rows', '8', '--per-sample', f('partial.npy')]);
        },
        file: () => f('y-late.npy'),
        pattern: /row 33: class index -1 out of range/,
        after: () => expect(fs.existsSync(f('partial.npy'))).to.equal(false),
      },
      {
        what: 'an unwritable --per-sample path',
        args: () => good({}, ['--per-sample', path.join(tmp, 'no-such-dir', 'out.npy')]),
        file: () => path.join(tmp, 'no-such-dir', 'out.npy'),
        pattern: /cannot write: no such file/,
      },
    ];

    // The runs are independent: run them a few at a time up front, then check each in its own test.
    const results = new Map<string, CliResult>();
    before(async function () {
      this.timeout(120000);
      const queue = [...cases];
      const worker = async (): Promise<void> => {
        for (let c = queue.shift(); c !== undefined; c = queue.shift()) results.set(c.what, await runCli(c.args()));
      };
      await Promise.all([worker(), worker(), worker(), worker()]);
    });

    for (const c of cases) {
      it(`rejects ${c.what}`, async () => {
        expectInputError(results.get(c.what)!, c.file(), c.pattern);
        c.after?.();
      });
    }
  });

  describe('kdloss eval: streaming a file much larger than the chunk', function () {
    this.timeout(120000);
    // 200k rows x 100 classes float32: 80 MB per logits file, as 200 copies of a 1000-row block.
    const BLOCK = 1000;
    const REPEATS = 200;
    const C = 100;
    let s: Matrix;
    let t: Matrix;
    let y: Int32Array;

    before(() => {
      const rngBig = new Rng(99);
      s = toF32(rngBig.matrix(BLOCK, C, 2));
      t = { data: s.data.map((v) => v + rngBig.normal(0.7)), rows: BLOCK, cols: C };
      y = rngBig.classes(BLOCK, C);
      writeRepeated(f('big-s.npy'), s.data, [BLOCK * REPEATS, C], REPEATS);
      writeRepeated(f('big-t.npy'), t.data, [BLOCK * REPEATS, C], REPEATS);
      writeRepeated(f('big-y.npy'), toInt64(y), [BLOCK * REPEATS], REPEATS);
    });

    it('keeps peak RSS bounded by the chunk size, not the file size, and gives the block values', async () => {
      expect(fs.statSync(f('big-s.npy')).size).to.be.greaterThan(80e6);
      const small = await runJson(['eval', '--student', f('s32.npy'), '--teacher', f('t32.npy'), '--labels', f('y64.npy')]);
      const big = await runJson(['eval', '--student', f('big-s.npy'), '--teacher', f('big-t.npy'), '--labels', f('big-y.npy'), '--chunk-rows', '1000']);
      expect(big.rows).to.equal(BLOCK * REPEATS);
      expect(big.chunkRows).to.equal(1000);
      // Every block is the same, so the file's means are the block's.
      const previous = getBackend();
      setBackend('native');
      try {
        expectMatches({ ...big, perClass: null }, { ...reference(s, t, y, 4, 0.7), perClass: null }, 1e-12);
      } finally {
        setBackend(previous);
      }
      // 160 MB of logits went through; the process never held more than a few chunks of them.
      const MB = 1 << 20;
      expect(big.maxRssBytes, `peak RSS ${(big.maxRssBytes / MB).toFixed(1)} MB`).to.be.below(150 * MB);
      expect(big.maxRssBytes - small.maxRssBytes, `RSS growth over a 50-row run`).to.be.below(64 * MB);
    });

    it('stops cleanly on SIGINT: exit code 130, "interrupted after N rows", no partial --per-sample file', async () => {
      const out = f('interrupted.npy');
      const child = spawn(
        process.execPath,
        [BIN, 'eval', '--student', f('big-s.npy'), '--teacher', f('big-t.npy'), '--labels', f('big-y.npy'), '--chunk-rows', '1000', '--per-sample', out],
        { env: { ...process.env, KDLOSS_BACKEND: 'native', KDLOSS_CLI_TEST_DELAY_MS: '20' }, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let stderr = '';
      let stdout = '';
      child.stderr.on('data', (d) => (stderr += d));
      child.stdout.on('data', (d) => (stdout += d));
      const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on('exit', (code, sig) => resolve([code, sig])));
      // The output file appears once the inputs are checked and the loop is about to start.
      const t0 = Date.now();
      while (!fs.existsSync(out) && Date.now() - t0 < 20000) await new Promise((r) => setTimeout(r, 10));
      await new Promise((r) => setTimeout(r, 200));
      child.kill('SIGINT');
      const [code, sig] = await exited;
      expect(sig, stderr).to.equal(null);
      expect(code, stderr).to.equal(130);
      expect(stdout).to.equal('');
      const m = /^kdloss: interrupted after (\d+) rows\n$/.exec(stderr);
      expect(m, stderr).to.not.equal(null);
      const n = Number(m![1]);
      expect(n % 1000).to.equal(0);
      expect(n).to.be.below(BLOCK * REPEATS);
      expect(fs.existsSync(out)).to.equal(false);
    });
  });

  describe('kdloss eval: golden output on the embedded sample', () => {
    const files = ['student.npy', 'teacher.npy', 'labels.npy'].map((n) => path.join(SAMPLE, n));
    const present = files.every((p) => fs.existsSync(p));
    const sha256 = (p: string): string => crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex');
    const args = ['eval', '--student', 'examples/sample/student.npy', '--teacher', 'examples/sample/teacher.npy', '--labels', 'examples/sample/labels.npy'];
    const NUMBERS = ['rows', 'cols', 'dtype', 'temperature', 'alpha', 'loss', 'soft', 'hard', 'agreement', 'studentAccuracy', 'teacherAccuracy', 'counts', 'perClass', 'klHistogram'];

    before(function () {
      if (!present) this.skip();
    });

    it('matches test/fixtures/sample-golden.json on every backend, and the golden file matches the library', async () => {
      const s = readNpy(files[0]);
      const t = readNpy(files[1]);
      const yRaw = readNpy(files[2]);
      const y = Int32Array.from(yRaw.data as ArrayLike<number | bigint>, Number);
      const [rows, cols] = s.shape;
      const previous = getBackend();
      if (process.env.KDLOSS_UPDATE_GOLDEN === '1') {
        // Regenerate: KDLOSS_UPDATE_GOLDEN=1 npx mocha dist-test/test/cli.test.js -g golden
        const out = await runJson(args, { KDLOSS_BACKEND: 'native' });
        const expected: Record<string, unknown> = {};
        for (const k of NUMBERS) expected[k] = out[k];
        const golden = {
          note: 'kdloss eval --json on examples/sample (defaults T=4, alpha=0.7), numbers only; regenerate with KDLOSS_UPDATE_GOLDEN=1',
          args,
          sha256: Object.fromEntries(files.map((p) => [path.basename(p), sha256(p)])),
          expected,
        };
        fs.writeFileSync(GOLDEN, JSON.stringify(golden, null, 2) + '\n');
      }
      const golden = JSON.parse(fs.readFileSync(GOLDEN, 'utf8'));
      for (const p of files) {
        expect(sha256(p), `${path.basename(p)} changed since the golden file was written: regenerate it (KDLOSS_UPDATE_GOLDEN=1)`).to.equal(
          golden.sha256[path.basename(p)],
        );
      }
      const g = golden.expected;
      expect(g.rows).to.equal(rows);
      expect(g.cols).to.equal(cols);
      try {
        for (const backend of ['native', 'js'] as const) {
          // The golden numbers are what the library computes...
          setBackend(backend);
          const m = (a: typeof s): Matrix => ({ data: a.data as Float32Array, rows, cols });
          expectMatches(g, reference(m(s), m(t), y, 4, 0.7), 1e-5);
          // ...and what the CLI prints, on every backend and chunking. float32 logits: kernel variants
          // agree to ~1e-7 relative; counts and the histogram exactly.
          const runs = [[], ['--chunk-rows', '64']].map((extra) => runJson([...args, ...extra], { KDLOSS_BACKEND: backend }));
          for (const out of await Promise.all(runs)) {
            expect(out.rows).to.equal(g.rows);
            expect(out.dtype).to.equal(g.dtype);
            for (const k of ['loss', 'soft', 'hard']) expectRel(out[k], g[k], 1e-6, k);
            for (const k of ['agreement', 'studentAccuracy', 'teacherAccuracy', 'counts']) expect(out[k], k).to.deep.equal(g[k]);
            expect(out.klHistogram.bins, 'histogram bins').to.deep.equal(g.klHistogram.bins);
            expectRel(out.klHistogram.min, g.klHistogram.min, 1e-5, 'histogram min');
            expectRel(out.klHistogram.max, g.klHistogram.max, 1e-5, 'histogram max');
            expect(out.perClass.length).to.equal(g.perClass.length);
            out.perClass.forEach((c: any, i: number) => {
              const gc = g.perClass[i];
              expect({ ...c, meanKl: 0 }).to.deep.equal({ ...gc, meanKl: 0 });
              expectRel(c.meanKl, gc.meanKl, 1e-6, `class ${c.class} meanKl`);
            });
          }
        }
      } finally {
        setBackend(previous);
      }
    });
  });
});
