/**
 * Pure TypeScript backend: the same semantics as the native kernels, computed in float64 row by row.
 * It is the fallback where the addon cannot load and the baseline the benchmarks compare against.
 * @module
 */
import { InputError } from '../errors';
import type { FloatArray } from '../matrix';
import { lengthOf, type View } from '../views';
import { softDivergence } from './js-divergence';
import { sparseKd } from './js-sparse';
import { DivergenceCode, ReductionCode } from './layout';
import {
  type AsyncHandle,
  type AttentionJob,
  type Backend,
  type FeatureJob,
  HardKind,
  type Job,
  type KdJob,
  reductionScale,
  type RowScratch,
  TargetKind,
} from './types';

/** A distillation job with its gradient scales (the binding derives the same). */
type KdRun = KdJob & { gradSoftScale: number; gradHardScale: number };
/** An attention job with its gradient scale. */
type AttentionRun = AttentionJob & { gradScale: number };

export function rowKept(job: KdJob, r: number): boolean {
  if (job.mask !== null && job.mask[r] === 0) return false;
  if ((job.targetKind === TargetKind.Int32 || job.targetKind === TargetKind.Uint32) && job.targets![r] === job.ignoreIndex) {
    return false;
  }
  return true;
}

const clamp = (x: number, lo: number, hi: number): number => (x < lo ? lo : x > hi ? hi : x);


/**
 * One distillation row: returns [the soft term (the job's divergence), hard loss] and writes the row's
 * gradient when asked.
 */
