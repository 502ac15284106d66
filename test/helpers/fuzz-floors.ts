// Error floors of the differential fuzzer: the scale each result is compared at. A result passes when
// |got - ref| <= tol * max(|ref|, floor) + tiny, with tol 1e-12 (float64) or 1e-5 (float32), as
// README's accuracy section states it: relative to the magnitude of the terms combined. The floors
// are those of the PyTorch fixtures (tools/gen_fixtures.py, "Error floors"), computed here in float64
// from the case's inputs and the reference's gradient, except the attention gradient's normalisation
// term, which is taken at the magnitude of the maps (sum of (a_s + a_t) a_s) rather than of their
// difference: nearly identical maps make that difference much smaller than its rounding. `tiny` is
// the dtype's smallest normal number (see fuzz-check.ts).
import type { AttentionData, AttentionSpec, FeatureSpec, FuzzCase, KdData, KdSpec, Reduction } from './fuzz-gen';
import { denseSoftFloor, sparseSoftFloor } from './fuzz-floors-div';
import { kdRowKept, type Outcome } from './fuzz-run';

/** The comparison a case's floors are for: its tolerance and absolute slack (fuzz-check.ts). */
export interface Comparison {
  tol: number;
  tiny: number;
}

/** A floor for every scalar and every element of every array of an Outcome. */
export interface Floors {
  scalars: Record<string, number>;
  arrays: Record<string, (i: number) => number>;
}

/** Adds `w * x`, treating 0 * anything as 0 (a zero weight on an infinite term contributes nothing). */
const term = (w: number, x: number): number => (w === 0 ? 0 : w * x);

function maxAbs(a: ArrayLike<number> | undefined, from: number, to: number): number {
  if (a === undefined) return 0;
  let m = 0;
  for (let i = from; i < to; i++) if (Math.abs(a[i]) > m) m = Math.abs(a[i]);
  return m;
}

function logSumExpShifted(x: ArrayLike<number>, o: number, n: number, invT: number): { max: number; lz: number } {
  let max = -Infinity;
  for (let j = o; j < o + n; j++) if (x[j] > max) max = x[j];
  let z = 0;
  for (let j = o; j < o + n; j++) z += Math.exp((x[j] - max) * invT);
  return { max, lz: Math.log(z) };
}

/** Smoothed target y'_j of row r (0 for rows of ignored classes). */
function targetAt(spec: KdSpec, data: KdData, r: number, j: number): number {
  const C = spec.cols;
  const y = data.classes !== null ? (data.classes[r] === j ? 1 : 0) : data.targetMatrix![r * C + j];
  if (spec.hard.type === 'mse') return y;
  const ls = spec.hard.options.labelSmoothing ?? 0;
  return (1 - ls) * y + ls / C;
}

/** Row floors of the hard term and the magnitude of each hard-gradient term (unscaled). */
function hardRow(spec: KdSpec, data: KdData, r: number, gterm: Float64Array): number {
  const C = spec.cols;
  const o = r * C;
  const s = data.student;
  if (spec.hard.type === 'mse') {
    let f = 0;
    for (let j = 0; j < C; j++) {
      const d = s[o + j] - targetAt(spec, data, r, j);
      f += d * d;
      gterm[j] = (2 * Math.abs(d)) / C;
    }
    return f / C;
  }
  const opts = spec.hard.options;
  if (opts.fromLogits === false) {
    const eps = opts.epsilon ?? 1e-10;
    let f = 0;
    for (let j = 0; j < C; j++) {
      const y = targetAt(spec, data, r, j);
      const x = s[o + j];
      const c = x < eps ? eps : x > 1 - eps ? 1 - eps : x;
      f += term(Math.abs(y), Math.abs(Math.log(c)));
      gterm[j] = x >= eps && x <= 1 - eps ? Math.abs(y / x) : 0;
    }
    return f;
  }
  const { max, lz } = logSumExpShifted(s, o, C, 1);
  let ysum = 0;
  for (let j = 0; j < C; j++) ysum += targetAt(spec, data, r, j);
  let f = 0;
  for (let j = 0; j < C; j++) {
    const y = targetAt(spec, data, r, j);
    const d = s[o + j] - max;
    f += term(Math.abs(y), Math.abs(d) + Math.max(lz, 1));
    gterm[j] = Math.abs(ysum) * Math.exp(d - lz) + Math.abs(y);
  }
  return f;
}

/** Kept rows of a distillation case. */
export function keptRows(spec: KdSpec, data: KdData, useMask = true): number {
  let k = 0;
  for (let r = 0; r < spec.rows; r++) if (kdRowKept(spec, data, r, useMask)) k++;
  return k;
}

function reduceRows(rowFloors: Float64Array, scale: number): number {
  let s = 0;
  for (const f of rowFloors) s += f;
  return scale * s;
}

