// The data of the sparse-teacher command-line tests (test/cli-sparse*.test.ts): a [3, 20, 33] student,
// its teacher's top-5 entries per row (shuffled slots, some rows padded with -1) as logits and as
// log-probabilities at T, labels with ignored rows, the files that hold them, and the library's numbers
// on the same rows.
import * as fs from 'fs';
import * as path from 'path';
import { CrossEntropyLoss, DistillationLoss, type SparseTeacher } from 'kdloss';
import { ROOT } from './cli';
import { toInt64, writeNpy } from './npy';
import { Rng } from './random';
import { writeSafetensors } from './safetensors';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { ExactSum } = require(path.join(ROOT, 'dist', 'cli', 'exact-sum.js')) as typeof import('../../dist/cli/exact-sum');

export const LEAD = [3, 20];
export const R = 60;
export const V = 33;
export const K = 5;
export const T = 2;
export const ALPHA = 0.6;
export const IGNORED = [4, 31, 32];

export type Dt = 'float32' | 'float64';
export type Kind = 'logits' | 'logprobs';

const rng = new Rng(1919);
const S = Float64Array.from({ length: R * V }, () => rng.normal(2));
const TL = S.map((v) => 1.3 * v + rng.normal(1));
export const Y = Int32Array.from({ length: R }, (_, r) => (IGNORED.includes(r) ? -100 : rng.int(V)));

/** The entries: the teacher's top used(r) tokens in shuffled slots, the other slots -1. */
export const INDICES = new Int32Array(R * K).fill(-1);
const LOGITS = new Float64Array(R * K);
const LOGPROBS = new Float64Array(R * K);
for (let r = 0; r < R; r++) {
  const row = Array.from(TL.subarray(r * V, (r + 1) * V));
  const m = Math.max(...row);
  const lse = m / T + Math.log(row.reduce((a, x) => a + Math.exp(x / T - m / T), 0));
  const order = row.map((_, j) => j).sort((a, b) => row[b] - row[a]);
  const used = r % 7 === 3 ? 2 : K;
  const slots = Array.from({ length: K }, (_, e) => e).sort(() => rng.uniform() - 0.5);
  for (let e = 0; e < used; e++) {
    const o = r * K + slots[e];
    INDICES[o] = order[e];
    LOGITS[o] = row[order[e]];
    LOGPROBS[o] = row[order[e]] / T - lse;
  }
}

/** The student in `dt`, placed as kdloss eval places its rows (row r at r * rowBytes modulo 64). */
export function student(dt: Dt): Float32Array | Float64Array {
  const n = R * V;
  const wasm = (globalThis as unknown as { WebAssembly: { Memory: new (d: { initial: number }) => { buffer: ArrayBuffer } } }).WebAssembly;
  const buffer = new wasm.Memory({ initial: Math.ceil((8 * n) / 65536) }).buffer;
  const a = dt === 'float32' ? new Float32Array(buffer, 0, n) : new Float64Array(buffer, 0, n);
  a.set(S);
  return a;
}

export function values(dt: Dt, kind: Kind): Float32Array | Float64Array {
  const v = kind === 'logits' ? LOGITS : LOGPROBS;
  return dt === 'float32' ? Float32Array.from(v) : Float64Array.from(v);
}

export function sparseTeacher(dt: Dt, kind: Kind, tail: boolean): SparseTeacher {
  return { indices: Int32Array.from(INDICES), values: values(dt, kind), rows: R, k: K, kind, tail };
}

/**
 * Writes the data set: s32/s64.npy, y.npy, i32.npy and v-float32-{kind}.npy of shape [60, 5] (the
 * student's rows flattened), i64.npy and v-float64-{kind}.npy of shape [3, 20, 5],
 * topk-{dt}-{kind}.safetensors (with the student).
 */
export function writeSparseData(dir: string): void {
  const f = (name: string): string => path.join(dir, name);
  fs.mkdirSync(dir, { recursive: true });
  writeNpy(f('y.npy'), toInt64(Y), LEAD);
  writeNpy(f('i32.npy'), INDICES, [R, K]);
  writeNpy(f('i64.npy'), toInt64(INDICES), [...LEAD, K]);
  for (const dt of ['float32', 'float64'] as const) {
    const s = student(dt);
    writeNpy(f(`s${dt === 'float32' ? 32 : 64}.npy`), s, [...LEAD, V]);
    for (const kind of ['logits', 'logprobs'] as const) {
      const v = values(dt, kind);
      writeNpy(f(`v-${dt}-${kind}.npy`), v, dt === 'float32' ? [R, K] : [...LEAD, K]);
      const F = dt === 'float32' ? 'F32' : 'F64';
      writeSafetensors(f(`topk-${dt}-${kind}.safetensors`), {
        student: { dtype: F, shape: [...LEAD, V], data: s },
        indices: { dtype: 'I64', shape: [...LEAD, K], data: toInt64(INDICES) },
        values: { dtype: F, shape: [...LEAD, K], data: v },
      });
    }
  }
}

/** What kdloss eval --json must report: the library's rows, summed exactly as the CLI sums them. */
export interface SparseReference {
  loss: number;
  soft: number;
  hard: number;
  agreement: number;
  studentAccuracy: number;
  teacherAccuracy: number;
  /** The library's per-row losses (0 for ignored rows), what --per-sample writes. */
  perSample: Float64Array;
}

/** DistillationLoss.forward on the whole data with the sparse teacher, on the current backend. */
export function sparseReference(dt: Dt, kind: Kind, tail: boolean): SparseReference {
  const kd = new DistillationLoss(T, ALPHA, new CrossEntropyLoss({ ignoreIndex: -100 }));
  const r = kd.forward({ data: student(dt), rows: R, cols: V }, sparseTeacher(dt, kind, tail), Y, { reduction: 'none', argmax: true });
  const soft = new ExactSum();
  const hard = new ExactSum();
  let n = 0;
  let agree = 0;
  let sc = 0;
  let tc = 0;
  for (let i = 0; i < R; i++) {
    if (Y[i] === -100) continue;
    n++;
    soft.add(r.perSampleSoft![i]);
    hard.add(r.perSampleHard![i]);
    const sa = r.studentArgmax![i];
    const ta = r.teacherArgmax![i];
    if (sa === ta && sa >= 0) agree++;
    if (sa === Y[i]) sc++;
    if (ta === Y[i]) tc++;
  }
  const s = soft.value / n;
  const h = hard.value / n;
  return { loss: ALPHA * T * T * s + (1 - ALPHA) * h, soft: s, hard: h, agreement: agree / n, studentAccuracy: sc / n, teacherAccuracy: tc / n, perSample: r.perSample! };
}
