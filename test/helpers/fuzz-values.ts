// Value generators of the differential fuzzer: logits, probabilities, features and attention maps in
// regimes chosen to reach the kernels' edges (huge and tiny scales, ties, constant rows, cancellation
// between nearly identical inputs) and sprinkled with special values (infinities, NaN, subnormals,
// signed zeros). Every generator returns float64 values already rounded to the case's dtype, and a
// short description of what it drew (printed with a failing case).
import type { FuzzRng } from './fuzz-rng';

export type DTypeName = 'float32' | 'float64';

/** Largest logit magnitude the accuracy contract covers (README, Accuracy). */
export const MAX_LOGIT = 1e4;

/** Rounds every element to the dtype (float32: Math.fround) in place. */
export function roundTo(values: Float64Array, dtype: DTypeName): Float64Array {
  if (dtype === 'float32') for (let i = 0; i < values.length; i++) values[i] = Math.fround(values[i]);
  return values;
}

/** A random subnormal of the dtype, either sign. */
export function subnormal(rng: FuzzRng, dtype: DTypeName): number {
  const sign = rng.chance(0.5) ? -1 : 1;
  return dtype === 'float32' ? sign * (rng.int(2 ** 23 - 1) + 1) * 2 ** -149 : sign * (rng.u32() + 1) * 2 ** -1074;
}

const clampLogit = (x: number): number => Math.max(-MAX_LOGIT, Math.min(MAX_LOGIT, x));

/** rows x cols logits in one of several regimes. */
export function logits(rng: FuzzRng, rows: number, cols: number, dtype: DTypeName): { values: Float64Array; desc: string } {
  const n = rows * cols;
  const v = new Float64Array(n);
  const regime = rng.weighted({ normal: 6, large: 2, ints: 1, constRows: 1, tiny: 1, mixedRows: 1 });
  let desc: string = regime;
  const fillRow = (r: number, kind: string, sigma: number) => {
    for (let j = r * cols; j < (r + 1) * cols; j++) {
      switch (kind) {
        case 'large':
          v[j] = rng.range(-MAX_LOGIT, MAX_LOGIT);
          break;
        case 'ints':
          v[j] = rng.intIn(-3, 3);
          break;
        case 'tiny':
          v[j] = rng.chance(0.3) ? 0 : subnormal(rng, dtype);
          break;
        default:
          v[j] = clampLogit(sigma * rng.normal());
      }
    }
  };
  const sigmaOf = () => rng.pick([0.01, 0.3, 1, 3, 10, 100, 1000]);
  if (regime === 'normal') {
    const sigma = sigmaOf();
    desc = `normal(${sigma})`;
    for (let r = 0; r < rows; r++) fillRow(r, 'normal', sigma);
  } else if (regime === 'constRows') {
    for (let r = 0; r < rows; r++) v.fill(rng.chance(0.5) ? 0 : clampLogit(10 * rng.normal()), r * cols, (r + 1) * cols);
  } else if (regime === 'mixedRows') {
    for (let r = 0; r < rows; r++) fillRow(r, rng.pick(['normal', 'large', 'ints', 'tiny']), sigmaOf());
  } else {
    for (let r = 0; r < rows; r++) fillRow(r, regime, 1);
  }
  return { values: roundTo(v, dtype), desc };
}

/**
 * A second matrix related to `base`: independent, the same values, nearly the same (the soft term is
 * then a small difference of O(1) quantities), shifted by a per-row constant (the same softmax), or
 * scaled.
 */
export function related(
  rng: FuzzRng,
  base: Float64Array,
  rows: number,
  cols: number,
  dtype: DTypeName,
  independent: () => { values: Float64Array; desc: string },
): { values: Float64Array; desc: string } {
  const relation = rng.weighted({ independent: 11, same: 2, near: 3, shifted: 2, scaled: 2 });
  if (relation === 'independent') return independent();
  const v = new Float64Array(base.length);
  const rel = dtype === 'float32' ? 1e-5 : 1e-9;
  for (let r = 0; r < rows; r++) {
    const shift = clampLogit(10 * rng.normal());
    const scale = rng.pick([0.5, 2, 1.0001]);
    for (let j = r * cols; j < (r + 1) * cols; j++) {
      const x = base[j];
      if (relation === 'same') v[j] = x;
      else if (relation === 'near') v[j] = x + (Math.abs(x) + 1e-3) * rel * rng.normal();
      else if (relation === 'shifted') v[j] = Number.isFinite(x) ? clampLogit(x + shift) : x;
      else v[j] = Number.isFinite(x) ? clampLogit(x * scale) : x;
    }
  }
  return { values: roundTo(v, dtype), desc: relation };
}

