// Comparisons of the differential fuzzer: values against a reference within the dtype's tolerance and
// floors (non-finite references exactly: NaN in the same places, infinities equal), runs that must be
// bitwise identical (any thread count, sync or async), argmax, and the reductions' consistency.
import type { FuzzCase, KdData, Reduction } from './fuzz-gen';
import { type Floors, keptRows } from './fuzz-floors';
import type { Outcome } from './fuzz-run';

/** README's accuracy contract: relative to the magnitude of the terms combined. */
export const TOLERANCE = { float64: 1e-12, float32: 1e-5 } as const;

/**
 * The smallest normal number of each dtype, allowed as absolute error on top of the tolerance: below
 * it a value, or a term that makes it up, has lost relative precision to gradual underflow (a float32
 * subnormal has fewer than 23 significant bits, and a term below 2^-149 is 0), which no relative
 * tolerance can express.
 */
export const TINY = { float64: 2 ** -1022, float32: 2 ** -126 } as const;

/** One failed check. */
export interface Discrepancy {
  /** value: against a reference; bitwise: runs that must agree exactly; reduction; argmax; integrity. */
  check: 'value' | 'bitwise' | 'reduction' | 'argmax' | 'integrity';
  /** Which result ('loss', 'grad', 'perSample', ...), and for arrays the rows of the failing elements. */
  quantity: string;
  rows?: number[];
  /** For arrays: the indices of the failing elements. */
  elements?: number[];
  /** What was compared ('native vs reference', ...). */
  pair: string;
  message: string;
}

function fmt(x: number): string {
  return Object.is(x, -0) ? '-0' : String(x);
}

/** Why `got` fails against `ref` (null when it passes). */
export function valueError(got: number, ref: number, floor: number, tol: number, tiny = 0): string | null {
  if (!Number.isFinite(ref)) {
    if (Object.is(got, ref) || (Number.isNaN(got) && Number.isNaN(ref))) return null;
    return `got ${fmt(got)}, reference ${fmt(ref)} (non-finite values must match exactly)`;
  }
  if (!Number.isFinite(got)) return `got ${fmt(got)}, reference ${fmt(ref)} (finite)`;
  if (got === ref) return null;
  const scale = Math.max(Math.abs(ref), floor);
  const err = Math.abs(got - ref) / scale;
  if (err <= tol || Math.abs(got - ref) <= tol * scale + tiny) return null;
  return `got ${fmt(got)}, reference ${fmt(ref)}: |diff| ${Math.abs(got - ref).toExponential(3)} is ${err.toExponential(3)} of max(|ref|, floor ${floor.toExponential(3)}), tolerance ${tol}`;
}

/** Compares every scalar and array of `got` with `ref`. `colsOf` maps an array name to its row width. */
export function compareValues(
  got: Outcome,
  ref: Outcome,
  floors: Floors,
  tol: number,
  tiny: number,
  pair: string,
  colsOf: (name: string) => number,
): Discrepancy[] {
  const out: Discrepancy[] = [];
  for (const [k, r] of Object.entries(ref.scalars)) {
    const g = got.scalars[k];
    const e = g === undefined ? 'missing' : valueError(g, r, floors.scalars[k] ?? 0, tol, tiny);
    if (e !== null) out.push({ check: 'value', quantity: k, pair, message: `${k}: ${e}` });
  }
  for (const [k, r] of Object.entries(ref.arrays)) {
    const g = got.arrays[k];
    if (g === undefined || g.length !== r.length) {
      out.push({ check: 'value', quantity: k, pair, message: `${k}: missing or of another length` });
      continue;
    }
    const floor = floors.arrays[k] ?? (() => 0);
    const cols = colsOf(k);
    const rows = new Set<number>();
    const elements: number[] = [];
    let first = '';
    for (let i = 0; i < r.length; i++) {
      const e = valueError(g[i], r[i], floor(i), tol, tiny);
      if (e === null) continue;
      if (elements.length === 0) first = `${k}[${i}] (row ${Math.floor(i / cols)}): ${e}`;
      elements.push(i);
      rows.add(Math.floor(i / cols));
    }
    if (elements.length > 0) {
      const more = elements.length > 1 ? ` (and ${elements.length - 1} more)` : '';
      out.push({ check: 'value', quantity: k, rows: [...rows], elements, pair, message: `${first}${more}` });
    }
  }
  return out;
}

/** Checks that two runs gave bitwise the same results (Object.is on every number). */
export function compareBitwise(a: Outcome, b: Outcome, pair: string): Discrepancy[] {
  const out: Discrepancy[] = [];
  for (const [k, x] of Object.entries(a.scalars)) {
    if (!Object.is(x, b.scalars[k])) out.push({ check: 'bitwise', quantity: k, pair, message: `${k}: ${fmt(x)} vs ${fmt(b.scalars[k])}` });
  }
  for (const group of ['arrays', 'ints'] as const) {
    for (const [k, x] of Object.entries(a[group])) {
      const y = b[group][k] as ArrayLike<number> | undefined;
      if (y === undefined || y.length !== x.length) {
        out.push({ check: 'bitwise', quantity: k, pair, message: `${k}: missing or of another length` });
        continue;
      }
      for (let i = 0; i < x.length; i++) {
        if (!Object.is(x[i], y[i])) {
          out.push({ check: 'bitwise', quantity: k, pair, message: `${k}[${i}]: ${fmt(x[i])} vs ${fmt(y[i])}` });
          break;
        }
      }
    }
  }
  return out;
}

