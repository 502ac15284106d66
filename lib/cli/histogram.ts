/**
 * The histogram of per-row KL values: fixed log-spaced fine bins, so that histograms of different
 * chunks, shards or runs add up bin by bin, regrouped into a few display bins at the end.
 * @module
 */
import { fromJsonNumber, type NonFinite } from '../util/json';

/** One display bin: [lo, hi); lo null is "below the smallest edge", hi null "at or above the largest". */
export interface HistogramBin {
  lo: number | null;
  hi: number | null;
  count: number;
}

/** The display histogram of the per-row KL (unweighted soft term). */
export interface KlHistogram {
  /** 'log10': bin edges are log-spaced. */
  scale: 'log10';
  bins: HistogramBin[];
  /** Rows whose KL is NaN (NaN logits), not in any bin. */
  nan: number;
  /** Smallest and largest non-NaN KL seen (null without rows). */
  min: number | null;
  max: number | null;
}

/** The serialisable state of a {@link LogHistogram}: its binning and its non-zero fine bins. */
export interface LogHistogramState {
  perDecade: number;
  loExp: number;
  hiExp: number;
  /** [fine bin index, count] of every non-empty fine bin, by index. */
  counts: [number, number][];
  under: number;
  over: number;
  nan: number;
  /** min > max when nothing but NaN was added (non-finite ones as the strings of json.ts when read back). */
  min: number | NonFinite;
  max: number | NonFinite;
}

/**
 * Streaming histogram of non-negative values on log-spaced fine bins (32 per decade over
 * [1e-12, 1e6)), regrouped at the end into at most `maxBins` display bins over the range seen.
 */
export class LogHistogram {
  static readonly PER_DECADE = 32;
  static readonly LO_EXP = -12;
  static readonly HI_EXP = 6;
  private readonly counts = new Float64Array((LogHistogram.HI_EXP - LogHistogram.LO_EXP) * LogHistogram.PER_DECADE);
  private under = 0;
  private over = 0;
  private nan = 0;
  private min = Infinity;
  private max = -Infinity;

  add(v: number): void {
    if (Number.isNaN(v)) {
      this.nan++;
      return;
    }
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
    if (v < 10 ** LogHistogram.LO_EXP) {
      this.under++;
    } else if (v >= 10 ** LogHistogram.HI_EXP) {
      this.over++;
    } else {
      const i = Math.floor((Math.log10(v) - LogHistogram.LO_EXP) * LogHistogram.PER_DECADE);
      this.counts[Math.min(Math.max(i, 0), this.counts.length - 1)]++;
    }
  }

  /** Adds another histogram's counts (exact: counts are integers). */
  merge(other: LogHistogram): void {
    for (let i = 0; i < this.counts.length; i++) this.counts[i] += other.counts[i];
    this.under += other.under;
    this.over += other.over;
    this.nan += other.nan;
    this.min = Math.min(this.min, other.min);
    this.max = Math.max(this.max, other.max);
  }

  /** The state, for {@link LogHistogram.fromState}. */
  toState(): LogHistogramState {
    const counts: [number, number][] = [];
    this.counts.forEach((c, i) => {
      if (c > 0) counts.push([i, c]);
    });
    return {
      perDecade: LogHistogram.PER_DECADE,
      loExp: LogHistogram.LO_EXP,
      hiExp: LogHistogram.HI_EXP,
      counts,
      under: this.under,
      over: this.over,
      nan: this.nan,
      min: this.min,
      max: this.max,
    };
  }

  /**
   * A histogram from a state {@link toState} returned.
   * @throws Error when the state's binning is not this build's or a bin index is out of range
   */
  static fromState(s: LogHistogramState): LogHistogram {
    if (typeof s !== 'object' || s === null) throw new TypeError('histogram: expected an object');
    if (s.perDecade !== LogHistogram.PER_DECADE || s.loExp !== LogHistogram.LO_EXP || s.hiExp !== LogHistogram.HI_EXP) {
      throw new Error(`histogram binning ${s.perDecade} per decade over [1e${s.loExp}, 1e${s.hiExp}) is not this version's`);
    }
    const count = (v: unknown, what: string): number => {
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new TypeError(`histogram ${what}: expected a count`);
      return v;
    };
    const h = new LogHistogram();
    if (!Array.isArray(s.counts)) throw new TypeError('histogram counts: expected an array of [bin, count]');
    for (const pair of s.counts) {
      if (!Array.isArray(pair) || pair.length !== 2) throw new TypeError('histogram counts: expected [bin, count] pairs');
      const [i, c] = pair;
      if (!Number.isInteger(i) || i < 0 || i >= h.counts.length) throw new Error(`histogram bin ${String(i).slice(0, 40)} out of range`);
      h.counts[i] += count(c, `bin ${i}`);
    }
    h.under = count(s.under, 'under');
    h.over = count(s.over, 'over');
    h.nan = count(s.nan, 'nan');
    h.min = fromJsonNumber(s.min);
    h.max = fromJsonNumber(s.max);
    return h;
  }

  /** Values added (NaN included). */
  get total(): number {
    let t = this.under + this.over + this.nan;
    for (const c of this.counts) t += c;
    return t;
  }

  private edge(i: number): number {
    // Round to 6 significant digits: exact decade edges print as 1e-3, not 0.0009999999.
    return Number((10 ** (LogHistogram.LO_EXP + i / LogHistogram.PER_DECADE)).toPrecision(6));
  }

  /** The display histogram: at most `maxBins` log-spaced bins over the range seen (plus open-ended ones). */
  summary(maxBins = 16): KlHistogram {
    const bins: HistogramBin[] = [];
    if (this.under > 0) bins.push({ lo: null, hi: 10 ** LogHistogram.LO_EXP, count: this.under });
    let i0 = -1;
    let i1 = -1;
    for (let i = 0; i < this.counts.length; i++) {
      if (this.counts[i] > 0) {
        if (i0 < 0) i0 = i;
        i1 = i;
      }
    }
    if (i0 >= 0) {
      const group = Math.max(1, Math.ceil((i1 - i0 + 1) / maxBins));
      for (let i = i0; i <= i1; i += group) {
        let count = 0;
        for (let j = i; j < i + group && j < this.counts.length; j++) count += this.counts[j];
        bins.push({ lo: this.edge(i), hi: this.edge(i + group), count });
      }
    }
    if (this.over > 0) bins.push({ lo: 10 ** LogHistogram.HI_EXP, hi: null, count: this.over });
    const seen = this.min <= this.max;
    return { scale: 'log10', bins, nan: this.nan, min: seen ? this.min : null, max: seen ? this.max : null };
  }
}
