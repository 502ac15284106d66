/**
 * An exact sum of float64 values: the running sum is kept as non-overlapping partials (Shewchuk's
 * expansions, the algorithm of Python's math.fsum), so no bit is ever lost, and the value is the exact
 * sum rounded once, to nearest even. The result is therefore the same whatever the order of the
 * values and however they were split and merged: a sum over shards merged equals the sum over the
 * whole, bit for bit. NaN and infinities are kept apart and combine as in exact arithmetic (+Infinity
 * and -Infinity together are NaN); a finite sum beyond the float64 range is an infinity of its sign.
 * @module
 */
import type { NonFinite } from '../util/json';

/** The state: the partials, then "NaN", "Infinity" and "-Infinity" for each kind seen. */
export type ExactSumState = (number | NonFinite)[];

export class ExactSum {
  /** Non-overlapping, by increasing magnitude. */
  private partials: number[] = [];
  private nan = false;
  private posInf = false;
  private negInf = false;

  add(x: number): void {
    if (!Number.isFinite(x)) {
      if (Number.isNaN(x)) this.nan = true;
      else if (x > 0) this.posInf = true;
      else this.negInf = true;
      return;
    }
    const p = this.partials;
    let i = 0;
    for (let j = 0; j < p.length; j++) {
      let y = p[j];
      if (Math.abs(x) < Math.abs(y)) [x, y] = [y, x];
      const hi = x + y;
      if (!Number.isFinite(hi)) {
        // The exact sum is beyond the largest float64: it rounds to an infinity of its sign.
        if (hi > 0) this.posInf = true;
        else this.negInf = true;
        return;
      }
      const lo = y - (hi - x);
      if (lo !== 0) p[i++] = lo;
      x = hi;
    }
    p.length = i;
    p.push(x);
  }

  /** Adds another sum's values (exactly). */
  merge(o: ExactSum): void {
    for (const x of o.partials) this.add(x);
    this.nan ||= o.nan;
    this.posInf ||= o.posInf;
    this.negInf ||= o.negInf;
  }

  /** The exact sum rounded to the nearest float64 (ties to even). */
  get value(): number {
    if (this.nan || (this.posInf && this.negInf)) return NaN;
    if (this.posInf) return Infinity;
    if (this.negInf) return -Infinity;
    const p = this.partials;
    let n = p.length;
    if (n === 0) return 0;
    let hi = p[--n];
    let lo = 0;
    // Add the partials from the largest down until the sum is inexact.
    while (n > 0) {
      const x = hi;
      const y = p[--n];
      hi = x + y;
      lo = y - (hi - x);
      if (lo !== 0) break;
    }
    // Round half to even: when the rest is exactly half an ulp and the next partial has the same
    // sign, the sum is beyond the halfway point and rounds away.
    if (n > 0 && ((lo < 0 && p[n - 1] < 0) || (lo > 0 && p[n - 1] > 0))) {
      const y = lo * 2;
      const x = hi + y;
      if (y === x - hi) hi = x;
    }
    return hi;
  }

  toState(): ExactSumState {
    const s: ExactSumState = [...this.partials];
    if (this.nan) s.push('NaN');
    if (this.posInf) s.push('Infinity');
    if (this.negInf) s.push('-Infinity');
    return s;
  }

  /**
   * The sum a state describes (its partials are added again, so any list of numbers is a valid state).
   * @throws TypeError for anything but finite numbers and the three strings
   */
  static fromState(s: unknown): ExactSum {
    if (!Array.isArray(s)) throw new TypeError(`expected an array of partial sums, got ${s === null ? 'null' : typeof s}`);
    const x = new ExactSum();
    for (const v of s) {
      if (typeof v === 'number' && Number.isFinite(v)) x.add(v);
      else if (v === 'NaN') x.nan = true;
      else if (v === 'Infinity') x.posInf = true;
      else if (v === '-Infinity') x.negInf = true;
      else throw new TypeError(`expected a finite number, "NaN", "Infinity" or "-Infinity" in a sum, got ${JSON.stringify(v)?.slice(0, 40)}`);
    }
    return x;
  }
}
