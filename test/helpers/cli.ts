// Shared by the command-line tests (test/cli-*.test.ts): running the real binary, the small data set
// every file evaluates, the reference numbers from the library API, and the shape of a bad-input error.
import { expect } from 'chai';
import { execFile, spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { DistillationLoss, type Matrix } from 'kdloss';
import { oneHot, Rng, toF32 } from './random';
import { toInt64, writeMatrix, writeNpy } from './npy';

export const ROOT = path.resolve(__dirname, '..', '..', '..');
export const BIN = path.join(ROOT, 'bin', 'kdloss.js');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Kill the process after this many milliseconds (a hang then fails the test instead of the suite). */
  timeoutMs?: number;
  cwd?: string;
}

/** Runs `node bin/kdloss.js ...args` (backend from `env`, default native). */
export function runCli(args: string[], env: Record<string, string> = {}, opts: RunOptions = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      {
        env: { ...process.env, KDLOSS_BACKEND: 'native', ...env },
        maxBuffer: 64 << 20,
        cwd: opts.cwd ?? ROOT,
        timeout: opts.timeoutMs ?? 0,
        killSignal: 'SIGKILL',
      },
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
export async function runJson(args: string[], env: Record<string, string> = {}): Promise<Record<string, any>> {
  const r = await runCli([...args, '--json'], env);
  expect(r.code, `exit code; stderr: ${r.stderr}`).to.equal(0);
  return JSON.parse(r.stdout);
}

/** A running `kdloss` child with its output collected, for the signal tests. */
export interface Spawned {
  child: ReturnType<typeof spawn>;
  exited: Promise<[number | null, NodeJS.Signals | null]>;
  out: { stdout: string; stderr: string };
}

export function spawnCli(args: string[], env: Record<string, string> = {}): Spawned {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, KDLOSS_BACKEND: 'native', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out = { stdout: '', stderr: '' };
  child.stderr!.on('data', (d) => (out.stderr += d));
  child.stdout!.on('data', (d) => (out.stdout += d));
  const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on('exit', (code, sig) => resolve([code, sig])));
  return { child, exited, out };
}

export function expectRel(actual: number, expected: number, rel: number, what: string): void {
  const tol = rel * Math.max(Math.abs(expected), 1e-300);
  expect(Math.abs(actual - expected), `${what}: ${actual} vs ${expected}`).to.be.at.most(tol);
}

export interface Reference {
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
export function reference(s: Matrix, t: Matrix, y: Int32Array | null, T: number, alpha: number): Reference {
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
export function expectMatches(out: Record<string, any>, ref: Reference, rel: number): void {
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
export function expectInputError(r: CliResult, file: string, pattern: RegExp): void {
  expect(r.code, `exit code; stderr: ${r.stderr}`).to.equal(2);
  expect(r.stdout).to.equal('');
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  expect(lines, r.stderr).to.have.length(1);
  expect(lines[0]).to.match(/^kdloss: /);
  expect(lines[0]).to.include(file);
  expect(lines[0]).to.match(pattern);
  expect(r.stderr).to.not.match(/\n\s+at /);
}

/** A temp directory made before the tests of a describe block and removed after them. */
export function tempDir(prefix: string): { path: string; f(name: string): string } {
  const dir = { path: '', f: (name: string): string => path.join(dir.path, name) };
  before(() => {
    dir.path = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  });
  after(() => fs.rmSync(dir.path, { recursive: true, force: true }));
  return dir;
}

/**
 * The small data set the CLI tests evaluate: 50 rows x 7 classes in both dtypes, labels covering
 * classes 0..5 (class 6 absent), in several label dtypes and header versions.
 */
export const ROWS = 50;
export const COLS = 7;
const rng = new Rng(2024);
export const S64 = rng.matrix(ROWS, COLS, 2);
export const T64 = { data: S64.data.map((v) => 1.5 * v + rng.normal(1)), rows: ROWS, cols: COLS };
export const S32 = toF32(S64);
export const T32 = toF32(T64);
export const Y = rng.classes(ROWS, COLS - 1);

/** Writes the small data set into `dir`: s64, t64, s32, t32, s32v2, t32v3, y64, y32, yu8, onehot64, onehot32 (.npy). */
export function writeSmallData(dir: string): void {
  const f = (name: string): string => path.join(dir, name);
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
}

/** `eval` arguments on the small float32 data set; `over` replaces an input (an empty string drops it). */
export function evalArgs(dir: string, over: Partial<Record<'student' | 'teacher' | 'labels', string>> = {}, extra: string[] = []): string[] {
  const files = { student: path.join(dir, 's32.npy'), teacher: path.join(dir, 't32.npy'), labels: path.join(dir, 'y64.npy'), ...over };
  return ['eval', '--student', files.student, '--teacher', files.teacher, ...(files.labels ? ['--labels', files.labels] : []), ...extra];
}