function kdFloors(spec: KdSpec, data: KdData, reduction: Reduction, ref: Outcome, cmp: Comparison): Floors {
  const { rows: R, cols: C, temperature: T, alpha } = spec;
  const kept = keptRows(spec, data);
  const scale = reduction === 'sum' ? 1 : spec.normalizer !== undefined ? 1 / spec.normalizer : kept > 0 ? 1 / kept : 0;
  const softWeight = spec.loss.temperatureScaling ? alpha * T * T : alpha;
  const soft = new Float64Array(R);
  const hard = new Float64Array(R);
  const loss = new Float64Array(R);
  const grad = new Float64Array(R);
  // TVD's ties: what an element may differ by besides rounding, as a floor (jump / tol).
  const jumps = new Map<number, Float64Array>();
  const gterm = new Float64Array(C);
  for (let r = 0; r < R; r++) {
    if (!kdRowKept(spec, data, r)) continue;
    const o = r * C;
    const sf = spec.sparse !== null ? sparseSoftFloor(spec, data, r) : denseSoftFloor(spec, data, r, cmp.tol, cmp.tiny);
    soft[r] = sf.value;
    hard[r] = hardRow(spec, data, r, gterm);
    loss[r] = term(softWeight, soft[r]) + term(1 - alpha, hard[r]);
    let g = 0;
    for (let j = 0; j < C; j++) {
      const e = term((softWeight * scale) / T, sf.grad[j]) + term((1 - alpha) * scale, gterm[j]);
      if (e > g) g = e;
    }
    grad[r] = Math.max(g, maxAbs(ref.arrays.grad, o, o + C));
    if (sf.jump !== null) jumps.set(r, sf.jump.map((x) => term((softWeight * scale) / T, x) / cmp.tol));
  }
  const floors: Floors = {
    scalars: { loss: reduceRows(loss, scale), soft: reduceRows(soft, scale), hard: reduceRows(hard, scale) },
    arrays: {
      perSample: (i) => loss[i],
      perSampleSoft: (i) => soft[i],
      perSampleHard: (i) => hard[i],
      grad: (i) => grad[Math.floor(i / C)] + (jumps.get(Math.floor(i / C))?.[i % C] ?? 0),
    },
  };
  if (spec.standalone) {
    // compute(): the mean over rows kept by ignoreIndex alone (no mask).
    const k = keptRows(spec, data, false);
    const sc = k > 0 ? 1 / k : 0;
    const sg = new Float64Array(R);
    let sum = 0;
    for (let r = 0; r < R; r++) {
      if (!kdRowKept(spec, data, r, false)) continue;
      sum += hardRow(spec, data, r, gterm);
      sg[r] = Math.max(sc * maxAbs(gterm, 0, C), maxAbs(ref.arrays['standalone.grad'], r * C, (r + 1) * C));
    }
    floors.scalars['standalone.loss'] = sc * sum;
    floors.arrays['standalone.grad'] = (i) => sg[Math.floor(i / C)];
  }
  return floors;
}

function featureFloors(spec: FeatureSpec, ref: Outcome): Floors {
  // Sums of non-negative terms of exact differences: the floor is the value itself; gradients have
  // no cancellation either (their floor is the row's max-abs).
  const floors: Floors = { scalars: {}, arrays: {} };
  for (const k of Object.keys(ref.scalars)) floors.scalars[k] = Math.abs(ref.scalars[k]);
  floors.arrays.perSample = (i) => Math.abs(ref.arrays.perSample[i]);
  spec.cols.forEach((C, l) => {
    const g = ref.arrays[`grads.${l}`];
    const rowMax = Float64Array.from({ length: spec.rows }, (_, r) => maxAbs(g, r * C, (r + 1) * C));
    floors.arrays[`grads.${l}`] = (i) => rowMax[Math.floor(i / C)];
  });
  return floors;
}

function attentionFloors(spec: AttentionSpec, data: AttentionData, reduction: Reduction, ref: Outcome): Floors {
  const { rows: R, cols: C, beta } = spec;
  const row = new Float64Array(R);
  const grad = new Float64Array(R);
  const gscale = reduction === 'sum' ? 1 / C : 1 / (R * C);
  const pow = (x: number) => Math.abs(x) ** beta;
  for (let r = 0; r < R; r++) {
    const o = r * C;
    let ss = 0;
    let st = 0;
    for (let j = o; j < o + C; j++) {
      ss += pow(data.student[j]);
      st += pow(data.teacher[j]);
    }
    const norm = ss > 1e-8;
    const ns = norm ? 1 / ss : 1;
    const nt = st > 1e-8 ? 1 / st : 1;
    let f = 0;
    let sub = 0;
    for (let j = o; j < o + C; j++) {
      const as = pow(data.student[j]) * ns;
      const at = pow(data.teacher[j]) * nt;
      f += Math.max(as * as, at * at);
      // The normalisation's term sums (a_s - a_t) a_s over the row: its resolution is that of the
      // maps, whose difference may be far smaller (nearly identical maps).
      if (norm) sub += 2 * (as + at) * as;
    }
    row[r] = f / C;
    let g = 0;
    for (let j = o; j < o + C; j++) {
      const x = Math.abs(data.student[j]);
      const dpow = x > 0 ? beta * x ** (beta - 1) : 0;
      const as = pow(data.student[j]) * ns;
      const at = pow(data.teacher[j]) * nt;
      const e = term(gscale * dpow * ns, 2 * as + 2 * at + sub);
      if (e > g) g = e;
    }
    grad[r] = Math.max(g, maxAbs(ref.arrays.grad, o, o + C));
  }
  const loss = reduceRows(row, reduction === 'sum' ? 1 : 1 / R);
  return { scalars: { loss }, arrays: { perSample: (i) => row[i], grad: (i) => grad[Math.floor(i / C)] } };
}

/** The floors of a case's results with the given reduction (`ref`: the reference outcome). */
export function floorsOf(c: FuzzCase, reduction: Reduction, ref: Outcome, cmp: Comparison): Floors {
  if (c.spec.kind === 'kd') return kdFloors(c.spec, c.data as KdData, reduction, ref, cmp);
  if (c.spec.kind === 'feature') return featureFloors(c.spec, ref);
  return attentionFloors(c.spec, c.data as AttentionData, reduction, ref);
}
