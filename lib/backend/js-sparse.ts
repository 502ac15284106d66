/**
 * The js backend's distillation with a sparse teacher: the twin of native/kernels/sparse_rows.h and the
 * binding's checks (native/addon/ops_sparse.cc), in float64. The hard term and its gradient are the
 * dense row's (js.ts kdRow, run with the soft term's gradient scale at 0); the soft term is
 * KL(p || q) over the row's entries, plus the tail bucket (see docs/sparse-teachers.md).
 * @module
 */
import { InputError } from '../errors';
import { LOGPROB_SLACK } from '../sparse';
import { SparseKindCode } from './layout';
import { type KdJob, type RowScratch, type SparseKdJob, reductionScale, TargetKind } from './types';

/** What js.ts lends: one dense row (soft, hard; gradient), and whether a row is kept. */
export interface DenseRows {
  kdRow(job: KdJob & { gradSoftScale: number; gradHardScale: number }, r: number, scratch: RowScratch): [number, number];
  rowKept(job: KdJob, r: number): boolean;
}

/** The binding's pass over the entries (every row): indices -1 or in range and not repeated; logprob bounds. */
function checkEntries(job: SparseKdJob): void {
  const { rows, cols, k, indices, values } = job;
  const seen = new Uint8Array(cols);
  for (let r = 0; r < rows; r++) {
    let sum = 0;
    for (let e = r * k; e < (r + 1) * k; e++) {
      const i = indices[e];
      if (i === -1) continue;
      if (i < 0 || i >= cols) {
        throw new InputError(`teacher row ${r}: indices[${e - r * k}] = ${i} out of range [0, ${cols}) (-1 marks an unused slot)`);
      }
      if (seen[i] !== 0) throw new InputError(`teacher row ${r}: index ${i} appears more than once`);
      seen[i] = 1;
      if (job.sparseKind === SparseKindCode.Logprobs) {
        const v = values[e];
        if (v > LOGPROB_SLACK) throw new InputError(`teacher row ${r}: values[${e - r * k}] = ${v} is not a log-probability (expected <= 0)`);
        sum += Math.exp(v);
      }
    }
    if (sum > 1 + LOGPROB_SLACK) throw new InputError(`teacher row ${r}: its probabilities sum to ${sum}, more than 1`);
    for (let e = r * k; e < (r + 1) * k; e++) if (indices[e] >= 0) seen[indices[e]] = 0;
  }
}

function countKept(job: SparseKdJob, dense: DenseRows, asKd: KdJob): number {
  const indices = job.targetKind === TargetKind.Int32 || job.targetKind === TargetKind.Uint32 ? (job.targets as Int32Array | Uint32Array) : null;
  let kept = 0;
  for (let r = 0; r < job.rows; r++) {
    if (indices !== null) {
      const c = indices[r];
      if (c === job.ignoreIndex) continue;
      if (c < 0 || c >= job.cols) throw new InputError(`hardTargets[${r}]: class index ${c} out of range [0, ${job.cols})`);
    }
    if (dense.rowKept(asKd, r)) kept++;
  }
  return kept;
}

/**
 * The soft term of row r (the student row's copy `s`, its max ms and exp sum zs at T), its argmax, and
 * its gradient, added to the row's (the hard term's part, already written).
 */