/** Special values written over a matrix: single elements and, sometimes, whole rows. */
export function sprinkle(
  rng: FuzzRng,
  v: Float64Array,
  rows: number,
  cols: number,
  dtype: DTypeName,
  opts: { allowPosInf?: boolean; max?: number } = {},
): string {
  if (!rng.chance(0.35)) return '';
  const rate = rng.logUniform(0.002, 0.25);
  const max = opts.max ?? MAX_LOGIT;
  const kinds = { '-inf': 4, '+inf': opts.allowPosInf === false ? 0 : 1, nan: 2, subnormal: 2, zero: 1, '-zero': 1, max: 1 };
  const used = new Set<string>();
  for (let i = 0; i < v.length; i++) {
    if (!rng.chance(rate)) continue;
    const k = rng.weighted(kinds);
    used.add(k);
    v[i] =
      k === '-inf'
        ? -Infinity
        : k === '+inf'
          ? Infinity
          : k === 'nan'
            ? NaN
            : k === 'subnormal'
              ? subnormal(rng, dtype)
              : k === 'zero'
                ? 0
                : k === '-zero'
                  ? -0
                  : rng.chance(0.5)
                    ? max
                    : -max;
  }
  if (rows > 1 && rng.chance(0.25)) {
    const r = rng.int(rows);
    const kind = rng.pick(['-inf', 'nan', '-inf-but-one', 'equal']);
    used.add(`row ${r} ${kind}`);
    const o = r * cols;
    if (kind === '-inf') v.fill(-Infinity, o, o + cols);
    else if (kind === 'nan') v.fill(NaN, o, o + cols);
    else if (kind === 'equal') v.fill(v[o], o, o + cols);
    else {
      v.fill(-Infinity, o, o + cols);
      v[o + rng.int(cols)] = rng.normal();
    }
  }
  roundTo(v, dtype);
  return used.size > 0 ? ` + specials(${rate.toPrecision(2)}: ${[...used].join(', ')})` : '';
}

/** Student probabilities for cross-entropy from probabilities, with the clamp's edges. */
export function probabilities(
  rng: FuzzRng,
  rows: number,
  cols: number,
  dtype: DTypeName,
  epsilon: number,
): { values: Float64Array; desc: string } {
  const regime = rng.weighted({ softmax: 4, uniform: 2, edges: 2 });
  const v = softmaxRows(rng, rows, cols, rng.pick([0.5, 2, 8]));
  const edges = [0, 1, epsilon, epsilon / 2, 1 - epsilon, 1e-10, 2e-11, -0.25, 1.5, 0.5, 1 - 1e-10];
  for (let i = 0; i < v.length; i++) {
    if (regime === 'uniform') v[i] = rng.uniform();
    else if (regime === 'edges' && rng.chance(0.3)) v[i] = rng.pick(edges);
  }
  return { values: roundTo(v, dtype), desc: `probabilities ${regime}` };
}

/** Rows of softmax(sigma * normal). */
export function softmaxRows(rng: FuzzRng, rows: number, cols: number, sigma: number): Float64Array {
  const v = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let z = 0;
    for (let j = r * cols; j < (r + 1) * cols; j++) z += v[j] = Math.exp(sigma * rng.normal());
    for (let j = r * cols; j < (r + 1) * cols; j++) v[j] /= z;
  }
  return v;
}

/** Feature activations: logits-like values (features have no softmax, so the same regimes serve). */
export const features = logits;

/**
 * Attention maps for a beta: non-negative softmax maps, signed values, rows so small that their
 * power sum stays below the 1e-8 normalisation threshold, zero rows, and large values bounded so
 * that |x|^(2 beta) stays within float32 (about 1e30) or float64 (about 1e150) range.
 */
export function attentionMaps(
  rng: FuzzRng,
  rows: number,
  cols: number,
  dtype: DTypeName,
  beta: number,
): { values: Float64Array; desc: string } {
  const regime = rng.weighted({ attn: 4, signed: 4, tinyRows: 1, zeros: 1, large: 2, ints: 1, mixedRows: 2 });
  const max = attentionMax(dtype, beta);
  const v = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const kind = regime === 'mixedRows' ? rng.pick(['attn', 'signed', 'tinyRows', 'zeros', 'large', 'ints']) : regime;
    const sigma = rng.pick([0.1, 1, 3]);
    const o = r * cols;
    let z = 0;
    for (let j = o; j < o + cols; j++) {
      switch (kind) {
        case 'attn':
          z += v[j] = Math.exp(2 * rng.normal());
          break;
        case 'signed':
          v[j] = sigma * rng.normal();
          break;
        case 'tinyRows':
          // |x|^beta summed over the row far below 1e-8: the row is not normalised.
          v[j] = rng.normal() * 10 ** (-10 / beta) * 0.1;
          break;
        case 'zeros':
          v[j] = rng.chance(0.8) ? 0 : subnormal(rng, dtype);
          break;
        case 'large':
          v[j] = rng.range(-max, max);
          break;
        default:
          v[j] = rng.intIn(-2, 2);
      }
    }
    if (kind === 'attn') for (let j = o; j < o + cols; j++) v[j] /= z;
  }
  return { values: roundTo(v, dtype), desc: `${regime}` };
}

/** The largest attention value magnitude generated for a beta (see {@link attentionMaps}). */
export function attentionMax(dtype: DTypeName, beta: number): number {
  return Math.min(MAX_LOGIT, 10 ** ((dtype === 'float32' ? 15 : 75) / beta));
}

/**
 * Halves every row of `v` whose sum of |x|^beta lies within 2% of the 1e-8 normalisation threshold,
 * until none does: whether such a row is normalised depends on rounding, and either answer is right.
 */
export function dodgeThreshold(v: Float64Array, rows: number, cols: number, beta: number): void {
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < 8; k++) {
      let s = 0;
      for (let j = r * cols; j < (r + 1) * cols; j++) s += Math.abs(v[j]) ** beta;
      if (!(s > 0.98e-8 && s < 1.02e-8)) break;
      for (let j = r * cols; j < (r + 1) * cols; j++) v[j] *= 0.5;
    }
  }
}