export function kdRow(job: KdRun, r: number, scratch: RowScratch): [number, number] {
  const { es, et, e1, dq } = scratch;
  const C = job.cols;
  const o = r * C;
  const { student: s, teacher: t, temperature: T } = job;
  const invT = 1 / T;
  let ms = -Infinity;
  let mt = -Infinity;
  let as = -1;
  let at = -1;
  for (let j = 0; j < C; j++) {
    if (s[o + j] > ms || (as < 0 && s[o + j] === ms)) {
      ms = s[o + j];
      as = j;
    }
    if (t[o + j] > mt || (at < 0 && t[o + j] === mt)) {
      mt = t[o + j];
      at = j;
    }
  }
  if (job.argmax !== null) {
    job.argmax[r] = as;
    job.argmax[job.rows + r] = at;
  }
  let zs = 0;
  let zt = 0;
  let w = 0;
  for (let j = 0; j < C; j++) {
    const b = (s[o + j] - ms) * invT;
    const a = (t[o + j] - mt) * invT;
    es[j] = Math.exp(b);
    et[j] = Math.exp(a);
    zs += es[j];
    zt += et[j];
    // A teacher probability of exactly 0 contributes 0; a positive one below the float range against a
    // student probability of exactly 0 contributes +inf, as in exact arithmetic.
    if (et[j] > 0) w += et[j] * (a - b);
    else if (a - b === Infinity) w = Infinity;
  }
  const kl = job.divergence === DivergenceCode.Kl;
  const soft = kl
    ? w / zt + Math.log(zs / zt)
    : softDivergence(
        job.divergence,
        job.beta,
        { n: C, es, et, zs, zt, b: (j) => (s[o + j] - ms) * invT, a: (j) => (t[o + j] - mt) * invT },
        job.grad !== null && job.gradSoftScale !== 0 ? dq : null,
      );

  const ls = job.labelSmoothing;
  const lsC = ls / C;
  const matrix = job.targetKind === TargetKind.Matrix;
  const y = matrix ? (job.targets as FloatArray) : null;
  const cls = !matrix && job.targetKind !== TargetKind.None ? job.targets![r] : -1;
  // Smoothed target of element j; at ls = 1 the targets' term is absent (not 0 times a target).
  const yAt = (j: number): number => (ls < 1 ? (1 - ls) * (y !== null ? y[o + j] : j === cls ? 1 : 0) + lsC : lsC);
  let hard = 0;
  let z1 = 1;
  let ysum = 0;
  const eps = job.epsilon;
  switch (job.hard) {
    case HardKind.CrossEntropyLogits: {
      z1 = 0;
      let dot = 0;
      for (let j = 0; j < C; j++) {
        const d = s[o + j] - ms;
        e1[j] = Math.exp(d);
        z1 += e1[j];
        const yj = yAt(j);
        ysum += yj;
        if (yj !== 0) dot += yj * d; // y = 0 at a -inf logit contributes 0, not NaN
      }
      hard = ysum * Math.log(z1) - dot;
      break;
    }
    case HardKind.CrossEntropyProbs:
      for (let j = 0; j < C; j++) {
        const yj = yAt(j);
        if (yj !== 0) hard -= yj * Math.log(clamp(s[o + j], eps, 1 - eps));
      }
      break;
    case HardKind.Mse:
      for (let j = 0; j < C; j++) {
        const d = s[o + j] - (y !== null ? y[o + j] : j === cls ? 1 : 0);
        hard += d * d;
      }
      hard /= C;
      break;
    case HardKind.None:
      break;
  }

  const g = job.grad;
  if (g !== null) {
    const gs = job.gradSoftScale / T;
    const gh = job.gradHardScale;
    for (let j = 0; j < C; j++) {
      // A scale of 0 leaves its term out (0, not 0 times a NaN of the row).
      let v = gs !== 0 ? gs * (kl ? es[j] / zs - et[j] / zt : dq[j]) : 0;
      switch (gh !== 0 ? job.hard : HardKind.None) {
        case HardKind.CrossEntropyLogits:
          v += gh * ((ysum * e1[j]) / z1 - yAt(j));
          break;
        case HardKind.CrossEntropyProbs: {
          const x = s[o + j];
          const yj = yAt(j);
          // A target of exactly 0 leaves its term out (0, not 0 / 0 at a probability of 0).
          if (yj !== 0 && x >= eps && x <= 1 - eps) v -= (gh * yj) / x;
          else if (Number.isNaN(x) && yj !== 0) v = NaN; // a NaN probability with target mass, as the loss
          break;
        }
        case HardKind.Mse:
          v += (2 * gh * (s[o + j] - (y !== null ? y[o + j] : j === cls ? 1 : 0))) / C;
          break;
        case HardKind.None:
          break;
      }
      g[o + j] = v;
    }
  }
  return [soft, hard];
}

/**
 * The pass over the rows' flags before any row is computed, the twin of the binding's: every class
 * index is checked and the kept rows are counted.
 */
function checkAndCountRows(job: KdJob): number {
  const { rows, mask } = job;
  const indices = job.targetKind === TargetKind.Int32 || job.targetKind === TargetKind.Uint32 ? (job.targets as Int32Array | Uint32Array) : null;
  if (indices === null) {
    if (mask === null) return rows;
    let kept = 0;
    for (let r = 0; r < rows; r++) if (mask[r] !== 0) kept++;
    return kept;
  }
  let kept = 0;
  for (let r = 0; r < rows; r++) {
    const c = indices[r];
    if (c === job.ignoreIndex) continue;
    if (c < 0 || c >= job.cols) throw new InputError(`hardTargets[${r}]: class index ${c} out of range [0, ${job.cols})`);
    if (mask === null || mask[r] !== 0) kept++;
  }
  return kept;
}

