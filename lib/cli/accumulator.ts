/**
 * What `kdloss eval` adds up over the rows: per-term sums, top-1 counts, per-class counts and sums,
 * and the KL histogram. Chunks are added in any order and accumulators of disjoint row ranges merge,
 * through a plain-object state, into what one pass over all the rows gives: counts exactly, sums to
 * float64 rounding (compensated sums).
 * @module
 */
import { LogHistogram, type LogHistogramState, type KlHistogram } from './histogram';
import { fromJsonNumber, type NonFinite } from '../util/json';

/** The outcome of one chunk's computation, as {@link EvalAccumulator.add} takes it. */
export interface ChunkResult {
  /** Rows in the chunk. */
  rows: number;
  /** Each row's KL(p_t || p_s) at T (the unweighted soft term). */
  perSampleSoft: Float64Array;
  /** Each row's cross-entropy against its label (null without labels). */
  perSampleHard: Float64Array | null;
  /** Each row's top-1 class of the student and of the teacher (-1 for a row of NaNs). */
  studentArgmax: Int32Array;
  teacherArgmax: Int32Array;
  /** Each row's label (null without labels). */
  labels: Int32Array | null;
}

/**
 * A compensated float64 sum as a state: [sum, compensation]; read back from JSON, a non-finite one is
 * one of the strings of json.ts.
 */
export type SumState = [number | NonFinite, number | NonFinite];

/** Per-class state: the class and its counts and KL sum. */
export interface ClassState {
  class: number;
  support: number;
  studentCorrect: number;
  teacherCorrect: number;
  kl: SumState;
}

/** The serialisable state of an {@link EvalAccumulator} (plain numbers; non-finite ones possible). */
export interface AccumulatorState {
  format: 'kdloss-eval-accumulator/1';
  cols: number;
  hasLabels: boolean;
  rows: number;
  soft: SumState;
  hard: SumState;
  agreement: number;
  studentCorrect: number;
  teacherCorrect: number;
  /** Classes with at least one row, by class (empty without labels). */
  classes: ClassState[];
  histogram: LogHistogramState;
}

/** Per-class totals (classes present in the labels). */
export interface ClassTotals {
  class: number;
  /** Rows with this label. */
  support: number;
  /** Rows with this label whose student top-1 is the label. */
  studentCorrect: number;
  /** Rows with this label whose teacher top-1 is the label. */
  teacherCorrect: number;
  studentAccuracy: number;
  teacherAccuracy: number;
  /** Mean per-row KL(p_t || p_s) at T (the unweighted soft term) over these rows. */
  meanKl: number;
}

/** What the report needs from the accumulated rows (nothing here depends on T or alpha). */
export interface EvalTotals {
  rows: number;
  /** Mean per-row KL at T. */
  soft: number;
  /** Mean per-row cross-entropy (null without labels). */
  hard: number | null;
  agreementCount: number;
  studentCorrect: number | null;
  teacherCorrect: number | null;
  perClass: ClassTotals[] | null;
  klHistogram: KlHistogram;
}

/**
 * The compensation term of adding `x` to `s` (Neumaier): what rounding lost. Zero once the sum is not
 * finite: the sum's infinity or NaN is then exact arithmetic's, and (s - t) + x would turn an infinite
 * sum into NaN.
 */
function lost(s: number, x: number, t: number): number {
  if (!Number.isFinite(t)) return 0;
  return Math.abs(s) >= Math.abs(x) ? s - t + x : x - t + s;
}

/** Neumaier-compensated float64 sum (infinities and NaN as in exact arithmetic). */
export class Sum {
  private s = 0;
  private c = 0;

  add(x: number): void {
    const t = this.s + x;
    this.c += lost(this.s, x, t);
    this.s = t;
  }

  /** Adds another sum (its sum and its compensation, each compensated). */
  merge(o: Sum): void {
    this.add(o.s);
    this.add(o.c);
  }

  get value(): number {
    return Number.isFinite(this.s) ? this.s + this.c : this.s;
  }

  toState(): SumState {
    return [this.s, this.c];
  }

  static fromState([s, c]: SumState): Sum {
    const x = new Sum();
    x.s = fromJsonNumber(s);
    x.c = fromJsonNumber(c);
    return x;
  }
}

/** Sums over rows for `kdloss eval`; see the module comment. */
export class EvalAccumulator {
  private rows = 0;
  private soft = new Sum();
  private hard = new Sum();
  private agree = 0;
  private studentCorrect = 0;
  private teacherCorrect = 0;
  private readonly support: Float64Array;
  private readonly classStudent: Float64Array;
  private readonly classTeacher: Float64Array;
  private readonly classKl: Float64Array;
  private readonly classKlComp: Float64Array;
  private hist = new LogHistogram();

  /**
   * @param cols classes of the logits
   * @param hasLabels whether chunks carry labels (the hard term, accuracies and per-class sums)
   */
  constructor(
    readonly cols: number,
    readonly hasLabels: boolean,
  ) {
    const n = hasLabels ? cols : 0;
    this.support = new Float64Array(n);
    this.classStudent = new Float64Array(n);
    this.classTeacher = new Float64Array(n);
    this.classKl = new Float64Array(n);
    this.classKlComp = new Float64Array(n);
  }