/** Argmax results must be identical. */
export function compareArgmax(a: Outcome, b: Outcome, pair: string): Discrepancy[] {
  const out: Discrepancy[] = [];
  for (const [k, x] of Object.entries(b.ints)) {
    const y = a.ints[k];
    if (y === undefined) continue;
    const rows: number[] = [];
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) rows.push(i);
    if (rows.length > 0) {
      out.push({ check: 'argmax', quantity: k, rows, pair, message: `${k}[${rows[0]}]: ${y[rows[0]]} vs ${x[rows[0]]}` });
    }
  }
  return out;
}

/**
 * |a - b| <= tol * scale + slack, or both the same non-finite value. The slack covers the absolute
 * rounding of subnormal float64 sums, means and weighted terms (whose relative precision is less than
 * EPS, and whose rounding the loss weights then scale up).
 */
function near(a: number, b: number, tol: number, scale: number, slack: number): boolean {
  if (!Number.isFinite(a) || !Number.isFinite(b)) return Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b));
  return Math.abs(a - b) <= tol * scale + slack;
}

const EPS = 2 ** -52;

/**
 * Consistency of two reductions of the same case on one backend (`x` with reduction rx, `y` with ry):
 * 'mean' and 'none' report the same loss; mean * count == sum up to rounding of the scaling; 'none'
 * rows add up to the 'sum' (or average to the 'mean') up to float64 summation order.
 */
export function compareReductions(c: FuzzCase, x: Outcome, rx: Reduction, y: Outcome, ry: Reduction, pair: string): Discrepancy[] {
  const out: Discrepancy[] = [];
  const spec = c.spec;
  // The count 'mean' divides by: kept rows (kd), rows (feature), rows (attention, whose row values are
  // row means; 'mean' is the mean over all elements = mean of row means).
  const count = spec.kind === 'kd' ? keptRows(spec, c.data as KdData) : spec.rows;
  // What a reduction's loss is the sum divided by: the count, or for 'mean' a normalizer (given to the
  // 'mean' call only; 'none' reports the plain mean).
  const normalizer = spec.kind === 'kd' ? spec.normalizer : undefined;
  const divisor = (r: Reduction) => (r === 'mean' && normalizer !== undefined ? normalizer : count);
  const keys = Object.keys(x.scalars).filter((k) => !k.startsWith('standalone.'));
  const byR = (r: Reduction, o: Outcome) => ({ r, o });
  const pairXY = [byR(rx, x), byR(ry, y)];
  const mean = pairXY.find((p) => p.r !== 'sum');
  const sum = pairXY.find((p) => p.r === 'sum');
  const none = pairXY.find((p) => p.r === 'none');
  for (const k of keys) {
    const a = x.scalars[k];
    const b = y.scalars[k];
    if (sum === undefined && normalizer === undefined) {
      // mean vs none: the same number.
      if (!Object.is(a, b) && !(Number.isNaN(a) && Number.isNaN(b))) {
        out.push({ check: 'reduction', quantity: k, pair, message: `${k}: 'mean' and 'none' differ: ${fmt(a)} vs ${fmt(b)}` });
      }
    } else if (sum === undefined) {
      // mean with a normalizer N vs none (the plain mean): both the same sum, divided differently.
      const m = mean!.o.scalars[k];
      const n = none!.o.scalars[k];
      const fromMean = m * normalizer!;
      const fromNone = count === 0 ? 0 : n * count;
      if (!near(fromMean, fromNone, 4 * EPS, Math.abs(fromNone), TINY.float64)) {
        out.push({ check: 'reduction', quantity: k, pair, message: `${k}: mean ${fmt(m)} * normalizer ${normalizer} = ${fmt(fromMean)}, none ${fmt(n)} * ${count} = ${fmt(fromNone)}` });
      }
    } else if (mean !== undefined) {
      const m = mean.o.scalars[k];
      const s = sum.o.scalars[k];
      const d = divisor(mean.r);
      const expect = d === 0 ? 0 : m * d;
      if (!near(expect, s, 4 * EPS, Math.abs(s), TINY.float64) && !(d === 0 && m === 0)) {
        out.push({ check: 'reduction', quantity: k, pair, message: `${k}: mean ${fmt(m)} * ${d} = ${fmt(expect)}, sum ${fmt(s)}` });
      }
    }
  }
  if (none !== undefined) {
    const other = pairXY.find((p) => p !== none)!;
    const per = none.o.arrays.perSample;
    const total = other.r === 'sum' ? 1 : divisor(other.r) > 0 ? 1 / divisor(other.r) : 0;
    const names: [string, string][] = spec.kind === 'kd' ? [['perSample', 'loss'], ['perSampleSoft', 'soft'], ['perSampleHard', 'hard']] : [['perSample', 'loss']];
    for (const [arr, scalar] of names) {
      const a = none.o.arrays[arr] ?? per;
      let s = 0;
      let abs = 0;
      for (let i = 0; i < a.length; i++) {
        s += a[i];
        abs += Math.abs(a[i]);
      }
      const v = other.o.scalars[scalar];
      if (!near(s * total, v, 1e-13 + a.length * 4 * EPS, abs * total, TINY.float64)) {
        out.push({
          check: 'reduction',
          quantity: scalar,
          pair,
          message: `${scalar}: ${other.r} ${fmt(v)}, but the 'none' rows (${arr}) reduce to ${fmt(s * total)}`,
        });
      }
    }
  }
  return out;
}