function kd(job: KdJob, out: Float64Array): void {
  const kept = checkAndCountRows(job);
  const scale = reductionScale(job.reduction, job.normalizer, kept);
  const run: KdRun = { ...job, gradSoftScale: job.softWeight * scale, gradHardScale: job.hardWeight * scale };
  const C = job.cols;
  const scratch: RowScratch = {
    es: new Float64Array(C),
    et: new Float64Array(C),
    e1: new Float64Array(C),
    dq: new Float64Array(job.divergence === DivergenceCode.Kl ? 0 : C),
  };
  let soft = 0;
  let hard = 0;
  for (let r = 0; r < job.rows; r++) {
    if (!rowKept(job, r)) {
      if (job.rowSoft) job.rowSoft[r] = 0;
      if (job.rowHard) job.rowHard[r] = 0;
      if (job.grad) job.grad.fill(0, r * C, (r + 1) * C);
      if (job.argmax) job.argmax[r] = job.argmax[job.rows + r] = -1;
      continue;
    }
    const [rs, rh] = kdRow(run, r, scratch);
    if (job.rowSoft) job.rowSoft[r] = rs;
    if (job.rowHard) job.rowHard[r] = rh;
    soft += rs;
    hard += rh;
  }
  out[0] = soft;
  out[1] = hard;
  out[2] = kept;
}

function feature(job: FeatureJob, layerSums: Float64Array): void {
  const { rows, p } = job;
  // 'mean' and 'none' differentiate the mean over rows.
  const rowScale = job.reduction === ReductionCode.Sum ? 1 : 1 / rows;
  if (job.rowOut) job.rowOut.fill(0);
  for (let l = 0; l < job.layers.length; l++) {
    const { student: s, teacher: t, cols: C, grad: g } = job.layers[l];
    const rowWeight = job.layers[l].weight / C;
    const scale = rowWeight * rowScale * p;
    let total = 0;
    for (let r = 0; r < rows; r++) {
      let row = 0;
      for (let j = r * C; j < (r + 1) * C; j++) {
        const d = s[j] - t[j];
        row += p === 2 ? d * d : Math.abs(d);
        if (g) g[j] = scale * (p === 2 ? d : Math.sign(d));
      }
      if (job.rowOut) job.rowOut[r] += rowWeight * row;
      total += row;
    }
    layerSums[l] = total;
  }
}

const absPow = (x: number, beta: number): number => (beta === 2 ? x * x : Math.abs(x) ** beta);

/**
 * |x|^beta / x, the gradient's factor, as the kernels take it: x for beta 2, sign(x) for beta 1, else
 * |x|^beta / x unless |x|^beta is below the normal range, then sign(x) |x|^(beta - 1); 0 at x = 0 (the
 * subgradient: a NaN of the row's other factor still makes the product NaN).
 */
function powRatio(x: number, ps: number, beta: number): number {
  if (x === 0) return 0;
  if (beta === 2) return x;
  if (beta === 1) return Math.sign(x);
  if (!(ps < 2.2250738585072014e-308)) return ps / x;
  return Math.sign(x) * Math.abs(x) ** (beta - 1);
}

function attention(job: AttentionRun): number {
  const { rows, cols: C, beta, student: s, teacher: t, grad: g } = job;
  let total = 0;
  for (let r = 0; r < rows; r++) {
    const o = r * C;
    // The normalisers with compensation (Neumaier): their rounding scales a whole map, which is what
    // the loss of two nearly identical maps is most sensitive to.
    let ss = 0;
    let st = 0;
    let cs = 0;
    let ct = 0;
    for (let j = o; j < o + C; j++) {
      const a = absPow(s[j], beta);
      const b = absPow(t[j], beta);
      const us = ss + a;
      const ut = st + b;
      cs += Math.abs(ss) >= Math.abs(a) ? ss - us + a : a - us + ss;
      ct += Math.abs(st) >= Math.abs(b) ? st - ut + b : b - ut + st;
      ss = us;
      st = ut;
    }
    if (Number.isFinite(ss)) ss += cs;
    if (Number.isFinite(st)) st += ct;
    // A NaN sum normalises too: a NaN makes the whole row NaN, loss and gradient, as an infinity does.
    const normS = !(ss <= 1e-8);
    const ns = normS ? 1 / ss : 1;
    const nt = !(st <= 1e-8) ? 1 / st : 1;
    let sq = 0;
    let ga = 0;
    for (let j = o; j < o + C; j++) {
      const as = absPow(s[j], beta) * ns;
      const d = as - absPow(t[j], beta) * nt;
      sq += d * d;
      ga += d * as;
    }
    if (job.rowOut) job.rowOut[r] = sq / C;
    total += sq;
    if (g) {
      const sub = normS ? 2 * ga : 0;
      for (let j = o; j < o + C; j++) {
        const x = s[j];
        const ps = absPow(x, beta);
        const gk = 2 * (ps * ns - absPow(t[j], beta) * nt) - sub;
        g[j] = job.gradScale * beta * ns * powRatio(x, ps, beta) * gk;
      }
    }
  }
  return total;
}