function sparseRow(job: SparseKdJob, r: number, s: Float64Array, ms: number, zs: number, gs: number): number {
  const { cols: C, k: K, indices, values, temperature: T } = job;
  const o = r * C;
  const tail = job.sparseKind === SparseKindCode.Logprobs && job.tail;
  const scale = job.sparseKind === SparseKindCode.Logits ? 1 / T : 1;
  let mt = -Infinity;
  let arg = -1;
  let count = 0;
  for (let e = r * K; e < (r + 1) * K; e++) {
    const i = indices[e];
    if (i < 0 || i >= C) continue;
    count++;
    const v = values[e];
    if (v > mt || (v === mt && (arg < 0 || i < arg))) {
      mt = v;
      arg = i;
    }
  }
  if (job.argmax !== null) job.argmax[job.rows + r] = arg;
  const shift = tail ? 0 : mt;
  let zt = 0;
  let w = 0;
  let ss = 0;
  for (let e = r * K; e < (r + 1) * K; e++) {
    const i = indices[e];
    if (i < 0 || i >= C) continue;
    const a = (values[e] - shift) * scale;
    const pe = Math.exp(a);
    const d = (s[i] - ms) / T;
    zt += pe;
    if (pe !== 0) w += pe * (a - d); // no mass: absent (also where d is -inf)
    if (tail) ss += Math.exp(d);
  }
  let value: number;
  let tailCoef = 0;
  const norm = tail ? 1 : zt;
  if (!tail) {
    value = w / zt + Math.log(zs / zt);
  } else {
    let pOut = count < C ? 1 - zt : 0;
    if (pOut < 0) pOut = 0;
    const zOut = Math.max(zs - ss, 0);
    value = w + (zt + pOut) * Math.log(zs);
    if (pOut !== 0) {
      value += pOut * (Math.log(pOut) - Math.log(zOut));
      tailCoef = pOut / zOut;
    }
  }
  const g = job.grad;
  if (g !== null && gs !== 0) {
    // gs q_j (1 - p_out / q_out) over the row (added to the hard term's part), then the entries' own.
    const c = gs * (1 / zs - tailCoef);
    for (let j = 0; j < C; j++) g[o + j] += c * Math.exp((s[j] - ms) / T);
    for (let e = 0; e < K; e++) {
      const i = indices[r * K + e];
      if (i < 0 || i >= C) continue;
      const p = Math.exp((values[r * K + e] - shift) * scale) / norm;
      const qPart = tailCoef !== 0 ? Math.exp((s[i] - ms) / T) * tailCoef : 0;
      g[o + i] += gs * (qPart - p);
    }
  }
  return value;
}

/** Computes a sparse job into out = [soft sum, hard sum, kept]. */
export function sparseKd(job: SparseKdJob, out: Float64Array, dense: DenseRows): void {
  checkEntries(job);
  // The dense row's hard term: a teacher equal to the student, its soft gradient scale 0.
  const asKd: KdJob = { ...job, op: 'kd', teacher: job.student, argmax: null, rowSoft: null };
  const kept = countKept(job, dense, asKd);
  const scale = reductionScale(job.reduction, job.normalizer, kept);
  const run = { ...asKd, gradSoftScale: 0, gradHardScale: job.hardWeight * scale };
  const gs = (job.softWeight * scale) / job.temperature;
  const C = job.cols;
  const T = job.temperature;
  const scratch: RowScratch = { es: new Float64Array(C), et: new Float64Array(C), e1: new Float64Array(C), dq: new Float64Array(0) };
  const s = job.student;
  const row = new Float64Array(C);
  let soft = 0;
  let hard = 0;
  for (let r = 0; r < job.rows; r++) {
    if (!dense.rowKept(asKd, r)) {
      if (job.rowSoft) job.rowSoft[r] = 0;
      if (job.rowHard) job.rowHard[r] = 0;
      if (job.grad) job.grad.fill(0, r * C, (r + 1) * C);
      if (job.argmax) job.argmax[r] = job.argmax[job.rows + r] = -1;
      continue;
    }
    for (let j = 0; j < C; j++) row[j] = s[r * C + j];
    let ms = -Infinity;
    let as = -1;
    for (let j = 0; j < C; j++) {
      const x = row[j];
      if (x > ms || (as < 0 && x === ms)) {
        ms = x;
        as = j;
      }
    }
    if (job.argmax) job.argmax[r] = as;
    let zs = 0;
    for (let j = 0; j < C; j++) zs += Math.exp((row[j] - ms) / T);
    // The soft term reads the row's copy: the gradient the hard term writes may be the student itself.
    const rh = dense.kdRow(run, r, scratch)[1];
    const rs = sparseRow(job, r, row, ms, zs, gs);
    if (job.rowSoft) job.rowSoft[r] = rs;
    if (job.rowHard) job.rowHard[r] = rh;
    soft += rs;
    hard += rh;
  }
  out[0] = soft;
  out[1] = hard;
  out[2] = kept;
}
