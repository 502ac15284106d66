// The distillation cases' divergence options and sparse teachers (fuzz-gen.ts draws the rest). They
// come from a stream of their own, seeded from (seed, index) apart from the case's main stream, so the
// rest of every case (shape, values, options) is the one the fuzzer drew before these options existed.
import { FuzzRng, mixSeed } from './fuzz-rng';
import { type DTypeName, roundTo } from './fuzz-values';

export type DivergenceName = 'kl' | 'reverse-kl' | 'jsd' | 'tvd';

/** The `DistillationLoss` options of a case (absent fields take their defaults). */
export interface DivergenceSpec {
  divergence: DivergenceName;
  /** 'jsd' only. */
  beta?: number;
  temperatureScaling: boolean;
}

/**
 * How a sparse teacher was built from the case's dense teacher: k slots per row, `entries[r]` of them
 * used (the others -1, at random slots), holding the row's largest values ('top') or random columns.
 */
export interface SparseSpec {
  k: number;
  kind: 'logits' | 'logprobs';
  /** As passed (undefined: the default, true for logprobs). */
  tail?: boolean;
  pick: 'top' | 'random';
  entries: number[];
}

export interface SparseData {
  indices: Int32Array;
  /** Rounded to the case's dtype. */
  values: Float64Array;
}

/** The draws of this module for case (seed, index): a stream of their own. */
export function divRng(seed: number, index: number): FuzzRng {
  return new FuzzRng(mixSeed(seed ^ 0x5bd1e995, index + 0x3c6ef372));
}

/** beta of 'jsd': the edges (the logs of beta and 1 - beta at their extremes) or uniform in (0, 1). */
function drawBeta(rng: FuzzRng): number {
  const kind = rng.weighted({ tiny: 1, half: 1, nearOne: 1, uniform: 3 });
  if (kind === 'tiny') return 1e-6;
  if (kind === 'half') return 0.5;
  if (kind === 'nearOne') return 1 - 1e-6;
  let b = rng.uniform();
  while (!(b > 0 && b < 1)) b = rng.uniform();
  return b;
}

export function drawDivergence(rng: FuzzRng): DivergenceSpec {
  const divergence = rng.weighted<DivergenceName>({ kl: 4, 'reverse-kl': 2, jsd: 2, tvd: 2 });
  const spec: DivergenceSpec = { divergence, temperatureScaling: !rng.chance(0.3) };
  if (divergence === 'jsd') spec.beta = drawBeta(rng);
  return spec;
}

/**
 * A normalizer for a 'mean' case (or undefined): the kept-row count (the plain mean's), a global
 * count around it (gradient accumulation), 1, or any finite positive scale.
 */
export function drawNormalizer(rng: FuzzRng, kept: number): number | undefined {
  if (!rng.chance(0.35)) return undefined;
  const kind = rng.weighted({ kept: 2, around: 3, one: 1, any: 2 });
  if (kind === 'kept' && kept > 0) return kept;
  if (kind === 'around') return Math.max(1, Math.round((kept + 1) * rng.range(0.5, 4)));
  if (kind === 'one') return 1;
  return rng.logUniform(1e-3, 1e4);
}

/** log_softmax(x / T) of one row in float64 (max-shifted; NaN and infinities as exact arithmetic gives). */
function logSoftmax(x: Float64Array, o: number, n: number, T: number): Float64Array {
  let max = -Infinity;
  for (let j = o; j < o + n; j++) if (x[j] > max || Number.isNaN(x[j])) max = Number.isNaN(max) ? max : x[j];
  const out = new Float64Array(n);
  if (Number.isNaN(max)) return out.fill(NaN);
  if (max === Infinity) {
    // +inf logits: their classes share all the mass (log of 1/count), the others -inf.
    let count = 0;
    for (let j = o; j < o + n; j++) if (x[j] === Infinity) count++;
    for (let j = 0; j < n; j++) out[j] = x[o + j] === Infinity ? -Math.log(count) : -Infinity;
    return out;
  }
  if (max === -Infinity) return out.fill(NaN); // a row of -inf: 0 / 0
  let z = 0;
  for (let j = o; j < o + n; j++) z += Math.exp((x[j] - max) / T);
  const lz = Math.log(z);
  for (let j = 0; j < n; j++) out[j] = (x[o + j] - max) / T - lz;
  return out;
}

/**
 * A sparse teacher from the dense `teacher` (rows x cols, already in the case's dtype): random k in
 * 1..cols, some rows with unused (-1) slots, entries in random slot order; logits are the teacher's
 * own values, logprobs its log-softmax at T computed in float64 from them, then rounded to the dtype.
 */
export function drawSparse(
  rng: FuzzRng,
  teacher: Float64Array,
  rows: number,
  cols: number,
  T: number,
  dtype: DTypeName,
): { spec: SparseSpec; data: SparseData } {
  const kk = rng.weighted({ one: 1, small: 4, all: 1, any: 2 });
  const k = kk === 'one' ? 1 : kk === 'all' ? cols : kk === 'small' ? rng.intIn(1, Math.min(cols, 70)) : rng.intIn(1, cols);
  const kind = rng.chance(0.5) ? 'logits' : 'logprobs';
  const tail = kind === 'logits' ? (rng.chance(0.7) ? undefined : false) : rng.pick([undefined, true, false]);
  const pick = rng.chance(0.75) ? 'top' : 'random';
  const padding = rng.weighted({ none: 2, some: 2, many: 1 });
  const indices = new Int32Array(rows * k).fill(-1);
  const values = new Float64Array(rows * k);
  const entries: number[] = [];
  const order = Int32Array.from({ length: cols }, (_, j) => j);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    const m = padding === 'none' ? k : padding === 'some' ? rng.intIn(Math.max(0, k - 3), k) : rng.intIn(0, k);
    entries.push(m);
    // The m columns: a random shuffle, then (top) the largest values first (NaN first, ties by column).
    for (let j = cols - 1; j > 0; j--) {
      const i = rng.int(j + 1);
      [order[i], order[j]] = [order[j], order[i]];
    }
    if (pick === 'top') {
      const key = (j: number) => (Number.isNaN(teacher[o + j]) ? Infinity : teacher[o + j]);
      order.sort((x, y) => {
        const d = key(y) - key(x);
        return d > 0 ? 1 : d < 0 ? -1 : x - y;
      });
    }
    const lp = kind === 'logprobs' ? logSoftmax(teacher, o, cols, T) : null;
    const slots = Int32Array.from({ length: k }, (_, e) => e);
    for (let e = k - 1; e > 0; e--) {
      const i = rng.int(e + 1);
      [slots[i], slots[e]] = [slots[e], slots[i]];
    }
    for (let e = 0; e < m; e++) {
      const j = order[e];
      const slot = r * k + slots[e];
      indices[slot] = j;
      values[slot] = lp !== null ? lp[j] : teacher[o + j];
    }
    // Unused slots hold garbage, which must never be read.
    for (let e = m; e < k; e++) values[r * k + slots[e]] = rng.pick([0, 1e30, NaN, -Infinity, 5]);
  }
  // Log-probabilities stay <= 0 when rounded (their sum may exceed 1 by the rounding, far below the
  // 1e-5 the library allows).
  roundTo(values, dtype);
  const spec: SparseSpec = { k, kind, pick, entries };
  if (tail !== undefined) spec.tail = tail;
  return { spec, data: { indices, values } };
}