function run(job: Job, results: Float64Array): void {
  switch (job.op) {
    case 'kd':
      kd(job, results);
      break;
    case 'sparseKd':
      sparseKd(job, results, { kdRow, rowKept });
      break;
    case 'feature':
      feature(job, results);
      break;
    case 'attention': {
      // 'sum' sums row means; 'mean' and 'none' take the mean over all elements.
      const gradScale = job.reduction === ReductionCode.Sum ? 1 / job.cols : 1 / (job.rows * job.cols);
      results[0] = attention({ ...job, gradScale });
      break;
    }
  }
}

/** Every typed array a job reads or writes, with the name messages use. */
function buffersOf(job: Job): [View | null, string][] {
  switch (job.op) {
    case 'kd':
      return [
        [job.student, 'student'],
        [job.teacher, 'teacher'],
        [job.targets, 'hardTargets'],
        [job.mask, 'mask'],
        [job.rowSoft, 'rowSoft'],
        [job.rowHard, 'rowHard'],
        [job.grad, 'grad'],
        [job.argmax, 'argmax'],
      ];
    case 'sparseKd':
      return [
        [job.student, 'student'],
        [job.indices, 'indices'],
        [job.values, 'values'],
        [job.targets, 'hardTargets'],
        [job.mask, 'mask'],
        [job.rowSoft, 'rowSoft'],
        [job.rowHard, 'rowHard'],
        [job.grad, 'grad'],
        [job.argmax, 'argmax'],
      ];
    case 'feature':
      return [
        [job.rowOut, 'rowOut'],
        ...job.layers.flatMap((l, i): [View | null, string][] => [
          [l.student, `studentFeatures[${i}]`],
          [l.teacher, `teacherFeatures[${i}]`],
          [l.grad, `grads[${i}]`],
        ]),
      ];
    case 'attention':
      return [
        [job.student, 'studentAttention'],
        [job.teacher, 'teacherAttention'],
        [job.rowOut, 'rowOut'],
        [job.grad, 'grad'],
      ];
  }
}

/**
 * Runs a job on a later turn of the event loop. The js backend has no threads: the work itself still
 * runs on the main thread. `cancel` before it starts rejects without running it. A buffer detached or
 * resized since the call started is an InputError, not a computation over what is left of it.
 */
function later(job: Job, results: Float64Array): AsyncHandle {
  let cancelled = false;
  const buffers = buffersOf(job).filter((b): b is [View, string] => b[0] !== null);
  const lengths = buffers.map(([b]) => lengthOf(b));
  const promise = new Promise<void>((resolve, reject) => {
    setImmediate(() => {
      if (cancelled) {
        reject(new Error('aborted'));
        return;
      }
      try {
        buffers.forEach(([b, name], i) => {
          if (lengthOf(b) !== lengths[i]) throw new InputError(`${name}: detached or resized during the call`);
        });
        run(job, results);
        resolve();
      } catch (err) {
        reject(err);
      }
    });
  });
  return { promise, cancel: () => void (cancelled = true) };
}

/** The pure TypeScript backend (single-threaded: `threads` is ignored). */
export const jsBackend: Backend = {
  name: 'js',
  run: (job, _threads, results) => run(job, results),
  runAsync: (job, _threads, results) => later(job, results),
};