  /** Adds one chunk's rows. Labels must be class indices in [0, cols). */
  add(c: ChunkResult): void {
    if ((c.labels !== null) !== this.hasLabels) throw new Error(`a chunk ${this.hasLabels ? 'without' : 'with'} labels`);
    const { rows: n, perSampleSoft: soft, perSampleHard: hard, studentArgmax: sArg, teacherArgmax: tArg, labels: y } = c;
    for (let r = 0; r < n; r++) {
      const kl = soft[r];
      this.soft.add(kl);
      this.hist.add(kl);
      const sa = sArg[r];
      const ta = tArg[r];
      if (sa === ta && sa >= 0) this.agree++;
      if (y !== null) {
        this.hard.add(hard![r]);
        const k = y[r];
        this.support[k]++;
        if (sa === k) {
          this.studentCorrect++;
          this.classStudent[k]++;
        }
        if (ta === k) {
          this.teacherCorrect++;
          this.classTeacher[k]++;
        }
        // Compensated per class, as Sum.
        const s = this.classKl[k];
        const t = s + kl;
        this.classKlComp[k] += lost(s, kl, t);
        this.classKl[k] = t;
      }
    }
    this.rows += n;
  }

  /** Adds the rows another accumulator (of the same classes and labels) has seen. */
  merge(o: EvalAccumulator): void {
    if (o.cols !== this.cols || o.hasLabels !== this.hasLabels) {
      throw new Error(`cannot merge ${o.cols} classes ${o.hasLabels ? 'with' : 'without'} labels into ${this.cols} ${this.hasLabels ? 'with' : 'without'}`);
    }
    this.rows += o.rows;
    this.soft.merge(o.soft);
    this.hard.merge(o.hard);
    this.agree += o.agree;
    this.studentCorrect += o.studentCorrect;
    this.teacherCorrect += o.teacherCorrect;
    for (let k = 0; k < this.support.length; k++) {
      if (o.support[k] === 0) continue;
      this.support[k] += o.support[k];
      this.classStudent[k] += o.classStudent[k];
      this.classTeacher[k] += o.classTeacher[k];
      const sum = Sum.fromState([this.classKl[k], this.classKlComp[k]]);
      sum.merge(Sum.fromState([o.classKl[k], o.classKlComp[k]]));
      [this.classKl[k], this.classKlComp[k]] = sum.toState() as [number, number];
    }
    this.hist.merge(o.hist);
  }

  /** The state, a plain object for JSON written by json.ts (see {@link EvalAccumulator.fromState}). */
  toState(): AccumulatorState {
    const classes: ClassState[] = [];
    for (let k = 0; k < this.support.length; k++) {
      if (this.support[k] === 0) continue;
      classes.push({
        class: k,
        support: this.support[k],
        studentCorrect: this.classStudent[k],
        teacherCorrect: this.classTeacher[k],
        kl: [this.classKl[k], this.classKlComp[k]],
      });
    }
    return {
      format: 'kdloss-eval-accumulator/1',
      cols: this.cols,
      hasLabels: this.hasLabels,
      rows: this.rows,
      soft: this.soft.toState(),
      hard: this.hard.toState(),
      agreement: this.agree,
      studentCorrect: this.studentCorrect,
      teacherCorrect: this.teacherCorrect,
      classes,
      histogram: this.hist.toState(),
    };
  }

  /**
   * The accumulator a state describes.
   * @throws Error for a state of another format or with classes out of range
   */
  static fromState(s: AccumulatorState): EvalAccumulator {
    if (s.format !== 'kdloss-eval-accumulator/1') throw new Error(`unknown accumulator format '${String(s.format)}'`);
    const a = new EvalAccumulator(s.cols, s.hasLabels);
    a.rows = s.rows;
    a.soft = Sum.fromState(s.soft);
    a.hard = Sum.fromState(s.hard);
    a.agree = s.agreement;
    a.studentCorrect = s.studentCorrect;
    a.teacherCorrect = s.teacherCorrect;
    for (const c of s.classes) {
      if (!s.hasLabels || !Number.isInteger(c.class) || c.class < 0 || c.class >= s.cols) throw new Error(`class ${c.class} out of range`);
      a.support[c.class] = c.support;
      a.classStudent[c.class] = c.studentCorrect;
      a.classTeacher[c.class] = c.teacherCorrect;
      [a.classKl[c.class], a.classKlComp[c.class]] = Sum.fromState(c.kl).toState() as [number, number];
    }
    a.hist = LogHistogram.fromState(s.histogram);
    return a;
  }

  /** Means, counts, per-class figures and the display histogram of the rows seen. */
  totals(): EvalTotals {
    const rows = this.rows;
    let perClass: ClassTotals[] | null = null;
    if (this.hasLabels) {
      perClass = [];
      for (let k = 0; k < this.support.length; k++) {
        const n = this.support[k];
        if (n === 0) continue;
        perClass.push({
          class: k,
          support: n,
          studentCorrect: this.classStudent[k],
          teacherCorrect: this.classTeacher[k],
          studentAccuracy: this.classStudent[k] / n,
          teacherAccuracy: this.classTeacher[k] / n,
          meanKl: Sum.fromState([this.classKl[k], this.classKlComp[k]]).value / n,
        });
      }
    }
    return {
      rows,
      soft: this.soft.value / rows,
      hard: this.hasLabels ? this.hard.value / rows : null,
      agreementCount: this.agree,
      studentCorrect: this.hasLabels ? this.studentCorrect : null,
      teacherCorrect: this.hasLabels ? this.teacherCorrect : null,
      perClass,
      klHistogram: this.hist.summary(),
    };
  }
}
